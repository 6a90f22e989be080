"""Stage 6 of a report run: the facts of every option on every task, and the verdict per task.

:func:`facts_for` reads the tables the quality and cost stages wrote and turns them into the typed facts the
rules of :mod:`kit.decision` look at; :func:`verdict_stage` applies the rules with the experiment's limits.

>>> decisions = verdict_stage(RunFolder("runs/report-x"))        # doctest: +SKIP
>>> decisions["snips-intents"].recommended                        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import pandas as pd

from kit.columns import Col, RowKind
from kit.decision import Constraints, Decision, Facts, Interval, OptionFacts, OptionKey, PairFacts, Ranked, Role, decide
from kit.experiment import Experiment
from kit.format import finite, pct
from kit.pipeline.folder import Doc, RunFolder, Stage, Table
from kit.pipeline.outputs import hybrids_of
from kit.pipeline.scores import floor_of, task_of
from kit.stats import Conclusion
from kit.tasks.types import ComparisonKind

STAGE = Stage("verdict", "06_report.ipynb",
              reads=frozenset({Doc.EXPERIMENT, Doc.RUNS, Table.SCORES, Table.METRICS, Table.COMPARE, Table.COSTS, Table.LATENCY,
                               Table.ERRORS, Table.FLOOR, Table.PAIRS, Table.PII, Doc.GOODPUT, Doc.CASCADES,
                               Doc.JUDGING, Table.JUDGE, Doc.PROVENANCE}),
              writes=frozenset({Doc.DECISION, Table.RANKING, Doc.SUMMARY}))


RANKING_COLUMNS = [f.name for f in fields(Ranked)]


def constraints_of(exp: Experiment) -> Constraints:
    return Constraints(monthly_volume=exp.monthly_volume, privacy_required=exp.privacy_required,
                       data_residency=exp.data_residency, latency_target_s=exp.latency_target_s,
                       budget_per_month=exp.budget_per_month, ops_capacity=exp.ops_capacity, margin=exp.margin,
                       alpha=exp.alpha, cost_per_error=exp.cost_per_error)


def _row(table: pd.DataFrame, key: str, value: str) -> dict[str, Any] | None:
    if table.empty or key not in table.columns:
        return None
    hit = table[table[key] == value]
    return hit.iloc[0].to_dict() if not hit.empty else None


def _interval(row: dict[str, Any] | None, value: str, low: str, high: str) -> Interval | None:
    if row is None or finite(row.get(value)) is None:
        return None
    return Interval(float(row[value]), finite(row.get(low)), finite(row.get(high)))


def facts_for(folder: RunFolder, task: str, *, exp: Experiment | None = None) -> Facts:
    """The typed facts of every option (and every cascade that passed) on one task (``exp``: the run's
    experiment, read from the folder when not given)."""
    exp = exp if exp is not None else folder.experiment()
    t = task_of(exp, task)
    metrics, compare = folder.table(Table.METRICS, task=task), folder.table(Table.COMPARE, task=task)
    costs, latency = folder.table(Table.COSTS, task=task), folder.table(Table.LATENCY, task=task)
    errors, floor = folder.table(Table.ERRORS, task=task), folder.table(Table.FLOOR, task=task)
    pairs = folder.table(Table.PAIRS, task=task)
    goodputs = folder.doc(Doc.GOODPUT, task=task, default={})
    options = []
    measured = metrics[metrics[Col.KIND] == RowKind.OPTION] if not metrics.empty else metrics  # none: no reference answer
    for o in exp.options_for(task):
        m = _row(measured, Col.OPTION, o.name)
        c = _row(compare, Col.OPTION, o.name)
        cost = _row(costs, Col.OPTION, o.name)
        lat, err = _row(latency, Col.OPTION, o.name), _row(errors, Col.OPTION, o.name)
        served = goodputs.get(o.name) or {}
        is_ref = o.name == exp.reference_name
        options.append(OptionFacts(
            name=OptionKey(o.name), role=Role.REFERENCE if is_ref else Role.CANDIDATE, third_party=not o.self_hosted,
            n_items=int(m[Col.N_ITEMS]) if m else 0,
            quality=_interval(m, Col.MEAN_SCORE, Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH),
            conclusion=Conclusion(c[Col.CONCLUSION_ADJUSTED]) if c and not is_ref else None,
            lower_bound=finite(c[Col.LOWER_BOUND]) if c else None,
            n_needed=(math.inf if c and finite(c[Col.N_NEEDED]) is None else finite(c[Col.N_NEEDED])) if c else None,
            floor=floor_of(floor, o.name) if m else None,
            monthly_cost=_interval(cost, Col.MONTHLY_COST, Col.COST_LOW, Col.COST_HIGH),
            # priced at a load level of its sweep, an option is served with that level's p95
            p95_s=(Interval(float(served[Col.P95_LATENCY_S])) if served.get(Col.LOAD) is not None
                   else _interval(lat, Col.P95_S, Col.P95_CI_LOW, Col.P95_CI_HIGH)),
            error_rate=float(err[Col.FAILED_RATE]) if err else 0.0,
            ops_hours=o.machine.ops_hours_per_month if o.machine else 0.0,
            cost_basis=str(cost.get(Col.BASIS, "")) if cost else "",
            difference=finite(c[Col.DIFFERENCE]) if c and not is_ref else None,
            p_better=finite(c.get(f"{Col.P_SUPERIORITY.value}_adj")) if c and not is_ref else None))
    for h in hybrids_of(folder, task):
        first = exp.option(h.hybrid.first)
        options.append(OptionFacts(
            name=h.hybrid.name, role=Role.HYBRID, third_party=False, hybrid=h.hybrid,
            n_items=next((x.n_items for x in options if x.name == h.hybrid.first), 0),
            quality=Interval(h.choice.accuracy, h.choice.ci_low, h.choice.ci_high), conclusion=h.choice.conclusion,
            floor=h.floor if not floor.empty else None,
            monthly_cost=Interval(h.choice.monthly_cost), p95_s=Interval(h.choice.p95_latency_s),
            share_local=h.choice.share_local, keeps_pii_local=exp.privacy_required,
            ops_hours=first.machine.ops_hours_per_month if first.machine else 0.0))
    # the comparison that ran decides (a task without gold answers but a labelled random sample ran PPI++)
    kinds = ({ComparisonKind(k) for k in compare[Col.KIND]} if not compare.empty and Col.KIND in compare.columns
             else {t.type.comparison_kind(labelled=t.labelled)})
    correctness = all(k.correctness for k in kinds)
    scores = folder.table(Table.SCORES, task=task)
    gaps = int(scores.loc[scores[Col.GAP].notna(), Col.ITEM_ID].nunique()) if Col.GAP in scores.columns else 0
    pii = folder.table(Table.PII, task=task)
    share = finite(pii.loc[pii[Col.KIND] == "any", Col.SHARE].iloc[0]) if not pii.empty else None
    best_floor = ""
    if not floor.empty:
        top = floor.sort_values(Col.BASELINE_MEAN, ascending=False).iloc[0]
        best_floor = f"{top[Col.ANSWER]} scores {pct(top[Col.BASELINE_MEAN])}"
    return Facts(task=task, volume=exp.monthly_volume, options=tuple(options), notes=tuple(_judge_notes(folder, task)),
                 pairs=tuple(PairFacts(OptionKey(r[Col.A]), OptionKey(r[Col.B]), float(r[Col.DIFFERENCE]), float(r[Col.P_HOLM]))
                             for r in pairs.to_dict("records")) if not pairs.empty else (),
                 metric=t.type.metrics[0] if correctness else "agreement with the reference",
                 labelled=correctness,
                 pii_share=share, reference_is_standin=exp.reference.standin, floor_text=best_floor,
                 reference_gaps=gaps if not any(o.measured for o in options if o.role is Role.REFERENCE) else 0)


def _judge_notes(folder: RunFolder, task: str) -> list[str]:
    """What the reader must know about a free-text task's judge: self-preference, failed grades, and a judge
    whose two orders disagree (position bias)."""
    if not folder.has(Doc.JUDGING, task=task):
        return []
    judge = folder.doc(Doc.JUDGING, task=task)
    notes = [f"Free text on {task} was graded by {judge[Col.JUDGE]} (a model, not a person)."]
    notes += [row[Col.NOTE] for row in judge["self_preference"] if row.get(Col.SAME_MODEL)]
    if judge[Col.JUDGE_ERRORS]:
        notes.append(f"The judge gave no usable grade on {judge[Col.JUDGE_ERRORS]} questions on {task}: they are "
                     "counted as gaps, not dropped.")
    consistency = folder.table(Table.JUDGE, task=task)
    for row in consistency.to_dict("records"):
        agree = finite(row[Col.ORDERS_AGREE])
        if agree is not None and agree < 0.8:
            notes.append(row[Col.STATEMENT])
    return notes


def verdict_stage(folder: RunFolder) -> dict[str, Decision]:
    """Per task: the decision over every option, with its ranking — saved in the run folder and returned."""
    folder = folder.scoped(STAGE)
    exp = folder.experiment()
    limits = constraints_of(exp)
    out = {}
    for task in folder.tasks():
        made = decide(facts_for(folder, task, exp=exp), limits)
        folder.save_doc(Doc.DECISION, made.to_dict(), task=task)
        folder.save_table(Table.RANKING, pd.DataFrame(made.ranking_rows(), columns=RANKING_COLUMNS), task=task)
        out[task] = made
    folder.save_doc(Doc.SUMMARY, {t: d.to_dict() for t, d in out.items()})
    return out
