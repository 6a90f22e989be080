"""Scoring: stored responses become a tidy per-item score table, and per-arm metrics.

Errors and unparseable answers stay in the table as wrong (``correct=False``, ``score=0``); they are
never dropped from the pairs. The task's type scores each answer; it never knows which arm gave it.

>>> scores = score_responses(task, store.rows(summary.keys.values()))   # doctest: +SKIP
>>> metrics(task, scores)[["arm", "n", "accuracy"]]                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from kit.tasks.classification import macro_f1
from kit.tasks.loading import Task

SCORE_COLUMNS = (
    "arm", "item_id", "epoch", "answer", "gold", "correct", "score", "error", "parse_error", "confidence",
    "latency_s", "ttft_s", "prompt_tokens", "completion_tokens",
)

__all__ = ["SCORE_COLUMNS", "macro_f1", "metrics", "score_responses"]


def _failed(rec: Mapping[str, Any]) -> bool:
    error = rec.get("error")
    return error is not None and not (isinstance(error, float) and error != error)


def score_responses(task: Task, responses: pd.DataFrame, *, gold: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per (arm, item, epoch) with ``correct`` and ``score``; typed parts become ``part_<name>`` columns.

    Only the task's items are scored; a response whose item is not in the task is left out. ``gold``
    (item id -> answer) scores against other answers than the task's own — the reference option's
    answers for an unlabelled task; items it lacks are left out.
    """
    items = {i.id: i for i in task.items}
    rows: list[dict[str, Any]] = []
    for rec in responses.to_dict("records"):
        item = items.get(rec["item_id"])
        if item is None:
            continue
        want = item.gold if gold is None else gold.get(item.id)
        if want is None:
            continue
        ok = not _failed(rec)
        answer = rec.get("answer") if ok else None
        result = task.type.score(answer, want)
        row = {c: rec.get(c) for c in SCORE_COLUMNS if c in rec}
        row.update(answer=answer, gold=want, correct=bool(result.correct) and ok,
                   score=float(result.score) if ok else 0.0, error=rec.get("error") if not ok else None,
                   parse_error=bool(rec.get("parse_error", False)))
        for name, value in result.parts.items():
            row[f"part_{name}"] = value if ok else 0.0
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return pd.DataFrame(rows).sort_values(["arm", "epoch", "item_id"]).reset_index(drop=True)


def metrics(task: Task, scores: pd.DataFrame) -> pd.DataFrame:
    """Per-arm metrics: ``n``, ``errors``, ``parse_errors``, the task type's metrics by name, mean latency."""
    rows = []
    for (arm, epoch), group in scores.groupby(["arm", "epoch"], sort=True):
        row: dict[str, Any] = {
            "arm": arm, "epoch": int(epoch), "n": len(group),
            "errors": int(group["error"].notna().sum()), "parse_errors": int(group["parse_error"].sum()),
        }
        row.update(task.type.summarise(group))
        row["mean_latency_s"] = float(group["latency_s"].mean()) if group["latency_s"].notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows)
