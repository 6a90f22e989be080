"""Extraction: a JSON object of typed fields per item — each field one of the registered field types
(:mod:`kit.tasks.fields`: a set of labels, an integer, a string, ...).

>>> t = Extraction(fields=parse_fields({"fields": {"kind": {"type": "labels", "labels": ["a", "b"]},
...                                                 "n": {"type": "integer"}}}, "x.yaml"))
>>> t.parse('Sure: {"kind": ["B"], "n": "1,200"}')
{'kind': ['b'], 'n': 1200}
>>> t.score({"kind": ["b"], "n": 1200}, {"kind": ["b"], "n": 1200}).correct
True
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from kit.columns import Col
from kit.tasks.fields import FieldType, parse_fields
from kit.tasks.types import Baseline, Columns, Constraint, Item, ItemScore, TaskType, register_task_type

@register_task_type
@dataclass(frozen=True)
class Extraction(TaskType):
    """A JSON object of typed fields per item."""

    fields: tuple[FieldType, ...]
    kind: ClassVar[str] = "extraction"
    metrics: ClassVar[tuple[str, ...]] = ("field_score", "exact_match")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]], columns: Columns,
                  where: str) -> Extraction:
        return cls(fields=parse_fields(spec, where))

    def gold_columns(self, columns: Columns) -> tuple[str, ...]:
        return tuple(f.source for f in self.fields)

    def missing_gold(self, row: Mapping[str, Any], columns: Columns) -> str | None:
        for f in self.fields:
            if f.source not in row:
                return f"no '{f.source}' column (field {f.name}; set fields.{f.name}.column if it has another name)"
            if f.missing(row[f.source]):
                return f"empty field '{f.name}' (column '{f.source}')"
        return None

    def gold(self, row: Mapping[str, Any], columns: Columns, where: str) -> dict[str, Any]:
        return {f.name: f.read(row[f.source], f"{where}, field {f.name}") for f in self.fields}

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {f.name: f.schema() for f in self.fields},
                "required": [f.name for f in self.fields]}

    def constraint(self) -> Constraint:
        return Constraint(json_schema=self.json_schema())

    def render(self, answer: dict[str, Any]) -> str:
        return json.dumps(answer, ensure_ascii=False)

    def prompt_vars(self) -> dict[str, str]:
        return {"fields": "\n".join(f'- "{f.name}": {f.describe()}' for f in self.fields)}

    def parse(self, text: str) -> dict[str, Any] | None:
        """The first JSON object in the text, coerced field by field; None when there is none."""
        start = text.find("{")
        while start != -1:
            try:
                obj, _ = json.JSONDecoder().raw_decode(text[start:])
            except json.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return {f.name: f.coerce(obj.get(f.name)) for f in self.fields}
            start = text.find("{", start + 1)
        return None

    def score(self, answer: dict[str, Any] | None, gold: dict[str, Any]) -> ItemScore:
        answer = answer or {}
        parts = {f.name: f.score(answer.get(f.name), gold[f.name]) if answer else 0.0 for f in self.fields}
        correct = bool(answer) and all(s == 1.0 for s in parts.values())
        return ItemScore(correct=correct, score=sum(parts.values()) / len(parts), parts=parts)

    def summarise(self, rows: pd.DataFrame) -> dict[str, float]:
        out = {Col.FIELD_SCORE: float(rows[Col.SCORE].mean()), Col.EXACT_MATCH: float(rows[Col.CORRECT].mean())}
        for f in self.fields:
            out[f.name] = float(rows[f"part_{f.name}"].mean())
        return out

    def baselines(self, train: Sequence[Item], test: Sequence[Item]) -> list[Baseline]:
        """Each field's most common value in the train split (the test split's without one)."""
        source = [i.gold for i in (train or test) if i.gold is not None]
        if not source or any(i.gold is None for i in test):
            return []
        majority: dict[str, Any] = {}
        for f in self.fields:
            values = Counter(json.dumps(g[f.name], sort_keys=True) for g in source)
            majority[f.name] = json.loads(values.most_common(1)[0][0])
        words = ", ".join(f"{k}={json.dumps(v)}" for k, v in majority.items())
        return [Baseline("most common values", f"always {words}", tuple(self.score(majority, i.gold) for i in test))]
