"""Schema errors as clear errors: the first problem pydantic finds, as one line naming the file, the option, the
key and the fix, worded from the key's own declaration (its type, range, example and meaning).

>>> from pydantic import ValidationError
>>> try:
...     ExperimentFile.model_validate({"tasks": {"t": 5}, "reference": "A", "margin": "0.02",
...                                    "options": [{"name": "A", "arm": "standin"}]})
... except ValidationError as exc:
...     print(config_error(exc, {}, source="exp.yaml", overridden=()))  # doctest: +ELLIPSIS
exp.yaml: `margin:` must be a number, got '0.02'. Fix: write e.g. margin: 0.02 — ...
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from kit.errors import ConfigError
from kit.experiment.schema import _BY_NAME, _INLINE, ExperimentFile

_TAGS = frozenset({_BY_NAME, _INLINE, "[key]"})
_KINDS = {"float_type": "a number", "int_type": "a whole number", "bool_type": "true or false",
          "string_type": "text", "dict_type": "a mapping", "model_type": "a mapping",
          "list_type": "a list", "tuple_type": "a list"}


def config_error(exc: ValidationError, data: Mapping[str, Any], *, source: str,
                  overridden: Collection[str]) -> ConfigError:
    """The first problem pydantic found, as a ConfigError naming the file, the option, the key and the fix
    (an unknown key first: a misspelt key explains a missing one)."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(p for p in first["loc"] if p not in _TAGS)
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"
                         and tuple(p for p in e["loc"] if p not in _TAGS)[:-1] == parent)
        where, path = _locate(parent, data, source=source, overridden=overridden)
        model = _walk(parent)[2]
        known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
        hints = [f"'{k}' → '{m[0]}'?" for k in unknown for m in [difflib.get_close_matches(k, known, n=1)] if m]
        return ConfigError(f"unknown keys {unknown}" + (f" in `{path}:`" if path else ""), where=where,
                           fix=" ".join(hints) or f"the keys are: {', '.join(known)}")
    where, path = _locate(loc, data, source=source, overridden=overridden)
    field, leaf, _ = _walk(loc)
    problem, fix = _explain(first, field, leaf=leaf, path=path, element=bool(loc) and loc[-1] != leaf)
    return ConfigError(problem, where=where, fix=fix)


def _locate(loc: tuple[Any, ...], data: Mapping[str, Any], *, source: str,
            overridden: Collection[str]) -> tuple[str, str]:
    """Where a problem is (the file, ``-p KEY``, the option or machine) and the key's path there."""
    top = loc[0] if loc else None
    where = f"{source} (-p {top})" if top in overridden else source
    rest = loc
    if top == "options" and len(loc) > 1 and isinstance(loc[1], int):
        raw = data.get("options")
        name = raw[loc[1]].get("name") if isinstance(raw, list) and isinstance(raw[loc[1]], Mapping) else None
        label = repr(name.strip()) if isinstance(name, str) and name.strip() else str(loc[1] + 1)
        where, rest = f"{where}: option {label}", loc[2:]
    elif top == "machines" and len(loc) > 1:
        where, rest = f"{where}: machine {loc[1]!r}", loc[2:]
    return where, ".".join(str(p) for p in rest if isinstance(p, str))


