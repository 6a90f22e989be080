"""The per-item scores of the answers a run asked for, and each option against the trivial baselines (the floor).

A helper below the stages: the quality stage scores every task once the answers are in, the rounds driver
scores the answers so far after every round, the costs stage tests a cascade against the floor and the verdict
turns a floor table into :class:`kit.decision.Floor` — all with these functions.

>>> task = task_of(exp, "snips-intents")                                   # doctest: +SKIP
>>> scores = scored(task, responses(folder, "snips-intents"), reference="API")   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kit import stats
from kit.columns import Col
from kit.decision import Floor
from kit.errors import ConfigError
from kit.experiment import Experiment
from kit.format import p_words, pct
from kit.pipeline.folder import Doc, RunFolder
from kit.run.store import Store
from kit.tasks import Task, load_task
from kit.tasks.scoring import score_task


def task_of(exp: Experiment, name: str) -> Task:
    """A task of the experiment, loaded as the experiment runs it (its labels ignored when it says so)."""
    return load_task(name, ignore_labels=exp.ignore_labels)


def load_tasks(exp: Experiment) -> dict[str, Task]:
    """Every task of the experiment, loaded."""
    return {name: task_of(exp, name) for name in exp.tasks}


def responses(folder: RunFolder, name: str, *, dev: bool = False) -> pd.DataFrame:
    """The stored answers of every option on a task, exactly the questions the run asked; ``arm`` holds the
    option's name. ``dev``: the answers its chosen prompt gave on the dev items instead (only the options that
    chose a prompt there; an empty table when none did)."""
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


def warmups(rows: pd.DataFrame) -> pd.DataFrame:
    """Which stored answers were their run's first call — the one that paid for loading the model or opening the
    connection: per option, the first answer each run stored (of those this report reads). Columns: arm, item_id, epoch,
    warmup."""
    first = rows.sort_values(Col.ID).groupby([Col.OPTION, Col.RUN_ID], sort=False).head(1).index  # id: the order stored
    return rows.assign(warmup=rows.index.isin(first))[[Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.WARMUP]].drop_duplicates(
        [Col.OPTION, Col.ITEM_ID, Col.EPOCH])


def scored(task: Task, rows: pd.DataFrame, *, reference: str, verdicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per item and option: answer, gold, correct, score, latency, tokens and whether the answer was its run's
    warm-up call (``arm`` is the option's name). Free text is scored with its references and the judge's
    ``verdicts``; an unlabelled task against the reference's answers (items the reference could not answer stay,
    with the reason in ``gap``)."""
    scores = score_task(task, rows, reference=reference, verdicts=verdicts)
    return scores.merge(warmups(rows), on=[Col.OPTION, Col.ITEM_ID, Col.EPOCH], how="left").assign(
        **{Col.WARMUP: lambda s: s[Col.WARMUP].fillna(False).astype(bool)})


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
