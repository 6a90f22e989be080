"""Reading an experiment file: UTF-8 YAML, a key given twice refused (plain YAML keeps the last), and the
value of one ``-p KEY VALUE`` as the schema reads it.

>>> load_yaml("{a: 1, b: 2}", where="x.yaml")
{'a': 1, 'b': 2}
>>> load_yaml("{a: 1, a: 2}", where="x.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
kit.errors.ConfigError: x.yaml: line 1: the key 'a' is given twice in one mapping (first on line 1). Fix: ...
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from kit.errors import ConfigError
from kit.experiment.messages import strip_type
from kit.experiment.schema import ExperimentFile

class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        self.key, self.first, self.again = key, first, again
        super().__init__(f"the key {key!r} is given twice")


class _KeyCheckingLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base loader says so
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_KeyCheckingLoader)  # noqa: S506 — a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"line {exc.again}: the key {exc.key!r} is given twice in one mapping (first on line "
                          f"{exc.first})", where=where, fix=f"keep one {exc.key!r} (YAML would silently use the last)"
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", where=where, fix="correct the YAML syntax") from None


def read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("experiment file not found", where=str(path),
                          fix="pass an existing YAML file, e.g. notebooks/params/default.yaml")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text: byte {exc.start} (line {line}) is {raw[exc.start:exc.start + 1]!r}",
                          where=str(path), fix="save the file as UTF-8 (your editor's 'save with encoding')") from None
    data = load_yaml(text, where=str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("an experiment file must be a YAML mapping", where=str(path), fix="write KEY: VALUE lines")
    return data


def plain_default(value: Any) -> Any:
    """A default as the YAML of an experiment file would give it (a list for a tuple), for papermill's parameters.

    >>> plain_default(()), plain_default((1, 2)), plain_default(0.5)
    ([], [1, 2], 0.5)
    """
    return list(value) if isinstance(value, tuple) else value


def override_value(key: str, text: str) -> Any:
    """The value of ``-p KEY TEXT`` as the schema reads it: text for text keys, YAML for the others (a number
    may also be written as Python reads it, e.g. ``1e6``); an unknown key is an error at once.

    >>> override_value("monthly_volume", "1e6"), override_value("store", "2024.sqlite")
    (1000000.0, '2024.sqlite')
    >>> override_value("judge", "null") is None
    True
    """
    field = ExperimentFile.model_fields.get(key)
    if field is None:
        near = difflib.get_close_matches(key, list(ExperimentFile.model_fields), n=1)
        raise ConfigError(f"unknown key {key!r}", where=f"-p {key}",
                          fix=(f"did you mean {near[0]!r}? " if near else "") + "see README, 'Experiments'")
    kind = strip_type(field.annotation)
    if kind is str:
        return None if text.strip() in ("", "null", "~") and not field.is_required() else text
    value = load_yaml(text, where=f"-p {key}")
    if kind in (float, int) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # the schema names the problem
    return value
