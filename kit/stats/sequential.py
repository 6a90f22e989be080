"""Always-valid confidence sequences for a mean of per-item values, for runs that stop when a verdict is settled.

A fixed-sample interval is valid at one planned sample size only: testing it after every round of items and
stopping at the first "significant" look inflates the false-positive rate well above alpha. A *confidence
sequence* holds at every sample size at once — P(the mean lies in every interval of the sequence) >= 1 - alpha —
so a run may look after every round and stop whenever a question is settled.

The kit uses the **asymptotic confidence sequence** of Waudby-Smith, Arnold, Wu, Howard & Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences", *Annals of Statistics* 52(6), 2024
(Theorem 2.2, the Robbins normal-mixture boundary with the sample standard deviation plugged in)::

    mean_t ± sigma_t * sqrt( 2 (t rho² + 1) / (t² rho²) * log( sqrt(t rho² + 1) / alpha ) )

with ``rho`` tuned so the sequence is tightest at a planned sample size ``t*``:
rho² = (-2 log alpha + log(-2 log alpha + 1)) / t* (the choice Waudby-Smith et al. recommend, from Howard,
Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", *Annals of
Statistics* 2021).

Why this one: the per-item values here are paired differences of scores in [-1, 1], right/wrong shares and
shares of items over a latency target — all bounded, with 40+ items per look, where the central-limit
approximation is good and the asymptotic sequence is much tighter than the exact bounded ones (a betting
sequence, Waudby-Smith & Ramdas, JRSS-B 2024, would be exact but wider at these sizes and costlier to compute).
Two guards keep it honest on small, discrete samples:

* the kit uses the *two-sided* sequence at ``alpha`` and reads each side alone (a lower bound above a threshold
  settles "passes", an upper bound below it settles "fails"): each one-sided error is then at most alpha,
  conservatively (about alpha / 2 asymptotically);
* ``sigma_t`` is shrunk towards the largest variance the values' range allows by one pseudo-item,
  ``sigma_t² = (sum (x - mean)² + (range / 2)²) / (t + 1)``: a first round in which the two options agree
  on every item (all differences 0) cannot give a zero-width interval. The shrinkage only widens the sequence
  and vanishes as t grows, so the asymptotic guarantee is unchanged.

``bench/bench_sequential.py`` measures the false-positive rate under the null (bench/README.md).

>>> cs = confidence_sequence([0.0, 1.0] * 50, alpha=0.05, planned_n=100)
>>> round(cs.estimate, 2), round(cs.low, 3), round(cs.high, 3)
(0.5, 0.346, 0.654)
>>> settle(cs, threshold=0.2)
<Settled.PASSES: 'passes'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.stats._data import check_level

METHOD = ("asymptotic confidence sequence (Waudby-Smith, Arnold, Wu, Howard & Ramdas, "
          "Annals of Statistics 2024)")


class Settled(StrEnum):
    """Where one question stands after a look: shown to pass, shown to fail, or still open."""

    PASSES = "passes"
    FAILS = "fails"
    OPEN = "open"

    @property
    def settled(self) -> bool:
        return self is not Settled.OPEN


@dataclass(frozen=True)
class ConfidenceSequence:
    """The sequence at one look: ``n`` values seen, their mean, and the always-valid interval."""

    n: int
    estimate: float
    low: float
    high: float
    alpha: float
    rho: float


def rho_for(planned_n: int, *, alpha: float = 0.05) -> float:
    """The mixture's ``rho`` that makes the boundary tightest at ``planned_n`` values (Howard et al. 2021).

    >>> round(rho_for(400, alpha=0.05), 4)
    0.1409
    """
    alpha = check_level(alpha, "alpha", where="kit.stats.rho_for")
    if isinstance(planned_n, bool) or not isinstance(planned_n, (int, np.integer)) or planned_n < 1:
        raise ConfigError(f"planned_n={planned_n!r} is not a number of items", where="kit.stats.rho_for",
                          fix="pass the planned number of items, at least 1 (e.g. planned_n=400)")
    a = -2.0 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1.0)) / planned_n)


def boundary(n: Any, *, alpha: float, rho: float) -> np.ndarray:
    """The half-width of the sequence at ``n`` values, per unit of standard deviation (n may be an array)."""
    t = np.asarray(n, dtype=float)
    r2 = rho * rho
    return np.sqrt(2.0 * (t * r2 + 1.0) / (t * t * r2) * np.log(np.sqrt(t * r2 + 1.0) / alpha))


def _checked(values: Any, lo: float, hi: float, where: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ConfigError("no values", where=where, fix="pass at least one per-item value")
    if not np.isfinite(x).all():
        raise ConfigError(f"{int((~np.isfinite(x)).sum())} values are missing or infinite", where=where,
                          fix="count an error or an unparseable answer as a score of 0, never leave it out")
    if x.min() < lo - 1e-12 or x.max() > hi + 1e-12:
        raise ConfigError(f"values outside [{lo:g}, {hi:g}] (from {x.min():g} to {x.max():g})", where=where,
                          fix="pass per-item scores or differences of scores in the declared range (lo=, hi=)")
    return x


def confidence_sequence(values: Any, *, alpha: float = 0.05, planned_n: int | None = None, lo: float = -1.0,
                        hi: float = 1.0) -> ConfidenceSequence:
    """The always-valid interval for the mean of ``values`` (per-item values in ``[lo, hi]``), at the look after
    all of them: valid however many looks came before and whenever the run stops. ``planned_n`` (default: the
    number of values) is where the sequence is tuned to be tightest; keep it fixed for a whole run.

    >>> cs = confidence_sequence([1.0] * 40, alpha=0.05, planned_n=400, lo=0.0, hi=1.0)
    >>> cs.estimate, round(cs.low, 3), cs.high
    (1.0, 0.952, 1.0)
    """
    where = "kit.stats.confidence_sequence"
    alpha = check_level(alpha, "alpha", where=where)
    if not hi > lo:
        raise ConfigError(f"lo={lo:g} is not below hi={hi:g}", where=where, fix="pass the values' range, lo < hi")
    x = _checked(values, lo, hi, where)
    n = int(x.size)
    rho = rho_for(planned_n if planned_n is not None else n, alpha=alpha)
    mean = float(x.mean())
    var = (float(((x - mean) ** 2).sum()) + ((hi - lo) / 2.0) ** 2) / (n + 1)
    half = math.sqrt(var) * float(boundary(n, alpha=alpha, rho=rho))
    return ConfidenceSequence(n=n, estimate=mean, low=max(lo, mean - half), high=min(hi, mean + half), alpha=alpha,
                              rho=rho)


def sequence_path(values: Any, *, alpha: float = 0.05, planned_n: int | None = None, lo: float = -1.0,
                  hi: float = 1.0, looks: Any = None) -> pd.DataFrame:
    """The sequence at every look (``looks``: sample sizes, default every value): columns n, estimate, cs_low,
    cs_high. Vectorised, for simulations.

    >>> sequence_path([0.0, 1.0] * 50, looks=[40, 100], planned_n=100)[Col.CS_LOW].round(3).tolist()
    [0.244, 0.346]
    """
    where = "kit.stats.sequence_path"
    alpha = check_level(alpha, "alpha", where=where)
    x = _checked(values, lo, hi, where)
    t = np.arange(1, x.size + 1, dtype=float)
    csum, csq = np.cumsum(x), np.cumsum(x * x)
    mean = csum / t
    ss = np.maximum(csq - t * mean * mean, 0.0)
    half = np.sqrt((ss + ((hi - lo) / 2.0) ** 2) / (t + 1.0)) * boundary(
        t, alpha=alpha, rho=rho_for(planned_n if planned_n is not None else x.size, alpha=alpha))
    idx = np.arange(x.size) if looks is None else np.asarray(looks, dtype=int) - 1
    if idx.size and (idx.min() < 0 or idx.max() >= x.size):
        raise ConfigError(f"looks must lie in 1..{x.size}", where=where, fix="pass sample sizes of the values given")
    return pd.DataFrame({Col.N: (idx + 1).astype(int), Col.ESTIMATE: mean[idx],
                         Col.CS_LOW: np.maximum(lo, mean[idx] - half[idx]),
                         Col.CS_HIGH: np.minimum(hi, mean[idx] + half[idx])})


def settle(cs: ConfidenceSequence, *, threshold: float, higher_is_better: bool = True) -> Settled:
    """Whether the mean is shown above ``threshold`` (passes), shown below it (fails), or neither yet (open).
    With ``higher_is_better=False`` (a share of slow items against 5%) passing means shown *below*.

    Non-inferiority at a margin: the paired difference's sequence against ``threshold=-margin``.

    >>> settle(ConfidenceSequence(80, -0.1, -0.2, -0.03, 0.05, 0.1), threshold=-0.02)
    <Settled.FAILS: 'fails'>
    """
    above, below = cs.low > threshold, cs.high < threshold
    if not higher_is_better:
        above, below = below, above
    return Settled.PASSES if above else Settled.FAILS if below else Settled.OPEN


@dataclass(frozen=True)
class SequentialPlan:
    """What a sequential non-inferiority run is expected to need, simulated from a discordance: the median items
    at its stop, the share of runs settled before the cap, and the share of those that settle as passing."""

    median_items: float
    settled_share: float
    passes_share: float
    runs: int


def simulate_noninferiority(*, p10: float, p01: float, margin: float = 0.02, alpha: float = 0.05,
                            round_items: int = 40, max_items: int = 400, runs: int = 400,
                            seed: int = 0) -> SequentialPlan:
    """Simulated paired right/wrong runs (``p10``: only the candidate right, ``p01``: only the reference right) in
    rounds of ``round_items`` up to ``max_items``, stopping once the sequence settles non-inferiority at ``margin``
    (passes or fails): how many items such a run needs.

    >>> simulate_noninferiority(p10=0.5, p01=0.0, round_items=40, max_items=400).median_items
    40.0
    """
    where = "kit.stats.simulate_noninferiority"
    alpha = check_level(alpha, "alpha", where=where)
    if not (0 <= p10 <= 1 and 0 <= p01 <= 1 and p10 + p01 <= 1):
        raise ConfigError(f"p10={p10}, p01={p01} are not shares of items", where=where,
                          fix="both in [0, 1] with p10 + p01 <= 1")
    if round_items < 1 or max_items < 1 or runs < 1:
        raise ConfigError("round_items, max_items and runs must be at least 1", where=where,
                          fix="e.g. round_items=40, max_items=400, runs=400")
    rng = np.random.default_rng(seed)
    looks = np.unique(np.minimum(np.arange(round_items, max_items + round_items, round_items), max_items))
    d = rng.choice([1.0, -1.0, 0.0], size=(runs, max_items), p=[p10, p01, 1.0 - p10 - p01])
    t = np.arange(1, max_items + 1, dtype=float)
    mean = np.cumsum(d, axis=1) / t
    ss = np.maximum(np.cumsum(d * d, axis=1) - t * mean * mean, 0.0)
    half = np.sqrt((ss + 1.0) / (t + 1.0)) * boundary(t, alpha=alpha, rho=rho_for(max_items, alpha=alpha))
    low, high = (mean - half)[:, looks - 1], (mean + half)[:, looks - 1]
    settled = (low > -margin) | (high < -margin)
    first = np.where(settled.any(axis=1), settled.argmax(axis=1), len(looks) - 1)
    stop_items = looks[first].astype(float)
    done = settled.any(axis=1)
    passes = low[np.arange(runs), first] > -margin
    return SequentialPlan(median_items=float(np.median(stop_items)), settled_share=float(done.mean()),
                          passes_share=float((passes & done).mean()), runs=runs)
