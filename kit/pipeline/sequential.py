"""Stage 3 in rounds: answer until the verdict is settled (experiment key ``sequential:``), then decide on the
confidence sequences.

Every option answers the next round of test items of a task (the same items for all, in test-split order).
After each round the verdict's open questions are re-tested with an always-valid confidence sequence
(:mod:`kit.stats.sequential`, Waudby-Smith et al. 2024), so looking after every round costs no validity:

* **the bar** — each candidate against the reference: the paired difference of per-item scores against
  ``-margin`` (labelled), or the share of items it agrees with the reference on against ``agreement_target``
  (unlabelled). alpha is split across the candidates by **Bonferroni** (alpha / candidates): Holm's step-down
  needs every p-value at one fixed time and has no simple always-valid form;
* **the floor** — each option against each trivial baseline of the task: the paired difference of scores
  against 0;
* **the limits** — with ``latency_target_s``: the share of items slower than the target against 5 %
  (p95 within the target), leaving out warm-up answers as the latency table does (each round is a run of its
  own in the store, so each round's first answer counts as one).

An option is settled once any of its questions is shown to fail (it is out whatever the rest says) or all of
them are shown to pass. Once a candidate passes every question, every other option is also tested against this
*leader* (paired difference of scores, Bonferroni's alpha): one shown below it can no longer become the pick, so
it is settled too (labelled tasks with quality first — no ``cost_per_error``, where a cheaper but worse option
could be the pick). A task stops when every option is settled, or at its item cap (``max_items``, default
the experiment's items for the task) or cost cap (``max_cost_usd``). Any stopping rule keeps the sequences
valid; this one stops when more items could no longer change which option is recommended. Because the run
stopped on the sequences,
the quality stage's fixed-sample conclusions for the bar and the floor are replaced by the sequences' own
(:func:`apply_sequential`; a question still open counts as not shown).

>>> answer_in_rounds(RunFolder("runs/report-x"), tasks, store=store, standin=None)     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.experiment import Experiment
from kit.pipeline.folder import Doc, RunFolder, RunRecord, Table
from kit.stats import Conclusion
from kit.stats.sequential import METHOD, Settled, confidence_sequence, settle
from kit.tasks import Task

SLOW_SHARE = 0.05  # the latency limit: at most this share of items over the target (p95 within it)


class Question(StrEnum):
    """An open question of the verdict that the rounds re-test."""

    BAR = "bar"
    FLOOR = "floor"
    LATENCY = "latency"
    LEADER = "vs leader"  # an option against a candidate that passes every question (``baseline`` names it)


@dataclass(frozen=True)
class RoundPlan:
    """How a task is answered in rounds: items per round, the item cap, the fixed plan's items, the cost cap."""

    round_items: int
    max_items: int
    fixed_items: int
    max_cost_usd: float | None


@dataclass(frozen=True)
class Stop:
    """Where a task's rounds stopped (``Doc.SEQUENTIAL``): the last round, the items each option answered, the
    caps, why it stopped (``settled``, ``item cap``, ``cost cap``), USD spent and the fixed plan's USD per option
    (priced per answered item), which options settled, and the method."""

    round: int
    items: int
    round_items: int
    max_items: int
    fixed_items: int
    stopped: str
    spent_usd: dict[str, float]
    planned_usd: dict[str, float]
    settled: dict[str, bool]
    method: str
    alpha: float
    tested: bool  # False for a free-text task (judged after the answers: nothing to test between rounds)


def stop_of(folder: RunFolder, task: str) -> Stop | None:
    """A task's :class:`Stop`, or None when the run was not sequential.

    >>> stop_of(RunFolder("runs/report-x"), "snips-intents").items            # doctest: +SKIP
    40
    """
    data = folder.doc(Doc.SEQUENTIAL, task=task, default={})
    return Stop(**data) if data else None


