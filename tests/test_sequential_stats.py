"""The asymptotic confidence sequence (kit.stats.sequential) against an independent derivation and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats as sps

from kit.columns import Col
from kit.errors import ConfigError
from kit.stats.sequential import (ConfidenceSequence, Settled, boundary, confidence_sequence, rho_for, sequence_path,
                                  settle, simulate_noninferiority)


@pytest.mark.parametrize("t,alpha,planned", [(40, 0.05, 400), (200, 0.025, 400), (1000, 0.1, 100)])
def test_the_boundary_is_where_robbins_normal_mixture_reaches_one_over_alpha(t: int, alpha: float,
                                                                            planned: int) -> None:
    # Independent reference: the boundary of Waudby-Smith et al. (2024, Thm 2.2) is the level-crossing of
    # Robbins' normal mixture martingale  M_t(S) = ∫ exp(λS − λ²t/2) dN(0, ρ²)(λ)  at 1/α (Ville's inequality),
    # for a unit-variance sum S_t. Integrate the mixture numerically with scipy at S = t · boundary: it is 1/α.
    rho = rho_for(planned, alpha=alpha)
    s = t * float(boundary(t, alpha=alpha, rho=rho))
    mixture, _ = integrate.quad(lambda lam: math.exp(lam * s - lam * lam * t / 2) * sps.norm.pdf(lam, scale=rho),
                                -np.inf, np.inf, epsabs=0, epsrel=1e-10)
    assert mixture == pytest.approx(1 / alpha, rel=1e-6)


# Reference values from the authors' package: confseq 0.0.11 (PyPI sdist, Howard & Waudby-Smith),
# confseq::normal_mixture_bound(v=t, alpha, v_opt=t*, alpha_opt=alpha, is_one_sided=false) from its C++ header
# src/confseq/uniform_boundaries.h, compiled with g++ 12 and printed with %.12f (the package's own pybind11 2.6
# build does not compile on Python 3.11). It bounds a unit-variance sum S_t; the kit's boundary is S_t / t.
CONFSEQ = [(40, 0.05, 400, 24.381506292683), (200, 0.025, 400, 47.006595336434), (1000, 0.1, 100, 94.377439793876),
           (80, 0.05, 200, 27.939929582709), (400, 0.05, 400, 60.704179807525)]


@pytest.mark.parametrize("t,alpha,planned,bound", CONFSEQ)
def test_the_boundary_and_rho_match_the_authors_confseq_package(t: int, alpha: float, planned: int,
                                                                 bound: float) -> None:
    assert t * float(boundary(t, alpha=alpha, rho=rho_for(planned, alpha=alpha))) == pytest.approx(bound, rel=1e-10)


def test_rho_makes_the_sequence_nearly_tightest_at_the_planned_size() -> None:
    # independent check: minimise the boundary at t* over rho with scipy; the closed form is within 1 % of it
    best = optimize.minimize_scalar(lambda r: float(boundary(400, alpha=0.05, rho=r)), bounds=(1e-3, 5),
                                    method="bounded")
    assert float(boundary(400, alpha=0.05, rho=rho_for(400, alpha=0.05))) == pytest.approx(best.fun, rel=0.01)


def test_an_interval_is_the_mean_plus_minus_the_shrunk_sd_times_the_boundary() -> None:
    x = np.array([1.0, 0.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0] * 10)
    cs = confidence_sequence(x, alpha=0.05, planned_n=200)
    sd = math.sqrt((((x - x.mean()) ** 2).sum() + 1.0) / (x.size + 1))  # one pseudo-item of variance (2/2)²
    half = sd * math.sqrt(2 * (80 * cs.rho ** 2 + 1) / (80 ** 2 * cs.rho ** 2)
                          * math.log(math.sqrt(80 * cs.rho ** 2 + 1) / 0.05))
    assert (cs.n, cs.estimate) == (80, pytest.approx(0.375))
    assert (cs.low, cs.high) == (pytest.approx(0.375 - half), pytest.approx(0.375 + half))
    path = sequence_path(x, alpha=0.05, planned_n=200, looks=[40, 80])
    assert path[Col.CS_LOW].iloc[-1] == pytest.approx(cs.low)
    assert path[Col.N].tolist() == [40, 80]


def test_agreeing_on_every_item_never_gives_a_zero_width_interval() -> None:
    cs = confidence_sequence(np.zeros(40), alpha=0.05, planned_n=400)
    assert cs.estimate == 0.0 and cs.low < -0.05 and cs.high > 0.05
    assert settle(cs, threshold=-0.02) is Settled.OPEN


def test_settle_reads_one_side_per_conclusion() -> None:
    cs = ConfidenceSequence(n=80, estimate=0.5, low=0.3, high=0.7, alpha=0.05, rho=0.1)
    assert settle(cs, threshold=-0.02) is Settled.PASSES
    assert settle(cs, threshold=0.8) is Settled.FAILS
    assert settle(cs, threshold=0.5) is Settled.OPEN
    assert settle(cs, threshold=0.8, higher_is_better=False) is Settled.PASSES   # a share shown below 0.8
    assert settle(cs, threshold=0.05, higher_is_better=False) is Settled.FAILS


def test_the_sequence_covers_the_mean_at_every_look_in_at_least_1_minus_alpha_of_runs() -> None:
    # property: paired right/wrong differences (p10 = 0.10, p01 = 0.15), looks every 40 items up to 400.
    # Always-valid: the true mean stays inside the interval at *every* look in ≥ 95 % of runs. The fixed-sample
    # 95 % normal interval checked at the same ten looks misses far more often (the optional-stopping problem).
    rng = np.random.default_rng(7)
    looks = np.arange(40, 401, 40)
    truth, runs, missed, naive_missed = 0.10 - 0.15, 600, 0, 0
    for _ in range(runs):
        x = rng.choice([1.0, -1.0, 0.0], size=400, p=[0.10, 0.15, 0.75])
        path = sequence_path(x, alpha=0.05, planned_n=400, looks=looks)
        missed += bool(((path[Col.CS_LOW] > truth) | (path[Col.CS_HIGH] < truth)).any())
        m = np.cumsum(x)[looks - 1] / looks
        se = np.array([x[:n].std(ddof=1) for n in looks]) / np.sqrt(looks)
        naive_missed += bool((np.abs(m - truth) > 1.96 * se).any())
    assert missed / runs <= 0.05
    assert naive_missed / runs > 0.10


@pytest.mark.parametrize("values,fix", [([0.1, float("nan")], "count an error"), ([2.0], "declared range"),
                                        ([], "at least one")])
def test_bad_values_are_a_clear_error(values: list[float], fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        confidence_sequence(values)


def test_a_bad_planned_size_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="planned number of items"):
        rho_for(0)


def test_the_simulated_stop_is_the_stop_of_each_run_looked_at_one_by_one() -> None:
    # the vectorised simulation against the same draws run one at a time through sequence_path
    p10, p01, runs = 0.15, 0.05, 60
    plan = simulate_noninferiority(p10=p10, p01=p01, round_items=40, max_items=200, runs=runs, seed=3)
    d = np.random.default_rng(3).choice([1.0, -1.0, 0.0], size=(runs, 200), p=[p10, p01, 1 - p10 - p01])
    stops, passed = [], 0
    for row in d:
        path = sequence_path(row, alpha=0.05, planned_n=200, looks=[40, 80, 120, 160, 200])
        settled = [settle(ConfidenceSequence(int(n), e, lo, hi, 0.05, 0.0), threshold=-0.02)
                   for n, e, lo, hi in path[[Col.N, Col.ESTIMATE, Col.CS_LOW, Col.CS_HIGH]].itertuples(index=False)]
        first = next((i for i, s in enumerate(settled) if s.settled), None)
        stops.append(200 if first is None else 40 * (first + 1))
        passed += first is not None and settled[first] is Settled.PASSES
    assert plan.median_items == float(np.median(stops)) and plan.passes_share == passed / runs
    assert plan.runs == runs and 0 < plan.settled_share <= 1