def _walk(loc: tuple[Any, ...]) -> tuple[FieldInfo | None, str | None, Any]:
    """The schema field a location falls in (its innermost named key), that key, and the type at the
    location (a schema model where the location is a mapping of keys)."""
    tp: Any = ExperimentFile
    field = leaf = None
    for part in loc:
        tp = strip_type(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field, leaf = tp.model_fields.get(str(part)), str(part)
            if field is None:
                break
            tp = field.annotation
        elif get_origin(tp) in (list, tuple, dict):
            tp = get_args(tp)[-1] if get_origin(tp) is dict else get_args(tp)[0]
        else:
            break
    return field, leaf, strip_type(tp)


def _explain(error: Mapping[str, Any], field: FieldInfo | None, *, leaf: str | None, path: str,
             element: bool) -> tuple[str, str]:
    """The problem and its fix, in words, from the error's kind and the field's declaration."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "kit":
        return error["msg"], str(ctx["fix"])
    shown = f"`{path}:`" if path else "it"
    keys = path.split(".")
    parent = ".".join(keys[:len(keys) - 1 - keys[::-1].index(leaf)]) if leaf in keys else ""
    example = f"{leaf}: {inline_yaml(_example(field))}" + (f" under `{parent}:`" if parent else "") \
        if field is not None and leaf else None
    about = f" — {field.description}" if field is not None and field.description else ""
    fix = f"write e.g. {example}{about}" if example else "see README, 'Experiments'"
    if kind == "missing" or (kind in _KINDS and value is None and field is not None and field.is_required()):
        return f"{shown} is missing", f"add {example}{about}"
    if "[key]" in error["loc"]:
        return f"{shown} has the key {value!r}: keys must be text", fix
    if kind in _KINDS:
        return f"{shown} must be {_KINDS[kind]}, got {value!r}", fix
    if kind == "finite_number":
        return f"{shown} must be a finite number, got {value!r}", fix
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        own, each = bounds_in_words(field) if field is not None else ([], [])
        words = " and ".join(each if element and each else own) or error["msg"].lower()
        return f"{shown} {value!r} is out of range ({words})", fix
    if kind in ("too_short", "string_too_short"):
        return f"{shown} is empty", fix
    if kind == "string_too_long":
        return f"{shown} {value!r} is longer than {ctx['max_length']} characters", fix
    if kind == "enum":
        return f"{shown} {value!r} is not one of {ctx['expected']}", fix
    return f"{shown} {value!r}: {error['msg']}", fix


def _example(field: FieldInfo) -> Any:
    if field.examples:
        return field.examples[0]
    return "…" if field.is_required() else field.get_default(call_default_factory=True)



# ------------------------------------------------------------------ the schema's types in words
def strip_type(tp: Any) -> Any:
    """``X`` from ``Annotated[X, …]`` and ``X | None``; a union of text and a mapping stays a union."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not NoneType]
            models = [a for a in map(strip_type, args) if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(args) == 1:
                tp = args[0]
            elif models:
                return models[0]
            else:
                return tp
        else:
            return tp



def bounds_in_words(field: FieldInfo) -> tuple[list[str], list[str]]:
    """A field's range in words: its own bounds, and those of each of its items."""
    whole = strip_type(field.annotation) is int

    def words(metadata: list[Any], whole: bool) -> list[str]:
        out = []
        for m in metadata:
            if isinstance(m, at.Gt):
                out.append(f"at least {m.gt + 1}" if whole else f"above {inline_yaml(m.gt)}")
            elif isinstance(m, at.Ge):
                out.append(f"at least {inline_yaml(m.ge)}")
            elif isinstance(m, at.Lt):
                out.append(f"at most {m.lt - 1}" if whole else f"below {inline_yaml(m.lt)}")
            elif isinstance(m, at.Le):
                out.append(f"at most {inline_yaml(m.le)}")
            elif isinstance(m, at.MinLen):
                out.append("not empty")
            elif isinstance(m, at.MaxLen):
                out.append(f"at most {m.max_length} characters")
        return out

    each: list[str] = []
    container = strip_type(field.annotation)
    if get_origin(container) in (list, tuple, dict):
        item = get_args(container)[-1] if get_origin(container) is dict else get_args(container)[0]
        while get_origin(item) in (Union, UnionType):
            item = next(a for a in get_args(item) if a is not NoneType)
        if get_origin(item) is Annotated:
            each = words(list(get_args(item)[1:]), strip_type(item) is int)
    return words(field.metadata, whole), each


def inline_yaml(value: Any) -> str:
    """A value as one line of YAML: ``0.02``, ``null``, ``[1, 2, 4, 8]``, ``{snips-intents: 100}``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("...").strip()

