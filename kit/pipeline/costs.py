"""Stage 5 of a report run: what each option costs at your volume, personal data in the traffic, and cascades.

Third-party options are priced from the tokens each item used and their declared price; self-hosted options
from the throughput measured for them on this machine and their declared machine (its price per hour,
utilisation, always-on, setup and ops hours, and — for a fine-tune — the measured training time as a
one-time cost). Each cost carries a band from resampling the measured items. Every self-hosted candidate
that gives confidences is simulated as a cascade in front of the reference, its threshold fitted on the dev
items' answers when the run has them for both options, else cross-fitted over folds of the test items; its
figures are the test items', each routed by a threshold that never saw it.

>>> costs_stage(RunFolder("runs/report-x"))           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import pandas as pd

from kit.columns import Col
from kit.economics import (ApiPricing, CostOption, LocalDeployment, ModelPrice, api_option, break_even, cost_curve,
                           cost_table, local_option, monthly_band)
from kit.cascade import CascadeChoice, Fit
from kit.decision import Floor, Hybrid, OptionKey
from kit.errors import ConfigError
from kit.stats import Conclusion
from kit.experiment import Experiment, Option
from kit.pipeline.quality import floor_of, floor_table, task_of
from kit.models.hardware import machine_words
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.run.sweep import Goodput


def pricing_of(option: Option) -> ApiPricing:
    """How a third-party option is billed (the stand-in: as the model it stands in for)."""
    price = option.price
    if price is None:
        raise ConfigError(f"option {option.name!r} has no price", where="kit.pipeline.costs",
                          fix="declare price: {model: ...} for a third-party option")
    if price.input_per_m is not None:
        return ApiPricing(model=option.name, price=ModelPrice(price.input_per_m, float(price.output_per_m or 0.0)),
                          cached_share=0.0)
    return ApiPricing(model=str(price.model), cached_share=price.cached_share)


def answers_usd(option: Option, answers: pd.DataFrame) -> float:
    """What an option's stored answers cost as this stage prices them: a third-party option's measured tokens at
    its price; a self-hosted one's paid machine hours (its answering seconds over the machine's utilisation, at its
    price per hour; 0 without a declared machine). Answers served from the store are priced as if answered.

    >>> answers_usd(exp.option("API"), scores[scores["option"] == "API"])        # doctest: +SKIP
    0.0029565
    """
    from kit.economics import api_item_costs

    if answers.empty:
        return 0.0
    if not option.self_hosted:
        return float(api_item_costs(answers, pricing=pricing_of(option))[Col.COST_USD].sum())
    machine = option.machine
    seconds = float(pd.to_numeric(answers[Col.LATENCY_S], errors="coerce").fillna(0.0).clip(lower=0).sum())
    return seconds / 3600 / machine.utilisation * machine.price_per_hour if machine is not None else 0.0


def deployment_of(option: Option, exp: Experiment, *, train_seconds: float = 0.0) -> LocalDeployment:
    """What running a self-hosted option costs besides its throughput."""
    m = option.machine
    if m is None:
        raise ConfigError(f"option {option.name!r} has no machine", where="kit.pipeline.costs",
                          fix="declare machine: NAME for a self-hosted option")
    return LocalDeployment(price_per_hour=m.price_per_hour, utilisation=m.utilisation, always_on=m.always_on,
                           setup_hours=m.setup_hours, ops_hours_per_month=m.ops_hours_per_month,
                           hourly_rate=exp.hourly_rate, finetune_gpu_hours=train_seconds / 3600,
                           horizon_months=exp.horizon_months)


def _train_seconds(folder: RunFolder, option: Option, task: str) -> float:
    if option.finetune is None:
        return 0.0
    return float(folder.doc(Doc.FINETUNES, default={}).get(option.name, {}).get(task, {}).get("train_seconds", 0.0))


def goodput_of(folder: RunFolder, option: Option, task: str) -> Goodput | None:
    """The load level a self-hosted option is priced at: the highest throughput of its load sweep whose p95
    stays under the latency target (None without a sweep)."""
    from kit.run.sweep import choose_goodput

    if not folder.has(Table.THROUGHPUT, task=task):
        return None
    rows = folder.table(Table.THROUGHPUT, task=task)
    rows = rows[rows[Col.OPTION] == option.name]
    return choose_goodput(rows, latency_target_s=folder.experiment().latency_target_s) if not rows.empty else None


def cost_option(option: Option, scores: pd.DataFrame, *, folder: RunFolder, task: str,
                goodput: Goodput | None = None) -> CostOption:
    """What ``option`` costs on ``task``: per measured token (third-party), or by its machine at the throughput
    measured for it — the goodput of its load sweep when it had one, else as it answered."""
    exp = folder.experiment()
    if not option.self_hosted:
        return api_option(option.name, scores, pricing=pricing_of(option), arm=option.name)
    deployment = deployment_of(option, exp, train_seconds=_train_seconds(folder, option, task))
    if goodput is not None and goodput.items_per_s is not None:
        return local_option(option.name, scores, arm=option.name, deployment=deployment,
                            items_per_s=goodput.items_per_s, basis=goodput.basis)
    concurrency = int(option.arm_options.get("concurrency", 1))
    return local_option(option.name, scores, arm=option.name, concurrency=concurrency, deployment=deployment)


def _ceiling(option: Option) -> str:
    """The physical ceiling of single-stream decoding for an in-process option's model, in words."""
    from kit.models.ceiling import decode_ceiling
    from kit.pipeline.prepare import models_of

    models = models_of(option)
    if not models:
        return ""
    try:
        return decode_ceiling(models[0], n_gpu_layers=int(option.arm_options.get("n_gpu_layers", 0))).statement
    except ConfigError as exc:
        return f"no ceiling: {exc.problem}"


