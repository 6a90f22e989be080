"""Extraction field types: each one class, registered by the ``type:`` a task file names under ``fields:``.

A field type reads its declaration from the task YAML, reads and checks its gold value in a data row,
gives the JSON-schema fragment that constrains an arm's answer (a grammar for llama.cpp, structured
output for APIs), brings the value an arm gave to its type, scores it against the gold value in [0, 1],
and describes itself in the prompt (``{fields}``). A new field type is one class here, decorated with
:func:`register_field_type`.

>>> f = parse_fields({"fields": {"n": {"type": "integer"}}}, "x.yaml")[0]
>>> f.read("1,200", "x.csv:2"), f.coerce("1 200"), f.schema()
(1200, 1200, {'type': 'integer'})
>>> parse_fields({"fields": {"n": {"type": "integr"}}}, "x.yaml")
Traceback (most recent call last):
...
kit.errors.TaskError: x.yaml: field 'n' has unknown type 'integr'. Fix: did you mean 'integer'? Use one of ['integer', 'labels', 'string', 'strings']
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kit.errors import TaskError
from kit.tasks.types import label_list, norm_text


@dataclass(frozen=True)
class FieldType(ABC):
    """One extracted field: its ``name`` in the answer and the data ``column`` its gold value is in (the name
    when None). Subclasses are frozen dataclasses registered by ``kind``; ``options`` are the YAML keys they
    read besides ``type`` and ``column``."""

    name: str
    column: str | None = None
    kind: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], where: str) -> FieldType:
        """The field as declared under ``fields.<name>`` (its ``options`` already checked); TaskError names the fix."""
        return cls(name=name, column=spec.get("column"))

    @property
    def source(self) -> str:
        """The data column the gold value is read from."""
        return self.column or self.name

    def missing(self, raw: Any) -> bool:
        """Whether a data cell holds no gold value (None, or empty text by default)."""
        return raw is None or str(raw).strip() == ""

    @abstractmethod
    def read(self, raw: Any, where: str) -> Any:
        """The gold value of a data cell that is not :meth:`missing`; TaskError names the row and the fix."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """The JSON-schema fragment an answer's value must match."""

    @abstractmethod
    def coerce(self, value: Any) -> Any:
        """A value from an arm's JSON answer brought to the field's type; None (or empty) when impossible."""

    @abstractmethod
    def score(self, answer: Any, gold: Any) -> float:
        """The answer's value (None: none given) against the gold value, in [0, 1]."""

    @abstractmethod
    def describe(self) -> str:
        """What the value is, in the prompt's words (``- "name": <this>``)."""


_REGISTRY: dict[str, type[FieldType]] = {}


def register_field_type(cls: type[FieldType]) -> type[FieldType]:
    """Make ``type: <cls.kind>`` under ``fields:`` build ``cls``. Usable as a class decorator."""
    _REGISTRY[cls.kind] = cls
    return cls


def field_types() -> dict[str, type[FieldType]]:
    return dict(_REGISTRY)


def parse_fields(spec: Mapping[str, Any], where: str) -> tuple[FieldType, ...]:
    """The fields a task file declares under ``fields:`` (name -> {type, column, options}), checked."""
    declared = spec.get("fields")
    if not isinstance(declared, Mapping) or not declared:
        raise TaskError(f"`fields:` must map each field name to its type, got {declared!r}", where=where,
                        fix="write e.g. fields: {amount: {type: integer}, kinds: {type: labels, labels: [a, b]}}")
    out = []
    for name, fspec in declared.items():
        fspec = {} if fspec is None else fspec
        if not isinstance(fspec, Mapping):
            raise TaskError(f"field '{name}' must be a mapping, got {fspec!r}", where=where,
                            fix=f"write {name}: {{type: integer}} (or one of {sorted(_REGISTRY)})")
        kind = str(fspec.get("type", "string"))
        if kind not in _REGISTRY:
            near = difflib.get_close_matches(kind, list(_REGISTRY), n=1)
            raise TaskError(f"field '{name}' has unknown type '{kind}'", where=where,
                            fix=(f"did you mean '{near[0]}'? " if near else "") + f"Use one of {sorted(_REGISTRY)}")
        cls = _REGISTRY[kind]
        known = ("type", "column", *cls.options)
        unknown = sorted(set(map(str, fspec)) - set(known))
        if unknown:
            raise TaskError(f"field '{name}' of type {kind} has unknown keys {unknown}", where=where,
                            fix=f"a {kind} field takes {', '.join(known)}")
        if fspec.get("column") is not None and not isinstance(fspec["column"], str):
            raise TaskError(f"fields.{name}.column must be a column name, got {fspec['column']!r}", where=where,
                            fix=f"write {name}: {{type: {kind}, column: <the data column>}}")
        out.append(cls.from_spec(str(name), fspec, where))
    return tuple(out)


def set_f1(answer: set[str], gold: set[str]) -> float:
    """F1 of two sets (harmonic mean of precision and recall), 1.0 when both are empty.

    >>> round(set_f1({"a", "b", "c"}, {"a", "d"}), 4)     # precision 1/3, recall 1/2
    0.4
    """
    if not answer and not gold:
        return 1.0
    return 2 * len(answer & gold) / (len(answer) + len(gold))


def _separator(spec: Mapping[str, Any], default: str, name: str, where: str) -> str:
    sep = spec.get("separator", default)
    if not isinstance(sep, str) or not sep:
        raise TaskError(f"fields.{name}.separator must be text, got {sep!r}", where=where,
                        fix=f"write e.g. separator: '{default}'")
    return sep


def _pieces(raw: Any, separator: str) -> list[str]:
    """A set field's cell as its values: a JSONL list as is, a text split on ``separator``; blanks dropped."""
    values = raw if isinstance(raw, list) else str(raw).split(separator)
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