def plan_for(exp: Experiment, task: Task) -> RoundPlan:
    """A task's rounds under ``exp.sequential`` (a free-text task, graded by a judge after the answers, runs its
    fixed items in one round: its scores do not exist between rounds).

    >>> plan_for(exp, load_task("snips-intents"))                             # doctest: +SKIP
    RoundPlan(round_items=40, max_items=100, fixed_items=100, max_cost_usd=None)
    """
    spec = exp.sequential
    n_test = len(task.test)
    fixed = min(exp.tasks.get(task.name) or n_test, n_test)
    cap = min(spec.max_items or fixed, n_test) if spec is not None else fixed
    step = cap if spec is None or task.type.judged else spec.round_items
    return RoundPlan(round_items=step, max_items=cap, fixed_items=fixed,
                     max_cost_usd=spec.max_cost_usd if spec is not None else None)


def _row(task: str, round_no: int, items: int, option: str, question: Question, baseline: str, threshold: float,
         cs: Any, status: Settled, alpha: float) -> dict[str, Any]:
    return {Col.TASK: task, Col.ROUND: round_no, Col.N_ITEMS: items, Col.OPTION: option, Col.QUESTION: question.value,
            Col.BASELINE: baseline, Col.THRESHOLD: threshold, Col.ESTIMATE: cs.estimate, Col.CS_LOW: cs.low,
            Col.CS_HIGH: cs.high, Col.STATUS: status.value, "alpha": alpha}


def round_looks(task: Task, scores: pd.DataFrame, *, exp: Experiment, round_no: int, items: int,
                planned_n: int) -> pd.DataFrame:
    """Every open question of the verdict re-tested on the items answered so far (``scores``: the per-item score
    table of every option, as :func:`kit.tasks.scoring.score_task` gives it): one row per option and question
    with the estimate, the confidence sequence's bounds and the status (passes, fails, open).

    >>> round_looks(task, scores, exp=exp, round_no=1, items=40, planned_n=100)[["option", "question", "status"]]
    ...                                                                                   # doctest: +SKIP
    """
    rows: list[dict[str, Any]] = []
    names = list(dict.fromkeys(scores[Col.OPTION]))
    ref = exp.reference_name
    scored = scores[scores[Col.SCORE].notna()]
    wide = scored.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.SCORE, aggfunc="mean")
    candidates = [n for n in names if n != ref]
    bar_alpha = exp.alpha / max(len(candidates), 1)  # Bonferroni across the candidates
    for name in candidates:
        if task.labelled:
            if ref not in wide.columns:
                continue
            pair = wide[[name, ref]].fillna(0.0)  # an item one side never answered counts as wrong
            cs = confidence_sequence(pair[name] - pair[ref], alpha=bar_alpha, planned_n=planned_n, lo=-1, hi=1)
            threshold = -exp.margin
        else:
            values = wide[name].dropna() if name in wide.columns else pd.Series(dtype=float)
            if values.empty:
                continue
            cs = confidence_sequence(values, alpha=bar_alpha, planned_n=planned_n, lo=0, hi=1)
            threshold = exp.agreement_target
        rows.append(_row(task.name, round_no, items, name, Question.BAR, "", threshold, cs,
                         settle(cs, threshold=threshold), bar_alpha))
    if task.labelled and not task.type.judged:
        by_id = {item.id: i for i, item in enumerate(task.test)}
        for b in task.type.baselines(task.train, task.test):
            for name in names:
                if name not in wide.columns:
                    continue
                mine = wide[name].dropna()
                mine = mine[mine.index.isin(by_id)]
                if mine.empty:
                    continue
                base = np.array([b.scores[by_id[i]].score for i in mine.index], dtype=float)
                cs = confidence_sequence(mine.to_numpy(dtype=float) - base, alpha=exp.alpha, planned_n=planned_n,
                                         lo=-1, hi=1)
                rows.append(_row(task.name, round_no, items, name, Question.FLOOR, b.name, 0.0, cs,
                                 settle(cs, threshold=0.0), exp.alpha))
    if exp.latency_target_s is not None and Col.LATENCY_S in scores.columns:
        warm = (scores[Col.WARMUP].astype(bool) if Col.WARMUP in scores.columns
                else pd.Series(False, index=scores.index))
        for name in names:
            mine = scores[(scores[Col.OPTION] == name) & ~warm]  # warm-up answers left out, as the latency table
            lat = pd.to_numeric(mine[Col.LATENCY_S], errors="coerce")
            lat = lat[np.isfinite(lat)]
            if lat.empty:
                continue
            cs = confidence_sequence((lat > exp.latency_target_s).astype(float), alpha=exp.alpha,
                                     planned_n=planned_n, lo=0, hi=1)
            rows.append(_row(task.name, round_no, items, name, Question.LATENCY, "", SLOW_SHARE, cs,
                             settle(cs, threshold=SLOW_SHARE, higher_is_better=False), exp.alpha))
    if exp.cost_per_error is None:  # quality first: a cheaper option shown worse cannot be the pick
        rows += _leader_rows(task, wide, rows, round_no=round_no, items=items, planned_n=planned_n, alpha=bar_alpha)
    return pd.DataFrame(rows)


