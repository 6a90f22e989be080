"""What every command shares: printing tables, reading ``-o KEY=VALUE`` options, checking numbers."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable, Sequence

import pandas as pd

from kit.errors import ConfigError


def print_table(rows: list[dict[str, Any]] | pd.DataFrame, *, as_json: bool = False) -> None:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if as_json:
        print(json.dumps(json.loads(frame.to_json(orient="records")), indent=2))
    elif frame.empty:
        print("(nothing to show)")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to a dict, values read as JSON when they parse (numbers, true/false)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option '{pair}' is not KEY=VALUE", fix="write e.g. -o n_ctx=2048")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def whole(least: int, *, meaning: str) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``least``; argparse turns the error into one line.

    >>> whole(1, meaning="a number of items")("50")
    50
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({meaning})") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least} ({meaning}, at least {least})")
        return value

    return parse


def amount(*, meaning: str) -> Callable[[str], float]:
    """An argparse ``type``: a finite number above zero."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({meaning})") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not above zero ({meaning})")
        return value

    return parse
