"""Scoring: stored responses become a tidy per-item score table, and per-arm metrics.

Errors and unparseable answers stay in the table as wrong (``correct=False``, ``score=0``); they are
never dropped from the pairs. The task's type scores each answer; it never knows which arm gave it.
An item that cannot be scored at all — the reference option gave no answer to compare with, or the
judge gave no grade — stays in the table with ``score`` NaN and the reason in ``gap``: counted and
reported by the comparisons, never silently left out.

>>> scores = score_responses(task, store.rows(summary.keys.values()))   # doctest: +SKIP
>>> metrics(task, scores)[["option", "n", "accuracy"]]                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.tasks.classification import macro_f1
from kit.tasks.generation import JUDGE_METRICS, Generation, answer_lengths
from kit.tasks.loading import Task
from kit.tasks.types import Item

SCORE_COLUMNS = (
    Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.ANSWER, Col.GOLD, Col.CORRECT, Col.SCORE, Col.ERROR, Col.PARSE_ERROR, Col.CONFIDENCE,
    Col.LATENCY_S, Col.TTFT_S, Col.PROMPT_TOKENS, Col.COMPLETION_TOKENS,
)

__all__ = ["SCORE_COLUMNS", "macro_f1", "metrics", "reference_answers", "score_generation", "score_responses",
           "score_unlabelled", "with_clusters"]


def _failed(rec: Mapping[str, Any]) -> bool:
    error = rec.get(Col.ERROR)
    return error is not None and not (isinstance(error, float) and error != error)


def named_options(responses: pd.DataFrame) -> pd.DataFrame:
    """Stored responses with the ``option`` each belongs to: a report names its options; rows without names (a
    ``kit run``'s) are named by the arm spec that answered.

    >>> named_options(pd.DataFrame({"option": ["llama_cpp:m"], "item_id": ["1"]}))["option"].tolist()
    ['llama_cpp:m']
    """
    if Col.OPTION in responses.columns:
        return responses
    return responses.assign(**{Col.OPTION: responses[Col.ARM] if Col.ARM in responses.columns else None})


def _task_records(task: Task, responses: pd.DataFrame) -> Iterator[tuple[Item, dict[str, Any]]]:
    """Each response row with its item; rows of items not in the task are left out."""
    items = {i.id: i for i in task.items}
    for rec in named_options(responses).to_dict("records"):
        item = items.get(rec[Col.ITEM_ID])
        if item is not None:
            yield item, rec


def score_responses(task: Task, responses: pd.DataFrame, *, gold: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per (arm, item, epoch) with ``correct`` and ``score``; typed parts become ``part_<name>`` columns.

    Only the task's items are scored; a response whose item is not in the task is left out. ``gold``
    (item id -> answer) scores against other answers than the task's own — the reference option's
    answers for an unlabelled task; items it lacks are left out.
    """
    rows: list[dict[str, Any]] = []
    for item, rec in _task_records(task, responses):
        want = item.gold if gold is None else gold.get(item.id)
        if want is None:
            continue
        ok = not _failed(rec)
        answer = rec.get(Col.ANSWER) if ok else None
        result = task.type.score(answer, want)
        row = {c: rec.get(c) for c in SCORE_COLUMNS if c in rec}
        row.update(answer=answer, gold=want, correct=bool(result.correct) and ok,
                   score=float(result.score) if ok else 0.0, error=rec.get(Col.ERROR) if not ok else None,
                   parse_error=bool(rec.get(Col.PARSE_ERROR, False)))
        for name, value in result.parts.items():
            row[f"part_{name}"] = value if ok else 0.0
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return pd.DataFrame(rows).sort_values([Col.OPTION, Col.EPOCH, Col.ITEM_ID]).reset_index(drop=True)


def reference_answers(task: Task, responses: pd.DataFrame, *, reference: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The reference option's answer per item (its lowest epoch), and why an item has none (the gaps).

    A gap is an item of the task the reference never answered (not in a replay file, not run), answered
    with an error, or answered with nothing parseable.

    >>> gold, gaps = reference_answers(task, rows, reference="replay:api.jsonl")   # doctest: +SKIP
    >>> gaps                                                                       # doctest: +SKIP
    {'snips-0042': 'error: not in replay file'}
    """
    responses = named_options(responses)
    mine = responses[responses[Col.OPTION] == reference]
    if mine.empty:
        raise ConfigError(f"no answers of the reference option {reference!r}", where=f"task {task.name}",
                          fix=f"run it first, or choose among {sorted(set(responses[Col.OPTION]))}")
    gold: dict[str, Any] = {}
    gaps: dict[str, str] = {}
    for rec in mine.sort_values(Col.EPOCH, kind="stable").to_dict("records"):
        item_id = rec[Col.ITEM_ID]
        if item_id in gold or item_id in gaps:
            continue
        if _failed(rec):
            gaps[item_id] = f"error: {rec[Col.ERROR]}"
        elif rec.get(Col.ANSWER) is None:
            gaps[item_id] = "unparseable answer"
        else:
            gold[item_id] = rec[Col.ANSWER]
    asked = set(responses[Col.ITEM_ID])
    for item in task.items:
        if item.id in asked and item.id not in gold and item.id not in gaps:
            gaps[item.id] = "not answered by the reference"
    return gold, gaps


def score_unlabelled(task: Task, responses: pd.DataFrame, *, reference: str) -> pd.DataFrame:
    """Score every option against the reference option's answers (a task without gold labels).

    ``correct`` is agreement with the reference (the same label; every field equal for extraction),
    ``score`` the type's partial credit. Items where the reference has no answer stay in the table for
    every option with ``score`` NaN and the reason in ``gap``.

    >>> scores = score_unlabelled(task, store.rows(keys), reference="replay:api.jsonl")  # doctest: +SKIP
    >>> scores["gap"].notna().sum()                                                        # doctest: +SKIP
    3
    """
    responses = named_options(responses)
    gold, gaps = reference_answers(task, responses, reference=reference)
    scored = score_responses(task, responses, gold=gold)
    scored[Col.GAP] = None
    items = {i.id for i in task.items}
    missing = [{c: rec.get(c) for c in SCORE_COLUMNS if c in rec}
               | {Col.ANSWER: rec.get(Col.ANSWER) if not _failed(rec) else None, Col.GOLD: None, Col.CORRECT: False,
                  Col.SCORE: float("nan"), Col.ERROR: rec.get(Col.ERROR) if _failed(rec) else None,
                  Col.PARSE_ERROR: bool(rec.get(Col.PARSE_ERROR, False)), Col.GAP: gaps[rec[Col.ITEM_ID]]}
               for rec in responses.to_dict("records") if rec[Col.ITEM_ID] in gaps and rec[Col.ITEM_ID] in items]
    if missing:
        scored = pd.concat([scored, pd.DataFrame(missing)], ignore_index=True)
    return scored.sort_values([Col.OPTION, Col.EPOCH, Col.ITEM_ID]).reset_index(drop=True)


def score_generation(task: Task, responses: pd.DataFrame, *, verdicts: pd.DataFrame | None = None,
                     reference: str | None = None) -> pd.DataFrame:
    """Per-item scores of a free-text task: reference metrics, the judge's verdicts, and the headline score.

    ``verdicts`` is :attr:`kit.judge.JudgeResult.verdicts` (needed when the task's headline metric is the
    judge's); ``reference`` names the option the pairwise judge compared against (its own preference
    is 0.5 by construction). Columns: those of :func:`score_responses` plus ``part_chrf``,
    ``part_rouge_l`` (with references), ``part_judge`` (rubric grade scaled to [0, 1]),
    ``part_preference`` (1 win, 0.5 tie, 0 loss against the reference), ``words`` (answer length),
    ``judge_error`` and ``gap``. ``score`` is the headline metric; it is NaN, with the reason in ``gap``,
    where the judge gave no grade. Empty answers count as unparseable and score 0.

    >>> scores = score_generation(task, rows, verdicts=result.verdicts, reference="openai:gpt-4o-mini")  # doctest: +SKIP
    """
    ttype = task.type
    if not isinstance(ttype, Generation):
        raise ConfigError(f"task '{task.name}' is a {task.kind} task", where="kit.tasks.scoring.score_generation",
                          fix="use score_responses (labelled) or score_unlabelled for label and field tasks")
    headline = ttype.metric
    where = "kit.tasks.scoring.score_generation"
    if headline not in JUDGE_METRICS and not task.labelled:
        raise ConfigError(f"the headline metric of '{task.name}' is {headline}, which needs reference answers, and "
                          "the task was loaded without them", where=where,
                          fix="load it with its references, or set metric: judge (a rubric) or metric: preference")
    if headline in JUDGE_METRICS and verdicts is None:
        raise ConfigError(f"the headline metric of '{task.name}' is the judge's ({headline}), and no verdicts were "
                          "given", where=where, fix="run kit.judge.judge_task first and pass verdicts=result.verdicts")
    judged = _verdict_lookup(verdicts)
    if "pairwise" in judged and reference is None:
        raise ConfigError("pairwise verdicts need the option they were taken against", where=where,
                          fix="pass reference= the reference option's arm")
    rows: list[dict[str, Any]] = []
    for item, rec in _task_records(task, responses):
        ok = not _failed(rec)
        answer = rec.get(Col.ANSWER) if ok and isinstance(rec.get(Col.ANSWER), str) else None  # NaN: no answer
        row = {c: rec.get(c) for c in SCORE_COLUMNS if c in rec}
        row.update(answer=answer, gold=item.gold, error=rec.get(Col.ERROR) if not ok else None,
                   parse_error=bool(rec.get(Col.PARSE_ERROR, False)), judge_error=False, gap=None)
        if item.gold is not None:
            row.update({f"part_{k}": v for k, v in ttype.score(answer, item.gold).parts.items()})
        key = (rec[Col.OPTION], rec[Col.ITEM_ID], int(rec.get(Col.EPOCH) or 0))
        for mode, metric in (("rubric", "judge"), ("pairwise", "preference")):
            if mode in judged:
                value, why, judge_error = judged[mode].get(key, (float("nan"), "not judged", False))
                if mode == "pairwise" and rec[Col.OPTION] == reference:
                    value, why, judge_error = 0.5, None, False
                row[f"part_{metric}"] = value
                row[Col.JUDGE_ERROR] = row[Col.JUDGE_ERROR] or judge_error
                if why:
                    row[Col.GAP] = row[Col.GAP] or f"{mode}: {why}"
        value = row.get(f"part_{headline}", float("nan"))
        row[Col.SCORE] = float(value)
        row[Col.CORRECT] = bool(value == value and value >= ttype.pass_score and answer is not None)
        if value != value and not row[Col.GAP]:
            row[Col.GAP] = f"no {headline} score"
        row["words"] = int(answer_lengths([answer])[0])
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "words", Col.JUDGE_ERROR, Col.GAP])
    return pd.DataFrame(rows).sort_values([Col.OPTION, Col.EPOCH, Col.ITEM_ID]).reset_index(drop=True)


Verdict = tuple[float, "str | None", bool]


def _verdict_lookup(verdicts: pd.DataFrame | None) -> dict[str, dict[tuple[str, str, int], Verdict]]:
    """mode -> (arm, item, epoch) -> (value, why there is none, whether the judge failed)."""
    out: dict[str, dict[tuple[str, str, int], Verdict]] = {}
    if verdicts is None:
        return out
    for rec in verdicts.to_dict("records"):
        value = float(rec[Col.VALUE]) if rec[Col.VALUE] is not None else float("nan")
        why = None if value == value else (rec.get(Col.NOTE) or "no grade")
        out.setdefault(rec[Col.MODE], {})[(rec[Col.OPTION], rec[Col.ITEM_ID], int(rec[Col.EPOCH]))] = (
            value, why, bool(rec.get(Col.JUDGE_ERROR)))
    return out


def metrics(task: Task, scores: pd.DataFrame) -> pd.DataFrame:
    """Per-arm metrics: ``n``, ``errors``, ``parse_errors``, the task type's metrics by name, mean latency."""
    rows = []
    for (arm, epoch), group in scores.groupby([Col.OPTION, Col.EPOCH], sort=True):
        row: dict[str, Any] = {
            Col.OPTION: arm, Col.EPOCH: int(epoch), Col.N: len(group),
            "errors": int(group[Col.ERROR].notna().sum()), "parse_errors": int(group[Col.PARSE_ERROR].sum()),
        }
        row.update(task.type.summarise(group))
        row["mean_latency_s"] = float(group[Col.LATENCY_S].mean()) if group[Col.LATENCY_S].notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows)


def score_task(task: Task, responses: pd.DataFrame, *, reference: str,
               verdicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The per-item score table of any task: free text against its references and the judge's verdicts, an
    unlabelled task against the ``reference`` option's answers, a labelled one against its gold answers.

    >>> scores = score_task(task, rows, reference="API")          # doctest: +SKIP
    """
    if task.type.judged:
        scores = score_generation(task, responses, verdicts=verdicts, reference=reference)
    elif not task.labelled:
        scores = score_unlabelled(task, responses, reference=reference)
    else:
        scores = score_responses(task, responses)
    return with_clusters(task, scores)


def with_clusters(task: Task, scores: pd.DataFrame) -> pd.DataFrame:
    """The score table with each row's ``cluster`` when the task declares one (``cluster:`` in its file), so every
    interval and test downstream accounts for it; unchanged otherwise.

    >>> with_clusters(task, scores)["cluster"].nunique()          # doctest: +SKIP
    12
    """
    by_id = {i.id: i.cluster for i in task.items}
    if not any(c is not None for c in by_id.values()):
        return scores
    return scores.assign(**{Col.CLUSTER: scores[Col.ITEM_ID].map(by_id)})