def _leader_rows(task: Task, wide: pd.DataFrame, rows: list[dict[str, Any]], *, round_no: int, items: int,
                 planned_n: int, alpha: float) -> list[dict[str, Any]]:
    """When a candidate passes every question (the best-scoring such one leads), each option not yet shown to fail
    a question is tested against it: shown below the leader, it can no longer become the pick, whatever more items
    say of its own floor or limits (the decision takes the cheapest option not significantly worse than the best
    qualifying one)."""
    status: dict[str, list[str]] = {}
    for r in rows:
        status.setdefault(r[Col.OPTION], []).append(r[Col.STATUS])
    bar = {r[Col.OPTION] for r in rows if r[Col.QUESTION] == Question.BAR.value}
    passing = [o for o in bar if set(status[o]) == {Settled.PASSES.value} and o in wide.columns]
    if not passing or not task.labelled:
        return []
    leader = max(passing, key=lambda o: float(wide[o].fillna(0.0).mean()))
    out = []
    for name in wide.columns:
        if name == leader or Settled.FAILS.value in status.get(name, []):
            continue
        pair = wide[[name, leader]].fillna(0.0)
        cs = confidence_sequence(pair[name] - pair[leader], alpha=alpha, planned_n=planned_n, lo=-1, hi=1)
        out.append(_row(task.name, round_no, items, str(name), Question.LEADER, leader, 0.0, cs,
                        settle(cs, threshold=0.0), alpha))
    return out


def settled_options(looks: pd.DataFrame, options: list[str]) -> dict[str, bool]:
    """Per option: settled once any question is shown to fail, or every question is shown to pass (an option
    with no open question at all is settled).

    >>> looks = pd.DataFrame({"option": ["A", "A", "B"], "status": ["passes", "open", "fails"]})
    >>> settled_options(looks, ["A", "B"])
    {'A': False, 'B': True}
    """
    out = {}
    for name in options:
        status = looks.loc[looks[Col.OPTION] == name, Col.STATUS].tolist() if not looks.empty else []
        out[name] = Settled.FAILS.value in status or Settled.OPEN.value not in status
    return out


