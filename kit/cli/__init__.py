"""The ``kit`` command line: the only layer that imports every other. Library errors (KitError) become
one clear message and exit status 2; nothing else in the kit prints or exits.

Each module in ``COMMAND_MODULES`` has a ``register_cli(subparsers)`` that adds its commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from kit.errors import KitError

COMMAND_MODULES: tuple[str, ...] = ("kit.cli.run", "kit.cli.models", "kit.cli.serve", "kit.cli.stats",
                                    "kit.cli.finetune", "kit.cli.price", "kit.cli.privacy", "kit.cli.report",
                                    "kit.cli.sweep", "kit.cli.doctor", "kit.cli.llama", "kit.cli.label",
                                    "kit.cli.plan", "kit.cli.export", "kit.cli.monitor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description="Decision kit: hosted API, local model, local fine-tune or hybrid, measured on your task.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: answers so far are kept in the store; run again to continue", file=sys.stderr)
        return 130
    return int(code or 0)


