"""The verdict's open questions, re-tested on the answers so far with always-valid confidence sequences.

A helper below the stages: the rounds driver (:mod:`kit.pipeline.sequential`) looks after every round, and the
quality stage of a sequential run turns the last look into the conclusions of the bar and the floor
(:func:`sequential_tables`) — a test after optional stopping is not valid, the sequence is.

The questions (:class:`Question`), per option, on what the task's labels allow — correctness wherever gold
labels exist, agreement with the reference only where none do:

* **the bar** — each candidate against the reference, alpha split by **Bonferroni** (alpha / candidates; Holm's
  step-down needs every p-value at one fixed time and has no simple always-valid form):
  a labelled task: the paired difference of per-item scores against ``-margin``;
  a partly labelled task (gold labels on a random sample, ``kit label``): the paired difference of correctness
  on the sampled items answered so far, against ``-margin`` (open until two of them are answered);
  an unlabelled task: the share of items it agrees with the reference on, against ``agreement_target``;
* **the floor** — each option against each trivial baseline: the paired difference of scores against 0 (a
  partly labelled task: against always answering the labelled sample's most frequent label, on its items);
* **the limits** — with ``latency_target_s``: the share of items slower than the target against 5 % (p95
  within the target), warm-up answers left out as the latency table does;
* **the leader** — once a candidate passes every question, every other option against it (paired difference of
  correctness, Bonferroni's alpha; only when quality comes first, no ``cost_per_error``): one shown below it can
  no longer become the pick.

>>> looks = round_looks(task, scores, questions=Questions.of(exp), round_no=1, items=40, planned_n=100)
...                                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.experiment import Experiment
from kit.stats import Conclusion
from kit.stats.sequential import METHOD, Settled, confidence_sequence, settle
from kit.tasks import Task
from kit.tasks.ppi_compare import SampledLabels

SLOW_SHARE = 0.05  # the latency limit: at most this share of items over the target (p95 within it)
ACCURACY = "paired difference in correctness"  # what a bar row measured (Col.METRIC)
AGREEMENT = "agreement with the reference"


class Question(StrEnum):
    """An open question of the verdict that the rounds re-test."""

    BAR = "bar"
    FLOOR = "floor"
    LATENCY = "latency"
    LEADER = "vs leader"  # an option against a candidate that passes every question (``baseline`` names it)


@dataclass(frozen=True)
class Questions:
    """The experiment's values the questions need, read once (:meth:`of`)."""

    reference: str
    margin: float
    alpha: float
    agreement_target: float
    latency_target_s: float | None
    quality_first: bool  # no cost per error: a cheaper option shown worse than the leader cannot be the pick

    @classmethod
    def of(cls, exp: Experiment) -> Questions:
        return cls(reference=exp.reference_name, margin=exp.margin, alpha=exp.alpha,
                   agreement_target=exp.agreement_target, latency_target_s=exp.latency_target_s,
                   quality_first=exp.cost_per_error is None)


def _row(task: str, round_no: int, items: int, option: str, question: Question, baseline: str, threshold: float,
         cs: Any, status: Settled, alpha: float, metric: str = "") -> dict[str, Any]:
    return {Col.TASK: task, Col.ROUND: round_no, Col.N_ITEMS: items, Col.OPTION: option, Col.QUESTION: question.value,
            Col.BASELINE: baseline, Col.THRESHOLD: threshold, Col.ESTIMATE: cs.estimate if cs else math.nan,
            Col.CS_LOW: cs.low if cs else math.nan, Col.CS_HIGH: cs.high if cs else math.nan,
            Col.STATUS: status.value, "alpha": alpha, Col.METRIC: metric}


def correctness_on_labels(task: Task, scores: pd.DataFrame, labels: SampledLabels) -> pd.DataFrame:
    """Item x option, 1.0 where the option's answer is right against the sample's gold label, on the labelled
    items answered so far (first epoch; an error counts as wrong)."""
    first = scores.sort_values(Col.EPOCH, kind="stable").drop_duplicates([Col.OPTION, Col.ITEM_ID])
    first = first[first[Col.ITEM_ID].astype(str).isin(labels.gold.keys())]
    answers = first.pivot(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.ANSWER)
    return pd.DataFrame({o: [float(task.type.score(_answer(a), labels.gold[str(i)]).correct)
                             for i, a in answers[o].items()] for o in answers.columns}, index=answers.index)