@register_field_type
@dataclass(frozen=True)
class LabelsField(FieldType):
    """A set of labels from a fixed list (multi-label); a CSV cell separates them with ``separator``, a
    JSONL row may give a list. An empty cell or list is the empty set. Scored by set F1."""

    labels: tuple[str, ...] = ()
    separator: str = ", "
    kind: ClassVar[str] = "labels"
    options: ClassVar[tuple[str, ...]] = ("labels", "separator")

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], where: str) -> LabelsField:
        labels = spec.get("labels")
        if not isinstance(labels, (list, tuple)) or not labels:
            raise TaskError(f"field '{name}' of type labels needs a list under `labels:`", where=where,
                            fix=f"write {name}: {{type: labels, labels: [a, b]}}")
        return cls(name=name, column=spec.get("column"), labels=tuple(str(x) for x in labels),
                   separator=_separator(spec, ", ", name, where))

    def missing(self, raw: Any) -> bool:
        return raw is None

    def read(self, raw: Any, where: str) -> list[str]:
        values = sorted(set(_pieces(raw, self.separator)))
        bad = [v for v in values if v not in self.labels]
        if bad:
            raise TaskError(f"field '{self.name}': {bad} not in its label set {list(self.labels)}", where=where,
                            fix=f"correct the row or add the label under fields.{self.name}.labels")
        return values

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string", "enum": list(self.labels)}}

    def coerce(self, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        lookup = {norm_text(label): label for label in self.labels}
        return sorted({lookup[norm_text(str(v))] for v in items if norm_text(str(v)) in lookup})

    def score(self, answer: Any, gold: Any) -> float:
        return set_f1(set(answer or []), set(gold))

    def describe(self) -> str:
        return f"a list of any of: {label_list(self.labels)}"


@register_field_type
@dataclass(frozen=True)
class IntegerField(FieldType):
    """A whole number; thousands separators in the data or the answer ("1,200") are read. Exact match."""

    kind: ClassVar[str] = "integer"

    def read(self, raw: Any, where: str) -> int:
        text = str(raw).strip()
        try:
            return int(text.replace(",", ""))
        except ValueError:
            raise TaskError(f"field '{self.name}' should be an integer, got '{text}'", where=where,
                            fix="write a whole number") from None

    def schema(self) -> dict[str, Any]:
        return {"type": "integer"}

    def coerce(self, value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        digits = re.sub(r"[,\s]", "", str(value))
        return int(digits) if re.fullmatch(r"-?\d+", digits) else None

    def score(self, answer: Any, gold: Any) -> float:
        return float(answer == gold)

    def describe(self) -> str:
        return "an integer"


@register_field_type
@dataclass(frozen=True)
class StringField(FieldType):
    """One piece of text, compared exactly (after trimming the data's cell)."""

    kind: ClassVar[str] = "string"

    def read(self, raw: Any, where: str) -> str:
        return str(raw).strip()

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def coerce(self, value: Any) -> str | None:
        return None if value is None else str(value)

    def score(self, answer: Any, gold: Any) -> float:
        return float(answer == gold)

    def describe(self) -> str:
        return "text"


def norm_name(text: str) -> str:
    """A free string as ``strings`` fields compare it: Unicode-normalised (NFKC), case-folded, dashes, slashes
    and underscores read as spaces, other punctuation dropped, runs of white space as one space.

    >>> norm_name("  ACME  Corp. ") == norm_name("acme corp")
    True
    >>> norm_name("Smith-Jones / O'Neil, Inc.")
    'smith jones oneil inc'
    """
    out = []
    for ch in unicodedata.normalize("NFKC", str(text)).casefold():
        category = unicodedata.category(ch)
        out.append(" " if category in ("Pd", "Pc") or ch in "/\\" else "" if category.startswith("P") else ch)
    return " ".join("".join(out).split())


@register_field_type
@dataclass(frozen=True)
class StringsField(FieldType):
    """A set of free strings — the organisations, places or people a text names. A CSV cell separates them
    with ``separator`` (``;`` by default: names hold commas), a JSONL row gives a list. Values are compared
    after :func:`norm_name` ("ACME Corp." is "acme corp"); scored by set F1. An empty cell or list is the
    empty set."""

    separator: str = ";"
    kind: ClassVar[str] = "strings"
    options: ClassVar[tuple[str, ...]] = ("separator",)

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], where: str) -> StringsField:
        return cls(name=name, column=spec.get("column"), separator=_separator(spec, ";", name, where))

    def missing(self, raw: Any) -> bool:
        return raw is None

    def read(self, raw: Any, where: str) -> list[str]:
        if isinstance(raw, dict) or (isinstance(raw, list) and any(isinstance(v, (dict, list)) for v in raw)):
            raise TaskError(f"field '{self.name}' should be a list of strings, got {raw!r}", where=where,
                            fix=f'write e.g. "{self.name}": ["Acme Corp", "Springfield"]')
        return self._distinct(_pieces(raw, self.separator))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}

    def coerce(self, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        return self._distinct([str(v).strip() for v in items if isinstance(v, (str, int, float))])

    def score(self, answer: Any, gold: Any) -> float:
        return set_f1({norm_name(v) for v in answer or []}, {norm_name(v) for v in gold})

    def describe(self) -> str:
        return "a list of strings"

    @staticmethod
    def _distinct(values: list[str]) -> list[str]:
        """The values in order, each once (as normalised), those that normalise to nothing dropped."""
        seen: dict[str, str] = {}
        for v in values:
            seen.setdefault(norm_name(v), v)
        return [v for key, v in seen.items() if key]
