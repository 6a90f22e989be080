"""``kit doctor``: check this machine for the kit in a few seconds; exit 1 when a check fails."""

from __future__ import annotations

import argparse
import json
import textwrap

from kit.models.doctor import Check


def format_checks(checks: list[Check], *, width: int = 110) -> str:
    """The table: check, ok, detail, and the fix under a row that is not ok."""
    name_w = max(len("check"), *(len(c.name) for c in checks))
    lead = name_w + 8
    lines = [f"{'check':<{name_w}}  {'ok':<4}  detail"]
    for c in checks:
        detail = textwrap.wrap(c.detail, width - lead) or [""]
        lines.append(f"{c.name:<{name_w}}  {c.status:<4}  {detail[0]}")
        lines += [" " * lead + more for more in detail[1:]]
        if c.fix:
            lines += [" " * lead + part for part in textwrap.wrap("fix: " + c.fix, width - lead)]
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    from kit.models.doctor import check_build, machine_checks, run_checks
    from kit.arms.standin import check_standin

    functions = machine_checks(gpu=args.gpu)
    if not args.no_standin:
        functions.insert(functions.index(check_build) + 1, check_standin)
    checks = run_checks(functions)
    failed = [c.name for c in checks if c.failed]
    if args.json:
        print(json.dumps([c.as_row() for c in checks], indent=2))
    else:
        print(format_checks(checks))
        print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "\nall checks passed")
    return 1 if failed else 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this machine: llama.cpp, GPU offload, the stand-in, chromium, disk, keys")
    p.add_argument("--gpu", action="store_true", help="also check GPU offload (every layer on the GPU)")
    p.add_argument("--no-standin", dest="no_standin", action="store_true", help="skip starting the stand-in server")
    p.add_argument("--json", action="store_true", help="the checks as JSON")
    p.set_defaults(func=cmd_doctor)