def _answer(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def round_looks(task: Task, scores: pd.DataFrame, *, questions: Questions, round_no: int, items: int,
                planned_n: int, labels: SampledLabels | None = None) -> pd.DataFrame:
    """Every open question of the verdict re-tested on the items answered so far (``scores``: the per-item score
    table of every option, :func:`kit.pipeline.scores.scored`; ``labels``: a partly labelled task's random
    sample): one row per option and question with the estimate, the sequence's bounds and the status.

    >>> round_looks(task, scores, questions=q, round_no=1, items=40, planned_n=100)[["option", "status"]]
    ...                                                                                   # doctest: +SKIP
    """
    q = questions
    names = list(dict.fromkeys(scores[Col.OPTION]))
    ref = q.reference
    sampled = not task.labelled and labels is not None and bool(labels.gold)
    scored = scores[scores[Col.SCORE].notna()]
    wide = (correctness_on_labels(task, scores, labels) if sampled else
            scored.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.SCORE, aggfunc="mean"))
    arrival = {item.id: k for k, item in enumerate(task.test)}  # a sequence reads its values in the order drawn
    wide = wide.loc[sorted(wide.index, key=lambda i: arrival.get(str(i), len(arrival)))]
    correctness = task.labelled or sampled
    candidates = [n for n in names if n != ref]
    bar_alpha = q.alpha / max(len(candidates), 1)  # Bonferroni across the candidates
    rows: list[dict[str, Any]] = []
    for name in candidates:
        if correctness:
            if sampled and (len(wide) < 2 or name not in wide.columns or ref not in wide.columns):
                rows.append(_row(task.name, round_no, items, name, Question.BAR, "", -q.margin, None, Settled.OPEN,
                                 bar_alpha, ACCURACY))  # too few labelled items answered yet: open, never agreement
                continue
            if ref not in wide.columns:
                continue
            pair = wide[[name, ref]].fillna(0.0)  # an item one side never answered counts as wrong
            cs = confidence_sequence(pair[name] - pair[ref], alpha=bar_alpha, planned_n=planned_n, lo=-1, hi=1)
            threshold, metric = -q.margin, ACCURACY
        else:
            values = wide[name].dropna() if name in wide.columns else pd.Series(dtype=float)
            if values.empty:
                continue
            cs = confidence_sequence(values, alpha=bar_alpha, planned_n=planned_n, lo=0, hi=1)
            threshold, metric = q.agreement_target, AGREEMENT
        rows.append(_row(task.name, round_no, items, name, Question.BAR, "", threshold, cs,
                         settle(cs, threshold=threshold), bar_alpha, metric))
    rows += _floor_rows(task, wide, names, sampled=sampled, labels=labels, round_no=round_no, items=items,
                        planned_n=planned_n, alpha=q.alpha)
    rows += _latency_rows(task, scores, names, q, round_no=round_no, items=items, planned_n=planned_n)
    if q.quality_first and correctness:  # quality first: a cheaper option shown worse cannot be the pick
        rows += _leader_rows(task, wide, rows, round_no=round_no, items=items, planned_n=planned_n, alpha=bar_alpha)
    return pd.DataFrame(rows)


