"""Classification: one label from a fixed set per item.

>>> t = Classification(labels=("a_b", "c"))
>>> t.parse("  A_B.\\n")
'a_b'
>>> t.score("a_b", "a_b").correct
True
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from kit import stats
from kit.columns import Col
from kit.errors import TaskError
from kit.tasks.types import (Baseline, Columns, Constraint, Item, ItemScore, TaskType, label_list, norm_text,
                             register_task_type)


def macro_f1(answers: Sequence[Any], golds: Sequence[Any], labels: Sequence[str] | None = None) -> float:
    """Macro-averaged F1 over the labels seen in gold or answers (or the given labels that occur).

    >>> round(macro_f1(["a", "b", "a"], ["a", "b", "b"]), 4)
    0.6667
    """
    answers, golds = list(answers), list(golds)
    present = set(golds) | {a for a in answers if a is not None}
    use = [label for label in (labels or sorted(present, key=str)) if label in present]
    f1s = []
    for label in use:
        tp = sum(a == label and g == label for a, g in zip(answers, golds))
        fp = sum(a == label and g != label for a, g in zip(answers, golds))
        fn = sum(a != label and g == label for a, g in zip(answers, golds))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


@register_task_type
@dataclass(frozen=True)
class Classification(TaskType):
    """One label from a fixed set per item."""

    labels: tuple[str, ...]
    kind: ClassVar[str] = "classification"
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]], columns: Columns,
                  where: str) -> Classification:
        declared = spec.get("labels")
        if declared is None:
            labels = sorted({str(r[columns.label]).strip() for _, r in rows if columns.label in r} - {""})
            if not labels:
                raise TaskError(f"no labels: the data has no '{columns.label}' column and the task declares no "
                                "`labels:`", where=where,
                                fix="list the labels under `labels:` (needed for an unlabelled task), or map the "
                                    "label column under `columns: {label: ...}`")
        elif isinstance(declared, (list, tuple)) and declared:
            if any(isinstance(label, bool) for label in declared):
                raise TaskError("a label in `labels:` was read as true/false", where=where,
                                fix="quote labels such as 'yes', 'no', 'on', 'off' in the YAML")
            if any(not isinstance(label, (str, int, float)) for label in declared):
                raise TaskError("`labels:` must be a list of plain labels", where=where,
                                fix="write e.g. labels: [billing, bug, other]")
            labels = [str(label).strip() for label in declared]
            if len(set(labels)) != len(labels):
                raise TaskError(f"`labels:` repeats a label: {labels}", where=where, fix="list each label once")
        else:
            raise TaskError(f"`labels:` must be a list of at least one label, got {declared!r}", where=where,
                            fix="write e.g. labels: [positive, negative] (a single string is not a list)")
        return cls(labels=tuple(labels))

    def gold_columns(self, columns: Columns) -> tuple[str, ...]:
        return (columns.label,)

    def missing_gold(self, row: Mapping[str, Any], columns: Columns) -> str | None:
        if columns.label not in row:
            return f"no '{columns.label}' column"
        value = row[columns.label]
        return f"empty label in column '{columns.label}'" if value is None or str(value).strip() == "" else None

    def gold(self, row: Mapping[str, Any], columns: Columns, where: str) -> str:
        value = str(row[columns.label]).strip()
        if value not in self.labels:
            raise TaskError(f"label '{value}' is not in the label set {list(self.labels)}", where=where,
                            fix="correct the row or add the label to `labels:` in the task YAML")
        return value

    def constraint(self) -> Constraint:
        return Constraint(choices=self.labels)

    def render(self, answer: str) -> str:
        return str(answer)

    def prompt_vars(self) -> dict[str, str]:
        return {"labels": label_list(self.labels)}

    def parse(self, text: str) -> str | None:
        """The label the text names, or None when it names none (or several equally)."""
        norm = norm_text(text)
        by_norm = {norm_text(label): label for label in self.labels}
        if norm in by_norm:
            return by_norm[norm]
        found = [label for key, label in by_norm.items() if re.search(rf"\b{re.escape(key)}\b", norm)]
        longest = max((len(norm_text(f)) for f in found), default=0)
        best = [f for f in found if len(norm_text(f)) == longest]
        return best[0] if len(best) == 1 else None

    def parse_letter(self, text: str) -> str | None:
        """The label whose letter (A for the first label, B for the second…) the text gives — ``B``, ``(b)``,
        ``B) book_restaurant`` — or, failing a letter, the label the text names (:meth:`parse`).

        >>> t = Classification(labels=("a_b", "c"))
        >>> t.parse_letter("B)"), t.parse_letter("(a) a_b"), t.parse_letter("c"), t.parse_letter("Z")
        ('c', 'a_b', 'c', None)
        """
        match = re.match(r"^\W*([A-Za-z])(?![A-Za-z])", str(text).strip())
        if match:
            index = ord(match.group(1).upper()) - ord("A")
            if index < len(self.labels):
                return self.labels[index]
        return self.parse(text)

    def score(self, answer: Any, gold: str) -> ItemScore:
        correct = answer is not None and answer == gold
        return ItemScore(correct=bool(correct), score=float(correct))

    def stratum(self, gold: Any) -> Any:
        return gold

    def summarise(self, rows: pd.DataFrame) -> dict[str, float]:
        return {Col.ACCURACY: float(rows[Col.CORRECT].mean()),
                Col.MACRO_F1: macro_f1(rows[Col.ANSWER], rows[Col.GOLD], self.labels)}

    def baselines(self, train: Sequence[Item], test: Sequence[Item]) -> list[Baseline]:
        """The majority class (the train split's most common label; the test split's when there is no train
        split) and chance (a uniformly random label, at its expected score 1/k per item)."""
        source = [i.gold for i in (train or test) if i.gold is not None]
        if not source or any(i.gold is None for i in test):
            return []
        majority = Counter(source).most_common(1)[0][0]
        chance = 1.0 / len(self.labels)
        return [Baseline("majority class", f"always '{majority}'", tuple(self.score(majority, i.gold) for i in test)),
                Baseline("chance", f"a random label of {len(self.labels)}",
                         tuple(ItemScore(correct=False, score=chance) for _ in test), paired=False)]

    def agreement(self, scores: pd.DataFrame, *, reference: str) -> pd.DataFrame:
        """Each candidate's agreement with the reference's answers: the ``overall`` row of
        :func:`kit.stats.agreement` (Cohen's kappa with its CI) per candidate, in column order; empty when
        the reference gave no answers.

        >>> t.agreement(scores, reference="api")[["option", "kappa"]]   # doctest: +SKIP
        """
        wide = scores.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.ANSWER, aggfunc="first")
        by_item = stats.item_clusters(scores, where="kit.tasks.classification.agreement")  # `cluster:` tasks
        rows = []
        for arm in wide.columns:
            if arm == reference or reference not in wide.columns:
                continue
            table = stats.agreement(wide[arm], wide[reference], labels=list(self.labels),
                                    clusters=stats.clusters_for(wide.index, by_item))
            rows.append(table[table[Col.LEVEL] == "overall"].assign(**{Col.OPTION: arm}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
