"""Confidence intervals for one arm's accuracy (Wilson score interval).

>>> accuracy_ci([1, 1, 0, 1])[["n", "n_correct", "accuracy"]].to_dict("records")
[{'n': 4, 'n_correct': 3.0, 'accuracy': 0.75}]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.format import pct
from kit.stats._data import as_values, check_level, z_of


def wilson_interval(k: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (k may be fractional: a sum of scores)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = z_of((1 + ci) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_ci(correct: Any, *, ci: float = 0.95) -> pd.DataFrame:
    """Accuracy with its Wilson interval. Columns: n, n_correct, accuracy, ci_low, ci_high, ci_level, method, statement.

    Errors and unparseable answers must be in ``correct`` as False: they are wrong answers.

    >>> round(accuracy_ci([True] * 8 + [False] * 2)["ci_low"].item(), 4)
    0.4902
    """
    ci = check_level(ci, "ci", where="kit.stats.accuracy_ci")
    x = as_values(correct, name="correct", where="kit.stats.accuracy_ci")
    n, k = x.size, float(x.sum())
    lo, hi = wilson_interval(k, n, ci)
    words = (f"Accuracy {pct(k / n)} on {n} items ({100 * ci:g}% Wilson interval {pct(lo)} to {pct(hi)}), "
             "assuming the items are independent and represent the traffic the decision is about.")
    return pd.DataFrame([{Col.N: n, "n_correct": k, Col.ACCURACY: k / n, Col.CI_LOW: lo, Col.CI_HIGH: hi,
                          Col.CI_LEVEL: ci, Col.METHOD: "wilson", Col.STATEMENT: words}])


def mean_ci(values: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-item values in [0, 1] and a Wilson interval treating the mean like a proportion.

    For right/wrong values this is the Wilson interval; for fractional scores (or per-item means
    over epochs) it is conservative, since a bounded score varies no more than a 0/1 one.
    """
    n = values.size
    mean = float(values.mean())
    lo, hi = wilson_interval(mean * n, n, ci)
    return mean, lo, hi
