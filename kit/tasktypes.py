"""Task types: how a gold value is read from a row, how an answer is constrained, parsed and scored.

Each type is a small class in a registry; a task names its type in YAML (``type: classification``).
A scorer never knows which arm produced an answer.

>>> t = Classification(labels=("a_b", "c"))
>>> t.parse("  A_B.\\n")
'a_b'
>>> t.score("a_b", "a_b")["correct"]
True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kit.errors import TaskError


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower()).strip(" .,:;\"'`")


@dataclass(frozen=True)
class Classification:
    """One label from a fixed set per item."""

    labels: tuple[str, ...]
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1")

    def gold(self, row: dict[str, Any], *, label_column: str, where: str) -> str:
        value = row.get(label_column)
        if value is None or str(value).strip() == "":
            raise TaskError(f"empty label in column '{label_column}'", where=where, fix="give every row a label")
        value = str(value).strip()
        if value not in self.labels:
            raise TaskError(
                f"label '{value}' is not in the label set {list(self.labels)}",
                where=where,
                fix="correct the row or add the label to `labels:` in the task YAML",
            )
        return value

    def constraint(self) -> dict[str, Any]:
        return {"choices": self.labels}

    def render(self, gold: str) -> str:
        return gold

    def prompt_vars(self) -> dict[str, str]:
        return {"labels": ", ".join(self.labels)}

    def parse(self, text: str) -> str | None:
        """The label the text names, or None when it names none (or several equally)."""
        norm = _norm(text)
        by_norm = {_norm(label): label for label in self.labels}
        if norm in by_norm:
            return by_norm[norm]
        found = [label for key, label in by_norm.items() if re.search(rf"\b{re.escape(key)}\b", norm)]
        longest = max((len(_norm(f)) for f in found), default=0)
        best = [f for f in found if len(_norm(f)) == longest]
        return best[0] if len(best) == 1 else None

    def score(self, answer: Any, gold: str) -> dict[str, Any]:
        correct = answer is not None and answer == gold
        return {"correct": bool(correct), "score": float(correct)}


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
                raise TaskError(
                    f"field '{self.name}': {bad} not in its label set {list(self.labels)}",
                    where=where,
                    fix=f"correct the row or add the label under fields.{self.name}.labels",
                )
            return values
        if self.type == "integer":
            try:
                return int(text.replace(",", ""))
            except ValueError:
                raise TaskError(
                    f"field '{self.name}' should be an integer, got '{text}'", where=where, fix="write a whole number"
                ) from None
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
            lookup = {_norm(label): label for label in self.labels}
            return sorted({lookup[_norm(str(v))] for v in items if _norm(str(v)) in lookup})
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
            tp = len(got & want)
            return 2 * tp / (len(got) + len(want))
        return float(answer == gold)


FIELD_TYPES = ("labels", "integer", "string")


@dataclass(frozen=True)
class Extraction:
    """A JSON object of typed fields per item."""

    fields: tuple[Field, ...] = field(default_factory=tuple)
    metrics: ClassVar[tuple[str, ...]] = ("exact_match", "field_f1")

    def gold(self, row: dict[str, Any], *, label_column: str | None, where: str) -> dict[str, Any]:
        gold = {}
        for f in self.fields:
            column = f.column or f.name
            if column not in row:
                raise TaskError(f"column '{column}' missing", where=where, fix=f"add it or set fields.{f.name}.column")
            gold[f.name] = f.read(row[column], f"{where}, field {f.name}")
        return gold

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {f.name: f.schema() for f in self.fields},
            "required": [f.name for f in self.fields],
        }

    def constraint(self) -> dict[str, Any]:
        return {"json_schema": self.json_schema()}

    def render(self, gold: dict[str, Any]) -> str:
        return json.dumps(gold, ensure_ascii=False)

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

    def score(self, answer: dict[str, Any] | None, gold: dict[str, Any]) -> dict[str, Any]:
        answer = answer or {}
        per_field = {f.name: f.score(answer.get(f.name), gold[f.name]) if answer else 0.0 for f in self.fields}
        correct = bool(answer) and all(s == 1.0 for s in per_field.values())
        return {"correct": correct, "score": sum(per_field.values()) / len(per_field), "fields": per_field}


TASK_TYPES: dict[str, type] = {"classification": Classification, "extraction": Extraction}
