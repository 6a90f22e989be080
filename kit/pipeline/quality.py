"""Stage 4 of a report run: quality, compared in pairs, per task.

From the answers the run folder points at (never "the latest rows" of an arm) the stage scores every item,
then writes per task: the type's metrics with intervals (trivial baselines as extra rows), each candidate
against the reference (the quality bar, Holm across candidates), each option against the trivial baselines
(the floor), every pair of options (for the quality trade), latency, errors and — for labels — agreement with
the reference.

The comparison that applies writes the compare, floor and pairs tables, once:

* a labelled task: paired tests of per-item scores (:func:`kit.tasks.compare.compare_options`);
* a task without gold answers but with labels on a random sample (``kit label``): PPI++ estimates of
  correctness, the reference's answers as the proxy (:mod:`kit.tasks.ppi_compare`) — bar, floor and pairs;
* a task with no labels at all: agreement with the reference, with the labels that would decide on correctness;
* a sequential run (``sequential:``): the conclusions of the bar and the floor come from the confidence
  sequences of its last round (:func:`kit.pipeline.looks.sequential_tables`; a test after optional stopping is
  not valid, the sequence is).

The rounds driver also asks this stage, after every round, where the open questions stand (:func:`round_look`).

>>> tables = quality_stage(RunFolder("runs/report-x"))          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kit import stats
from kit.columns import Col, RowKind
from kit.experiment import Experiment
from kit.labels import SUPPORTED, sampled_labels
from kit.pipeline.folder import Doc, RunFolder, Stage, Table
from kit.pipeline.looks import Questions, round_looks, sequential_tables
from kit.pipeline.outputs import sample_labels
from kit.pipeline.scores import floor_table, responses, scored, task_of
from kit.run.store import Store
from kit.tasks import Task, ppi_compare
from kit.tasks.compare import compare_options, disagreements
from kit.tasks.ppi_compare import SampledLabels
from kit.tasks.types import ComparisonKind

STAGE = Stage("quality", "04_quality.ipynb",
              reads=frozenset({Doc.EXPERIMENT, Doc.RUNS, Doc.STORE, Table.VERDICTS, Table.SEQUENTIAL}),
              writes=frozenset({Table.SCORES, Table.METRICS, Table.COMPARE, Table.FLOOR, Table.PAIRS, Table.LATENCY,
                                Table.ERRORS, Table.AGREEMENT, Table.DISAGREEMENTS, Table.DEV_SCORES, Doc.LABELS}))


def dev_scores(folder: RunFolder, task: Task, *, reference: str) -> pd.DataFrame | None:
    """The dev items' scores of the options that chose their prompt there (the same columns as the test items'),
    for what else is fitted on dev — a cascade's threshold; None unless the reference and another option have
    them."""
    rows = responses(folder, task.name, dev=True)
    if rows.empty or reference not in set(rows[Col.OPTION]) or rows[Col.OPTION].nunique() < 2:
        return None
    return scored(task, rows, reference=reference).assign(**{Col.WARMUP: False})


def _scored(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a score (a gap — no reference answer, no judge grade — is counted, not scored)."""
    return scores[scores[Col.SCORE].notna()] if Col.GAP in scores.columns else scores


