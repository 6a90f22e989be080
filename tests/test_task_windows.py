"""Time in a task: a task's time column, and a report run's test items cut into windows with each option's quality,
the reference's answers and the input drift against the first window (the monitor's drift tests)."""

from __future__ import annotations

import html

import pandas as pd
import pytest

from kit.columns import Col
from kit.errors import ConfigError, TaskError
from kit.experiment import Experiment
from kit.monitor.drift import c2st, length_test
from kit.monitor.history import AGREEMENT, LABELS, task_history, windows_of
from kit.monitor.logs import Windows
from kit.pipeline.folder import Table
from kit.report import views
from kit.tasks import load_task
from report_run import TASK, build_report_run


def _task(tmp_path, times: list[str]):
    rows = [f"r{i},request {i} about {'music' if i % 2 else 'weather'},{'play' if i % 2 else 'ask'},{t}"
            for i, t in enumerate(times)]
    (tmp_path / "t.csv").write_text("id,text,label,created_at\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "t.yaml").write_text(
        "name: requests\ntype: classification\ndata: t.csv\ninstruction: 'Route: {text}'\nlabels: [play, ask]\n"
        "split: {test_fraction: 1.0}\ncolumns: {time: created_at}\n", encoding="utf-8")
    return tmp_path / "t.yaml"


def test_a_task_may_name_its_time_column(tmp_path):
    task = load_task(_task(tmp_path, ["2026-01-05T10:00:00Z", "2026-02-01 08:30:00+02:00", "2026-03-09"]))
    times = {i.id: i.time for i in task.items}
    assert times == {"r0": "2026-01-05T10:00:00+00:00", "r1": "2026-02-01T06:30:00+00:00",
                     "r2": "2026-03-09T00:00:00+00:00"}  # in UTC
    with pytest.raises(TaskError, match="r1.*no readable time"):
        load_task(_task(tmp_path, ["2026-01-05", "last tuesday", "2026-03-09"]))
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace("{time: created_at}", "{time: created}"))
    with pytest.raises(TaskError, match="names no column"):
        load_task(tmp_path / "t.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_report_run(tmp_path_factory.mktemp("windows"))


def test_windows_of_items_show_quality_answers_and_drift(run):
    history = task_history(run, TASK, windows=Windows(every=50))
    assert history.windows[Col.WINDOW].tolist() == ["1", "2", "3", "4"] and history.cut == "every 50 items"
    assert history.windows[Col.N_ITEMS].tolist() == [50, 50, 50, 50]
    # each figure against an independent recomputation: the test items in order, 50 a window, mean score on gold
    scores = run.table(Table.SCORES, task=TASK)
    order = [i.id for i in load_task(TASK).test if i.id in set(scores[Col.ITEM_ID])]
    second = set(order[50:100])
    rows = scores[scores[Col.ITEM_ID].isin(second)]
    for option in ("API", "SmolLM2"):
        got = history.quality[(history.quality[Col.WINDOW] == "2") & (history.quality[Col.OPTION] == option)].iloc[0]
        assert got[Col.QUALITY] == pytest.approx(rows.loc[rows[Col.OPTION] == option, Col.SCORE].mean())
        assert got[Col.BASIS] == LABELS and got[Col.N_LABELLED] == 50
    top = rows.loc[rows[Col.OPTION] == "API", Col.ANSWER].value_counts(normalize=True)
    assert history.windows.iloc[1][Col.REFERENCE_ANSWERS].startswith(f"{top.index[0]} {100 * top.iloc[0]:.0f}%")
    # drift: the monitor's own tests of this window's texts against the first's
    text = {i.id: i.text for i in load_task(TASK).test}
    first, window = [text[i] for i in order[:50]], [text[i] for i in order[50:100]]
    assert history.windows.iloc[1][Col.LENGTH_P] == pytest.approx(length_test(first, window).p_value)
    assert history.windows.iloc[1][Col.TEXTS_P] == pytest.approx(c2st(first, window, seed=0).p_value)
    assert pd.isna(history.windows.iloc[0][Col.LENGTH_P])  # the first window is the yardstick


def test_an_unlabelled_window_says_it_measures_agreement(run):
    scores = run.table(Table.SCORES, task=TASK)
    # the same answers without gold: quality becomes agreement with the reference, and says so
    blind = scores.assign(**{Col.GOLD: None})
    from kit.monitor.history import _quality
    value, basis, n, labelled = _quality(blind, "SmolLM2", "API")
    wide = blind.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.ANSWER, aggfunc="first")
    assert basis == AGREEMENT and labelled == 0 and n == len(wide)
    assert value == pytest.approx((wide["SmolLM2"] == wide["API"]).mean())


def test_month_windows_need_a_time_column_and_the_report_says_so(run):
    with pytest.raises(ConfigError, match="names no time column"):
        task_history(run, TASK, windows=windows_of("month"))
    assert views.windows(run).startswith("- no windows asked for")
    with pytest.raises(ConfigError):
        Experiment.from_mapping({**_minimal(), "windows": 2}, source="test")  # too few items a window
    assert Experiment.from_mapping({**_minimal(), "windows": "month"}, source="test").windows == "month"


def test_the_report_shows_the_windows(run):
    from kit.pipeline.folder import Doc
    recorded = run.doc(Doc.EXPERIMENT)
    try:
        words = html.unescape(views.windows(_with_windows(run, 100)))
    finally:
        run.save_doc(Doc.EXPERIMENT, recorded)
    assert "cut by every 100 items" in words and "2 (100 items)" in words
    assert "SmolLM2" in words and "(labels, 100 items, 100 labels)" in words and "text length p = " in words
    assert "1 (100 items)" in words and "the first window: drift is measured against it" in words
    assert "nan" not in words


def _minimal() -> dict:
    return {"tasks": {TASK: 10}, "reference": "API",
            "options": [{"name": "API", "arm": "replay:api.jsonl", "runs": "third-party",
                         "price": {"input_per_m": 1.0, "output_per_m": 1.0}}]}


def _with_windows(run, every: int):
    """The run's folder with its recorded experiment asking for windows of ``every`` items (as `-p windows N`)."""
    from kit.pipeline.folder import Doc
    data = run.doc(Doc.EXPERIMENT)
    run.save_doc(Doc.EXPERIMENT, {**data, "windows": every})
    return run
