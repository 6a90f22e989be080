"""Time in a task: a report run's test items cut into windows (by calendar month of the task's time column, or
every N items), and per window each option's quality, the reference's answers and the inputs' drift.

Per window and option the quality is the mean score against the gold labels where the window's items have them
(``labels``), else the share of items answered as the reference answered (``agreement with the reference``) —
the table says which, with the items and labels behind each figure. Per window the reference's answer
distribution (its three commonest answers) and the input drift against the first window: the monitor's own tests
(:mod:`kit.monitor.drift`: text length by Mann–Whitney U, and the classifier two-sample test on the texts).

>>> history = task_history(RunFolder("runs/report-x"), "ticket-log", windows=Windows(by_month=True))  # doctest: +SKIP
>>> history.quality.columns.tolist()                                                                  # doctest: +SKIP
['window', 'option', 'quality', 'basis', 'n_items', 'n_labelled']
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.monitor.drift import c2st, length_test
from kit.monitor.logs import Windows, windowed
from kit.pipeline.folder import RunFolder, Table
from kit.pipeline.scores import task_of

LABELS, AGREEMENT = "labels", "agreement with the reference"
MIN_DRIFT_ITEMS = 4  # the classifier two-sample test needs at least this many texts in each window


def windows_of(spec: str | int) -> Windows:
    """The experiment's ``windows:`` value as :class:`Windows` (``month``, or a number of items)."""
    return Windows(by_month=True) if spec == "month" else Windows(every=int(spec))


@dataclass(frozen=True)
class TaskHistory:
    """One task's windows: ``quality`` (a row per window and option) and ``windows`` (a row per window: items,
    the reference's answer distribution, drift against the first window)."""

    task: str
    cut: str
    quality: pd.DataFrame
    windows: pd.DataFrame


def _items(folder: RunFolder, task: str, windows: Windows) -> tuple[pd.DataFrame, pd.DataFrame]:
    exp = folder.experiment()
    t = task_of(exp, task)
    scores = folder.table(Table.SCORES, task=task)
    scores = scores[scores[Col.EPOCH] == scores[Col.EPOCH].min()] if Col.EPOCH in scores.columns else scores
    answered = set(scores[Col.ITEM_ID])
    items = [i for i in t.test if i.id in answered]
    if windows.by_month and any(i.time is None for i in items):
        raise ConfigError(f"task '{task}' names no time column, so its items cannot be cut by month",
                          where=str(t.path), fix="name it in the task file (columns: {time: created_at}), or ask "
                                                 "for windows of N items (windows: 200)")
    frame = pd.DataFrame({Col.ITEM_ID: [i.id for i in items], Col.TIME: [i.time for i in items],
                          Col.TEXT: [i.text for i in items]})
    if not windows.by_month and frame[Col.TIME].notna().all():
        frame = frame.sort_values(Col.TIME, kind="stable")
    return windowed(frame, windows), scores


def _quality(rows: pd.DataFrame, option: str, reference: str) -> tuple[float | None, str, int, int]:
    mine = rows[rows[Col.OPTION] == option].set_index(Col.ITEM_ID)
    gold = mine[Col.GOLD].notna() if Col.GOLD in mine.columns else pd.Series(False, index=mine.index)
    if gold.any():
        kept = pd.to_numeric(mine.loc[gold, Col.SCORE], errors="coerce")
        return float(kept.mean()), LABELS, len(mine), int(gold.sum())
    ref = rows[rows[Col.OPTION] == reference].set_index(Col.ITEM_ID)[Col.ANSWER]
    both = mine[Col.ANSWER].to_frame().join(ref.rename("ref"), how="inner").dropna()
    if both.empty:
        return None, AGREEMENT, len(mine), 0
    return float((both[Col.ANSWER].astype(str) == both["ref"].astype(str)).mean()), AGREEMENT, len(both), 0


def _distribution(answers: pd.Series, top: int = 3) -> str:
    shares = answers.dropna().astype(str).value_counts(normalize=True)
    return ", ".join(f"{a} {100 * s:.0f}%" for a, s in shares.head(top).items()) if len(shares) else "no answers"


def task_history(folder: RunFolder, task: str, *, windows: Windows, seed: int = 0) -> TaskHistory:
    """``task``'s test items in ``folder`` (a report's run folder) cut into ``windows``: quality per window and
    option, the reference's answers and the drift against the first window."""
    exp = folder.experiment()
    framed, scores = _items(folder, task, windows)
    reference = exp.reference_name
    order = list(dict.fromkeys(framed[Col.WINDOW]))
    first = framed[framed[Col.WINDOW] == order[0]][Col.TEXT].tolist() if order else []
    quality, per_window = [], []
    for window in order:
        ids = framed.loc[framed[Col.WINDOW] == window, Col.ITEM_ID]
        texts = framed.loc[framed[Col.WINDOW] == window, Col.TEXT].tolist()
        rows = scores[scores[Col.ITEM_ID].isin(set(ids))]
        for option in dict.fromkeys(scores[Col.OPTION]):
            value, basis, n, labelled = _quality(rows, option, reference)
            quality.append({Col.WINDOW: window, Col.OPTION: option, Col.QUALITY: value, Col.BASIS: basis,
                            Col.N_ITEMS: n, Col.N_LABELLED: labelled})
        ref_answers = rows.loc[rows[Col.OPTION] == reference, Col.ANSWER]
        row = {Col.WINDOW: window, Col.N_ITEMS: len(ids), Col.REFERENCE_ANSWERS: _distribution(ref_answers),
               Col.LENGTH_P: None, Col.TEXTS_ACCURACY: None, Col.TEXTS_P: None}
        if window != order[0]:
            row[Col.LENGTH_P] = length_test(first, texts).p_value
            if min(len(first), len(texts)) >= MIN_DRIFT_ITEMS:
                test = c2st(first, texts, seed=seed)
                row[Col.TEXTS_ACCURACY], row[Col.TEXTS_P] = test.accuracy, test.p_value
        per_window.append(row)
    return TaskHistory(task=task, cut=windows.describe(), quality=pd.DataFrame(quality),
                       windows=pd.DataFrame(per_window))
