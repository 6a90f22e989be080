"""``kit report``: run the notebooks and render the HTML decision report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kit.errors import ConfigError
from kit.report.render import run_pipeline


def cmd_report(args: argparse.Namespace) -> int:
    from kit.experiment import override_value

    overrides = {key: override_value(key, value) for key, value in (args.parameter or [])}
    folder: dict[str, object] = {}
    if args.notebooks:
        names = tuple(sorted(p.name for p in Path(args.notebooks).glob("*.ipynb")))
        if not names:
            raise ConfigError("no notebooks (*.ipynb) in this folder", where=args.notebooks,
                              fix="name a folder of notebooks, or leave --notebooks out to run the report's six")
        folder = {"notebooks_folder": args.notebooks, "notebooks": names}
    html = run_pipeline(experiment=args.experiment, overrides=overrides, run_dir=args.run_dir,
                        on_progress=lambda msg: print(msg, file=sys.stderr, flush=True), **folder)
    print(html)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run the notebooks and render the HTML decision report")
    p.add_argument("--experiment", "--params", dest="experiment", metavar="FILE",
                   help="experiment file: tasks, options, limits (default notebooks/params/default.yaml)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override one top-level key, e.g. -p monthly_volume 500000 (checked by the experiment's "
                        "schema: text keys as given, others read as YAML)")
    p.add_argument("--run-dir", dest="run_dir", help="folder for the executed notebooks (default runs/report-STAMP)")
    p.add_argument("--notebooks", metavar="DIR",
                   help="run every notebook in DIR, in name order, instead of the six in notebooks/")
    p.set_defaults(func=cmd_report)
