"""Stage 4 of a report run: quality, compared in pairs, per task.

From the answers the run folder points at (never "the latest rows" of an arm) the stage scores every item,
then writes per task: the type's metrics with intervals (trivial baselines as extra rows), each candidate
against the reference (the quality bar, Holm across candidates), each option against the trivial baselines
(the floor), every pair of options (for the quality trade), latency, errors and — for labels — agreement with
the reference.

>>> tables = quality_stage(RunFolder("runs/report-x"))          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kit import stats
from kit.columns import Col, RowKind
from kit.decision import Floor
from kit.errors import ConfigError
from kit.format import p_words, pct
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.tasks import Task, load_task
from kit.tasks import ppi_compare
from kit.tasks.compare import compare_options, disagreements
from kit.tasks.ppi_compare import SampledLabels
from kit.tasks.types import ComparisonKind
from kit.tasks.scoring import score_task


def task_of(folder: RunFolder, name: str) -> Task:
    return load_task(name, ignore_labels=folder.experiment().ignore_labels)


def responses(folder: RunFolder, name: str, *, dev: bool = False) -> pd.DataFrame:
    """The stored answers of every option on a task, exactly the questions the run asked; ``arm`` holds the
    option's name. ``dev``: the answers its chosen prompt gave on the dev items instead (only the options that
    chose a prompt there; an empty table when none did)."""
    from kit.run.store import Store

    frames = []
    with Store(folder.doc(Doc.STORE)["path"]) as db:
        for record in folder.runs(task=name):
            keys = record.dev_keys if dev else record.keys
            if keys:
                frames.append(db.rows(keys.values()).assign(**{Col.OPTION: record.option}))
    if dev:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not frames:
        raise ConfigError(f"no option answered task {name!r} in this run", where=str(folder.path),
                          fix="run the answer stage (notebook 03) first")
    return pd.concat(frames, ignore_index=True)


def task_scores(folder: RunFolder, name: str) -> pd.DataFrame:
    """Per item and option: answer, gold, correct, score, latency, tokens (``arm`` is the option's name). Free
    text is scored with its references and the judge's verdicts; an unlabelled task against the reference's
    answers (items the reference could not answer stay, with the reason in ``gap``)."""
    exp = folder.experiment()
    task = task_of(folder, name)
    verdicts = folder.table(Table.VERDICTS, task=name) if folder.has(Table.VERDICTS, task=name) else None
    rows = responses(folder, name)
    scores = score_task(task, rows, reference=exp.reference_name, verdicts=verdicts)
    return scores.merge(warmups(rows), on=[Col.OPTION, Col.ITEM_ID, Col.EPOCH], how="left").assign(
        warmup=lambda s: s[Col.WARMUP].fillna(False).astype(bool))


def dev_scores(folder: RunFolder, name: str) -> pd.DataFrame | None:
    """The dev items' scores of the options that chose their prompt there (the same columns as the test items'),
    for what else is fitted on dev — a cascade's threshold; None unless the reference and another option have
    them."""
    exp = folder.experiment()
    rows = responses(folder, name, dev=True)
    if rows.empty or exp.reference_name not in set(rows[Col.OPTION]) or rows[Col.OPTION].nunique() < 2:
        return None
    return score_task(task_of(folder, name), rows, reference=exp.reference_name).assign(**{Col.WARMUP: False})


def warmups(rows: pd.DataFrame) -> pd.DataFrame:
    """Which stored answers were their run's first call — the one that paid for loading the model or opening the
    connection: per option, the first answer each run stored (of those this report reads). Columns: arm, item_id, epoch,
    warmup."""
    first = rows.sort_values(Col.ID).groupby([Col.OPTION, Col.RUN_ID], sort=False).head(1).index  # id: the order stored
    return rows.assign(warmup=rows.index.isin(first))[[Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.WARMUP]].drop_duplicates(
        [Col.OPTION, Col.ITEM_ID, Col.EPOCH])


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


def floor_table(task: Task, scores: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Each option (each ``arm`` in ``scores``) against each trivial baseline, on the items it answered."""
    rows = []
    by_id = {item.id: i for i, item in enumerate(task.test)}
    for b in task.type.baselines(task.train, task.test):
        for arm, group in scores.groupby(Col.OPTION, sort=False):
            keep = group[group[Col.ITEM_ID].isin(by_id)]
            values = keep[Col.SCORE].to_numpy(dtype=float)
            base = np.array([b.scores[by_id[i]].score for i in keep[Col.ITEM_ID]])
            groups = keep[Col.CLUSTER].to_numpy(dtype=object) if Col.CLUSTER in keep.columns else None
            test = stats.beats_baseline(values, base, alpha=alpha, paired=b.paired, name=f"{b.name} ({b.answer})",
                                        clusters=groups)
            rows.append({Col.OPTION: arm, Col.BASELINE: b.name, Col.ANSWER: b.answer, **test.iloc[0].to_dict()})
    return pd.DataFrame(rows)


def floor_of(floor: pd.DataFrame, option: str) -> Floor | None:
    """An option against the trivial baselines, from a floor table: None when there are no baselines."""
    if floor.empty:
        return None
    rows = floor[floor[Col.OPTION] == option]
    failed = rows[~rows[Col.PASSES].astype(bool)]
    if failed.empty:
        return Floor(passes=True)
    r = failed.iloc[0]
    return Floor(passes=False, reason=f"not significantly better than {r[Col.ANSWER]} "
                                      f"({pct(r[Col.BASELINE_MEAN])}, {p_words(r[Col.P_VALUE])})")


