"""The cost of staying right: labelling each window and retraining at a cadence, as typed functions."""

from __future__ import annotations

import math

import pytest

from kit.economics.upkeep import cadence_from_alarms, labelling_cost, retraining_cost
from kit.errors import ConfigError


def test_labelling_cost_is_labels_times_seconds_at_the_hourly_rate():
    # 300 labels × 24 s = 7,200 s = 2 h a window; weekly windows: 30.4375 / 7 a month; 2 h × 4.348 × $45 = $391.3
    cost = labelling_cost(labels_per_window=300, seconds_per_label=24, hourly_rate=45,
                          windows_per_month=30.4375 / 7, measured=True)
    assert cost.monthly_usd == pytest.approx(2 * 45 * 30.4375 / 7)
    assert "measured by the labelling loop" in cost.basis and cost.what == "labelling"


def test_retraining_cost_is_machine_and_people_over_the_cadence():
    # 1.5 h × $2.4/h + 6 h × $120/h = $723.6 each, every 4 months: $180.9 a month
    cost = retraining_cost(train_hours=1.5, price_per_hour=2.4, engineer_hours=6, hourly_rate=120, every_months=4)
    assert cost.monthly_usd == pytest.approx(180.9)
    never = retraining_cost(train_hours=1.5, price_per_hour=2.4, engineer_hours=6, hourly_rate=120,
                            every_months=cadence_from_alarms(alarms=0, months=12))
    assert never.monthly_usd == 0.0 and "never" in never.basis
    assert cadence_from_alarms(alarms=3, months=12) == 4.0 and math.isinf(cadence_from_alarms(alarms=0, months=6))


@pytest.mark.parametrize("kwargs", [{"labels_per_window": -1}, {"seconds_per_label": float("nan")},
                                    {"hourly_rate": "50"}])
def test_bad_numbers_say_what_to_pass(kwargs):
    with pytest.raises(ConfigError, match="Fix: pass"):
        labelling_cost(**{"labels_per_window": 10, "seconds_per_label": 5, "hourly_rate": 50, **kwargs})
    with pytest.raises(ConfigError, match="cadence"):
        retraining_cost(train_hours=1, price_per_hour=1, engineer_hours=1, hourly_rate=1, every_months=0)
