"""What the decision report shows, built from the run folder: the verdicts, one summary of every option on
every task, the options and how they ran, per-task tables, examples, caveats and the manifest.

Every string that comes from data (model output, item text, option and task names) reaches the page through
:func:`kit.format.show` (escaped cells and headers) or :func:`kit.format.esc` — never as raw HTML.

>>> print(headline(RunFolder("runs/report-x")))       # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from kit.columns import Col, RowKind
from kit.format import (ITEMS, NUMBER, P_VALUE, PCT, POINTS, SECONDS, USD, esc, esc_statement, interval, pct, pts,
                        show, usd_month)
from kit.errors import ConfigError
from kit.models.hardware import machine_words
from kit.monitor.history import task_history, windows_of
from kit.pipeline.outputs import hybrids_of, sample_labels, stop_of
from kit.stats.paired_stats import display as paired_display
from kit.tasks.ppi_compare import MIN_LABELS, STRATIFIED, SampledLabels
from kit.tasks.types import ComparisonKind
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.pipeline.provenance import read_provenance


# -------------------------------------------------------------------------------------------- the verdict
def headline(folder: RunFolder) -> str:
    """The verdict per task as Markdown: the recommended option, its sentence, the quality trade."""
    lines = []
    for task in folder.tasks():
        d = folder.doc(Doc.DECISION, task=task)
        pick = d["recommended"] or "no option recommended"
        lines.append(f"### {esc(task)}: **{esc(pick)}**\n\n{esc(d['verdict'])}\n")
        lines += [f"- {esc(t)}" for t in d["trade"]]
        lines.append("")
    return "\n".join(lines)


def summary(folder: RunFolder) -> Styler:
    """Every option on every task: quality with its interval, the test against the reference, USD a month at
    your volume, p95 latency, and where the verdict ranks it."""
    rows = []
    for task in folder.tasks():
        metrics = folder.table(Table.METRICS, task=task)
        ranking = folder.table(Table.RANKING, task=task).set_index(Col.OPTION)
        costs = folder.table(Table.COSTS, task=task).set_index(Col.OPTION)
        latency = folder.table(Table.LATENCY, task=task).set_index(Col.OPTION)
        for m in metrics.to_dict("records"):
            name = m[Col.OPTION]
            is_option = m[Col.KIND] == RowKind.OPTION
            rows.append({
                Col.TASK: task, Col.OPTION: name if is_option else f"baseline: {name}",
                Col.QUALITY: m[Col.MEAN_SCORE], Col.LOW: m[Col.SCORE_CI_LOW], Col.HIGH: m[Col.SCORE_CI_HIGH],
                "vs reference": ranking.loc[name, Col.VS_REFERENCE] if name in ranking.index else "",
                "USD / month": costs.loc[name, Col.MONTHLY_COST] if name in costs.index else None,
                "p95": (ranking.loc[name, Col.P95_S] if name in ranking.index else
                        latency.loc[name, Col.P95_S] if name in latency.index else None),
                "verdict": ranking.loc[name, Col.STATUS] if name in ranking.index else "",
            })
        for h in hybrids_of(folder, task):
            if h.hybrid.name in ranking.index:
                r = ranking.loc[h.hybrid.name]
                rows.append({Col.TASK: task, Col.OPTION: h.hybrid.name, Col.QUALITY: r[Col.QUALITY], Col.LOW: None,
                             Col.HIGH: None, "vs reference": r[Col.VS_REFERENCE], "USD / month": r[Col.MONTHLY_COST],
                             "p95": r[Col.P95_S], "verdict": r[Col.STATUS]})
    frame = pd.DataFrame(rows)
    frame["95% CI"] = interval(frame, "low", "high")
    return show(frame, {Col.QUALITY: PCT, "USD / month": USD, "p95": SECONDS},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.QUALITY: "quality", "95% CI": "95% CI",
                         "vs reference": "vs reference", "USD / month": "USD / month", "p95": "p95 latency",
                         "verdict": "verdict"})


def options_table(folder: RunFolder) -> Styler:
    """The options compared: what answers, where it runs, what it costs, and the models' sha256."""
    exp = folder.experiment()
    models = folder.table(Table.MODELS)
    rows = []
    for o in exp.options:
        if o.self_hosted and o.machine is not None:
            m = o.machine
            cost = (f"machine '{m.name}' at ${m.price_per_hour:g}/hour, {m.utilisation:.0%} utilised"
                    + (", always on" if m.always_on else ", on demand")
                    + (f", {m.setup_hours:g} h setup, {m.ops_hours_per_month:g} h/month ops" if m.setup_hours or
                       m.ops_hours_per_month else ""))
        else:
            cost = o.price.describe() if o.price else ""
        model = models[models["used by"].str.split(", ").map(lambda names, n=o.name: n in names)]
        rows.append({Col.OPTION: o.name + (" (reference)" if o.name == exp.reference_name else ""),
                     "what answers": o.what() + (f" — {o.description}" if o.description else ""),
                     "runs": o.where.value, "cost": cost,
                     Col.MODEL: ", ".join(f"{r[Col.MODEL]} {r[Col.QUANTISATION] or ''} sha256 {r[Col.SHA256][:12]}…"
                                        for r in model.to_dict("records"))})
    return show(pd.DataFrame(rows))


def runs(folder: RunFolder) -> Styler:
    frame = pd.DataFrame([{Col.TASK: r.task, Col.OPTION: r.option, Col.PROMPT: r.prompt, "items": r.items,
                           "new calls": r.new_calls, "from store": r.from_store, "errors": r.errors,
                           "withheld": r.withheld, "stopped": r.stopped or ""} for r in folder.runs()])
    return show(frame)


