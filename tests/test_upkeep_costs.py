"""The cost of staying right in the report: labelling and retraining enter the monthly cost, the break-even and the
verdict, through the real stages on replayed answers (tests/report_run.py), with what each figure assumed."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Experiment
from kit.labels import LabelBook, Source
from kit.labels.book import Label
from kit.labels.pace import labelling_pace
from kit.pipeline import costs, verdict
from kit.pipeline.folder import Doc, Table
from kit.report import views
from kit.run.store import Store
from kit.stats import sample_size_noninferiority
from kit.tasks import load_task
from report_run import TASK, build_report_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_report_run(tmp_path_factory.mktemp("upkeep"))


def _row(folder, option: str) -> dict:
    table = folder.table(Table.COSTS, task=TASK)
    return table[table[Col.OPTION] == option].iloc[0].to_dict()


def test_default_report_puts_labelling_in_the_monthly_cost(run):
    exp = run.experiment()
    local, api = _row(run, "SmolLM2"), _row(run, "API")
    assert local[Col.LABELLING_COST] > 0 and api[Col.LABELLING_COST] == 0  # the reference is the yardstick
    # the labels a window: Nam's formula on the run's own paired answers, at the default 30 s a label and $100/h
    assert "Nam (1997)" in local[Col.LABELLING_BASIS] and "upkeep.seconds_per_label" in local[Col.LABELLING_BASIS]
    n = float(local[Col.LABELLING_BASIS].split(" labels a window")[0])
    assert local[Col.LABELLING_COST] == pytest.approx(n * 30 / 3600 * exp.hourly_rate)
    # not a fine-tune: nothing to retrain
    assert local[Col.RETRAINING_COST] == 0 and local[Col.RETRAINING_BASIS] == ""
    # it is inside the fixed monthly cost (ops, setup spread over the horizon, upkeep) and so the monthly cost
    machine = exp.option("SmolLM2").machine
    fixed = machine.ops_hours_per_month * exp.hourly_rate + machine.setup_hours * exp.hourly_rate / exp.horizon_months
    assert local[Col.FIXED_COST] == pytest.approx(fixed + local[Col.LABELLING_COST])
    assert local[Col.MONTHLY_COST] > local[Col.LABELLING_COST]
    # the break-even volume is where v * api_per_item = v * local_per_item + fixed (on-demand machine)
    volume = exp.monthly_volume
    local_variable = (local[Col.MONTHLY_COST] - local[Col.FIXED_COST]) / volume
    be = run.table(Table.BREAK_EVEN, task=TASK)
    assert be[Col.BREAK_EVEN_VOLUME].iloc[0] == pytest.approx(
        local[Col.FIXED_COST] / (api[Col.MONTHLY_COST] / volume - local_variable), rel=1e-3)
    # the verdict's ranking prices the option with its upkeep
    ranking = run.table(Table.RANKING, task=TASK)
    assert ranking.loc[ranking[Col.OPTION] == "SmolLM2", Col.MONTHLY_COST].iloc[0] == pytest.approx(
        local[Col.MONTHLY_COST])
    # the report says what it assumed and where each figure comes from
    words = html.unescape(views.upkeep(run))  # Markdown-escaped
    assert "SmolLM2" in words and "labelling" in words and "seconds from upkeep.seconds_per_label" in words
    shown = views.costs(run).data
    assert "of which labelling" in shown.columns and "of which retraining" in shown.columns


def test_the_labelling_loops_pace_replaces_the_default(tmp_path):
    folder = build_report_run(tmp_path, upkeep={"labels_per_window": 150, "windows_per_month": 2})
    task = load_task(TASK)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
    gaps = [12, 18, 24, 900, 18, 30]  # one coffee break (900 s): not a label's time
    at, rows = start, []
    for i, gap in enumerate([0, *gaps]):
        at += timedelta(seconds=gap)
        rows.append(Label(task=TASK, item_id=task.test[i].id, label=task.type.labels[0], who="ana",
                          at=at.isoformat(timespec="milliseconds"), source=Source.IMPORT))
    with Store(folder.doc(Doc.STORE)["path"]) as store:
        LabelBook(store, task).write(rows)
    costs.costs_stage(folder)
    verdict.verdict_stage(folder)
    local = _row(folder, "SmolLM2")
    # median of 12, 18, 18, 24, 30 s = 18 s; 150 labels × 2 windows × 18 s at $100/h
    assert local[Col.LABELLING_COST] == pytest.approx(150 * 2 * 18 / 3600 * 100)
    assert "measured by the labelling loop" in local[Col.LABELLING_BASIS]
    assert "median of 5 gaps" in local[Col.LABELLING_BASIS]


def test_pace_needs_two_rows_of_one_labeller():
    at = "2026-11-02T09:00:00.000+00:00"
    one = [Label(TASK, "1", "a", "ana", at, Source.CLI), Label(TASK, "2", "a", "bo", at, Source.CLI)]
    assert labelling_pace(one) is None


def _finetune_experiment(**upkeep) -> Experiment:
    return Experiment.from_mapping({
        "tasks": {TASK: 20}, "reference": "API",
        "options": [{"name": "API", "arm": "replay:api.jsonl", "runs": "third-party",
                     "price": {"input_per_m": 2.5, "output_per_m": 10.0}},
                    {"name": "LoRA", "finetune": {"base": "smollm2-135m-instruct", "steps": 30}, "machine": "gpu"}],
        "machines": {"gpu": {"price_per_hour": 1.5}}, "hourly_rate": 80, "upkeep": upkeep}, source="test")


def _scores(n: int = 20) -> pd.DataFrame:
    """The reference right on all but item 0, the candidate on all but item 1: one discordant pair each way."""
    ids = [str(i) for i in range(n)]
    return pd.DataFrame({Col.OPTION: ["API"] * n + ["LoRA"] * n, Col.ITEM_ID: ids * 2,
                         Col.SCORE: [0.0] + [1.0] * (n - 1) + [1.0, 0.0] + [1.0] * (n - 2)})


def test_a_fine_tune_pays_its_measured_retraining_at_the_cadence():
    exp = _finetune_experiment(retrain_every_months=6, retrain_engineer_hours=3, labels_per_window=100)
    kept = costs.upkeep_of(exp, exp.option("LoRA"), _scores(), train_seconds=1800.0,
                           pace=(30.0, False, "the default"))
    # (0.5 h × $1.5/h + 3 h × $80/h) / 6 months
    assert kept["retraining"].monthly_usd == pytest.approx((0.5 * 1.5 + 3 * 80) / 6)
    assert "train_seconds" in kept["retraining"].basis and "every 6 months" in kept["retraining"].basis
    assert kept["labelling"].monthly_usd == pytest.approx(100 * 30 / 3600 * 80)
    never = _finetune_experiment(retrain_every_months=None)
    kept = costs.upkeep_of(never, never.option("LoRA"), _scores(), train_seconds=1800.0, pace=(30.0, False, "x"))
    assert kept["retraining"].monthly_usd == 0 and "never retrained" in kept["retraining"].basis
    assert costs.upkeep_of(exp, exp.option("API"), _scores(), train_seconds=0.0, pace=(30.0, False, "x")) == {}


def test_labels_a_window_follow_nams_formula_on_the_runs_answers():
    exp = _finetune_experiment()
    n, basis = costs.labels_per_window(exp, _scores(), exp.option("LoRA"))
    # p10 = p01 = 0.05 (one discordant pair each way in 20): the plan's Nam (1997) number from the same proportions
    expected = sample_size_noninferiority(p10=0.05, p01=0.05, margin=exp.margin, alpha=exp.alpha)["n_required"].item()
    assert n == expected and "Nam (1997)" in basis and "20 paired answers" in basis
    given = _finetune_experiment(labels_per_window=75)
    assert costs.labels_per_window(given, _scores(), given.option("LoRA")) == (75.0, "upkeep.labels_per_window")


def test_a_bad_cadence_is_a_clear_error():
    with pytest.raises(ConfigError, match="retrain_every_months"):
        _finetune_experiment(retrain_every_months=0)
