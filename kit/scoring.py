"""Scoring: stored responses become a tidy per-item score table, and per-arm metrics.

Errors and unparseable answers stay in the table as wrong (``correct=False``, ``score=0``); they are
never dropped from the pairs.

>>> scores = score_responses(task, store.responses(task=task.name))   # doctest: +SKIP
>>> metrics(task, scores)[["arm", "n", "accuracy"]]                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kit.tasks import Task
from kit.tasktypes import Classification, Extraction

SCORE_COLUMNS = (
    "arm", "item_id", "epoch", "answer", "gold", "correct", "score", "error", "parse_error", "confidence",
    "latency_s", "ttft_s", "prompt_tokens", "completion_tokens",
)


def score_responses(task: Task, responses: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, item, epoch) with ``correct`` and ``score``; extraction adds ``field_<name>`` columns.

    Only the task's items are scored; a response whose item is not in the task is left out.
    """
    items = {i.id: i for i in task.items}
    rows: list[dict[str, Any]] = []
    for rec in responses.to_dict("records"):
        item = items.get(rec["item_id"])
        if item is None:
            continue
        ok = rec.get("error") is None or (isinstance(rec.get("error"), float) and np.isnan(rec["error"]))
        answer = rec.get("answer") if ok else None
        result = task.type.score(answer, item.gold) if answer is not None else task.type.score(None, item.gold)
        row = {c: rec.get(c) for c in SCORE_COLUMNS if c in rec}
        row.update(answer=answer, gold=item.gold, correct=bool(result["correct"]) and ok,
                   score=float(result["score"]) if ok else 0.0, error=rec.get("error") if not ok else None,
                   parse_error=bool(rec.get("parse_error", False)))
        for name, value in result.get("fields", {}).items():
            row[f"field_{name}"] = value if ok else 0.0
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SCORE_COLUMNS) if not rows else None)
    return frame.sort_values(["arm", "epoch", "item_id"]).reset_index(drop=True) if rows else frame


def macro_f1(answers: pd.Series | list, golds: pd.Series | list, labels: tuple[str, ...] | None = None) -> float:
    """Macro-averaged F1 over the labels seen in gold or answers (or the given labels).

    >>> round(macro_f1(["a", "b", "a"], ["a", "b", "b"]), 4)
    0.6667
    """
    answers, golds = list(answers), list(golds)
    present = set(golds) | {a for a in answers if a is not None}
    use = [l for l in (labels or sorted(present, key=str)) if l in present]
    f1s = []
    for label in use:
        tp = sum(a == label and g == label for a, g in zip(answers, golds))
        fp = sum(a == label and g != label for a, g in zip(answers, golds))
        fn = sum(a != label and g == label for a, g in zip(answers, golds))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def metrics(task: Task, scores: pd.DataFrame) -> pd.DataFrame:
    """Per-arm metrics: ``n``, ``errors``, ``parse_errors`` and the task's metrics by name."""
    rows = []
    for (arm, epoch), group in scores.groupby(["arm", "epoch"], sort=True):
        row: dict[str, Any] = {
            "arm": arm, "epoch": int(epoch), "n": len(group),
            "errors": int(group["error"].notna().sum()), "parse_errors": int(group["parse_error"].sum()),
        }
        if isinstance(task.type, Classification):
            row["accuracy"] = float(group["correct"].mean())
            row["macro_f1"] = macro_f1(group["answer"], group["gold"], task.type.labels)
        elif isinstance(task.type, Extraction):
            row["exact_match"] = float(group["correct"].mean())
            row["field_f1"] = float(group["score"].mean())
            for f in task.type.fields:
                row[f.name] = float(group[f"field_{f.name}"].mean())
        row["mean_latency_s"] = float(group["latency_s"].mean()) if group["latency_s"].notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows)