def finetunes(folder: RunFolder) -> Styler:
    trained = folder.doc(Doc.FINETUNES, default={})
    rows = [{Col.OPTION: o, Col.TASK: t, "base": d["base"], "steps": d["steps"], "train items": d["n_train_items"],
             "final loss": d["final_loss"], "training time": d["train_seconds"], "device": d["device"],
             "reused": "yes" if d["reused"] else "no", "adapter sha256": d["adapter_sha256"][:16] + "…"}
            for o, by_task in trained.items() for t, d in by_task.items()]
    return show(pd.DataFrame(rows), {"training time": SECONDS}) if rows else show(pd.DataFrame(
        [{"fine-tuning": "no fine-tune option in this experiment"}]))


# ------------------------------------------------------------- per task, stacked with the task first
def _stack(folder: RunFolder, frame_of: Callable[[RunFolder, str], pd.DataFrame]) -> pd.DataFrame:
    frames = [frame_of(folder, task).assign(task=task) for task in folder.tasks()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[[Col.TASK, *[c for c in out.columns if c != "task"]]]


def _quality(folder: RunFolder, task: str) -> pd.DataFrame:
    m = folder.table(Table.METRICS, task=task)
    m["95% CI"] = interval(m, Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH)
    m["name"] = [n if k == RowKind.OPTION else f"baseline: {n}" for n, k in zip(m[Col.OPTION], m[Col.KIND])]
    return in_clusters(m, Col.N_ITEMS)


def quality(folder: RunFolder) -> Styler:
    """Each task's metric per option and per trivial baseline, with intervals and failures (partly labelled
    tasks: the PPI++ estimate, with the labels-only interval and the effective labels beside it)."""
    frame = _stack(folder, _quality)
    return show(ppi_quality_frame(frame), {Col.MEAN_SCORE: PCT, **PPI_FORMATS},
                columns={Col.TASK: "task", "name": "option", Col.MEAN_SCORE: "quality", "95% CI": "95% CI",
                         **(PPI_COLUMNS if Col.LABELS_ONLY_CI_LOW in frame.columns else {}),
                         Col.N_ITEMS: "items", Col.N_ERRORS: "errors", Col.N_PARSE_ERRORS: "unparseable"})


def _comparison(folder: RunFolder, task: str) -> pd.DataFrame:
    c = folder.table(Table.COMPARE, task=task)
    if not c.empty:
        c["difference CI"] = interval(c, "diff_ci_low", "diff_ci_high", POINTS)
    return in_clusters(c, Col.N_ITEMS)


def comparison(folder: RunFolder) -> Styler:
    """Each candidate against the reference: the difference with its interval, the bound, the conclusion (partly
    labelled tasks: the labels-only interval and the effective labels beside the PPI++ one)."""
    frame = ppi_comparison_frame(_stack(folder, _comparison))
    heads, formats = paired_display(frame.columns)  # the registered paired statistics' columns
    return show(frame, {Col.DIFFERENCE: POINTS, Col.LOWER_BOUND: POINTS, Col.N_NEEDED: ITEMS, **PPI_FORMATS, **formats},
                columns={Col.TASK: "task", Col.OPTION: "candidate", Col.N_ITEMS: "items", Col.DIFFERENCE: "difference",
                         "difference CI": "95% CI",
                         **(PPI_COLUMNS if Col.LABELS_ONLY_CI_LOW in frame.columns else {}),
                         Col.LOWER_BOUND: "lower bound", **heads,
                         Col.CONCLUSION_ADJUSTED: "conclusion", Col.N_NEEDED: "items needed"})


def statements(folder: RunFolder, kind: Table) -> str:
    """A table's plain-words ``statement`` column for every task, as a Markdown list (escaped)."""
    lines = []
    for task in folder.tasks():
        table = folder.table(kind, task=task)
        if not table.empty and "statement" in table.columns:
            lines += [f"- *{esc(task)}*: {esc_statement(s)}" for s in table[Col.STATEMENT]]
    return "\n".join(lines) or "- nothing to say"


def _floor(folder: RunFolder, task: str) -> pd.DataFrame:
    f = folder.table(Table.FLOOR, task=task)
    if not f.empty:
        f["clears it"] = f[Col.PASSES].map({True: "yes", False: "no"})
    return f


def floor(folder: RunFolder) -> Styler:
    """Each option against the trivial baselines: does it clear the floor?"""
    f = _stack(folder, _floor)
    if f.empty:
        return show(pd.DataFrame([{"floor": "no task here has a trivial baseline (no gold labels, or free text)"}]))
    return show(f, {Col.CANDIDATE_MEAN: PCT, Col.BASELINE_MEAN: PCT, Col.P_VALUE: P_VALUE},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.BASELINE: "baseline", Col.ANSWER: "answers",
                         Col.CANDIDATE_MEAN: "score", Col.BASELINE_MEAN: "baseline score", Col.P_VALUE: "p (one-sided)",
                         "clears it": "clears it"})


def _latency(folder: RunFolder, task: str) -> pd.DataFrame:
    t = folder.table(Table.LATENCY, task=task)
    t["p95 CI"] = interval(t, Col.P95_CI_LOW, Col.P95_CI_HIGH, SECONDS)
    return in_clusters(t, Col.N)


def latency(folder: RunFolder) -> Styler:
    return show(_stack(folder, _latency), {Col.P50_S: SECONDS, Col.P95_S: SECONDS, Col.MEAN_TTFT_S: SECONDS},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.N: "items", Col.P50_S: "p50", Col.P95_S: "p95",
                         "p95 CI": "p95 95% CI", Col.MEAN_TTFT_S: "time to first token"})


def _costs(folder: RunFolder, task: str) -> pd.DataFrame:
    c = folder.table(Table.COSTS, task=task)
    if Col.COST_LOW in c.columns:
        c["90% band"] = interval(c, Col.COST_LOW, Col.COST_HIGH, USD)
    return c


