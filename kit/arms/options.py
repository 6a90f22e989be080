"""Arm options as typed schemas: each backend declares its options once (a pydantic model), and the same
check runs when an experiment is loaded, when ``kit plan`` reads it, and when the arm is built.

A schema subclasses :class:`ArmOptions` (strict: a number is a number, never the text "4096"; ``true`` is not
1; NaN and infinity are refused; an unknown name is an error that suggests the nearest one). Checks that need
the world rather than the values — a key variable that must be set — go in :meth:`ArmOptions.preflight`,
which runs before any work too. :func:`parse_options` turns a mapping into the checked record, with one-line
errors that name the fix.

>>> class EchoOptions(ArmOptions):
...     n_ctx: int = Field(4096, ge=1)
>>> parse_options(EchoOptions, "echo:x", {"n_ctx": 2048}).n_ctx
2048
>>> parse_options(EchoOptions, "echo:x", {"n_ctx": -1})
Traceback (most recent call last):
kit.errors.ConfigError: echo:x: option n_ctx=-1 must be at least 1. Fix: write e.g. -o n_ctx=4096
>>> parse_options(EchoOptions, "echo:x", {"n_ctxx": 1})
Traceback (most recent call last):
kit.errors.ArmError: echo:x: unknown echo option n_ctxx. Fix: did you mean n_ctx? the options echo arms take: n_ctx
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kit.errors import ArmError, ConfigError

__all__ = ["ArmOptions", "Field", "NoOptions", "parse_options"]

CLI_STYLE = "-o {name}={value}"
"""How a fix writes an option by default (``kit run -o``); an experiment file passes ``{name}: {value}``."""


class ArmOptions(BaseModel):
    """The base of every arm's options: strict, closed, frozen; defaults are what runs when a key is left out.

    A field's ``description`` says what it does (it is shown by ``kit`` in fixes and docs); its bounds
    (``ge``, ``gt``) and ``Literal`` choices are the checks.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False,
                              arbitrary_types_allowed=True)

    def preflight(self, *, spec: str) -> None:
        """Checks that need more than the values (an environment variable a run will read), run before any
        work; raise a :class:`~kit.errors.KitError` with its fix. Default: nothing to check."""


class NoOptions(ArmOptions):
    """A backend that takes no options: everything comes from the spec."""


O = TypeVar("O", bound=ArmOptions)

_WORDS = {
    "int_type": "is not a whole number", "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number", "float_type": "is not a number", "float_parsing": "is not a number",
    "string_type": "is not text", "bool_type": "is not true or false", "bool_parsing": "is not true or false",
    "dict_type": "is not a mapping of names to values", "callable_type": "is not a function",
    "finite_number": "is not a finite number",
}


def parse_options(schema: type[O], spec: str, options: Mapping[str, Any], *, style: str = CLI_STYLE) -> O:
    """The checked options of arm ``spec``; every value checked by ``schema``, then its :meth:`~ArmOptions.preflight`.

    A name the schema lacks is an :class:`ArmError` that suggests the nearest name and lists them all; a value
    of the wrong type or out of bounds is a :class:`ConfigError` naming the option and an example written in
    ``style`` (``-o {name}={value}`` for the command line, ``{name}: {value}`` in an experiment file).
    """
    if not isinstance(options, Mapping):
        raise ConfigError(f"the options of {spec} are not a mapping of names to values", where=spec,
                          fix="write options: {n_ctx: 4096} (names and values)")
    try:
        checked = schema.model_validate(dict(options))
    except ValidationError as exc:
        raise _one_line(exc, schema, spec, options, style=style) from None
    checked.preflight(spec=spec)
    return checked


def _one_line(exc: ValidationError, schema: type[ArmOptions], spec: str, options: Mapping[str, Any], *,
              style: str) -> ArmError | ConfigError:
    backend = spec.partition(":")[0]
    known = list(schema.model_fields)
    errors = exc.errors()
    unknown = sorted({str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and e["loc"]})
    if unknown:
        near = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        names = ", ".join(sorted(known)) if known else "none (everything comes from the spec)"
        return ArmError(f"unknown {backend} option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                        where=spec, fix=f"{hint}the options {backend} arms take: {names}")
    error = errors[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    value = options.get(name, error.get("input"))
    field = schema.model_fields.get(name)
    example = field.default if field is not None and field.default not in (None, ...) else None
    if field is not None and field.examples:
        example = field.examples[0]
    fix = (f"write e.g. {style.format(name=name, value=_shown(example))}" if example is not None
           else f"see the {backend} arm's options for {name}")
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "greater_than_equal":
        return ConfigError(f"option {name}={value!r} must be at least {_shown(ctx['ge'])}", where=spec, fix=fix)
    if kind == "greater_than":
        return ConfigError(f"option {name}={value!r} must be above {_shown(ctx['gt'])}", where=spec, fix=fix)
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return ConfigError(f"option {name}={value!r} must be {'at most' if 'le' in ctx else 'below'} "
                           f"{_shown(bound)}", where=spec, fix=fix)
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        first = expected.split(", ")[0].strip("'")
        return ConfigError(f"option {name}={value!r} is not one of {expected}", where=spec,
                           fix=f"write {style.format(name=name, value=first)}")
    if kind in _WORDS:
        inner = ".".join(str(p) for p in error["loc"][1:])
        what = f" ({inner} {_WORDS[kind]})" if inner else ""
        words = _WORDS[kind] if not inner else "is not valid"
        return ConfigError(f"option {name}={value!r} {words}{what}", where=spec, fix=fix)
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return ConfigError(f"option {name}={value!r}: {message}", where=spec, fix=fix)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
