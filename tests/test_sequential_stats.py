"""The betting confidence sequence (kit.stats.sequential) against the authors' package, exact binomial tests and
by exact enumeration and simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from kit.columns import Col
from kit.errors import ConfigError
from kit.stats.sequential import (ConfidenceSequence, Settled, bounds_path, confidence_sequence, sequence_path,
                                  settle, simulate_noninferiority)

# Reference values from the authors' package: confseq (github.com/gostevehoward/confseq at 70b1ef3, Oct 2024,
# the newest snapshot; the PyPI 0.0.11 build does not compile on Python 3.11), src/confseq/betting.py imported as
# pure Python (its matplotlib/multiprocess imports stubbed, numpy 2's np.float_ aliased), bounds printed to 3
# decimals (its grid of 1,000 breaks gives multiples of 0.001):
#   HEDGED: hedged_cs(x, alpha=0.05, breaks=1000, running_intersection=True)  — its defaults: theta 1/2, bets
#           lambda_predmix_eb(alpha=alpha/2) (the t log(1+t) schedule), truncation 1/2;
#   HEDGED_WOR: the same with N=50 (sampling without replacement);
#   DIVERSIFIED: betting_cs(x, lambdas_fns_positive=[min(lam_t, c / mu_t(m)) for c in (0.5, 0.95)],
#           lambdas_fns_negative=[min(lam_t, c / (1 - mu_t(m)))...], theta=1/2, convex_comb=False, trunc_scale=1,
#           breaks=1000, running_intersection=True), lam_t = sqrt(2 log(2/alpha) / (s2_{t-1} min(t log(1+t), n*)))
#           with confseq's own regularised variance — the kit's bets, written out in the reference script.
XA = [1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1,
      1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
XB = [v / 2 for v in [1, 1, 1, 2, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 0, 1, 1, 1, 0, 2, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1,
                      0, 1, 0, 2, 1, 0, 1]]
HEDGED = {10: (0.314, 0.981), 20: (0.37, 0.944), 40: (0.596, 0.944), 60: (0.657, 0.935)}
HEDGED_WOR = {5: (0.16, 0.876), 10: (0.214, 0.695), 20: (0.238, 0.561), 40: (0.283, 0.445)}
DIVERSIFIED = {10: (0.487, 0.962), 20: (0.487, 0.929), 40: (0.62, 0.929), 60: (0.678, 0.922)}  # alpha 0.1, n* 40
DIVERSIFIED_WOR = {5: (0.204, 0.863), 10: (0.243, 0.713), 20: (0.25, 0.57), 40: (0.288, 0.439)}  # N = n* = 50


def _at(low: np.ndarray, high: np.ndarray, looks: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    return {n: (round(float(low[n - 1]), 3), round(float(high[n - 1]), 3)) for n in looks}


def test_the_hedged_sequence_matches_the_authors_hedged_cs() -> None:
    low, high = bounds_path(XA, alpha=0.05, lo=0, hi=1, truncations=(0.5,))
    assert _at(low, high, HEDGED) == HEDGED
    low, high = bounds_path(XB, alpha=0.05, lo=0, hi=1, truncations=(0.5,), population=50)
    assert _at(low, high, HEDGED_WOR) == HEDGED_WOR


def test_the_kits_diversified_bets_match_the_authors_betting_cs() -> None:
    low, high = bounds_path(XA, alpha=0.1, lo=0, hi=1, planned_n=40)
    assert _at(low, high, DIVERSIFIED) == DIVERSIFIED
    low, high = bounds_path(XB, alpha=0.05, lo=0, hi=1, planned_n=50, population=50)
    assert _at(low, high, DIVERSIFIED_WOR) == DIVERSIFIED_WOR


def test_rescaling_the_range_rescales_the_bounds() -> None:
    # a paired difference in [-1, 1] is the [0, 1] sequence of (x + 1) / 2, mapped back
    low01, high01 = bounds_path(XB, lo=0, hi=1, planned_n=50)
    low, high = bounds_path(2 * np.array(XB) - 1, lo=-1, hi=1, planned_n=50)
    assert np.allclose(low, 2 * low01 - 1) and np.allclose(high, 2 * high01 - 1)


@pytest.mark.parametrize("planned_n", [None, 40, 100, 400])
def test_zero_slow_items_of_40_do_not_show_fewer_than_5_percent_slow(planned_n: int | None) -> None:
    # The case: 0 of 40 over the latency target. Exact binomial reference (scipy.stats.binomtest): with a
    # true share of 5 % slow, 0 of 40 happens with probability 0.95^40 = 0.129 > alpha, so "below 5 %" cannot be
    # shown; it takes 59 clean items (0.95^59 = 0.048).
    p40 = sps.binomtest(0, 40, 0.05, alternative="less").pvalue
    assert p40 == pytest.approx(0.95 ** 40) and p40 > 0.05
    assert sps.binomtest(0, 59, 0.05, alternative="less").pvalue < 0.05 < sps.binomtest(0, 58, 0.05,
                                                                                         alternative="less").pvalue
    cs = confidence_sequence(np.zeros(40), alpha=0.05, planned_n=planned_n, lo=0, hi=1)
    assert settle(cs, threshold=0.05, higher_is_better=False) is Settled.OPEN
    low, high = bounds_path(np.zeros(400), alpha=0.05, planned_n=planned_n, lo=0, hi=1)
    first = int(np.argmax(high < 0.05)) + 1
    assert 59 <= first <= 100  # it does settle later, never before the exact test could


def test_no_interval_is_narrower_than_the_exact_binomial_test_allows() -> None:
    # Exact one-sided Clopper-Pearson bounds at alpha (scipy.stats.beta quantiles): 0 of n (or n of n) cannot
    # exclude a share the exact test cannot reject, 1 - alpha^(1/n) (alpha^(1/n)), at any n up to 60.
    n = 60
    low, high = bounds_path(np.array([np.zeros(n), np.ones(n)]), alpha=0.05, lo=0, hi=1, planned_n=n)
    t = np.arange(1, n + 1)
    assert np.allclose(sps.beta.ppf(0.95, 1, t), 1 - 0.05 ** (1 / t))
    assert (high[0] >= sps.beta.ppf(0.95, 1, t)).all() and (low[1] <= sps.beta.ppf(0.05, t, 1)).all()


def test_exact_time_uniform_coverage_by_enumerating_every_sequence() -> None:
    # Every 0/1 sequence of 11 items, weighted by its probability: the chance that the true share leaves the
    # sequence at ANY of the 11 looks is at most alpha (Ville's inequality) — an exact check, no simulation.
    n = 11
    seqs = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    low, high = bounds_path(seqs, alpha=0.05, lo=0, hi=1, planned_n=n)
    k = seqs.sum(axis=1)
    for p in (0.02, 0.05, 0.2, 0.5, 0.9, 0.99):
        missed = ((low > p) | (high < p)).any(axis=1)
        prob = p ** k * (1 - p) ** (n - k)
        assert prob.sum() == pytest.approx(1.0)
        assert float(prob[missed].sum()) <= 0.05, p


def test_the_sequence_covers_the_mean_at_every_item_in_at_least_1_minus_alpha_of_runs() -> None:
    # paired right/wrong differences (p10 = 0.10, p01 = 0.15), looked at after every item up to 200. The
    # fixed-sample 95 % normal interval checked after every item misses far more often (optional stopping).
    rng = np.random.default_rng(7)
    truth, runs, n = 0.10 - 0.15, 300, 200
    d = rng.choice([1.0, -1.0, 0.0], size=(runs, n), p=[0.10, 0.15, 0.75])
    low, high = bounds_path(d, alpha=0.05, planned_n=n, grid=250)
    missed = ((low > truth) | (high < truth)).any(axis=1).mean()
    t = np.arange(1, n + 1)
    mean = np.cumsum(d, axis=1) / t
    sd = np.sqrt(np.maximum(np.cumsum(d * d, axis=1) / t - mean ** 2, 1e-12) * t / np.maximum(t - 1, 1))
    naive = (np.abs(mean - truth)[:, 9:] > 1.96 * sd[:, 9:] / np.sqrt(t[9:])).any(axis=1).mean()
    assert missed <= 0.05 and naive > 0.15


def test_without_replacement_the_sequence_ends_at_the_population_mean_and_covers_it() -> None:
    rng = np.random.default_rng(3)
    population = rng.choice([-1.0, 0.0, 1.0], size=40, p=[0.45, 0.2, 0.35])
    draws = np.array([rng.permutation(population) for _ in range(300)])
    low, high = bounds_path(draws, alpha=0.05, population=40)
    truth = population.mean()
    assert np.allclose(low[:, -1], truth) and np.allclose(high[:, -1], truth)  # all drawn: the mean itself
    assert ((low > truth + 1e-12) | (high < truth - 1e-12)).any(axis=1).mean() <= 0.05
    wr_low, wr_high = bounds_path(draws[:, :30], alpha=0.05)  # the same draws read as with replacement
    assert ((high[:, 29] - low[:, 29]) < (wr_high[:, -1] - wr_low[:, -1])).all()


def test_agreeing_on_every_item_never_gives_a_zero_width_interval() -> None:
    cs = confidence_sequence(np.zeros(40), alpha=0.05, planned_n=400)
    assert cs.estimate == 0.0 and cs.low < -0.05 and cs.high > 0.05
    assert settle(cs, threshold=-0.02) is Settled.OPEN


def test_a_look_is_the_path_at_its_last_value() -> None:
    x = np.array([1.0, 0.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0] * 10)
    cs = confidence_sequence(x, alpha=0.05, planned_n=200)
    path = sequence_path(x, alpha=0.05, planned_n=200, looks=[40, 80])
    assert (cs.n, cs.estimate) == (80, pytest.approx(0.375))
    assert path[Col.N].tolist() == [40, 80] and path[Col.CS_LOW].iloc[-1] == pytest.approx(cs.low)
    assert path[Col.CS_HIGH].iloc[0] >= path[Col.CS_HIGH].iloc[-1]  # the running intersection
    assert cs.low < 0.375 < cs.high


def test_settle_reads_one_side_per_conclusion() -> None:
    cs = ConfidenceSequence(n=80, estimate=0.5, low=0.3, high=0.7, alpha=0.05)
    assert settle(cs, threshold=-0.02) is Settled.PASSES
    assert settle(cs, threshold=0.8) is Settled.FAILS
    assert settle(cs, threshold=0.5) is Settled.OPEN
    assert settle(cs, threshold=0.8, higher_is_better=False) is Settled.PASSES   # a share shown below 0.8
    assert settle(cs, threshold=0.05, higher_is_better=False) is Settled.FAILS


@pytest.mark.parametrize("values,kwargs,fix", [([0.1, float("nan")], {}, "count an error"),
                                               ([2.0], {}, "declared range"), ([], {}, "at least one"),
                                               ([0.1] * 5, {"population": 4}, "at most N values"),
                                               ([0.1], {"planned_n": 0}, "planned number of items"),
                                               ([0.1], {"lo": 1.0, "hi": 0.0}, "lo < hi")])
def test_bad_values_are_a_clear_error(values: list[float], kwargs: dict, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        confidence_sequence(values, **kwargs)


def test_the_simulated_stop_is_the_stop_of_each_run_looked_at_one_by_one() -> None:
    # the vectorised simulation against the same draws run one at a time through sequence_path
    p10, p01, runs = 0.15, 0.05, 30
    plan = simulate_noninferiority(p10=p10, p01=p01, round_items=40, max_items=200, runs=runs, seed=3)
    d = np.random.default_rng(3).choice([1.0, -1.0, 0.0], size=(runs, 200), p=[p10, p01, 1 - p10 - p01])
    stops, passed = [], 0
    for row in d:
        path = sequence_path(row, alpha=0.05, planned_n=200, looks=[40, 80, 120, 160, 200])
        settled = [settle(ConfidenceSequence(int(n), e, lo, hi, 0.05), threshold=-0.02)
                   for n, e, lo, hi in path[[Col.N, Col.ESTIMATE, Col.CS_LOW, Col.CS_HIGH]].itertuples(index=False)]
        first = next((i for i, s in enumerate(settled) if s.settled), None)
        stops.append(200 if first is None else 40 * (first + 1))
        passed += first is not None and settled[first] is Settled.PASSES
    assert plan.median_items == float(np.median(stops)) and plan.passes_share == passed / runs
    assert plan.runs == runs and 0 < plan.settled_share <= 1