def costs(folder: RunFolder) -> Styler:
    return show(_stack(folder, _costs), {Col.MONTHLY_COST: USD, Col.COST_PER_1K_CORRECT: USD,
                                         Col.LABELLING_COST: USD, Col.RETRAINING_COST: USD},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.WHERE: "runs", Col.MONTHLY_COST: "USD / month",
                         "90% band": "90% band", Col.LABELLING_COST: "of which labelling",
                         Col.RETRAINING_COST: "of which retraining", Col.COST_PER_1K_CORRECT: "USD / 1,000 correct",
                         Col.BASIS: "how it is priced", Col.MEASURED_ON: "throughput measured on"})


def upkeep(folder: RunFolder) -> str:
    """The cost of staying right, per self-hosted candidate: labelling and retraining a month, what each assumed
    and where each figure comes from (both are in its USD / month, its break-even volumes and the verdict)."""
    lines = []
    for task in folder.tasks():
        c = folder.table(Table.COSTS, task=task)
        if c.empty or Col.LABELLING_BASIS not in c.columns:
            continue
        for row in c.to_dict("records"):
            parts = [f"{what} {esc(usd_month(row[cost]))} ({esc(row[basis])})"
                     for what, cost, basis in (("labelling", Col.LABELLING_COST, Col.LABELLING_BASIS),
                                               ("retraining", Col.RETRAINING_COST, Col.RETRAINING_BASIS))
                     if row.get(basis)]
            if parts:
                lines.append(f"- *{esc(task)}*, **{esc(row[Col.OPTION])}**: " + "; ".join(parts))
    if not lines:
        return "- no self-hosted candidate: nothing to label or retrain after deployment"
    return ("Included in each option's USD / month, its break-even volumes and the verdict (the experiment's "
            "`upkeep:` key sets them):\n" + "\n".join(lines))


def windows(folder: RunFolder) -> str:
    """Time in each task (the experiment's ``windows:``): per window the items, each option's quality (against
    labels, or agreement with the reference — said per figure), the reference's commonest answers, and the input
    drift against the first window (:mod:`kit.monitor.drift`); nothing when the experiment asks for no windows."""
    spec = folder.experiment().windows
    if spec is None:
        return "- no windows asked for (`windows: month` or `windows: N` items cuts each task's items by time)"
    lines = []
    for task in folder.tasks():
        try:
            h = task_history(folder, task, windows=windows_of(spec))
        except ConfigError as exc:
            lines.append(f"- *{esc(task)}*: no windows: {esc(exc.problem)} ({esc(exc.fix)})")
            continue
        lines.append(f"- *{esc(task)}*, cut by {esc(h.cut)} (drift p-values are each window's own, not adjusted "
                     "for reading several; `kit monitor` carries the error rate across looks):")
        for w in h.windows.to_dict("records"):
            q = h.quality[h.quality[Col.WINDOW] == w[Col.WINDOW]]
            quality = "; ".join(
                f"{esc(r[Col.OPTION])} {pct(r[Col.QUALITY]) if r[Col.QUALITY] is not None else 'n/a'} "
                f"({esc(r[Col.BASIS])}, {r[Col.N_ITEMS]} items" + (f", {r[Col.N_LABELLED]} labels)" if
                                                                    r[Col.N_LABELLED] else ")")
                for r in q.to_dict("records"))
            drift = ("the first window: drift is measured against it" if pd.isna(w[Col.LENGTH_P]) else
                     f"drift vs the first window: text length p = {w[Col.LENGTH_P]:.3g}"
                     + ("" if pd.isna(w[Col.TEXTS_P]) else
                        f", texts told apart {pct(w[Col.TEXTS_ACCURACY])} of the time, p = {w[Col.TEXTS_P]:.3g}"))
            lines.append(f"  - {esc(w[Col.WINDOW])} ({w[Col.N_ITEMS]} items): {quality}. Reference answered "
                         f"{esc(w[Col.REFERENCE_ANSWERS])}. {drift}.")
    return "\n".join(lines)


def break_even(folder: RunFolder) -> str:
    """Where the reference's cost line crosses each other option's (every pair is in the run folder)."""
    ref = folder.experiment().reference_name
    lines = []
    for task in folder.tasks():
        b = folder.table(Table.BREAK_EVEN, task=task)
        if not b.empty:
            rows = b[(b[Col.OPTION_A] == ref) | (b[Col.OPTION_B] == ref)]
            lines += [f"- *{esc(task)}*: {esc(s)}" for s in rows[Col.STATEMENT]]
    return "\n".join(lines) or "- only one option was priced"


def cascades(folder: RunFolder) -> str:
    """Each cascade in words: how its threshold was kept apart from the test items (fitted on dev items, or
    cross-fitted with the τ of each fold), then its figures on the test items."""
    lines = []
    for task in folder.tasks():
        for c, v in folder.doc(Doc.CASCADES, task=task, default={}).items():
            lines.append(f"- *{esc(task)}* — **{esc(c)} first, {esc(v['escalate_to'])} below τ**: {esc(v[Col.STATEMENT])}")
    return "\n".join(lines) or ("- no self-hosted candidate gives confidences (or the reference is self-hosted): "
                                "no cascade was simulated")


def personal_data(folder: RunFolder) -> Styler:
    return show(_stack(folder, lambda f, t: f.table(Table.PII, task=t)), {Col.SHARE: PCT, Col.CI_LOW: PCT, Col.CI_HIGH: PCT},
                columns={Col.TASK: "task", Col.KIND: "kind", Col.N_ITEMS: "items", Col.N_FLAGGED: "flagged", Col.SHARE: "share",
                         Col.CI_LOW: "95% CI low", Col.CI_HIGH: "95% CI high"})


