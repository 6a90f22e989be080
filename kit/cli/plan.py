"""``kit plan EXPERIMENT``: before a run, how many items (and random labels) the decision needs at the margin.

No model runs. Per task and candidate: for a labelled task, the paired items that Tango's non-inferiority test
needs at the margin with 80% power (:func:`kit.stats.sample_size_noninferiority`, Nam 1997), planned from the
discordance of the answers already in the store — a pilot: the reference's and the candidate's stored answers
on the same test items — or, with no pilot, from stated assumptions; for an unlabelled task, how many random gold
labels would turn its agreement decision into a correctness decision (:func:`kit.stats.labels_for_agreement`),
from the observed agreement or an assumed one.

>>> main(["plan", "notebooks/params/default.yaml"])       # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kit.cli.common import print_table
from kit.columns import Col
from kit.errors import ConfigError


@dataclass(frozen=True)
class Assumptions:
    """What a plan assumes where the store holds no pilot: the share of items only one of the two answers right
    (labelled), the true difference, and the agreement with the reference (unlabelled)."""

    discordance: float = 0.10
    difference: float = 0.0
    agreement: float = 0.90
    power: float = 0.80


def _stored_arms(option: Any) -> tuple[str, ...]:
    """The arm specs under which an option's answers are stored (a fine-tune: any adapter of its base, a prefix
    ending in ``+``).

    >>> _stored_arms(Experiment.load("notebooks/params/default.yaml").options[2])  # doctest: +SKIP
    ('lora:smollm2-135m-instruct+',)
    """
    from kit.experiment import STANDIN_MODEL

    if option.standin:
        return (f"openai:{STANDIN_MODEL}",)
    if option.finetune is not None:
        return (f"lora:{option.finetune.base}+",)
    return (str(option.arm),)


def pilot_answers(store: Any, task: str, option: Any) -> pd.DataFrame:
    """The latest stored answers of ``option`` on ``task`` (``option`` column = its name); empty without any (or
    without a store).

    >>> len(pilot_answers(store, "snips-intents", exp.reference))             # doctest: +SKIP
    100
    """
    if store is None:
        return pd.DataFrame(columns=[Col.ITEM_ID])
    specs = _stored_arms(option)
    arms = [a for a in store.arms(task=task) if any(a == s or (s.endswith("+") and a.startswith(s)) for s in specs)]
    if not arms:
        return pd.DataFrame(columns=[Col.ITEM_ID])
    rows = store.responses(task=task, arms=arms, epoch=0)
    return rows.drop_duplicates(Col.ITEM_ID, keep="last").assign(**{Col.OPTION: option.name})


def plan_rows(exp: Any, store: Any, *, assume: Assumptions = Assumptions()) -> pd.DataFrame:
    """One row per (task, candidate): what the plan is based on, the items (labelled) or random labels
    (unlabelled) needed at the margin, the items the pilot has, and the plan in words. ``store``: an open
    :class:`kit.run.store.Store`, or None (a plan from the assumptions only).

    >>> plan_rows(exp, None)["items needed"].tolist()                          # doctest: +SKIP
    [1578.0, 1578.0, 1578.0]
    """
    from kit.stats import labels_for_agreement, sample_size_noninferiority
    from kit.tasks import load_task
    from kit.tasks.scoring import score_responses, score_unlabelled

    rows = []
    for name, limit in exp.tasks.items():
        task = load_task(name, ignore_labels=exp.ignore_labels)
        ref = exp.reference
        ref_rows = pilot_answers(store, name, ref)
        test_ids = {i.id for i in task.test}
        for cand in exp.candidates:
            if not cand.applies_to(name):
                continue
            cand_rows = pilot_answers(store, name, cand)
            common = test_ids & set(ref_rows[Col.ITEM_ID]) & set(cand_rows[Col.ITEM_ID])
            both = pd.concat([ref_rows, cand_rows], ignore_index=True)
            both = both[both[Col.ITEM_ID].isin(common)]
            row: dict[str, Any] = {Col.TASK: name, Col.CANDIDATE: cand.name, "items planned": limit or len(task.test)}
            if task.labelled:
                if common:
                    wide = score_responses(task, both).pivot_table(index=Col.ITEM_ID, columns=Col.OPTION,
                                                                   values=Col.CORRECT, aggfunc="last")
                    plan = sample_size_noninferiority(wide[cand.name].astype(float), wide[ref.name].astype(float),
                                                      margin=exp.margin, alpha=exp.alpha, power=assume.power)
                    basis = f"pilot: {len(common)} stored items"
                else:
                    half = assume.discordance / 2
                    plan = sample_size_noninferiority(p10=half, p01=half, difference=assume.difference,
                                                      margin=exp.margin, alpha=exp.alpha, power=assume.power)
                    basis = (f"assumed: {100 * assume.discordance:g}% discordant, true difference "
                             f"{100 * assume.difference:+g} pts")
                n = float(plan["n_required"].iloc[0])
                if exp.sequential is not None:
                    row.update(_sequential_columns(exp, task, p10=float(plan["p10"].iloc[0]),
                                                   p01=float(plan["p01"].iloc[0])))
                row.update({"basis": basis, "decides on": "paired correctness",
                            "items needed": n if math.isfinite(n) else math.inf, "labels needed": 0,
                            "discordance": float(plan["discordance"].iloc[0]),
                            "difference": float(plan[Col.DIFFERENCE].iloc[0]), Col.STATEMENT: plan[Col.STATEMENT].iloc[0]})
            else:
                if common:
                    scored = score_unlabelled(task, both, reference=ref.name)
                    mine = scored[(scored[Col.OPTION] == cand.name) & scored[Col.SCORE].notna()]
                    agreement = float(mine[Col.CORRECT].astype(float).mean()) if len(mine) else assume.agreement
                    basis = f"pilot: {len(common)} stored items"
                else:
                    agreement, basis = assume.agreement, f"assumed: {100 * assume.agreement:g}% agreement"
                plan = labels_for_agreement(agreement, margin=exp.margin, alpha=exp.alpha, power=assume.power)
                n = float(plan["n_required"].iloc[0])
                row.update({"basis": basis, "decides on": f"agreement ({100 * agreement:.1f}%)",
                            "items needed": None, "labels needed": n if math.isfinite(n) else math.inf,
                            "discordance": float(plan["discordance"].iloc[0]), "difference": None,
                            Col.STATEMENT: "Random gold labels to turn agreement into correctness: "
                                           + str(plan[Col.STATEMENT].iloc[0])})
            rows.append(row)
    return pd.DataFrame(rows)


def _sequential_columns(exp: Any, task: Any, *, p10: float, p01: float) -> dict[str, Any]:
    """A sequential run's expected stop for one candidate, simulated from the discordance: its bar at alpha split
    across the task's candidates (Bonferroni), in the experiment's rounds, up to its item cap."""
    from kit.stats.sequential import simulate_noninferiority

    spec, n_test = exp.sequential, len(task.test)
    cap = min(spec.max_items or exp.tasks.get(task.name) or n_test, n_test)
    k = max(sum(1 for c in exp.candidates if c.applies_to(task.name)), 1)
    sim = simulate_noninferiority(p10=p10, p01=p01, margin=exp.margin, alpha=exp.alpha / k,
                                  round_items=spec.round_items, max_items=cap)
    return {"sequential items (median)": sim.median_items, "settled by the cap": sim.settled_share}


def _cmd_plan(args: argparse.Namespace) -> int:
    from kit.experiment import Experiment
    from kit.paths import default_store
    from kit.run.store import Store

    for name, value in (("--assume-discordance", args.assume_discordance), ("--assume-agreement",
                                                                            args.assume_agreement)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} {value:g} is not a share of items", where=f"kit plan {name}",
                              fix=f"give a number in [0, 1], e.g. {name} 0.1")
    exp = Experiment.load(args.experiment).resolved()
    assume = Assumptions(discordance=args.assume_discordance, difference=args.assume_difference,
                         agreement=args.assume_agreement)
    path = Path(exp.store or default_store())
    if path.is_file():
        with Store(path) as store:
            table = plan_rows(exp, store, assume=assume)
    else:  # no store yet: every plan from the assumptions
        table = plan_rows(exp, None, assume=assume)
    if args.json:
        print_table(table, as_json=True)
        return 0
    order = [Col.TASK, Col.CANDIDATE, "items planned", "basis", "decides on", "items needed", "labels needed",
             "sequential items (median)", "settled by the cap"]
    shown = table[[c for c in order if c in table.columns]].copy()
    if "settled by the cap" in shown.columns:
        shown["settled by the cap"] = [("" if v is None or v != v else f"{100 * v:.0f}%")
                                       for v in shown["settled by the cap"]]
    for column in ("items needed", "labels needed", "sequential items (median)"):
        if column not in shown.columns:
            continue
        shown[column] = [("" if n is None or (isinstance(n, float) and math.isnan(n)) or n == 0 else
                          "unreachable" if math.isinf(n) else f"{int(n):,}") for n in shown[column]]
    print_table(shown)
    print()
    print(f"At the margin of {100 * exp.margin:g} points, one-sided alpha {exp.alpha:g}, {100 * assume.power:g}% "
          "power (Nam 1997 formula for Tango's paired test, the test a fixed run uses). A pilot is the reference's "
          "and the candidate's answers already in the store on the same test items; read a plan from a small "
          "pilot as a rough guide.")
    if exp.sequential is not None:
        print(f"This experiment runs in rounds of {exp.sequential.round_items} items and stops when the verdict is "
              "settled: a clear difference stops it early, a difference near the margin runs to its cap (the "
              "always-valid sequence is wider than the fixed test at the same items). 'sequential items (median)' "
              "and 'settled by the cap' come from 400 simulated runs at the same discordance (the bar alone; the "
              "floor and latency may hold a run longer).")
    for r in table.to_dict("records") if not table.empty else []:
        print(f"- {r[Col.TASK]} · {r[Col.CANDIDATE]}: {r[Col.STATEMENT]}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """``kit plan EXPERIMENT``: the items and labels the decision needs at the margin, before any model runs."""
    p = sub.add_parser("plan", help="items (and random labels) the decision needs at the margin, from a pilot "
                                    "in the store or stated assumptions; runs no model")
    p.add_argument("experiment", help="an experiment file, e.g. notebooks/params/default.yaml")
    p.add_argument("--assume-discordance", type=float, default=Assumptions.discordance,
                   help="with no pilot: the share of items only one of the two answers right (default 0.10)")
    p.add_argument("--assume-difference", type=float, default=Assumptions.difference,
                   help="with no pilot: the true difference candidate - reference (default 0)")
    p.add_argument("--assume-agreement", type=float, default=Assumptions.agreement,
                   help="unlabelled tasks with no pilot: the share of items the candidate agrees with the "
                        "reference on (default 0.90)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_plan)