def _metrics(task: Task, scores: pd.DataFrame, baselines: list[Any]) -> pd.DataFrame:
    """The type's metrics per option with intervals, and each trivial baseline on the same test items."""
    table = stats.metric_table(scores)
    extra = pd.DataFrame([{Col.OPTION: arm, **task.type.summarise(group)} for arm, group in scores.groupby(Col.OPTION)])
    table = table.merge(extra, on=Col.OPTION, how="left", suffixes=("", "_type"))
    table.insert(1, Col.KIND, RowKind.OPTION)
    rows = []
    by_id = {item.id: i for i, item in enumerate(task.test)}
    asked = [by_id[i] for i in dict.fromkeys(scores[Col.ITEM_ID]) if i in by_id]  # the items the options answered
    for b in baselines if asked else []:
        values = np.array([b.scores[j].score for j in asked])
        mean, low, high = stats.intervals.mean_ci(values)
        if task.test[asked[0]].cluster is not None:  # a `cluster:` task: the baseline's interval is clustered too
            mean, low, high = stats.clusters.cluster_ci(values, [task.test[j].cluster for j in asked], item=(low, high))
        rows.append({Col.OPTION: f"{b.name}", Col.KIND: RowKind.BASELINE, Col.N_ITEMS: int(values.size), Col.MEAN_SCORE: mean,
                     Col.SCORE_CI_LOW: low, Col.SCORE_CI_HIGH: high,
                     Col.ACCURACY: float(np.mean([b.scores[j].correct for j in asked])),
                     Col.STATEMENT: f"{b.name}: {b.answer} scores {100 * mean:.1f}%."})
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True) if rows else table


def _pairs(scores: pd.DataFrame, alpha: float) -> pd.DataFrame:
    wide = stats.pair_arms(scores, value=Col.SCORE)
    groups = stats.clusters_for(wide.index, stats.item_clusters(scores, where="pairs"))  # a `cluster:` task's
    return stats.pairwise(wide, alpha=alpha, clusters=groups) if wide.shape[1] > 1 else pd.DataFrame()


def quality_stage(folder: RunFolder) -> dict[str, dict[str, pd.DataFrame]]:
    """Per task: scores, metrics (with baselines), the comparison with the reference, the floor, every pair,
    latency, errors and agreement — saved in the run folder and returned."""
    folder = folder.scoped(STAGE)
    exp = folder.experiment()
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for name in folder.tasks():
        task = task_of(exp, name)
        verdicts = folder.table(Table.VERDICTS, task=name) if folder.has(Table.VERDICTS, task=name) else None
        scores = scored(task, responses(folder, name), reference=exp.reference_name, verdicts=verdicts)
        labels = snapshot_labels(folder, task) if not task.labelled else None
        tables = {Table.SCORES: scores, **_comparison(task, scores, labels, exp),
                  Table.LATENCY: stats.latency_summary(scores), Table.ERRORS: stats.errors_table(scores)}
        if folder.has(Table.SEQUENTIAL, task=name):  # the run stopped on its sequences: they conclude
            tables[Table.COMPARE], tables[Table.FLOOR] = sequential_tables(
                tables[Table.COMPARE], tables[Table.FLOOR], folder.table(Table.SEQUENTIAL, task=name))
        dev = dev_scores(folder, task, reference=exp.reference_name)
        if dev is not None:  # the chosen prompts' dev answers: a cascade's threshold is fitted there
            tables[Table.DEV_SCORES] = dev
        for kind, table in tables.items():
            folder.save_table(kind, table, task=name)
        out[name] = {k.file: v for k, v in tables.items()}
    return out