@dataclass(frozen=True)
class HybridResult:
    """A cascade whose threshold passed: the hybrid, the choice behind it, and how it fares against the floor."""

    hybrid: Hybrid
    choice: CascadeChoice
    floor: Floor | None


def choice_of(record: dict[str, Any]) -> CascadeChoice:
    """A cascade's choice as the cascades record keeps it (JSON), typed again."""
    choice = CascadeChoice(**{f.name: record[f.name] for f in fields(CascadeChoice) if f.name in record})
    return replace(choice, conclusion=Conclusion(choice.conclusion), fit=Fit(choice.fit),
                   fold_taus=tuple(choice.fold_taus))


def hybrids_of(folder: RunFolder, task: str) -> list[HybridResult]:
    """The cascades of ``task`` that have a threshold, as typed records (from the cascades record)."""
    out = []
    for record in folder.doc(Doc.CASCADES, task=task, default={}).values():
        choice = choice_of(record)
        if choice.tau is None:
            continue
        floor = record.get("floor")
        out.append(HybridResult(Hybrid(OptionKey(record["first"]), OptionKey(record["escalate_to"]), choice.tau),
                                choice, Floor(**floor) if floor is not None else None))
    return out


def _cascades(folder: RunFolder, task: str, scores: pd.DataFrame, options: dict[str, CostOption],
              keep_local: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """A cascade per self-hosted candidate with confidences: it first, the reference below the threshold.

    Returns the in-sample sweep over thresholds (the curve), each test item's route (its fold and the τ that
    routed it) and the choices, whose figures are the routed test items'."""
    from kit.cascade import fit_cascade, routed_scores, sweep_cascade

    exp = folder.experiment()
    task_obj = task_of(folder, task)
    ref = exp.reference
    if ref.self_hosted:
        return pd.DataFrame(), pd.DataFrame(), {}
    dev = folder.table(Table.DEV_SCORES, task=task) if folder.has(Table.DEV_SCORES, task=task) else None
    sweeps, routes, choices = [], [], {}
    for o in exp.candidates:
        rows = scores[scores[Col.OPTION] == o.name]
        if not o.self_hosted or o.name not in options or rows.empty or rows[Col.CONFIDENCE].isna().all():
            continue
        settings = dict(local_arm=o.name, hosted_arm=ref.name, pricing=pricing_of(ref),
                        deployment=deployment_of(o, exp, train_seconds=_train_seconds(folder, o, task)),
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
    from kit.privacy import pii_share, scan_items

    exp = folder.experiment()
    machine = machine_words(folder.doc(Doc.HARDWARE))
    out: dict[str, dict[str, Any]] = {}
    for name in folder.tasks():
        scores = folder.table(Table.SCORES, task=name)
        task = task_of(folder, name)
        options: dict[str, CostOption] = {}
        extra: dict[str, dict[str, Any]] = {}
        goodputs: dict[str, dict[str, Any]] = {}
        unpriced = []
        for o in exp.options_for(name):
            if o.name not in set(scores[Col.OPTION]):
                continue
            goodput = goodput_of(folder, o, name) if o.self_hosted else None
            if goodput is not None:
                goodputs[o.name] = {**asdict(goodput), "ceiling": _ceiling(o)}
            try:
                options[o.name] = cost_option(o, scores, folder=folder, task=name, goodput=goodput)
            except ConfigError as exc:  # e.g. recorded outputs without latencies: no throughput to price
                unpriced.append({Col.OPTION: o.name, Col.WHERE: o.where.value, Col.BASIS: f"not priced: {exc.problem}"})
                continue
            low, high = monthly_band(options[o.name], exp.monthly_volume)
            extra[o.name] = {Col.WHERE: o.where.value, Col.COST_LOW: low, Col.COST_HIGH: high,
                             Col.MEASURED_ON: machine if o.self_hosted else ""}
        table = pd.DataFrame()
        if options:
            quality = scores.groupby(Col.OPTION)[Col.SCORE].mean().to_dict()
            table = cost_table(list(options.values()), volume=exp.monthly_volume, accuracy=quality)
            for column in (Col.WHERE, Col.COST_LOW, Col.COST_HIGH, Col.MEASURED_ON):
                table[column] = [extra[n][column] for n in table[Col.OPTION]]
        table = pd.concat([table, pd.DataFrame(unpriced)], ignore_index=True) if unpriced else table
        flags = scan_items([task.item(i) for i in scores[Col.ITEM_ID].unique()])
        keep = list(flags.loc[flags[Col.HAS_PII], Col.ITEM_ID]) if exp.privacy_required else []
        sweeps, routes, choices = _cascades(folder, name, scores, options, keep)
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
