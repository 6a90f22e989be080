"""Stage 5 of a report run: what each option costs at your volume, personal data in the traffic, and cascades.

Third-party options are priced from the tokens each item used and their declared price; self-hosted options
from the throughput measured for them on this machine and their declared machine (its price per hour,
utilisation, always-on, setup and ops hours, and — for a fine-tune — the measured training time as a
one-time cost). Each cost carries a band from resampling the measured items. Every self-hosted candidate
that gives confidences is simulated as a cascade in front of the reference, its threshold fitted on the dev
items' answers when the run has them for both options, else cross-fitted over folds of the test items; its
figures are the test items', each routed by a threshold that never saw it.

Each self-hosted candidate also pays for staying right once deployed (the experiment's ``upkeep:``): a fresh
sample labelled each window so the monitor can re-test it against the reference — labels per window as the
plan's formula sizes them from the run's own answers (or as given), at the labelling loop's measured pace when
the store has timed labels of the task (else the stated default) — and, for a fine-tune, its measured training
hours and the engineer hours of a retraining at the given cadence. Both enter its monthly cost, hence the
break-even volumes, the cascades and the verdict; the costs table says what each assumed.

>>> costs_stage(RunFolder("runs/report-x"))           # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from kit.cascade import fit_cascade, routed_scores, sweep_cascade
from kit.columns import Col
from kit.decision import Hybrid, OptionKey
from kit.economics import CostOption, api_option, break_even, cost_curve, cost_table, local_option, monthly_band
from kit.economics.upkeep import UpkeepCost, labelling_cost, retraining_cost
from kit.errors import ConfigError
from kit.experiment import Experiment, Option, UpkeepSpec
from kit.labels import LabelBook
from kit.labels.pace import labelling_pace
from kit.models import resolve_model
from kit.models.ceiling import decode_ceiling
from kit.models.convert import converted
from kit.models.hardware import machine_words
from kit.pipeline.arming import models_of
from kit.pipeline.folder import Doc, RunFolder, Stage, Table
from kit.pipeline.pricing import deployment_of, pricing_of
from kit.pipeline.scores import floor_of, floor_table, task_of
from kit.privacy import pii_share, scan_items
from kit.run.store import Store
from kit.run.sweep import Goodput, choose_goodput
from kit.stats import sample_size_noninferiority
from kit.tasks import Task

STAGE = Stage("costs", "05_costs.ipynb",
              reads=frozenset({Doc.EXPERIMENT, Doc.RUNS, Doc.HARDWARE, Doc.FINETUNES, Doc.STORE, Table.SCORES,
                               Table.THROUGHPUT, Table.DEV_SCORES}),
              writes=frozenset({Table.COSTS, Table.BREAK_EVEN, Table.COST_CURVE, Table.PII, Table.PII_ITEMS,
                                Table.CASCADE, Table.CASCADE_ROUTES, Doc.CASCADES, Doc.GOODPUT}))


# the costs table's upkeep columns: USD a month, and what each figure assumed
_UPKEEP_COSTS = {Col.LABELLING_COST: "labelling", Col.RETRAINING_COST: "retraining"}
_UPKEEP_BASES = {Col.LABELLING_BASIS: "labelling", Col.RETRAINING_BASIS: "retraining"}


def _train_seconds(finetunes: Mapping[str, Any], option: Option, task: str) -> float:
    if option.finetune is None:
        return 0.0
    return float(finetunes.get(option.name, {}).get(task, {}).get("train_seconds", 0.0))


def label_seconds(folder: RunFolder, task: Task, *, default: float) -> tuple[float, bool, str]:
    """Seconds one label of ``task`` takes: the labelling loop's median pace when the run's store holds timed labels
    of the task, else ``default``. Returns (seconds, measured, where the figure comes from)."""
    if folder.has(Doc.STORE):
        try:
            with Store(folder.doc(Doc.STORE)["path"]) as store:
                pace = labelling_pace(LabelBook(store, task).history())
        except ConfigError:  # a task type not labelled by hand: no pace to read
            pace = None
        if pace is not None:
            return pace.seconds_per_label, True, (f"the median of {pace.n_gaps} gaps between consecutive labels of "
                                                  f"{pace.labellers} labeller(s) in the store")
    return default, False, "upkeep.seconds_per_label (the store has no timed labels of this task)"


def labels_per_window(exp: Experiment, scores: pd.DataFrame, option: Option) -> tuple[float, str]:
    """The fresh labels a window needs to re-test ``option`` against the reference: the experiment's
    ``upkeep.labels_per_window`` when given, else the paired items Nam's (1997) formula needs at the margin
    with 80% power from this run's answers (the plan's method on a pilot), else the items the run compared."""
    given = (exp.upkeep or UpkeepSpec()).labels_per_window
    if given is not None:
        return float(given), "upkeep.labels_per_window"
    wide = scores.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.SCORE, aggfunc="mean")
    if option.name not in wide or exp.reference.name not in wide:
        return float(len(wide)), "the items the run compared"
    pair = wide[[option.name, exp.reference.name]].fillna(0.0)
    c, r = pair[option.name].to_numpy(float), pair[exp.reference.name].to_numpy(float)
    if np.isin(np.concatenate([c, r]), (0.0, 1.0)).all():
        n = float(sample_size_noninferiority(c, r, margin=exp.margin, alpha=exp.alpha).iloc[0]["n_required"])
        if math.isfinite(n):
            return n, (f"Nam (1997) at a margin of {exp.margin:g}, 80% power, from this run's {len(pair)} paired "
                       "answers")
    return float(len(pair)), f"the {len(pair)} items the run compared (no finite number from the plan's formula)"


def upkeep_of(exp: Experiment, option: Option, scores: pd.DataFrame, *, train_seconds: float,
              pace: tuple[float, bool, str]) -> dict[str, UpkeepCost]:
    """What keeping a self-hosted candidate's verdict true costs a month: labelling, and retraining a fine-tune
    (empty for the reference and third-party options)."""
    if not option.self_hosted or option.name == exp.reference.name:
        return {}
    spec = exp.upkeep or UpkeepSpec()
    n, n_from = labels_per_window(exp, scores, option)
    seconds, measured, s_from = pace
    label = labelling_cost(labels_per_window=n, seconds_per_label=seconds, hourly_rate=exp.hourly_rate,
                           windows_per_month=spec.windows_per_month, measured=measured)
    out = {"labelling": UpkeepCost(label.what, label.monthly_usd,
                                   f"{label.basis}; labels from {n_from}; seconds from {s_from}")}
    if option.finetune is not None:
        machine = option.machine
        if spec.retrain_every_months is None:
            out["retraining"] = UpkeepCost("retraining", 0.0, "never retrained (upkeep.retrain_every_months: null)")
        else:
            cost = retraining_cost(train_hours=train_seconds / 3600, price_per_hour=machine.price_per_hour,
                                   engineer_hours=spec.retrain_engineer_hours, hourly_rate=exp.hourly_rate,
                                   every_months=spec.retrain_every_months)
            out["retraining"] = UpkeepCost(cost.what, cost.monthly_usd,
                                           f"{cost.basis}; training hours measured by the fine-tune (its record's "
                                           f"train_seconds), cadence from upkeep.retrain_every_months")
    return out


def goodput_of(throughput: pd.DataFrame | None, option: Option, *, latency_target_s: float | None) -> Goodput | None:
    """The load level a self-hosted option is priced at: the highest throughput of its load sweep (``throughput``:
    the task's load-sweep table) whose p95 stays under the latency target (None without a sweep)."""
    if throughput is None:
        return None
    rows = throughput[throughput[Col.OPTION] == option.name]
    return choose_goodput(rows, latency_target_s=latency_target_s) if not rows.empty else None


def cost_option(option: Option, scores: pd.DataFrame, *, exp: Experiment, train_seconds: float = 0.0,
                goodput: Goodput | None = None, upkeep_monthly: float = 0.0) -> CostOption:
    """What ``option`` costs: per measured token (third-party), or by its machine at the throughput measured for
    it — the goodput of its load sweep when it had one, else as it answered (``train_seconds``: a fine-tune's
    training, a one-time cost; ``upkeep_monthly``: labelling and retraining once deployed)."""
    if not option.self_hosted:
        return api_option(option.name, scores, pricing=pricing_of(option), arm=option.name)
    deployment = deployment_of(option, exp, train_seconds=train_seconds, upkeep_monthly=upkeep_monthly)
    if goodput is not None and goodput.items_per_s is not None:
        return local_option(option.name, scores, arm=option.name, deployment=deployment,
                            items_per_s=goodput.items_per_s, basis=goodput.basis)
    concurrency = int(option.arm_options.get("concurrency", 1))
    return local_option(option.name, scores, arm=option.name, concurrency=concurrency, deployment=deployment)


def _ceiling(option: Option) -> str:
    """The physical ceiling of single-stream decoding for an in-process option's model, in words."""
    models = models_of(option)
    if not models:
        return ""
    try:
        model = converted(resolve_model(models[0]), option.weights).path  # the file that answered
        return decode_ceiling(model, n_gpu_layers=int(option.arm_options.get("n_gpu_layers", 0))).statement
    except ConfigError as exc:
        return f"no ceiling: {exc.problem}"


def _cascades(exp: Experiment, task_obj: Task, scores: pd.DataFrame, options: dict[str, CostOption],
              keep_local: list[str], *, dev: pd.DataFrame | None, finetunes: Mapping[str, Any],
              upkeep: Mapping[str, float]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """A cascade per self-hosted candidate with confidences: it first, the reference below the threshold
    (``dev``: the dev items' scores, where the threshold is fitted when the run has them).

    Returns the in-sample sweep over thresholds (the curve), each test item's route (its fold and the τ that
    routed it) and the choices, whose figures are the routed test items'."""
    task = task_obj.name
    ref = exp.reference
    if ref.self_hosted:
        return pd.DataFrame(), pd.DataFrame(), {}
    sweeps, routes, choices = [], [], {}
    for o in exp.candidates:
        rows = scores[scores[Col.OPTION] == o.name]
        if not o.self_hosted or o.name not in options or rows.empty or rows[Col.CONFIDENCE].isna().all():
            continue
        settings = dict(local_arm=o.name, hosted_arm=ref.name, pricing=pricing_of(ref),
                        deployment=deployment_of(o, exp, train_seconds=_train_seconds(finetunes, o, task),
                                                 upkeep_monthly=upkeep.get(o.name, 0.0)),
                        volume=exp.monthly_volume, margin=exp.margin, alpha=exp.alpha, keep_local=keep_local,
                        concurrency=int(o.arm_options.get("concurrency", 1)))
        sweeps.append(sweep_cascade(scores, **settings).assign(**{Col.CANDIDATE: o.name}))
        fit = fit_cascade(scores, dev_scores=dev, **settings)
        routes.append(fit.routes.assign(**{Col.CANDIDATE: o.name}))
        choice = fit.choice
        floor = None
        if choice.tau is not None and task_obj.labelled and task_obj.type.baselines(task_obj.train, task_obj.test):
            # the hybrid answers as it would route: it must clear the trivial baselines like any option
            hybrid = Hybrid(OptionKey(o.name), OptionKey(ref.name), choice.tau)
            routed = routed_scores(scores, fit.routes, local_arm=o.name, hosted_arm=ref.name, name=hybrid.name)
            floor = floor_of(floor_table(task_obj, routed, exp.alpha), hybrid.name)
        choices[o.name] = {**asdict(choice), "first": o.name, "escalate_to": ref.name,
                           "floor": asdict(floor) if floor is not None else None}
    return (pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame(),
            pd.concat(routes, ignore_index=True) if routes else pd.DataFrame(), choices)


def costs_stage(folder: RunFolder) -> dict[str, dict[str, Any]]:
    """Per task: the cost table at your volume (with bands), break-even volumes, cost curves, the personal-data
    scan, and the cascades — saved in the run folder and returned."""
    folder = folder.scoped(STAGE)
    exp = folder.experiment()
    machine = machine_words(folder.doc(Doc.HARDWARE))
    finetunes = folder.doc(Doc.FINETUNES, default={})
    out: dict[str, dict[str, Any]] = {}
    for name in folder.tasks():
        scores = folder.table(Table.SCORES, task=name)
        task = task_of(exp, name)
        throughput = folder.table(Table.THROUGHPUT, task=name) if folder.has(Table.THROUGHPUT, task=name) else None
        dev = folder.table(Table.DEV_SCORES, task=name) if folder.has(Table.DEV_SCORES, task=name) else None
        options: dict[str, CostOption] = {}
        extra: dict[str, dict[str, Any]] = {}
        goodputs: dict[str, dict[str, Any]] = {}
        unpriced = []
        upkeeps: dict[str, dict[str, UpkeepCost]] = {}
        pace = label_seconds(folder, task, default=(exp.upkeep or UpkeepSpec()).seconds_per_label)
        for o in exp.options_for(name):
            if o.name not in set(scores[Col.OPTION]):
                continue
            goodput = (goodput_of(throughput, o, latency_target_s=exp.latency_target_s) if o.self_hosted
                       else None)
            if goodput is not None:
                goodputs[o.name] = {**asdict(goodput), "ceiling": _ceiling(o)}
            try:
                upkeeps[o.name] = upkeep_of(exp, o, scores, train_seconds=_train_seconds(finetunes, o, name), pace=pace)
                options[o.name] = cost_option(o, scores, exp=exp, goodput=goodput,
                                              train_seconds=_train_seconds(finetunes, o, name),
                                              upkeep_monthly=sum(u.monthly_usd for u in upkeeps[o.name].values()))
            except ConfigError as exc:  # e.g. recorded outputs without latencies: no throughput to price
                unpriced.append({Col.OPTION: o.name, Col.WHERE: o.where.value, Col.BASIS: f"not priced: {exc.problem}"})
                continue
            low, high = monthly_band(options[o.name], exp.monthly_volume)
            kept = upkeeps[o.name]
            extra[o.name] = {Col.WHERE: o.where.value, Col.COST_LOW: low, Col.COST_HIGH: high,
                             Col.MEASURED_ON: machine if o.self_hosted else "",
                             **{column: kept[what].monthly_usd if what in kept else 0.0
                                for column, what in _UPKEEP_COSTS.items()},
                             **{column: kept[what].basis if what in kept else ""
                                for column, what in _UPKEEP_BASES.items()}}
        table = pd.DataFrame()
        if options:
            quality = scores.groupby(Col.OPTION)[Col.SCORE].mean().to_dict()
            table = cost_table(list(options.values()), volume=exp.monthly_volume, accuracy=quality)
            for column in (Col.WHERE, Col.COST_LOW, Col.COST_HIGH, Col.MEASURED_ON, *_UPKEEP_COSTS, *_UPKEEP_BASES):
                table[column] = [extra[n][column] for n in table[Col.OPTION]]
        table = pd.concat([table, pd.DataFrame(unpriced)], ignore_index=True) if unpriced else table
        flags = scan_items([task.item(i) for i in scores[Col.ITEM_ID].unique()])
        keep = list(flags.loc[flags[Col.HAS_PII], Col.ITEM_ID]) if exp.privacy_required else []
        sweeps, routes, choices = _cascades(exp, task, scores, options, keep, dev=dev, finetunes=finetunes,
                                            upkeep={n: sum(u.monthly_usd for u in kept.values())
                                                    for n, kept in upkeeps.items()})
        tables = {Table.COSTS: table,
                  Table.BREAK_EVEN: break_even(list(options.values())) if len(options) > 1 else pd.DataFrame(),
                  Table.COST_CURVE: cost_curve(list(options.values())) if options else pd.DataFrame(),
                  Table.PII: pii_share(flags), Table.PII_ITEMS: flags, Table.CASCADE: sweeps,
                  Table.CASCADE_ROUTES: routes}
        for kind, frame in tables.items():
            folder.save_table(kind, frame, task=name)
        folder.save_doc(Doc.CASCADES, choices, task=name)
        folder.save_doc(Doc.GOODPUT, goodputs, task=name)
        out[name] = {**{k.file: v for k, v in tables.items()}, "cascades": choices}
    return out