def _comparison(task: Task, scores: pd.DataFrame, labels: SampledLabels | None,
                exp: Experiment) -> dict[Table, pd.DataFrame]:
    """The tables of the comparison that applies to ``task``: metrics, compare, floor, pairs, agreement and
    disagreements (module docstring)."""
    ref, scored_rows = exp.reference_name, _scored(scores)
    if scored_rows.empty:  # no item has a usable reference answer (an unlabelled task): a counted gap, no comparison
        return {t: pd.DataFrame() for t in (Table.METRICS, Table.COMPARE, Table.FLOOR, Table.PAIRS, Table.AGREEMENT,
                                            Table.DISAGREEMENTS)}
    kind = task.type.comparison_kind(labelled=task.labelled)
    baselines = task.type.baselines(task.train, task.test) if task.labelled else []
    metrics = _metrics(task, scored_rows, baselines)
    shared = {Table.AGREEMENT: (task.type.agreement(scored_rows, reference=ref) if task.labelled else pd.DataFrame()),
              Table.DISAGREEMENTS: (disagreements(task, scores, reference=ref) if not kind.correctness
                                    else pd.DataFrame())}
    if _ppi_applies(task, scores, labels, reference=ref):
        assert labels is not None
        table = ppi_compare.ppi_compare(task, scores, labels, reference=ref, margin=exp.margin, alpha=exp.alpha)
        table.insert(0, Col.TASK, task.name)
        table.insert(1, Col.KIND, ComparisonKind.PREDICTION_POWERED)
        return {Table.METRICS: ppi_compare.ppi_metrics(task, scores, labels, metrics, reference=ref, alpha=exp.alpha),
                Table.COMPARE: table,
                Table.FLOOR: ppi_compare.ppi_floor(task, scores, labels, reference=ref, alpha=exp.alpha),
                Table.PAIRS: ppi_compare.ppi_pairs(task, scores, labels, reference=ref, alpha=exp.alpha), **shared}
    compare = compare_options(task, scores, reference=ref, margin=exp.margin, alpha=exp.alpha,
                              agreement_target=exp.agreement_target)
    if not task.labelled and not compare.empty and set(compare[Col.KIND]) == {ComparisonKind.AGREEMENT}:
        need = ppi_compare.labels_to_decide(compare, margin=exp.margin, alpha=exp.alpha).set_index(Col.OPTION)
        compare = compare.assign(**{
            Col.LABELS_NEEDED: compare[Col.OPTION].map(need[Col.LABELS_NEEDED]),
            Col.N_LABELLED: ppi_compare.labelled_count(scores, labels),
            Col.STATEMENT: compare[Col.STATEMENT] + " " + compare[Col.OPTION].map(need[Col.STATEMENT])})
    return {Table.METRICS: metrics, Table.COMPARE: compare,
            Table.FLOOR: floor_table(task, scored_rows, exp.alpha) if baselines else pd.DataFrame(),
            Table.PAIRS: _pairs(scored_rows, exp.alpha), **shared}


def _ppi_applies(task: Task, scores: pd.DataFrame, labels: SampledLabels | None, *, reference: str) -> bool:
    """A task without gold answers (not free text) whose random sample has usable labels among the items asked,
    with a candidate to compare."""
    if task.labelled or labels is None or task.type.comparison_kind(labelled=False) != ComparisonKind.AGREEMENT:
        return False
    if not (set(scores[Col.OPTION]) - {reference}):
        return False
    labels.check_split(task, where=f"labels of {task.name}")
    return ppi_compare.usable(scores, labels)


def round_look(task: Task, rows: pd.DataFrame, *, questions: Questions, labels: SampledLabels | None,
               round_no: int, items: int, planned_n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """After a round of a sequential run: the scores of the answers so far (``rows``, every option's stored
    answers) and where the verdict's open questions stand (:func:`kit.pipeline.looks.round_looks`)."""
    scores = scored(task, rows, reference=questions.reference)
    return scores, round_looks(task, scores, questions=questions, round_no=round_no, items=items,
                               planned_n=planned_n, labels=labels)


# ---------------------------------------------------------------- partly labelled tasks (PPI++)
def store_labels(store: Store, task: Task) -> SampledLabels | None:
    """The store's labels on the task's random sample (``kit label``, the form, an imported file); None for a
    task type not labelled by hand, or when no sample was drawn."""
    if task.labelled or not isinstance(task.type, SUPPORTED):
        return None
    labels = sampled_labels(store, task)
    return labels if labels.order else None


def snapshot_labels(folder: RunFolder, task: Task) -> SampledLabels | None:
    """Copy the store's labels on the task's random sample into the run folder, so the report records exactly
    the labels it used; returns them (None, and the folder as it is, when there are none)."""
    with Store(folder.doc(Doc.STORE)["path"]) as store:
        labels = store_labels(store, task)
    if labels is None:
        return sample_labels(folder, task.name) if folder.has(Doc.LABELS, task=task.name) else None
    folder.save_doc(Doc.LABELS, labels.to_doc(), task=task.name)
    return labels