def _floor_rows(task: Task, wide: pd.DataFrame, names: list[str], *, sampled: bool, labels: SampledLabels | None,
                round_no: int, items: int, planned_n: int, alpha: float) -> list[dict[str, Any]]:
    """Each option against each trivial baseline: the task's own (labelled), or always the most frequent label of
    the labelled sample (partly labelled), on the items with a gold answer."""
    if task.type.judged or not (task.labelled or sampled):
        return []
    if sampled:
        if len(wide) < 2 or labels is None:
            return []
        gold = [str(labels.gold[str(i)]) for i in wide.index]
        answer = sorted(Counter(gold).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        baselines = [("majority label of the labelled sample", np.array([float(g == answer) for g in gold]))]
        ids = list(wide.index)
    else:
        by_id = {item.id: i for i, item in enumerate(task.test)}
        ids = [i for i in wide.index if i in by_id]
        baselines = [(b.name, np.array([b.scores[by_id[i]].score for i in ids], dtype=float))
                     for b in task.type.baselines(task.train, task.test)]
    rows = []
    for base_name, base in baselines:
        for name in names:
            if name not in wide.columns:
                continue
            mine = wide.loc[ids, name]
            keep = mine.notna().to_numpy()
            if not keep.any():
                continue
            cs = confidence_sequence(mine.to_numpy(dtype=float)[keep] - base[keep], alpha=alpha,
                                     planned_n=planned_n, lo=-1, hi=1)
            rows.append(_row(task.name, round_no, items, name, Question.FLOOR, base_name, 0.0, cs,
                             settle(cs, threshold=0.0), alpha))
    return rows


def _latency_rows(task: Task, scores: pd.DataFrame, names: list[str], q: Questions, *, round_no: int, items: int,
                  planned_n: int) -> list[dict[str, Any]]:
    if q.latency_target_s is None or Col.LATENCY_S not in scores.columns:
        return []
    warm = (scores[Col.WARMUP].astype(bool) if Col.WARMUP in scores.columns
            else pd.Series(False, index=scores.index))
    rows = []
    for name in names:
        mine = scores[(scores[Col.OPTION] == name) & ~warm]  # warm-up answers left out, as the latency table
        lat = pd.to_numeric(mine[Col.LATENCY_S], errors="coerce")
        lat = lat[np.isfinite(lat)]
        if lat.empty:
            continue
        cs = confidence_sequence((lat > q.latency_target_s).astype(float), alpha=q.alpha, planned_n=planned_n,
                                 lo=0, hi=1)
        rows.append(_row(task.name, round_no, items, name, Question.LATENCY, "", SLOW_SHARE, cs,
                         settle(cs, threshold=SLOW_SHARE, higher_is_better=False), q.alpha))
    return rows


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
    if not passing:
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


def _bar_conclusion(status: str, low: float, *, correctness: bool) -> Conclusion:
    if status == Settled.PASSES.value:
        return (Conclusion.SUPERIOR if low > 0 else Conclusion.NON_INFERIOR) if correctness else Conclusion.MEETS_BAR
    if status == Settled.FAILS.value:
        return Conclusion.INFERIOR if correctness else Conclusion.BELOW_BAR
    return Conclusion.INCONCLUSIVE


def sequential_tables(compare: pd.DataFrame, floor: pd.DataFrame,
                      looks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The compare and floor tables of a sequential run: the fixed-sample conclusions of the bar and the floor
    replaced by the confidence sequences' at the last round (a question still open counts as not shown).

    >>> compare, floor = sequential_tables(compare, floor, folder.table(Table.SEQUENTIAL, task=t))  # doctest: +SKIP
    """
    if looks.empty:
        return compare, floor
    last = looks[looks[Col.ROUND] == looks[Col.ROUND].max()]
    compare, floor = compare.copy(), floor.copy()
    for i, row in compare.iterrows():
        hit = last[(last[Col.OPTION] == row[Col.OPTION]) & (last[Col.QUESTION] == Question.BAR.value)]
        if hit.empty:
            continue
        h = hit.iloc[0]
        correctness = h.get(Col.METRIC, ACCURACY) != AGREEMENT
        c = _bar_conclusion(h[Col.STATUS], float(h[Col.CS_LOW]), correctness=correctness)
        compare.loc[i, [Col.CONCLUSION, Col.CONCLUSION_ADJUSTED]] = c.value
        compare.loc[i, [Col.QUALIFIES, Col.BETTER]] = [c.passes, c.better]
        compare.loc[i, Col.LOWER_BOUND] = float(h[Col.CS_LOW])
        measured = ("the difference in correctness from the reference" if correctness else "the agreement")
        compare.loc[i, Col.STATEMENT] = (
            f"Sequential run, stopped after {int(h[Col.N_ITEMS])} items: the confidence sequence for {measured} is "
            f"[{h[Col.CS_LOW]:+.3f}, {h[Col.CS_HIGH]:+.3f}] (estimate {h[Col.ESTIMATE]:+.3f}, alpha "
            f"{h['alpha']:.3g}): **{c.value}** against {h[Col.THRESHOLD]:+.3f}. {METHOD}.")
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
    return compare, floor