def answer_in_rounds(folder: RunFolder, tasks: dict[str, Task], *, store: Any, standin: Any,
                     progress: bool = True) -> tuple[list[RunRecord], dict[str, list[pd.DataFrame]]]:
    """The answer stage of a sequential run: per task, each option's prompt chosen on the dev items first (as in a
    fixed run), then rounds of test items for every option until the verdict is settled or a cap is reached; the
    rounds' looks (``Table.SEQUENTIAL``) and where they stopped (``Doc.SEQUENTIAL``) are saved per task. Returns
    one record per (task, option), as the fixed stage does, and the prompt-selection tables per task."""
    from kit.arms import get_arm
    from kit.pipeline.costs import answers_usd
    from kit.pipeline.answers import arm_for
    from kit.pipeline.quality import warmups
    from kit.pipeline.selection import select_prompt
    from kit.privacy import withhold_pii
    from kit.run.runner import run_arm
    from kit.tasks.scoring import score_task

    exp = folder.experiment()
    records: list[RunRecord] = []
    prompt_tables: dict[str, list[pd.DataFrame]] = {}
    for name, task in tasks.items():
        options = list(exp.options_for(name))
        plan = plan_for(exp, task)
        arms: dict[str, tuple[str, Any]] = {}
        runs: dict[str, list[Any]] = {o.name: [] for o in options}
        looks: list[pd.DataFrame] = []
        done, round_no, spent = 0, 0, {o.name: 0.0 for o in options}
        picks: dict[str, Any] = {}
        try:
            for o in options:
                spec, arm_options = arm_for(o, task=name, folder=folder, standin=standin)
                arms[o.name] = (spec, get_arm(spec, **arm_options))
                hook = withhold_pii(task=task) if exp.privacy_required and not o.self_hosted else None
                picks[o.name] = select_prompt(task, o, arms[o.name][1], store=store, withhold=hook, progress=progress,
                                              max_tokens=task.type.max_tokens or exp.max_tokens)
                if not picks[o.name].table.empty:
                    prompt_tables.setdefault(name, []).append(picks[o.name].table)
            stopped = "item cap"
            while done < plan.max_items:
                round_no += 1
                items = list(task.test)[done:min(done + plan.round_items, plan.max_items)]
                for o in options:
                    spec, arm = arms[o.name]
                    hook = withhold_pii(task=task) if exp.privacy_required and not o.self_hosted else None
                    runs[o.name].append(run_arm(task, arm, store=store, items=items, withhold=hook, progress=progress,
                                                max_tokens=task.type.max_tokens or exp.max_tokens,
                                                label=f"{o.name} · round {round_no}", variant=picks[o.name].chosen))
                done += len(items)
                if task.type.judged:
                    continue
                rows = pd.concat([store.rows([k for r in runs[o.name] for k in r.keys.values()]).assign(
                    **{Col.OPTION: o.name}) for o in options], ignore_index=True)
                scores = score_task(task, rows, reference=exp.reference_name).merge(
                    warmups(rows), on=[Col.OPTION, Col.ITEM_ID, Col.EPOCH], how="left")
                scores[Col.WARMUP] = scores[Col.WARMUP].fillna(False).astype(bool)
                spent = {o.name: answers_usd(o, scores[scores[Col.OPTION] == o.name]) for o in options}
                table = round_looks(task, scores, exp=exp, round_no=round_no, items=done, planned_n=plan.max_items)
                looks.append(table.assign(**{Col.SPENT_USD: table[Col.OPTION].map(spent)}))  # USD so far, per option
                if all(settled_options(table, [o.name for o in options]).values()):
                    stopped = "settled"
                    break
                if plan.max_cost_usd is not None and sum(spent.values()) >= plan.max_cost_usd:
                    stopped = "cost cap"
                    break
        finally:
            for _, arm in arms.values():
                arm.close()
        for o in options:
            done_runs = runs[o.name]
            keys = {k: v for r in done_runs for k, v in r.keys.items()}
            records.append(RunRecord(task=name, option=o.name, arm=arms[o.name][0],
                                     run_id=", ".join(r.run_id for r in done_runs), items=len(keys),
                                     new_calls=sum(r.new_calls for r in done_runs),
                                     from_store=sum(r.cached for r in done_runs),
                                     errors=sum(r.errors for r in done_runs),
                                     withheld=sum(r.withheld for r in done_runs),
                                     describe=arms[o.name][1].describe(), keys=keys,
                                     stopped=next((r.stopped for r in done_runs if r.stopped), None),
                                     prompt=picks[o.name].chosen.name, dev_keys=picks[o.name].dev_keys))
        table = pd.concat(looks, ignore_index=True) if looks else pd.DataFrame()
        folder.save_table(Table.SEQUENTIAL, table, task=name)
        per_item = {k: (v / done if done else 0.0) for k, v in spent.items()}
        folder.save_doc(Doc.SEQUENTIAL, asdict(Stop(
            round=round_no, items=done, round_items=plan.round_items, max_items=plan.max_items,
            fixed_items=plan.fixed_items, stopped=stopped, spent_usd=spent,
            planned_usd={k: v * plan.fixed_items for k, v in per_item.items()},
            settled=settled_options(looks[-1], list(spent)) if looks else {}, method=METHOD, alpha=exp.alpha,
            tested=not task.type.judged)), task=name)
    return records, prompt_tables


