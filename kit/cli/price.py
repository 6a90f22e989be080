"""``kit price MODEL...``: hosted prices per million tokens from the offline genai-prices snapshot."""

from __future__ import annotations

import argparse

from kit.cli.common import print_table
from kit.economics import model_price


def _cmd_price(args: argparse.Namespace) -> int:
    rows = []
    for model in args.models:
        p = model_price(model)
        rows.append({"model": model, "input_per_m": p.input_per_m if p else None,
                     "output_per_m": p.output_per_m if p else None,
                     "cached_input_per_m": p.cached_input_per_m if p else None,
                     "source": p.source if p else "unknown: set a price override"})
    print_table(rows, as_json=args.json)
    return 0 if all(r["input_per_m"] is not None for r in rows) else 1


def register_cli(sub: argparse._SubParsersAction) -> None:
    """``kit price MODEL...``: USD per million tokens from the offline genai-prices snapshot."""
    p = sub.add_parser("price", help="hosted model prices per million tokens (offline genai-prices snapshot)")
    p.add_argument("models", nargs="+", help="e.g. gpt-4o-mini openai:gpt-4o-mini claude-3-5-haiku-latest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_price)