def ranking(folder: RunFolder) -> Styler:
    """The options in each verdict's order, with why each stands where it does."""
    return show(_stack(folder, lambda f, t: f.table(Table.RANKING, task=t)),
                {Col.QUALITY: PCT, Col.MONTHLY_COST: USD, Col.P95_S: SECONDS, Col.RANK: ITEMS},
                columns={Col.TASK: "task", Col.RANK: "rank", Col.OPTION: "option", Col.STATUS: "status", Col.QUALITY: "quality",
                         Col.VS_REFERENCE: "vs reference", Col.MONTHLY_COST: "USD / month", Col.P95_S: "p95", Col.WHY: "why"})


def _examples(folder: RunFolder, task: str, n: int = 4) -> pd.DataFrame:
    from kit.pipeline.scores import responses, task_of

    scores = folder.table(Table.SCORES, task=task)
    raw = responses(folder, task)
    outputs = raw.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.OUTPUT, aggfunc="first")
    correct = scores.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.CORRECT, aggfunc="first")
    order = correct.astype(float).std(axis=1).sort_values(ascending=False).index[:n]
    t = task_of(folder.experiment(), task)
    rows = []
    for item_id in order:
        item = t.item(item_id)
        gold = t.type.render(item.gold) if item.gold is not None else "(no gold answer)"
        for arm in outputs.columns:
            rows.append({"item": item_id, Col.TEXT: _clip(item.text, 140), Col.GOLD: _clip(gold, 60), Col.OPTION: arm,
                         Col.ANSWER: _clip(outputs.loc[item_id, arm], 80),
                         "right": "✓" if correct.loc[item_id, arm] else "✗"})
    return pd.DataFrame(rows)


def examples(folder: RunFolder) -> Styler:
    """A few items per task with every option's answer, the items the options disagree on most first."""
    return show(_stack(folder, _examples))


def _clip(text: Any, n: int) -> str:
    text = "" if text is None or (isinstance(text, float) and text != text) else str(text)
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text)  # control characters (some data sets carry them) as a space
    return text if len(text) <= n else text[: n - 1] + "…"


# ------------------------------------------------------------------------------------------- the whole run
def caveats(folder: RunFolder) -> str:
    seen: dict[str, None] = {}
    for task in folder.tasks():
        for c in folder.doc(Doc.DECISION, task=task)["caveats"]:
            seen.setdefault(c)
    clustered = clustered_methods(folder)
    lines = [f"- {esc(c)}" for c in seen] + ([f"- {clustered}"] if clustered else [])
    return "\n".join(lines) or "- none"


# ---------------------------------------------------------------------- clustered items (a task's `cluster:`)
def in_clusters(frame: pd.DataFrame, n_column: str) -> pd.DataFrame:
    """A table's item counts with their clusters beside them ("60 in 12 clusters") on the rows of a clustered task
    (those with ``n_clusters``); other rows and tables unchanged.

    >>> in_clusters(pd.DataFrame({"n_items": [60], "n_clusters": [12]}), "n_items")["n_items"].tolist()
    ['60 in 12 clusters']
    """
    if frame.empty or Col.N_CLUSTERS not in frame.columns or n_column not in frame.columns:
        return frame
    frame[n_column] = [f"{n} in {int(g)} clusters" if g == g else n
                       for n, g in zip(frame[n_column], frame[Col.N_CLUSTERS])]
    return frame


def clustered_methods(folder: RunFolder) -> str:
    """The methods sentence for the tasks whose items come in clusters (empty when none does)."""
    counts = {}
    for task in folder.tasks():
        m = folder.table(Table.METRICS, task=task) if folder.has(Table.METRICS, task=task) else pd.DataFrame()
        if Col.N_CLUSTERS in m.columns and m[Col.N_CLUSTERS].notna().any():
            counts[task] = int(m[Col.N_CLUSTERS].max())
    if not counts:
        return ""
    which = ", ".join(f"{esc(t)} ({g} clusters)" for t, g in counts.items())
    return (f"**Clustered items** in {which}: the task file declares `cluster:`, so items of one cluster (a customer, "
            "a thread, a document) are not counted as independent. Every interval and test uses cluster-robust "
            "standard errors (CR1, Student's t with clusters − 1 degrees of freedom; Miller 2024, \"Adding Error "
            "Bars to Evals\") or, for latency quantiles and kappa, a bootstrap of whole clusters — each never "
            "narrower than its item-level counterpart — and the items needed are scaled by the design effect.")


def manifest(folder: RunFolder) -> Styler:
    """What exactly ran: commit, versions, model hashes, parameters, hardware, run ids — as the run record
    (:mod:`kit.pipeline.provenance`) and the machine's fingerprint recorded them when the run was prepared."""
    hw = folder.doc(Doc.HARDWARE)
    exp = folder.experiment()
    record = read_provenance(folder)
    rows: list[tuple[str, Any]] = [("kit version", record.kit_version), ("git commit", record.revision),
                                   ("python", record.python), ("os", record.system),
                                   ("experiment", record.experiment), ("experiment sha256", record.experiment_sha256),
                                   ("prepared", record.created), ("run record version", record.version)]
    rows += [(f"package {p}", v or "not installed") for p, v in record.packages.items()]
    rows += [(f"model {m[Col.MODEL]} sha256", m[Col.SHA256]) for m in folder.table(Table.MODELS).to_dict("records")]
    for option, by_task in folder.doc(Doc.FINETUNES, default={}).items():
        rows += [(f"LoRA adapter {option} · {t} sha256", d["adapter_sha256"]) for t, d in by_task.items()]
    skip = {"options", "source", "tasks"}
    rows += [(f"parameter {k}", v) for k, v in sorted(exp.to_dict().items()) if k not in skip]
    rows += [(f"items of {t}", n if n is not None else "all") for t, n in exp.tasks.items()]
    rows += [("machine", machine_words(hw)), ("ram GB", round(hw["ram_bytes"] / 1e9, 1)),
             ("llama.cpp system info", hw["llama_cpp"].get("system_info", ""))]
    rows += [(f"run {r.task} · {r.option}", r.run_id) for r in folder.runs()]
    rows.append(("report folder", folder.path.name))
    return show(pd.DataFrame([(k, str(v)) for k, v in rows], columns=["what", Col.VALUE]))


