"""``kit monitor EXPORT``: re-test the deployed verdict on each window of the router's log.

    kit monitor deploy --windows month                       # requests.jsonl and shadow.jsonl beside routing.json
    kit monitor deploy --every 500 --labels labelled.csv     # windows of 500 items; a labelled sample too

Prints each window's questions (estimate, always-valid interval, threshold, where it stands, how many more
items would settle it) and its advice; exits 1 when the latest window's advice is not "still holds".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kit.cli.common import print_table, whole
from kit.columns import Col
from kit.errors import ConfigError


def cmd_monitor(args: argparse.Namespace) -> int:
    from kit.monitor import Advice, Windows, read_log, watch

    if args.alpha is not None and not 0 < args.alpha < 0.5:
        raise ConfigError(f"--alpha {args.alpha} is out of range", where="kit monitor", fix="give a level above 0 and below 0.5")
    base = Path(args.export)
    routing_file = base / "routing.json" if base.is_dir() else base
    if not routing_file.is_file():
        raise ConfigError("no routing.json here", where=str(base), fix="pass the folder `kit export` wrote")
    routing = json.loads(routing_file.read_text(encoding="utf-8"))
    folder = routing_file.parent
    log = Path(args.log) if args.log else folder / routing.get("log", "requests.jsonl")
    shadow = Path(args.shadow) if args.shadow else folder / routing.get("shadow_log", "shadow.jsonl")
    tasks = routing.get("tasks", {})
    names = [args.task] if args.task else list(tasks)
    unknown = [n for n in names if n not in tasks]
    if unknown or not names:
        raise ConfigError(f"task {unknown[0] if unknown else '(none)'} is not routed by {routing_file}",
                          where="kit monitor", fix=f"choose among {sorted(tasks)}")
    windows = Windows(by_month=args.every is None, every=args.every)
    frame = read_log(log, shadow=shadow, labels=Path(args.labels) if args.labels else None)
    worst = Advice.STILL_HOLDS
    for name in names:
        report = watch(tasks[name], frame, windows, alpha=args.alpha, horizon=args.horizon)
        print(f"== {name}: {report.windows}")
        table = report.table()
        print_table(table.drop(columns=[Col.STATEMENT]) if not args.json else table, as_json=args.json)
        for w in report.advice:
            print(f"[{w.window}] {w.n_items} items — {w.advice}")
            for line in w.evidence:
                print(f"    {line}")
        for note in report.notes:
            print(f"note: {note}")
        if report.advice[-1].advice is not Advice.STILL_HOLDS:
            worst = report.advice[-1].advice
    return 0 if worst is Advice.STILL_HOLDS else 1


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="re-test the deployed verdict on each window of the router's log")
    p.add_argument("export", help="the folder `kit export` wrote (or its routing.json)")
    p.add_argument("--log", help="the request log (default: requests.jsonl beside routing.json)")
    p.add_argument("--shadow", help="the shadow log (default: shadow.jsonl beside routing.json)")
    p.add_argument("--labels", help="gold labels of a sample: CSV or JSONL with item_id and label")
    p.add_argument("--task", help="one routed task (default: every one)")
    p.add_argument("--windows", choices=["month"], default="month", help="calendar months of the time column")
    p.add_argument("--every", type=whole(2, meaning="items per window"), help="fixed windows of N items instead")
    p.add_argument("--alpha", type=float, help="the chance of any false alarm (default: the report's alpha)")
    p.add_argument("--horizon", type=whole(1, meaning="planned windows"), default=12,
                   help="windows the error budget is planned over (default 12; later ones get a small tail)")
    p.add_argument("--json", action="store_true", help="the looks as JSON")
    p.set_defaults(func=cmd_monitor)
