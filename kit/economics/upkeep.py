"""The cost of staying right: labelling fresh items every window, and retraining a fine-tune at a cadence.

A verdict is true of the traffic it was measured on. Keeping it true costs people's time and machine hours
that a one-off comparison does not show: someone labels a sample of each window so the monitor
(:mod:`kit.monitor`) can re-test the quality questions, and a LoRA is retrained when the inputs drift. Both are
typed here so the costs stage can add them to an option's monthly cost, with the assumptions in words.

* **Labelling**: labels per window × seconds per label ÷ 3600 × the hourly rate, times the windows a month
  (a monthly window: 1; weekly: about 4.35).
* **Retraining**: (the fine-tune's measured hours × the training machine's price per hour + engineer hours per
  retraining × the hourly rate) × retrainings a month (a cadence of once every ``every_months`` months).

>>> labelling_cost(labels_per_window=200, seconds_per_label=20, hourly_rate=60).monthly_usd
66.66666666666667
>>> retraining_cost(train_hours=0.5, price_per_hour=2.0, engineer_hours=4, hourly_rate=100, every_months=3).monthly_usd
133.66666666666666
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kit.errors import ConfigError

DAYS_PER_MONTH = 365.25 / 12
WHERE = "kit.economics.upkeep"


def _check(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name}={value!r} is not a number of at least 0", where=WHERE,
                              fix=f"pass {name} as a finite number >= 0")


@dataclass(frozen=True)
class UpkeepCost:
    """One recurring cost of keeping a verdict true: USD a month, and what it assumed in words."""

    what: str
    monthly_usd: float
    basis: str


def labelling_cost(*, labels_per_window: float, seconds_per_label: float, hourly_rate: float,
                   windows_per_month: float = 1.0, measured: bool = False) -> UpkeepCost:
    """Labelling a fresh random sample each window so the monitor can re-test correctness.

    ``seconds_per_label``: measured by the labelling loop when it has data (``measured=True`` says so in the
    basis), else your estimate. ``windows_per_month``: 1 for monthly windows, 30.4 / 7 for weekly ones.

    >>> labelling_cost(labels_per_window=100, seconds_per_label=36, hourly_rate=50).basis
    '100 labels a window × 36 s a label (assumed) at $50/h, 1 window a month'
    """
    _check(labels_per_window=labels_per_window, seconds_per_label=seconds_per_label, hourly_rate=hourly_rate,
           windows_per_month=windows_per_month)
    hours = labels_per_window * seconds_per_label / 3600.0 * windows_per_month
    windows = f"{windows_per_month:g} window{'s' if windows_per_month != 1 else ''} a month"
    basis = (f"{labels_per_window:g} labels a window × {seconds_per_label:g} s a label "
             f"({'measured by the labelling loop' if measured else 'assumed'}) at ${hourly_rate:g}/h, {windows}")
    return UpkeepCost(what="labelling", monthly_usd=hours * hourly_rate, basis=basis)


def retraining_cost(*, train_hours: float, price_per_hour: float, engineer_hours: float, hourly_rate: float,
                    every_months: float) -> UpkeepCost:
    """Retraining a fine-tune once every ``every_months`` months: the fine-tune's measured training hours on its
    machine, plus the engineer hours each retraining takes (data, checks, deployment).

    >>> retraining_cost(train_hours=0.1, price_per_hour=1.0, engineer_hours=2, hourly_rate=100,
    ...                 every_months=1).basis
    'every 1 month: 0.1 h of training at $1/h + 2 engineer hours at $100/h'
    """
    _check(train_hours=train_hours, price_per_hour=price_per_hour, engineer_hours=engineer_hours,
           hourly_rate=hourly_rate)
    if isinstance(every_months, bool) or not isinstance(every_months, (int, float)) or not every_months > 0:
        raise ConfigError(f"every_months={every_months!r} is not a cadence", where=WHERE,
                          fix="pass how many months pass between retrainings, above 0 (e.g. every_months=3)")
    each = train_hours * price_per_hour + engineer_hours * hourly_rate
    when = (f"every {every_months:g} month{'s' if every_months != 1 else ''}" if math.isfinite(every_months)
            else "never so far (no alarm asked for it)")
    basis = (f"{when}: {train_hours:.3g} h of training at ${price_per_hour:g}/h + {engineer_hours:g} engineer hours "
             f"at ${hourly_rate:g}/h")
    return UpkeepCost(what="retraining", monthly_usd=each / every_months, basis=basis)


def cadence_from_alarms(*, alarms: int, months: float) -> float:
    """The retraining cadence the monitor's alarms imply: months observed per "retrain" alarm (``inf`` when
    none fired yet — retraining is then not forced by the data).

    >>> cadence_from_alarms(alarms=2, months=12)
    6.0
    """
    _check(alarms=alarms, months=months)
    return math.inf if alarms == 0 else months / alarms