def judge(folder: RunFolder) -> Styler:
    """Free-text tasks: who judged, and per candidate how often the judge's two orders agreed (position bias)."""
    rows = []
    for task in folder.tasks():
        if not folder.has(Doc.JUDGING, task=task):
            continue
        info = folder.doc(Doc.JUDGING, task=task)
        for r in folder.table(Table.JUDGE, task=task).to_dict("records"):
            rows.append({Col.TASK: task, Col.JUDGE: info[Col.JUDGE], Col.CANDIDATE: r[Col.OPTION], "items": r[Col.N_ITEMS],
                         "orders agree": r[Col.ORDERS_AGREE], "first position picked": r[Col.FIRST_POSITION_SHARE],
                         Col.WINS: r[Col.WINS], Col.TIES: r[Col.TIES], Col.LOSSES: r[Col.LOSSES],
                         "no grade": r[Col.JUDGE_ERRORS]})
    if not rows:
        return show(pd.DataFrame([{Col.JUDGE: "no free-text task was judged in this run"}]))
    return show(pd.DataFrame(rows), {"orders agree": PCT, "first position picked": PCT})


def disagreements(folder: RunFolder, *, n: int = 20) -> Styler:
    """Unlabelled tasks: the items where a candidate's answer differs from the reference's, to read first."""
    frames = []
    for task in folder.tasks():
        d = folder.table(Table.DISAGREEMENTS, task=task).head(n) if folder.has(Table.DISAGREEMENTS, task=task) \
            else pd.DataFrame()
        if not d.empty:
            frames.append(d.assign(task=task, text=[_clip(t, 120) for t in d[Col.TEXT]]))
    if not frames:
        return show(pd.DataFrame([{"disagreements": "no unlabelled task in this run (quality is correctness)"}]))
    out = pd.concat(frames, ignore_index=True)
    return show(out, columns={Col.TASK: "task", Col.OPTION: "option", Col.ITEM_ID: "item", Col.TEXT: "text", Col.ANSWER: "answer",
                              Col.REFERENCE_ANSWER: "reference's answer"})


def throughput(folder: RunFolder) -> Styler:
    """Each self-hosted option's load sweep: items/s and p95 latency at every level, and why it stopped."""
    frame = _stack(folder, lambda f, t: f.table(Table.THROUGHPUT, task=t) if f.has(Table.THROUGHPUT, task=t)
                   else pd.DataFrame())
    if frame.empty:
        return show(pd.DataFrame([{"load sweep": "no load sweep in this experiment (add `sweep:`, see README)"}]))
    return show(frame, {Col.ITEMS_PER_S: NUMBER, Col.TOKENS_PER_S: NUMBER, "p50_latency_s": SECONDS,
                        Col.P95_LATENCY_S: SECONDS, "p95_ttft_s": SECONDS},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.LOAD_KIND: "load", Col.LOAD: "level",
                         Col.N_ITEMS: "items", Col.ITEMS_PER_S: "items/s", Col.TOKENS_PER_S: "tokens/s",
                         "p50_latency_s": "p50", Col.P95_LATENCY_S: "p95", Col.STATUS: "status", Col.NOTE: "note"})


def goodput(folder: RunFolder) -> str:
    """The load level each swept option is priced at, and the physical ceiling of its decoding."""
    lines = []
    for task in folder.tasks():
        for option, g in folder.doc(Doc.GOODPUT, task=task, default={}).items():
            ceiling = f" Ceiling: {g['ceiling']}." if g.get("ceiling") else ""
            lines.append(f"- *{esc(task)}* — **{esc(option)}** priced at {esc(g[Col.STATEMENT])}.{esc(ceiling)}")
    return "\n".join(lines) or "- no load sweep: self-hosted options are priced at the throughput they answered with"


# ------------------------------------------ partly labelled tasks: prediction-powered estimates (PPI++, issue 19)
PPI_COLUMNS = {"labels only 95% CI": "labels only 95% CI", Col.EFFECTIVE_LABELS: "effective labels",
               Col.N_LABELLED: "labelled", Col.N_UNLABELLED: "unlabelled"}
PPI_FORMATS = {Col.EFFECTIVE_LABELS: ITEMS, Col.N_LABELLED: ITEMS, Col.N_UNLABELLED: ITEMS}
PPI_METHODS = (
    "**Prediction-powered estimates.** On a task whose data has no gold answers, a uniformly random, seeded sample "
    "of test items was labelled by hand. Each option's accuracy, its paired difference from the reference and its "
    "difference from the floor (always the most frequent label among the labelled items) are PPI++ estimates "
    "(prediction-powered inference: Angelopoulos, Bates, Fannjiang, Jordan, Zrnic, *Science* 2023; its "
    "power-tuned form PPI++: Angelopoulos, Duchi, Zrnic 2023): the labels measure right and wrong, and on every "
    "item an option's agreement with the reference's answer is the proxy whose bias the labels remove. A poor "
    "proxy costs little (its weight lambda falls towards 0 and the interval to the labels' own); the reference's "
    "own accuracy rests on the labels alone. On top, the kit's small-sample adjustment: pseudo-counts smooth the "
    "labelled right/wrong table (for lambda and a floor under the variance) and the interval uses Student's t "
    "with n - 1 degrees of freedom, which keeps 95% coverage at 40 labels where the plain normal interval fell "
    "to 77-94% (bench/README.md). Beside each interval: the labels-only interval (same adjustment) and the "
    "effective labels, how many labels alone would give the same width. The bar is non-inferiority at the "
    "margin (one-sided t test on the PPI++ difference), Holm-corrected across candidates; that difference gains "
    "little from the proxy (agreeing with the reference says nothing about which of two differing answers is "
    "right), so its interval is close to the labels' own. Labels given outside the random sample are counted "
    "and never used.")


