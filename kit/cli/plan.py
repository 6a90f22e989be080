"""``kit plan EXPERIMENT``: before a run, how many items (and gold labels) the decision needs at the margin.

No model runs. The planning is :func:`kit.pipeline.plan.plan_experiment`; this command parses the options,
opens the store and prints the plans.

>>> main(["plan", "notebooks/params/default.yaml"])       # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from kit.cli.common import print_table
from kit.columns import Col
from kit.errors import ConfigError


def _count(n: float | None) -> str:
    """A planned count for the table: blank where it does not apply, 'unreachable' where none suffices."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    return "unreachable" if math.isinf(n) else f"{int(n):,}"


def _cmd_plan(args: argparse.Namespace) -> int:
    from kit.experiment import Experiment
    from kit.paths import default_store, runs_dir
    from kit.pipeline.folder import RunFolder
    from kit.pipeline.plan import Assumption, Assumptions, plan_experiment, trained_folder
    from kit.run.store import Store

    given = {Assumption.DISCORDANCE: args.assume_discordance, Assumption.DIFFERENCE: args.assume_difference,
             Assumption.AGREEMENT: args.assume_agreement}
    assume = Assumptions(**{a.value: v for a, v in given.items() if v is not None},
                         stated=frozenset(a for a, v in given.items() if v is not None))
    exp = Experiment.load(args.experiment).resolved()
    if args.run_dir and not Path(args.run_dir).is_dir():
        raise ConfigError(f"--run-dir {args.run_dir} is not a folder", where="kit plan --run-dir",
                          fix="name a report's run folder, e.g. runs/report-20260101-1200, or leave it out")
    folder = RunFolder(args.run_dir) if args.run_dir else trained_folder(exp, runs_dir())
    path = Path(exp.store or default_store())
    if path.is_file():
        with Store(path) as store:
            plans = plan_experiment(exp, store, assume=assume, folder=folder)
    else:  # no store yet: every plan from the assumptions
        plans = plan_experiment(exp, None, assume=assume, folder=folder)
    if args.json:
        print(json.dumps([p.to_dict() for p in plans], indent=2))
        return 0
    table = [{Col.TASK: p.task, Col.CANDIDATE: p.candidate, "items planned": p.items_planned, Col.BASIS: p.basis_words,
              "decides on": p.decides_on.value, "items needed": _count(p.items_needed),
              "random labels": _count(p.random_labels), "stratified labels": _count(p.stratified_labels),
              **({} if p.sequential is None else {"sequential items (median)": _count(p.sequential.median_items),
                                                  "settled by the cap": f"{100 * p.sequential.settled_share:.0f}%"}),
              "flag": "more than the task has" if p.flags else ""} for p in plans]
    shown = [{k: v for k, v in row.items() if any(r.get(k) for r in table)} for row in table]
    print_table(shown)
    print()
    print(f"At the margin of {100 * exp.margin:g} points, one-sided alpha {exp.alpha:g}, {100 * assume.power:g}% "
          "power. Labelled tasks: paired items for the test the comparison runs (Nam 1997 for Tango's paired test "
          "on right/wrong answers or per-item scores; the paired t-test for free-text scores). Unlabelled tasks: "
          "gold labels under random labels and under a stratified design that labels only the items where the "
          "two options disagree (Cochran 1977). A pilot is the reference's and the candidate's answers already in "
          "the store on the same test items; read a plan from a small pilot as a rough guide.")
    unused = sorted({a.flag for p in plans for a in p.basis.ignored})
    if unused:
        print(f"Not used where a pilot measured them instead: {', '.join(unused)} (the basis column says which "
              "input each plan used).")
    if exp.sequential is not None:
        print(f"This experiment runs in rounds of {exp.sequential.round_items} items and stops when the verdict is "
              "settled: a clear difference stops it early, a difference near the margin runs to its cap (the "
              "always-valid sequence is wider than the fixed test at the same items). 'sequential items (median)' "
              "and 'settled by the cap' come from 400 simulated runs at the same discordance (the bar alone; the "
              "floor and latency may hold a run longer).")
    for p in plans:
        print(f"- {p.task} · {p.candidate}: {p.statement}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """``kit plan EXPERIMENT``: the items and labels the decision needs at the margin, before any model runs."""
    p = sub.add_parser("plan", help="items (and gold labels) the decision needs at the margin, from a pilot "
                                    "in the store or stated assumptions; runs no model")
    p.add_argument("experiment", help="an experiment file, e.g. notebooks/params/default.yaml")
    p.add_argument("--assume-discordance", type=float, default=None,
                   help="with no pilot: the share of items only one of the two answers right "
                        "(default 0.1)")
    p.add_argument("--assume-difference", type=float, default=None,
                   help="the true difference candidate - reference, within ±discordance (default 0; "
                        "labelled tasks with a pilot use the pilot's)")
    p.add_argument("--assume-agreement", type=float, default=None,
                   help="unlabelled tasks with no pilot: the share of items the candidate agrees with the "
                        "reference on (default 0.9)")
    p.add_argument("--run-dir", dest="run_dir", default=None,
                   help="a report's run folder whose trained fine-tunes' answers count as their pilot (default: "
                        "the newest under runs/ that trained one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_plan)