def _pairs(scores: pd.DataFrame, alpha: float) -> pd.DataFrame:
    wide = stats.pair_arms(scores, value=Col.SCORE)
    groups = stats.clusters_for(wide.index, stats.item_clusters(scores, where="pairs"))  # a `cluster:` task's
    return stats.pairwise(wide, alpha=alpha, clusters=groups) if wide.shape[1] > 1 else pd.DataFrame()


def quality_stage(folder: RunFolder) -> dict[str, dict[str, pd.DataFrame]]:
    """Per task: scores, metrics (with baselines), the comparison with the reference, the floor, every pair,
    latency, errors and agreement — saved in the run folder and returned."""
    exp = folder.experiment()
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for name in folder.tasks():
        task = task_of(folder, name)
        scores = task_scores(folder, name)
        scored = _scored(scores)
        baselines = task.type.baselines(task.train, task.test) if task.labelled else []
        kind = task.type.comparison_kind(labelled=task.labelled)
        tables = {
            Table.SCORES: scores,
            Table.METRICS: _metrics(task, scored, baselines),
            Table.COMPARE: compare_options(task, scores, reference=exp.reference_name, margin=exp.margin,
                                           alpha=exp.alpha, agreement_target=exp.agreement_target),
            Table.FLOOR: floor_table(task, scored, exp.alpha) if baselines else pd.DataFrame(),
            Table.PAIRS: _pairs(scored, exp.alpha),
            Table.LATENCY: stats.latency_summary(scores),
            Table.ERRORS: stats.errors_table(scores),
            Table.AGREEMENT: (task.type.agreement(scored, reference=exp.reference_name) if task.labelled
                              else pd.DataFrame()),
            Table.DISAGREEMENTS: (disagreements(task, scores, reference=exp.reference_name)
                                  if not kind.correctness else pd.DataFrame()),
        }
        dev = dev_scores(folder, name)
        if dev is not None:  # the chosen prompts' dev answers: a cascade's threshold is fitted there
            tables[Table.DEV_SCORES] = dev
        if not task.labelled:
            snapshot_labels(folder, task)
            tables.update(_partly_labelled(folder, task, scores, tables))
        for kind, table in tables.items():
            folder.save_table(kind, table, task=name)
        out[name] = {k.file: v for k, v in tables.items()}
    from kit.pipeline.sequential import apply_sequential  # a sequential run decides on its confidence sequences
    apply_sequential(folder, out)
    return out


# ---------------------------------------------------------------- partly labelled tasks (PPI++, issue 19)
def sample_labels(folder: RunFolder, name: str) -> SampledLabels | None:
    """The run folder's snapshot of the random sample's labels on a task (``Doc.LABELS``), None without one."""
    if not folder.has(Doc.LABELS, task=name):
        return None
    return SampledLabels.from_doc(folder.doc(Doc.LABELS, task=name), where=f"{folder.path} labels of {name}")


def snapshot_labels(folder: RunFolder, task: Task) -> SampledLabels | None:
    """Copy the store's labels on the task's random sample (``kit label``, the form, an imported file) into the
    run folder, so the report records exactly the labels it used; returns them. A task type not labelled by
    hand, or a store where no sample was drawn, leaves the folder as it is."""
    from kit.labels import SUPPORTED, sampled_labels
    from kit.run.store import Store

    if not isinstance(task.type, SUPPORTED):
        return None
    with Store(folder.doc(Doc.STORE)["path"]) as store:
        labels = sampled_labels(store, task)
    if not labels.order:
        return None
    folder.save_doc(Doc.LABELS, labels.to_doc(), task=task.name)
    return labels


def _partly_labelled(folder: RunFolder, task: Task, scores: pd.DataFrame,
                     tables: dict[Table, pd.DataFrame]) -> dict[Table, pd.DataFrame]:
    """An unlabelled task's tables when the run folder holds labels on a random sample: accuracy, the bar and the
    floor by PPI++ with the reference's answers as the proxy (:mod:`kit.tasks.ppi_compare`). With no labels (or
    fewer than 2 on the items asked) the agreement comparison stays, and says how many labels would decide."""
    exp = folder.experiment()
    ref = exp.reference_name
    labels = sample_labels(folder, task.name)
    compare = tables[Table.COMPARE]
    if compare.empty or set(compare[Col.KIND]) != {ComparisonKind.AGREEMENT}:  # free text: judged, not labelled
        return {}
    if labels is not None:
        labels.check_split(task, where=f"{folder.path} labels of {task.name}")
    if labels is None or not ppi_compare.usable(scores, labels):
        need = ppi_compare.labels_to_decide(compare, margin=exp.margin, alpha=exp.alpha).set_index(Col.OPTION)
        return {Table.COMPARE: compare.assign(**{
            Col.LABELS_NEEDED: compare[Col.OPTION].map(need[Col.LABELS_NEEDED]),
            Col.N_LABELLED: ppi_compare.labelled_count(scores, labels),
            Col.STATEMENT: compare[Col.STATEMENT] + " " + compare[Col.OPTION].map(need[Col.STATEMENT])})}
    table = ppi_compare.ppi_compare(task, scores, labels, reference=ref, margin=exp.margin, alpha=exp.alpha)
    table.insert(0, Col.TASK, task.name)
    table.insert(1, Col.KIND, ComparisonKind.PREDICTION_POWERED)
    return {Table.METRICS: ppi_compare.ppi_metrics(task, scores, labels, tables[Table.METRICS], reference=ref,
                                                   alpha=exp.alpha),
            Table.COMPARE: table,
            Table.FLOOR: ppi_compare.ppi_floor(task, scores, labels, reference=ref, alpha=exp.alpha)}