STRATIFIED_METHODS = (
    "**Design-weighted estimates (the stratified design).** Where two options give the same answer their paired "
    "difference is 0 whatever the gold label, so the kit drew its labels in strata made from the options' stored "
    "answers, spending them where the answers differ (Neyman allocation), each label recorded with its stratum and "
    "inclusion probability. Each option's accuracy and the floor are stratified means with the finite-population "
    "correction for the labelling and the items' own sampling error for the traffic; the difference from the "
    "reference is the exact share of differing items times their labelled mean difference (stratified PPI: Fisch "
    "et al., NeurIPS 2024; survey weighting: Cochran, *Sampling Techniques*, 1977). Labels decide correctness; the "
    "options' answers only made the strata. Each stratum uses its labels up to its first skipped item.")


def ppi_quality_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The quality table's PPI++ columns made readable: the labels-only interval as text."""
    if Col.LABELS_ONLY_CI_LOW not in frame.columns:
        return frame
    return frame.assign(**{"labels only 95% CI": interval(frame, Col.LABELS_ONLY_CI_LOW, Col.LABELS_ONLY_CI_HIGH)})


def ppi_comparison_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison table's PPI++ columns made readable: the labels-only interval of the difference as text."""
    if Col.LABELS_ONLY_CI_LOW not in frame.columns:
        return frame
    return frame.assign(**{"labels only 95% CI": interval(frame, Col.LABELS_ONLY_CI_LOW, Col.LABELS_ONLY_CI_HIGH,
                                                          POINTS)})


def prediction_powered(folder: RunFolder) -> str:
    """Markdown for the quality section: per task without gold answers, either what its random labels gave
    (labelled / unlabelled items, labels outside the sample, the method and its papers) or — with no labels —
    that the decision is about agreement, and how many random labels would make it one about correctness."""
    lines: list[str] = []
    methods: set[str] = set()
    for task in folder.tasks():
        compare = folder.table(Table.COMPARE, task=task)
        if compare.empty or Col.KIND not in compare.columns:
            continue
        if ComparisonKind.PREDICTION_POWERED in set(compare[Col.KIND]):
            r = compare.iloc[0]
            sample = sample_labels(folder, task)
            methods.add(sample.design if sample is not None else "random")
            if sample is not None and sample.design == STRATIFIED:
                lines += _stratified_lines(task, compare, sample, _arm_names(folder))
            else:
                lines.append(f"- *{esc(task)}*: gold on a random sample: {int(r[Col.N_LABELLED])} labelled and "
                             f"{int(r[Col.N_UNLABELLED])} unlabelled items (the reference's answers as the proxy); "
                             f"{int(r[Col.N_OUTSIDE])} labels outside the random sample, never used. Accuracy and "
                             "the comparisons are PPI++ estimates with the kit's small-sample adjustment; where a "
                             "comparison is inconclusive, its 'items needed' are random labels.")
            if sample is not None:
                lines += _gap_lines(sample)
            given = len(sample.gold) if sample is not None else 0
            if given > int(r[Col.N_LABELLED]):
                lines.append(f"  Only {int(r[Col.N_LABELLED])} of the sample's {given} labels lie among the "
                             f"{int(r[Col.N_ITEMS])} items this run asked: ask the whole test split (`tasks: "
                             f"{{{esc(task)}: null}}`) to use them all.")
        elif Col.LABELS_NEEDED in compare.columns:
            needs = [f"{esc(o)} about {n:,.0f}" if pd.notna(n) and n != float("inf") else f"{esc(o)}: none would do"
                     for o, n in zip(compare[Col.OPTION], compare[Col.LABELS_NEEDED])]
            n = int(compare[Col.N_LABELLED].iloc[0]) if Col.N_LABELLED in compare.columns else 0
            sample = sample_labels(folder, task)
            design = sample.design if sample is not None else "random"
            given = len(sample.gold) if sample is not None else n
            have = (f"no {design} labels" if given == 0 else
                    f"{given} labels of the {design} design: fewer than {MIN_LABELS}, so no point estimate"
                    if sample is not None and not sample.measured else
                    f"{n} random labels on the items asked, too few for an estimate (it needs 2, and one item without)")
            if sample is not None and sample.order:
                table = sample.stratum_table()
                have += (" (strata — " + "; ".join(
                    f"{esc(stratum_words(h, _arm_names(folder)))}: {int(size):,} items, {int(u):,} labels used"
                    for h, size, u in zip(table[Col.STRATUM], table[Col.STRATUM_SIZE], table[Col.N_LABELLED]))
                    + (f"; {sample.skipped} skipped, {sample.waiting} held back behind a skip"
                       if sample.skipped or sample.waiting else "") + ")")
            lines.append(f"- *{esc(task)}*: {have}, so this decision is about agreement with the reference, "
                         "not correctness. Random gold labels that would make it a correctness decision at the "
                         f"margin, from each candidate's observed agreement: {'; '.join(needs)} "
                         "(`kit label` draws and records the sample).")
    if methods - {STRATIFIED}:
        lines += ["", PPI_METHODS]
    if STRATIFIED in methods:
        lines += ["", STRATIFIED_METHODS]
    return "\n".join(lines) or "- every task has gold answers: no prediction-powered estimate was needed"