def _bar_conclusion(status: str, low: float, *, correctness: bool) -> Conclusion:
    if status == Settled.PASSES.value:
        return (Conclusion.SUPERIOR if low > 0 else Conclusion.NON_INFERIOR) if correctness else Conclusion.MEETS_BAR
    if status == Settled.FAILS.value:
        return Conclusion.INFERIOR if correctness else Conclusion.BELOW_BAR
    return Conclusion.INCONCLUSIVE


def apply_sequential(folder: RunFolder, out: dict[str, dict[str, pd.DataFrame]]) -> None:
    """For a sequential run, replace the quality stage's fixed-sample conclusions of the bar and the floor by the
    confidence sequences' at the last round (a question still open counts as not shown), in the saved tables
    and in ``out``. Tests after optional stopping are not valid; the sequences are. A fixed run is untouched."""
    from kit.pipeline.quality import task_of

    if folder.experiment().sequential is None:
        return
    for name, tables in out.items():
        if not folder.has(Table.SEQUENTIAL, task=name):
            continue
        looks = folder.table(Table.SEQUENTIAL, task=name)
        if looks.empty:
            continue
        last = looks[looks[Col.ROUND] == looks[Col.ROUND].max()]
        task = task_of(folder, name)
        correctness = task.type.comparison_kind(labelled=task.labelled).correctness
        compare = tables[Table.COMPARE.file].copy()
        for i, row in compare.iterrows():
            hit = last[(last[Col.OPTION] == row[Col.OPTION]) & (last[Col.QUESTION] == Question.BAR.value)]
            if hit.empty:
                continue
            h = hit.iloc[0]
            c = _bar_conclusion(h[Col.STATUS], float(h[Col.CS_LOW]), correctness=correctness)
            compare.loc[i, [Col.CONCLUSION, Col.CONCLUSION_ADJUSTED]] = c.value
            compare.loc[i, [Col.QUALIFIES, Col.BETTER]] = [c.passes, c.better]
            compare.loc[i, Col.LOWER_BOUND] = float(h[Col.CS_LOW])
            compare.loc[i, Col.STATEMENT] = (
                f"Sequential run, stopped after {int(h[Col.N_ITEMS])} items: the confidence sequence for "
                f"{'the difference from the reference' if correctness else 'the agreement'} is "
                f"[{h[Col.CS_LOW]:+.3f}, {h[Col.CS_HIGH]:+.3f}] (estimate {h[Col.ESTIMATE]:+.3f}, alpha "
                f"{h['alpha']:.3g}): **{c.value}** against {h[Col.THRESHOLD]:+.3f}. {METHOD}.")
        floor = tables[Table.FLOOR.file].copy()
        for i, row in floor.iterrows():
            hit = last[(last[Col.OPTION] == row[Col.OPTION]) & (last[Col.QUESTION] == Question.FLOOR.value)
                       & (last[Col.BASELINE] == row[Col.BASELINE])]
            if hit.empty:
                continue
            h = hit.iloc[0]
            passes = h[Col.STATUS] == Settled.PASSES.value
            floor.loc[i, Col.PASSES] = passes
            floor.loc[i, Col.STATEMENT] = (
                f"Sequential run: {row[Col.OPTION]} minus {row[Col.ANSWER]} is [{h[Col.CS_LOW]:+.3f}, "
                f"{h[Col.CS_HIGH]:+.3f}] after {int(h[Col.N_ITEMS])} items: "
                + ("shown better." if passes else "not shown better."))
        for kind, table in ((Table.COMPARE, compare), (Table.FLOOR, floor)):
            folder.save_table(kind, table, task=name)
            tables[kind.file] = table
