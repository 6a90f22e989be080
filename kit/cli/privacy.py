"""``kit privacy --task NAME``: the share of a task's items that carry personal data."""

from __future__ import annotations

import argparse

from kit.cli.common import print_table
from kit.privacy import pii_share, scan_items


def _cmd_scan(args: argparse.Namespace) -> int:
    from kit.tasks import load_task

    flags = scan_items(load_task(args.task), region=args.region)
    print_table(pii_share(flags).drop(columns="statement"), as_json=args.json)
    if args.items and not args.json:
        print_table(flags[flags["has_pii"]])
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """``kit privacy --task NAME [--region US] [--items]``: the share of a task's items that carry personal data."""
    p = sub.add_parser("privacy", help="scan a task's items for personal data (share of traffic, per kind)")
    p.add_argument("--task", required=True, help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--region", default="US", help="default country for phone numbers without +code (e.g. GB)")
    p.add_argument("--items", action="store_true", help="also list the flagged items (matches redacted)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_scan)