STRATUM_WORDS = {"all agree": "every option gave the same answer"}  # kit.labels.design.ALL_AGREE, in the report


def stratum_words(stratum: str, names: dict[str, str]) -> str:
    """A stratum of the stratified design in the report's words: its answer pattern with each arm shown as its
    option's name (``names``: arm -> option name), e.g. ``API | Local=SmolLM2``.

    >>> stratum_words("replay:a.jsonl | llama_cpp:m", {"replay:a.jsonl": "API", "llama_cpp:m": "Local"})
    'API | Local'
    """
    if stratum in STRATUM_WORDS:
        return STRATUM_WORDS[stratum]
    return " | ".join("=".join(names.get(arm, arm) for arm in group.split("="))
                      for group in stratum.split(" | "))


def _arm_names(folder: RunFolder) -> dict[str, str]:
    return {o.arm: o.name for o in folder.experiment().options if o.arm}


def _stratified_lines(task: str, compare: pd.DataFrame, sample: SampledLabels, names: dict[str, str]) -> list[str]:
    """A stratified design in the report: its strata (size, drawn, labels used), the labels' worth in random
    labels per candidate (the compare table's effective labels), and how the estimates weigh them."""
    r = compare.iloc[0]
    table = sample.stratum_table()
    strata = "; ".join(f"{esc(stratum_words(h, names))}: {int(n):,} items, {int(d):,} drawn, {int(u):,} labels used"
                       for h, n, d, u in zip(table[Col.STRATUM], table[Col.STRATUM_SIZE], table[Col.DRAWN],
                                             table[Col.N_LABELLED]))
    worth = "; ".join(f"{esc(o)} about {e:,.0f}" for o, e in zip(compare[Col.OPTION], compare[Col.EFFECTIVE_LABELS])
                      if pd.notna(e))
    out = [f"- *{esc(task)}*: gold on a **stratified** random sample (strata from the options' stored answers, "
           f"labels spent where their answers differ): {int(r[Col.N_LABELLED])} labelled and "
           f"{int(r[Col.N_UNLABELLED])} unlabelled items; {int(r[Col.N_OUTSIDE])} labels outside the design, never "
           f"used. Strata — {strata}.",
           f"  Effective labels (the random labels this design is worth, for the difference from the reference): "
           f"{worth or 'none yet'}. Accuracy and the comparisons are design-weighted: each label weighs 1 / its "
           "inclusion probability, the paired difference is the share of items where the two answers differ "
           "(known exactly) times the mean difference on the labelled ones; where a comparison is inconclusive, "
           "its 'items needed' are labels of this design."]
    if sample.earlier:
        out.append(f"  {len(sample.earlier)} earlier design(s) drawn before the stored answers changed: their "
                   "labels stay valid under their own strata and are combined by inverse variance.")
    return out


def _gap_lines(sample: SampledLabels) -> list[str]:
    """Skips, labels held back behind them, and the minimum below which no estimate counts as a measurement."""
    out = []
    if sample.skipped or sample.waiting:
        out.append(f"  {sample.skipped} sampled item(s) skipped; {sample.waiting} label(s) after a skipped item held "
                   "back (each stratum uses only its labels up to the first gap, so a skip cannot bias the estimate; "
                   "label the skipped item to use them).")
    if not sample.measured:
        out.append(f"  **Fewer than {MIN_LABELS} labels in the design ({len(sample.gold)}): no point estimate** — "
                   "the figures above are not a measurement yet, and the verdict cannot rest on them.")
    return out
# -------------------------------------------------------------- runs that stop when the verdict is settled
def sequential(folder: RunFolder) -> str:
    """For a sequential run (``sequential:``), per task: where the rounds stopped and why, what each option settled,
    and the items and dollars spent against the fixed plan, with the method named and cited. A fixed run says so.

    >>> print(sequential(RunFolder("runs/report-x")))       # doctest: +SKIP
    - *snips-intents*: stopped after 40 of 100 items (round 1) …
    """
    from kit.pipeline.looks import Question
    from kit.stats.sequential import METHOD

    exp = folder.experiment()
    if exp.sequential is None:
        return "- a fixed run: every option answered the experiment's items (no `sequential:` key)"
    lines = []
    for task in folder.tasks():
        d = stop_of(folder, task)
        if d is None:
            continue
        why = {"settled": "every option settled", "item cap": "the item cap",
               "cost cap": "the cost cap"}.get(d.stopped, d.stopped)
        looks = folder.table(Table.SEQUENTIAL, task=task)
        settled, still_open = [], []
        if not looks.empty:
            last = looks[looks[Col.ROUND] == looks[Col.ROUND].max()]
            for r in last.to_dict("records"):
                what = {Question.BAR.value: "the bar", Question.FLOOR.value: f"the floor ({r[Col.BASELINE]})",
                        Question.LATENCY.value: "p95 within the latency target",
                        Question.LEADER.value: f"against {r[Col.BASELINE]}"}.get(r[Col.QUESTION], r[Col.QUESTION])
                bounds = f"[{r[Col.CS_LOW]:+.3f}, {r[Col.CS_HIGH]:+.3f}]"
                if r[Col.QUESTION] == Question.LEADER.value and r[Col.STATUS] != "open":
                    side = "below" if r[Col.STATUS] == "fails" else "above"
                    settled.append(f"{esc(r[Col.OPTION])} is shown {side} {esc(r[Col.BASELINE])} {bounds}")
                elif r[Col.STATUS] == "open":
                    still_open.append(f"{esc(r[Col.OPTION])} {esc(what)} {bounds}")
                else:
                    settled.append(f"{esc(r[Col.OPTION])} {esc(r[Col.STATUS])} {esc(what)} {bounds}")
        spent, planned = sum(d.spent_usd.values()), sum(d.planned_usd.values())
        n_opts = max(len(d.spent_usd), 1)
        lines.append(
            f"- *{esc(task)}*: stopped after **{d.items} of {d.fixed_items} items** (round {d.round}, "
            f"{d.round_items} items a round: {why}). Settled: " + ("; ".join(settled) or "nothing")
            + (f". Still open, counted as not shown: {'; '.join(still_open)}" if still_open else "")
            + f". Spent **{esc(_usd(spent))}**"
            + (f" (cost cap {esc(_usd(d.max_cost_usd))}: every call priced at its most before it started)"
               if d.max_cost_usd is not None else "")
            + f" and {d.items * n_opts:,} answers against the fixed plan's "
              f"{esc(_usd(planned))} and {d.fixed_items * n_opts:,} answers (each answer priced as the costs "
              "stage prices it).")
    lines.append(f"- Method: the {esc(METHOD)}, re-tested after every round at alpha {exp.alpha:g} "
                 "(Bonferroni across the candidates for the bar); because the run stopped on these sequences, the "
                 "bar and the floor above are their conclusions, a question still open counting as not shown.")
    return "\n".join(lines)


