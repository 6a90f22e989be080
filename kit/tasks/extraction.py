"""Extraction: a JSON object of typed fields per item — a set of labels, an integer or a string each.

>>> t = Extraction(fields=(Field("kind", "labels", labels=("a", "b")), Field("n", "integer")))
>>> t.parse('Sure: {"kind": ["B"], "n": "1,200"}')
{'kind': ['b'], 'n': 1200}
>>> t.score({"kind": ["b"], "n": 1200}, {"kind": ["b"], "n": 1200}).correct
True
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from kit.errors import TaskError
from kit.tasks.types import (Baseline, Columns, Constraint, ItemScore, TaskType, norm_text,
                             register_task_type)

if TYPE_CHECKING:
    from kit.tasks.loading import Item

FIELD_TYPES = ("labels", "integer", "string")


@dataclass(frozen=True)
class Field:
    """One extracted field: ``labels`` (a set of labels), ``integer`` or ``string``."""

    name: str
    type: str
    labels: tuple[str, ...] = ()
    separator: str = ", "
    column: str | None = None

    def read(self, raw: Any, where: str) -> Any:
        text = "" if raw is None else str(raw).strip()
        if self.type == "labels":
            values = sorted({v.strip() for v in text.split(self.separator) if v.strip()})
            bad = [v for v in values if self.labels and v not in self.labels]
            if bad:
                raise TaskError(f"field '{self.name}': {bad} not in its label set {list(self.labels)}", where=where,
                                fix=f"correct the row or add the label under fields.{self.name}.labels")
            return values
        if self.type == "integer":
            try:
                return int(text.replace(",", ""))
            except ValueError:
                raise TaskError(f"field '{self.name}' should be an integer, got '{text}'", where=where,
                                fix="write a whole number") from None
        return text

    def schema(self) -> dict[str, Any]:
        if self.type == "labels":
            return {"type": "array", "items": {"type": "string", "enum": list(self.labels)}}
        if self.type == "integer":
            return {"type": "integer"}
        return {"type": "string"}

    def coerce(self, value: Any) -> Any:
        """Bring a parsed JSON value to the field's type; None when impossible."""
        if self.type == "labels":
            items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
            lookup = {norm_text(label): label for label in self.labels}
            return sorted({lookup[norm_text(str(v))] for v in items if norm_text(str(v)) in lookup})
        if self.type == "integer":
            if isinstance(value, bool):
                return None
            if isinstance(value, (int, float)):
                return int(value)
            digits = re.sub(r"[,\s]", "", str(value))
            return int(digits) if re.fullmatch(r"-?\d+", digits) else None
        return None if value is None else str(value)

    def score(self, answer: Any, gold: Any) -> float:
        if self.type == "labels":
            got, want = set(answer or []), set(gold)
            if not got and not want:
                return 1.0
            return 2 * len(got & want) / (len(got) + len(want))
        return float(answer == gold)


def _fields(spec: Mapping[str, Any], where: str) -> tuple[Field, ...]:
    declared = spec.get("fields")
    if not isinstance(declared, Mapping) or not declared:
        raise TaskError(f"`fields:` must map each field name to its type, got {declared!r}", where=where,
                        fix="write e.g. fields: {amount: {type: integer}, kinds: {type: labels, labels: [a, b]}}")
    fields = []
    for name, fspec in declared.items():
        fspec = {} if fspec is None else fspec
        if not isinstance(fspec, Mapping):
            raise TaskError(f"field '{name}' must be a mapping, got {fspec!r}", where=where,
                            fix=f"write {name}: {{type: integer}} (or labels, string)")
        ftype = str(fspec.get("type", "string"))
        if ftype not in FIELD_TYPES:
            raise TaskError(f"field '{name}' has unknown type '{ftype}'", where=where, fix=f"use one of {FIELD_TYPES}")
        labels = fspec.get("labels") or ()
        if ftype == "labels" and (not isinstance(labels, (list, tuple)) or not labels):
            raise TaskError(f"field '{name}' of type labels needs a list under `labels:`", where=where,
                            fix=f"write {name}: {{type: labels, labels: [a, b]}}")
        fields.append(Field(name=str(name), type=ftype, labels=tuple(str(x) for x in labels),
                            separator=str(fspec.get("separator", ", ")), column=fspec.get("column")))
    return tuple(fields)


@register_task_type
@dataclass(frozen=True)
class Extraction(TaskType):
    """A JSON object of typed fields per item."""

    fields: tuple[Field, ...]
    kind: ClassVar[str] = "extraction"
    metrics: ClassVar[tuple[str, ...]] = ("field_score", "exact_match")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]], columns: Columns,
                  where: str) -> Extraction:
        return cls(fields=_fields(spec, where))

    def has_gold(self, row: Mapping[str, Any], columns: Columns) -> bool:
        return any((f.column or f.name) in row for f in self.fields)

    def gold(self, row: Mapping[str, Any], columns: Columns, where: str) -> dict[str, Any]:
        gold = {}
        for f in self.fields:
            column = f.column or f.name
            if column not in row:
                raise TaskError(f"column '{column}' missing", where=where, fix=f"add it or set fields.{f.name}.column")
            gold[f.name] = f.read(row[column], f"{where}, field {f.name}")
        return gold

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {f.name: f.schema() for f in self.fields},
                "required": [f.name for f in self.fields]}

    def constraint(self) -> Constraint:
        return Constraint(json_schema=self.json_schema())

    def render(self, answer: dict[str, Any]) -> str:
        return json.dumps(answer, ensure_ascii=False)

    def prompt_vars(self) -> dict[str, str]:
        lines = []
        for f in self.fields:
            kind = {"labels": f"a list of any of: {', '.join(f.labels)}", "integer": "an integer"}.get(f.type, "text")
            lines.append(f'- "{f.name}": {kind}')
        return {"fields": "\n".join(lines)}

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
        out = {"field_score": float(rows["score"].mean()), "exact_match": float(rows["correct"].mean())}
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
