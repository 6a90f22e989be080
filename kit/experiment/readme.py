"""The README's table of experiment keys, generated from the schema (the tests check the README holds it).

>>> schema_table().splitlines()[0]
'| key | type | default | range | meaning |'
"""

from __future__ import annotations

from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from kit.experiment.messages import bounds_in_words, inline_yaml
from kit.experiment.schema import ExperimentFile

def _kind(tp: Any, *, plural: bool = False) -> str:
    """A type in words: ``number``, ``whole number or null``, ``list of text``…"""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _kind(args[0], plural=plural)
    if origin in (Union, UnionType):
        words = " or ".join(_kind(a, plural=plural) for a in args if a is not NoneType)
        return words + (" or null" if NoneType in args else "")
    if origin in (list, tuple):
        return f"list of {_kind(args[0], plural=True)}"
    if origin is dict:
        return f"mapping of text to {_kind(args[1], plural=True)}"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " or ".join(f"`{m.value}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mappings" if plural else "mapping"
    names = {bool: ("true/false", "true/false"), int: ("whole number", "whole numbers"),
             float: ("number", "numbers"), str: ("text", "text")}
    return names.get(tp, ("any value", "any values"))[plural]



def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    """One table row per key of ``model``, then the keys of each mapping it holds (``options[].price.model``);
    a key that is a name or a mapping (``machine``) is not expanded: its keys are listed where it is declared."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        default = "required" if field.is_required() \
            else f"`{inline_yaml(field.get_default(call_default_factory=True))}`"
        own, each = bounds_in_words(field)
        ranges = "; ".join(filter(None, [", ".join(own), ("each " + ", ".join(each)) if each else ""]))
        cells = [f"`{key}`", _kind(field.annotation), default, ranges, field.description or ""]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        inner, below = _without_none(field.annotation), f"{key}."
        if get_origin(inner) in (list, tuple, dict):
            below = f"{key}.NAME." if get_origin(inner) is dict else f"{key}[]."
            inner = _without_none(get_args(inner)[-1] if get_origin(inner) is dict else get_args(inner)[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            rows += _rows(inner, below)
    return rows


def _without_none(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not NoneType] if get_origin(tp) in (Union, UnionType) else [tp]
    return args[0] if len(args) == 1 else tp


def schema_table() -> str:
    """The keys of an experiment file as a Markdown table (the README's, checked by the tests)."""
    head = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    return "\n".join(head + _rows(ExperimentFile, "")) + "\n"
