"""Always-valid confidence sequences for a mean of bounded per-item values, for runs that stop when a verdict is
settled.

A fixed-sample interval is valid at one planned sample size only: testing it after every round of items and
stopping at the first "significant" look inflates the false-positive rate well above alpha. A *confidence
sequence* holds at every sample size at once — P(the mean lies in every interval of the sequence) >= 1 - alpha —
so a run may look after every item or round and stop whenever a question is settled.

The kit uses the **betting confidence sequence** of Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", *JRSS-B* 86(1), 2024. Values ``x`` in a known range ``[lo, hi]`` are rescaled to
``z`` in [0, 1]. For every candidate mean ``m`` on a grid of ``GRID + 1`` points, two gamblers bet that the mean is
above (``+``) or below (``-``) ``m``; their wealth (the *capital process*) is a nonnegative martingale when ``m``
is the true mean::

    K+_t(m) = prod_{i<=t} (1 + lam+_i(m) (z_i - mu_i(m)))        K-_t(m) = prod_{i<=t} (1 - lam-_i(m) (z_i - mu_i(m)))

and, by Ville's inequality, ``{m : max(K+_t(m), K-_t(m)) < 2 / alpha}`` is a ``1 - alpha`` confidence sequence
(the *hedged* capital process, theta = 1/2; its running intersection is taken). It is
valid in finite samples for any bounded values — no normal approximation, so no variance collapse near 0 and 1:
0 slow items of 40 cannot show "fewer than 5 % are slow" (an exact binomial test needs 59).

The bets are the paper's *predictable plug-in*, with a regularised running variance
``s2_t = (1/4 + sum_{i<=t} (z_i - zbar_i)^2) / (t + 1)``, ``zbar_i = (1/2 + sum_{j<=i} z_j) / (i + 1)``,
``s2_0 = 1/4``::

    lam_t = sqrt( 2 log(2/alpha) / (s2_{t-1} * min(t log(1 + t), planned_n)) )

truncated at ``c / mu_t(m)`` (``+``) and ``c / (1 - mu_t(m))`` (``-``). Two kit choices, both keep the
martingale property (any predictable bet does) and were measured while choosing them:

* ``min(t log(1 + t), planned_n)``: the paper's ``t log(1 + t)`` schedule early (tight at 10–40 items), held at
  the planned size after (tighter there: the paper's fixed-n bet). Without ``planned_n`` the pure schedule.
* each gambler splits its wealth between two truncations, ``c = 1/2`` (the paper's default) and ``c = 0.95``
  (the paper's *diversified* bets): ``c = 1/2`` alone needs 146 clean items to show a share below
  5 %, the mixture 90; on paired right/wrong differences (14 % discordant, 200 runs) the mean width is
  0.58 / 0.39 / 0.24 / 0.11 at n = 20 / 40 / 100 / 400 against 0.64 / 0.39 / 0.22 / 0.10 with ``c = 1/2`` alone.

**Without replacement** (``population=N``): labels drawn one at a time, uniformly without replacement, from a
finite set of ``N`` items (the paper's without-replacement sequences): the bet is on the mean of the items
*not yet drawn*,
``mu_t(m) = (N m - sum_{i<t} z_i) / (N - t + 1)``; a candidate whose ``mu_t`` leaves [0, 1] is impossible, and
the interval is intersected with what the draws prove (the *logical* bounds). With every item drawn the interval
is the population mean itself.

The kit reads each side of the two-sided sequence at alpha for a one-sided conclusion (a lower bound above a
threshold settles "passes", an upper bound below it "fails"): each one-sided error is at most alpha, and at
most alpha / 2 up to the grid's rounding (the bounds are widened by one grid step, conservatively).

The values must arrive in the order they were drawn (the bets use only the past); pass the same
``planned_n`` at every look of a run. Reference: ``tests/test_sequential_stats.py`` checks the capital and the
bounds against the authors' ``confseq`` package; ``bench/bench_sequential.py`` measures error rates.

>>> cs = confidence_sequence([0.0, 1.0] * 50, alpha=0.05, planned_n=100, lo=0, hi=1)
>>> round(cs.estimate, 2), round(cs.low, 3), round(cs.high, 3)
(0.5, 0.34, 0.65)
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

METHOD = ("betting confidence sequence (hedged capital, predictable plug-in bets; Waudby-Smith & Ramdas, "
          "JRSS-B 2024)")
GRID = 1000  # candidate means on [0, 1] (the rescaled range): bounds are exact to one part in GRID, widened
TRUNCATIONS = (0.5, 0.95)  # each gambler's wealth split evenly between these bet caps (diversified bets)
_CHUNK_CELLS = 4_000_000  # grid cells (runs x candidates x items) per vectorised block: ~32 MB of floats


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
    """The sequence at one look: ``n`` values seen, their mean, and the always-valid interval for the mean
    (``population``: the finite population the values were drawn from without replacement, or None)."""

    n: int
    estimate: float
    low: float
    high: float
    alpha: float
    population: int | None = None


def _check_planned(planned_n: Any, where: str) -> int | None:
    if planned_n is None:
        return None
    if isinstance(planned_n, bool) or not isinstance(planned_n, (int, np.integer)) or planned_n < 1:
        raise ConfigError(f"planned_n={planned_n!r} is not a number of items", where=where,
                          fix="pass the planned number of items, at least 1 (e.g. planned_n=400), or None")
    return int(planned_n)


def _checked(values: Any, lo: float, hi: float, where: str, *, batch: bool = False) -> np.ndarray:
    if not hi > lo:
        raise ConfigError(f"lo={lo:g} is not below hi={hi:g}", where=where, fix="pass the values' range, lo < hi")
    x = np.asarray(values, dtype=float)
    x = np.atleast_2d(x) if batch else x.ravel()
    if x.size == 0:
        raise ConfigError("no values", where=where, fix="pass at least one per-item value")
    if not np.isfinite(x).all():
        raise ConfigError(f"{int((~np.isfinite(x)).sum())} values are missing or infinite", where=where,
                          fix="count an error or an unparseable answer as a score of 0, never leave it out")
    if x.min() < lo - 1e-12 or x.max() > hi + 1e-12:
        raise ConfigError(f"values outside [{lo:g}, {hi:g}] (from {x.min():g} to {x.max():g})", where=where,
                          fix="pass per-item scores or differences of scores in the declared range (lo=, hi=)")
    return x


def _check_population(population: Any, n: int, where: str) -> int | None:
    if population is None:
        return None
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 1:
        raise ConfigError(f"population={population!r} is not a number of items", where=where,
                          fix="pass the number of items the values were drawn from, or None (with replacement)")
    if n > population:
        raise ConfigError(f"{n} values drawn from a population of {population} items", where=where,
                          fix="without replacement a population of N items gives at most N values")
    return int(population)


def _bets(z: np.ndarray, *, alpha: float, planned_n: int | None) -> np.ndarray:
    """The predictable plug-in bets ``lam_t`` (before truncation), one per value; ``z``: runs x items."""
    t = np.arange(1, z.shape[1] + 1, dtype=float)
    zbar = np.minimum((0.5 + np.cumsum(z, axis=1)) / (t + 1.0), 1.0)
    s2 = (0.25 + np.cumsum((z - zbar) ** 2, axis=1)) / (t + 1.0)
    s2_prev = np.concatenate([np.full((z.shape[0], 1), 0.25), s2[:, :-1]], axis=1)
    horizon = t * np.log1p(t)
    if planned_n is not None:
        horizon = np.minimum(horizon, float(planned_n))
    return np.sqrt(2.0 * math.log(2.0 / alpha) / (s2_prev * horizon))


def _block_bounds(z: np.ndarray, *, alpha: float, planned_n: int | None, population: int | None, grid: int,
                  truncations: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Raw (not yet intersected) bounds on [0, 1] for a block of runs: runs x items."""
    runs, n = z.shape
    m = np.linspace(0.0, 1.0, grid + 1)[None, :, None]  # 1 x G x 1
    lam = _bets(z, alpha=alpha, planned_n=planned_n)[:, None, :]  # R x 1 x T
    if population is None:
        mu = np.broadcast_to(m, (1, grid + 1, n))
        impossible = np.zeros((1, grid + 1, n), dtype=bool)
    else:
        t = np.arange(1, n + 1, dtype=float)
        before = np.concatenate([np.zeros((runs, 1)), np.cumsum(z, axis=1)[:, :-1]], axis=1)[:, None, :]
        mu = (population * m - before) / (population - t + 1.0)
        impossible = np.logical_or.accumulate((mu < -1e-12) | (mu > 1 + 1e-12), axis=2)
        mu = np.clip(mu, 0.0, 1.0)
    dev = (z[:, None, :] - mu).astype(np.float32)  # R x G x T; single precision: half the memory traffic
    lam, mu = lam.astype(np.float32), mu.astype(np.float32)
    up = np.zeros(dev.shape, dtype=np.float32)
    down = np.zeros(dev.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for c in truncations:  # each gambler's wealth split evenly across the bet caps (diversified)
            c32 = np.float32(c)
            up += np.cumprod(1 + np.minimum(lam, c32 / mu) * dev, axis=2)
            down += np.cumprod(1 - np.minimum(lam, c32 / (1 - mu)) * dev, axis=2)
    reject = (np.maximum(up, down) >= len(truncations) * 2.0 / alpha) | impossible  # max(K+, K-) / 2 >= 1 / alpha
    keep = ~reject
    grid_m = m[0, :, 0]
    any_kept = keep.any(axis=1)
    low = np.where(any_kept, grid_m[keep.argmax(axis=1)] - 1.0 / grid, 0.0)
    high = np.where(any_kept, grid_m[grid - keep[:, ::-1, :].argmax(axis=1)] + 1.0 / grid, 1.0)
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def bounds_path(values: Any, *, alpha: float = 0.05, planned_n: int | None = None, lo: float = -1.0,
                hi: float = 1.0, population: int | None = None, grid: int = GRID,
                truncations: tuple[float, ...] = TRUNCATIONS) -> tuple[np.ndarray, np.ndarray]:
    """The sequence's lower and upper bounds after every value, in the values' units: ``values`` is one run
    (a 1-d array) or a batch of runs (runs x items, vectorised, for simulations); the bounds have its shape.
    The running intersection: each interval lies inside the ones before it. ``truncations``: the bet caps
    ``c`` each gambler splits its wealth across (``(0.5,)``: the authors' ``hedged_cs`` default).

    >>> low, high = bounds_path([0.0] * 100, lo=0, hi=1)
    >>> int(np.argmax(high < 0.05)) + 1   # the first n at which 0 of n shows a share below 5 %
    90
    """
    where = "kit.stats.bounds_path"
    alpha = check_level(alpha, "alpha", where=where)
    if not truncations or not all(0 < c < 1 for c in truncations) or grid < 2:
        raise ConfigError(f"truncations={truncations!r}, grid={grid!r}", where=where,
                          fix="bet caps strictly between 0 and 1 (e.g. (0.5,)) and a grid of at least 2 points")
    planned = _check_planned(planned_n, where)
    one = np.asarray(values).ndim <= 1
    x = _checked(values, lo, hi, where, batch=True)
    pop = _check_population(population, x.shape[1], where)
    z = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    per_block = max(1, _CHUNK_CELLS // ((grid + 1) * z.shape[1]))
    lows, highs = [], []
    for start in range(0, z.shape[0], per_block):
        low, high = _block_bounds(z[start:start + per_block], alpha=alpha, planned_n=planned, population=pop,
                                  grid=grid, truncations=tuple(truncations))
        lows.append(low)
        highs.append(high)
    low, high = np.concatenate(lows), np.concatenate(highs)
    low_ri, high_ri = np.maximum.accumulate(low, axis=1), np.minimum.accumulate(high, axis=1)
    empty = low_ri > high_ri  # only where the sequence already missed (probability <= alpha): keep the raw one
    low, high = np.where(empty, low, low_ri), np.where(empty, high, high_ri)
    if pop is not None:  # what the draws prove whatever the rest holds: certain, so it has the last word
        t = np.arange(1, z.shape[1] + 1, dtype=float)
        seen = np.cumsum(z, axis=1)
        least, most = seen / pop, (seen + pop - t) / pop
        low, high = np.clip(low, least, most), np.clip(high, least, most)
    low, high = lo + (hi - lo) * low, lo + (hi - lo) * high
    return (low[0], high[0]) if one else (low, high)


def confidence_sequence(values: Any, *, alpha: float = 0.05, planned_n: int | None = None, lo: float = -1.0,
                        hi: float = 1.0, population: int | None = None) -> ConfidenceSequence:
    """The always-valid interval for the mean of ``values`` (per-item values in ``[lo, hi]``, in the order they
    were drawn), at the look after all of them: valid however many looks came before and whenever the run
    stops. ``planned_n``: the planned number of items (keep it fixed for a whole run; None: the paper's schedule).
    ``population``: the values are a sample drawn without replacement from this many items, and the interval is
    for the mean of those items.

    >>> cs = confidence_sequence([1.0] * 40, alpha=0.05, planned_n=400, lo=0.0, hi=1.0)
    >>> cs.estimate, round(cs.low, 3), cs.high
    (1.0, 0.894, 1.0)
    >>> confidence_sequence([0.0] * 40, lo=0, hi=1).high > 0.05   # 0 slow of 40: "below 5 %" is not shown
    True
    """
    where = "kit.stats.confidence_sequence"
    x = _checked(values, lo, hi, where)
    low, high = bounds_path(x, alpha=alpha, planned_n=planned_n, lo=lo, hi=hi, population=population)
    return ConfidenceSequence(n=int(x.size), estimate=float(x.mean()), low=float(low[-1]), high=float(high[-1]),
                              alpha=float(alpha), population=population)


def sequence_path(values: Any, *, alpha: float = 0.05, planned_n: int | None = None, lo: float = -1.0,
                  hi: float = 1.0, looks: Any = None, population: int | None = None) -> pd.DataFrame:
    """The sequence at every look (``looks``: sample sizes, default every value): columns n, estimate, cs_low,
    cs_high.

    >>> sequence_path([0.0, 1.0] * 50, looks=[40, 100], planned_n=100)[Col.CS_LOW].round(3).tolist()
    [0.258, 0.36]
    """
    where = "kit.stats.sequence_path"
    x = _checked(values, lo, hi, where)
    low, high = bounds_path(x, alpha=alpha, planned_n=planned_n, lo=lo, hi=hi, population=population)
    idx = np.arange(x.size) if looks is None else np.asarray(looks, dtype=int) - 1
    if idx.size and (idx.min() < 0 or idx.max() >= x.size):
        raise ConfigError(f"looks must lie in 1..{x.size}", where=where, fix="pass sample sizes of the values given")
    mean = np.cumsum(x) / np.arange(1, x.size + 1)
    return pd.DataFrame({Col.N: (idx + 1).astype(int), Col.ESTIMATE: mean[idx], Col.CS_LOW: low[idx],
                         Col.CS_HIGH: high[idx]})


def settle(cs: ConfidenceSequence, *, threshold: float, higher_is_better: bool = True) -> Settled:
    """Whether the mean is shown above ``threshold`` (passes), shown below it (fails), or neither yet (open).
    With ``higher_is_better=False`` (a share of slow items against 5%) passing means shown *below*.

    Non-inferiority at a margin: the paired difference's sequence against ``threshold=-margin``.

    >>> settle(ConfidenceSequence(80, -0.1, -0.2, -0.03, 0.05), threshold=-0.02)
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

    >>> simulate_noninferiority(p10=0.5, p01=0.0, round_items=40, max_items=200, runs=100).median_items
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
    low, high = bounds_path(d, alpha=alpha, planned_n=max_items, lo=-1.0, hi=1.0)
    low, high = low[:, looks - 1], high[:, looks - 1]
    settled = (low > -margin) | (high < -margin)
    first = np.where(settled.any(axis=1), settled.argmax(axis=1), len(looks) - 1)
    stop_items = looks[first].astype(float)
    done = settled.any(axis=1)
    passes = low[np.arange(runs), first] > -margin
    return SequentialPlan(median_items=float(np.median(stop_items)), settled_share=float(done.mean()),
                          passes_share=float((passes & done).mean()), runs=runs)