def _usd(x: float) -> str:
    """Dollars with the cents' fractions a few hundred answers cost (``$0.0123``)."""
    return USD(x) if abs(x) >= 1 else f"${x:.4f}"
# ------------------------------------------ each option at its best prompt: chosen on dev items, judged on test items
def _prompts(folder: RunFolder, task: str) -> pd.DataFrame:
    t = folder.table(Table.PROMPTS, task=task) if folder.has(Table.PROMPTS, task=task) else pd.DataFrame()
    if not t.empty:
        t["95% CI"] = interval(t, Col.DEV_CI_LOW, Col.DEV_CI_HIGH)
        t["chosen for test"] = t[Col.CHOSEN].map({True: "✓", False: ""})
    return t.drop(columns=[Col.TASK], errors="ignore")


def prompt_sensitivity(folder: RunFolder) -> Styler:
    """Each option's prompt variants on the dev items: quality with its interval, prompt length, the one chosen."""
    frame = _stack(folder, _prompts)
    if frame.empty:
        return show(pd.DataFrame([{"prompts": "every option answered with the task's own prompt (no `prompts:` "
                                              "variants in the experiment): nothing was selected"}]))
    return show(frame, {Col.DEV_QUALITY: PCT, Col.PROMPT_TOKENS: NUMBER, Col.DEV_ITEMS: ITEMS},
                columns={Col.TASK: "task", Col.OPTION: "option", Col.VARIANT: "variant", Col.PROMPT: "prompt",
                         Col.DEV_ITEMS: "dev items", Col.DEV_QUALITY: "dev quality", "95% CI": "95% CI",
                         Col.PROMPT_TOKENS: "prompt tokens / item", "chosen for test": "chosen for test",
                         Col.NOTE: "note"})


def prompt_accounting(folder: RunFolder) -> str:
    """In words, per task: the splits (checked disjoint), each option's variants tried, the chosen variant's test
    quality and its dev − test optimism, what selection cost — and that the test figure is the result."""
    splits = folder.doc(Doc.SPLITS, default={})
    lines = []
    for task in folder.tasks():
        ids = {k: set(v) for k, v in splits.get(task, {}).items()}
        if ids:
            shared = (ids["train"] & ids["dev"]) | (ids["train"] & ids["test"]) | (ids["dev"] & ids["test"])
            if shared:  # never expected: the prepare stage refuses such splits
                lines.append(f"- *{esc(task)}*: **the splits share {len(shared)} items**: the test figures below are "
                             "not clean.")
                continue
            lines.append(f"- *{esc(task)}*: {len(ids['train'])} train, {len(ids['dev'])} dev and {len(ids['test'])} "
                         "test items, disjoint (checked). Shots and fine-tunes used train items only; prompt choices "
                         "used dev items only.")
        table = _prompts(folder, task)
        if table.empty:
            continue
        metrics = folder.table(Table.METRICS, task=task)
        test = metrics[metrics[Col.KIND] == RowKind.OPTION].set_index(Col.OPTION)
        for option, rows in table.groupby(Col.OPTION, sort=False):
            chosen = rows[rows[Col.CHOSEN].astype(bool)].iloc[0]
            if not rows[Col.NOTE].fillna("").eq("").all():
                lines.append(f"  - **{esc(option)}**: {len(rows)} variants, {esc(chosen[Col.NOTE])} "
                             f"('{esc(chosen[Col.VARIANT])}').")
                continue
            test_q = test.loc[option, Col.MEAN_SCORE] if option in test.index else None
            band = (f" ({interval(test.loc[[option]], Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH).iloc[0]})"
                    if option in test.index else "")
            optimism = chosen[Col.DEV_QUALITY] - test_q if test_q is not None else None
            lines.append(f"  - **{esc(option)}**: {len(rows)} variants tried on {int(chosen[Col.DEV_ITEMS])} dev items; "
                         f"chosen '{esc(chosen[Col.VARIANT])}' ({esc(chosen[Col.PROMPT])}), dev {pct(chosen[Col.DEV_QUALITY])}"
                         f", test {pct(test_q)}{band}: dev − test optimism {pts(optimism)}.")
        calls = int(table[Col.SELECTION_CALLS].sum())
        lines.append(f"  - selection calls {calls}, {SECONDS(table[Col.SELECTION_SECONDS].sum())} of answering, "
                     f"{esc(USD(table[Col.SELECTION_USD].sum()))} — counted apart from the test answers.")
    lines.append("\nThe test figures are the results: no test item was used for selecting a prompt, for shots or for "
                 "training. A variant's dev quality is optimistic by selection; the dev − test optimism shows how much.")
    return "\n".join(lines)
