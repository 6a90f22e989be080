"""PPI++ for a mean (kit.stats.ppi) against ppi-python 0.2.3, the reference implementation of the paper's authors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kit.columns import Col
from kit.errors import ConfigError
from kit.stats import ppi_mean, ppi_mean_difference

ALPHA = 0.05


def _data(seed: int, *, n: int = 60, big_n: int = 600, accuracy: float = 0.7, agree: float = 0.85):
    """Correctness Y of a candidate and a proxy Yhat that equals Y on a share ``agree`` of the items."""
    rng = np.random.default_rng(seed)
    y_all = (rng.random(n + big_n) < accuracy).astype(float)
    flip = rng.random(n + big_n) >= agree
    yhat_all = np.where(flip, 1 - y_all, y_all)
    return y_all[:n], yhat_all[:n], yhat_all[n:]


CASES = [_data(1), _data(2, n=40, big_n=300, accuracy=0.55, agree=0.7), _data(3, n=25, big_n=2000, agree=0.95)]


@pytest.fixture(scope="module")
def reference():
    """ppi-python's estimates and intervals for every case, power-tuned and classic (one numba compile)."""
    ppi_py = pytest.importorskip("ppi_py")
    out = []
    for y, yhat, yhat_u in CASES:
        row = {}
        for lam in (None, 1.0):
            # ppi-python 0.2.3: ppi_mean_pointestimate(Y, Yhat, Yhat_unlabeled, lam=...)
            est = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam)
            # ppi-python 0.2.3: ppi_mean_ci(Y, Yhat, Yhat_unlabeled, alpha=..., lam=...)
            lo, hi = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=ALPHA, lam=lam)
            row[lam] = (float(np.squeeze(est)), float(np.squeeze(lo)), float(np.squeeze(hi)))
        # ppi-python 0.2.3: classical_mean_ci(Y, alpha=...), the labels-only interval
        lo, hi = ppi_py.classical_mean_ci(y, alpha=ALPHA)
        row["classical"] = (float(np.squeeze(lo)), float(np.squeeze(hi)))
        out.append(row)
    return out


@pytest.mark.parametrize("case", range(len(CASES)))
def test_power_tuned_matches_ppi_python(reference, case):
    y, yhat, yhat_u = CASES[case]
    r = ppi_mean(y, yhat, yhat_u, alpha=ALPHA, small_sample=False).iloc[0]
    est, lo, hi = reference[case][None]
    assert r[Col.ESTIMATE] == pytest.approx(est, abs=1e-12)
    assert (r[Col.CI_LOW], r[Col.CI_HIGH]) == pytest.approx((lo, hi), abs=1e-12)
    assert 0 < r[Col.LAMBDA] < 1 and r[Col.METHOD] == "ppi++"
    assert (r[Col.LABELS_ONLY_CI_LOW], r[Col.LABELS_ONLY_CI_HIGH]) == pytest.approx(reference[case]["classical"],
                                                                                    abs=1e-12)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_classic_ppi_matches_ppi_python(reference, case):
    y, yhat, yhat_u = CASES[case]
    r = ppi_mean(y, yhat, yhat_u, alpha=ALPHA, power_tuned=False, small_sample=False).iloc[0]
    est, lo, hi = reference[case][1.0]
    assert r[Col.LAMBDA] == 1.0 and r[Col.METHOD] == "ppi"
    assert r[Col.ESTIMATE] == pytest.approx(est, abs=1e-12)
    assert (r[Col.CI_LOW], r[Col.CI_HIGH]) == pytest.approx((lo, hi), abs=1e-12)


def test_power_tuning_never_widens_much_and_classic_ppi_can():
    """With a poor proxy, classic PPI is wider than the labels alone; PPI++ is not."""
    y, yhat, yhat_u = _data(4, n=50, big_n=500, agree=0.55)
    tuned = ppi_mean(y, yhat, yhat_u).iloc[0]
    classic = ppi_mean(y, yhat, yhat_u, power_tuned=False).iloc[0]
    assert classic[Col.WIDTH_RATIO] > 1.2
    assert tuned[Col.WIDTH_RATIO] < 1.02


def test_a_perfect_proxy_is_worth_many_labels():
    y, yhat, yhat_u = _data(5, n=40, big_n=2000, agree=1.0)
    r = ppi_mean(y, yhat, yhat_u, small_sample=False).iloc[0]
    # lambda* = var(Y on the labels) / ((1 + n/N) var(Yhat on all items)): about 1/(1 + 40/2000), clipped at 1
    assert r[Col.LAMBDA] > 0.9
    assert r[Col.WIDTH_RATIO] < 0.2
    assert r[Col.EFFECTIVE_LABELS] > 25 * 40
    assert r[Col.EFFECTIVE_LABELS] == pytest.approx(40 / r[Col.WIDTH_RATIO] ** 2)
    assert "worth about" in r[Col.STATEMENT] and "40 gold labels" in r[Col.STATEMENT]


def test_a_random_proxy_falls_back_to_the_labels():
    rng = np.random.default_rng(6)
    y = (rng.random(80) < 0.7).astype(float)
    r = ppi_mean(y, rng.random(80) < 0.5, rng.random(800) < 0.5).iloc[0]
    assert r[Col.LAMBDA] < 0.15
    assert r[Col.WIDTH_RATIO] == pytest.approx(1.0, abs=0.03)
    assert r[Col.EFFECTIVE_LABELS] == pytest.approx(80, rel=0.07)
    assert r[Col.ESTIMATE] == pytest.approx(r[Col.LABELS_ONLY], abs=0.02)


def test_a_constant_proxy_gets_lambda_zero_and_the_labels_interval():
    y = np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=float)
    r = ppi_mean(y, np.ones(8), np.ones(100), small_sample=False).iloc[0]
    assert r[Col.LAMBDA] == 0.0
    assert r[Col.ESTIMATE] == 0.75 and r[Col.WIDTH_RATIO] == 1.0 and r[Col.EFFECTIVE_LABELS] == 8
    half = 1.959963984540054 * math.sqrt(0.75 * 0.25 / 8)
    assert r[Col.CI_LOW] == pytest.approx(0.75 - half)


def test_clusters_of_repeated_rows_give_the_interval_of_the_items():
    """Each item asked twice (two epochs, same values): cluster-robust variance counts items, not rows."""
    y, yhat, yhat_u = _data(7, n=40, big_n=400)
    once = ppi_mean(y, yhat, yhat_u, power_tuned=False, small_sample=False).iloc[0]
    twice = ppi_mean(np.repeat(y, 2), np.repeat(yhat, 2), np.repeat(yhat_u, 2), power_tuned=False, small_sample=False,
                     clusters=(np.repeat(np.arange(40), 2), np.repeat(np.arange(40, 440), 2))).iloc[0]
    naive = ppi_mean(np.repeat(y, 2), np.repeat(yhat, 2), np.repeat(yhat_u, 2), power_tuned=False,
                     small_sample=False).iloc[0]
    assert twice[Col.ESTIMATE] == pytest.approx(once[Col.ESTIMATE])
    assert (twice[Col.CI_LOW], twice[Col.CI_HIGH]) == pytest.approx((once[Col.CI_LOW], once[Col.CI_HIGH]))
    width = once[Col.CI_HIGH] - once[Col.CI_LOW]
    assert naive[Col.CI_HIGH] - naive[Col.CI_LOW] == pytest.approx(width / math.sqrt(2))
    assert "clusters" in twice[Col.STATEMENT]


def test_the_difference_is_ppi_on_the_differences():
    rng = np.random.default_rng(8)
    n, big_n = 50, 500
    gold_cand = (rng.random(n) < 0.7).astype(float)
    gold_ref = (rng.random(n) < 0.8).astype(float)
    agree_l = (rng.random(n) < 0.8).astype(float)
    agree_u = (rng.random(big_n) < 0.8).astype(float)
    r = ppi_mean_difference(gold_cand, gold_ref, agree_l, np.ones(n), agree_u, np.ones(big_n)).iloc[0]
    direct = ppi_mean(gold_cand - gold_ref, agree_l - 1, agree_u - 1).iloc[0]
    for col in (Col.ESTIMATE, Col.CI_LOW, Col.CI_HIGH, Col.LAMBDA, Col.EFFECTIVE_LABELS):
        assert r[col] == pytest.approx(direct[col])
    assert r[Col.LABELS_ONLY] == pytest.approx(gold_cand.mean() - gold_ref.mean())
    assert "points" in r[Col.STATEMENT] and "candidate - reference" in r[Col.STATEMENT]


@pytest.mark.parametrize("args, problem", [
    (([1, 0, 1], [1, 0], [1, 1]), "has 2"),
    (([1], [1], [1, 0]), "at least 2"),
    (([1, 0, float("nan")], [1, 0, 1], [1, 1]), "missing"),
    (([1, 0, 1], [1, 0, 1], [1, float("nan")]), "yhat_unlabelled holds 1 missing"),
    (([1, 0, 1], [1, 0, 1], []), "no unlabelled"),
])
def test_bad_input_is_refused_with_a_fix(args, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        ppi_mean(*args)
    assert err.value.fix and err.value.where == "kit.stats.ppi_mean"


def test_bad_clusters_and_alpha_are_refused():
    with pytest.raises(ConfigError, match="clusters name 1 labelled"):
        ppi_mean([1, 0], [1, 0], [1, 1], clusters=(["a"], ["b", "c"]))
    with pytest.raises(ConfigError, match="alpha"):
        ppi_mean([1, 0], [1, 0], [1, 1], alpha=5)
    with pytest.raises(ConfigError, match="reference_proxy_unlabelled has 1"):
        ppi_mean_difference([1, 0], [1, 1], [1, 0], [1, 1], [1, 1], [1])


# --- the kit's small-sample adjustment (on by default; module docstring of kit.stats.ppi) ---------------------

def test_the_t_quantile_is_students():
    from scipy import stats as scipy_stats

    from kit.stats.ppi import t_quantile

    # t_{0.975, 39} = 2.0227 (printed t tables, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2), and scipy's value
    assert t_quantile(0.975, 39) == pytest.approx(2.0227, abs=5e-5)
    assert t_quantile(0.975, 39) == pytest.approx(scipy_stats.t.ppf(0.975, 39), abs=1e-12)


def test_the_small_sample_interval_by_hand():
    """Labels all right and proxy all 1 on the labels: the plain interval is a point, the adjusted one is not.

    By hand: the 2x2 table (Y, Yhat) holds 20 at (1, 1); with 0.5 pseudo-counts per cell, p = (0.5, 0.5, 0.5,
    20.5) / 22 over (0,0), (0,1), (1,0), (1,1)."""
    y, yhat, yhat_u = np.ones(20), np.ones(20), np.r_[np.ones(90), np.zeros(10)]
    plain = ppi_mean(y, yhat, yhat_u, small_sample=False).iloc[0]
    assert plain[Col.LAMBDA] == 0.0 and plain[Col.CI_LOW] == plain[Col.CI_HIGH] == 1.0
    r = ppi_mean(y, yhat, yhat_u).iloc[0]
    p = np.array([0.5, 0.5, 0.5, 20.5]) / 22
    ys, hs = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    cov = p @ (ys * hs) - (p @ ys) * (p @ hs)
    lam = cov / ((1 + 20 / 100) * np.var(np.r_[yhat, yhat_u], ddof=1))
    assert r[Col.LAMBDA] == pytest.approx(lam)
    assert r[Col.ESTIMATE] == pytest.approx(lam * 0.9 + 1 - lam)
    rect = ys - lam * hs
    var = np.var(lam * yhat_u) / 100 + (p @ (rect - p @ rect) ** 2) / 19
    half = 2.0930240544083096 * math.sqrt(var)  # t_{0.975, 19} (scipy.stats.t.ppf)
    assert (r[Col.CI_LOW], r[Col.CI_HIGH]) == pytest.approx((r[Col.ESTIMATE] - half, r[Col.ESTIMATE] + half))
    # labels only: p = 21/22 right (one pseudo success, one pseudo failure), ddof 1, t quantile
    half_labels = 2.0930240544083096 * math.sqrt((21 / 22) * (1 / 22) / 19)
    assert r[Col.LABELS_ONLY_CI_HIGH] == pytest.approx(1 + half_labels)
    assert r[Col.METHOD] == "ppi++ small-sample" and "small-sample" in r[Col.STATEMENT]


def test_the_small_sample_interval_is_never_narrower_than_the_plain_one():
    for seed in range(5):
        y, yhat, yhat_u = _data(seed, n=40, big_n=600, agree=0.95)
        plain = ppi_mean(y, yhat, yhat_u, power_tuned=False, small_sample=False).iloc[0]
        adjusted = ppi_mean(y, yhat, yhat_u, power_tuned=False).iloc[0]
        assert adjusted[Col.ESTIMATE] == pytest.approx(plain[Col.ESTIMATE])  # lambda = 1 fixed: same estimate
        assert adjusted[Col.CI_HIGH] - adjusted[Col.CI_LOW] > plain[Col.CI_HIGH] - plain[Col.CI_LOW]


def test_the_small_sample_interval_covers_where_the_plain_one_did_not():
    """A candidate right on 90%, a proxy that misses 5% of its right answers, 40 labels: the plain PPI++
    interval covers the all-items value in 83% of 400 resamples (no disagreement among the labels makes its
    variance 0), the adjusted one in 98% (bench/bench_ppi_coverage.py measures 1,000 resamples per setting)."""
    rng = np.random.default_rng(11)
    y_all = (rng.random(700) < 0.9).astype(float)
    yhat_all = y_all * (rng.random(700) < 0.95)
    truth = y_all.mean()
    hits = {True: 0, False: 0}
    for _ in range(400):
        lab = np.zeros(700, dtype=bool)
        lab[rng.choice(700, 40, replace=False)] = True
        for small in hits:
            r = ppi_mean(y_all[lab], yhat_all[lab], yhat_all[~lab], small_sample=small).iloc[0]
            hits[small] += r[Col.CI_LOW] <= truth <= r[Col.CI_HIGH]
    assert hits[False] / 400 < 0.90
    assert hits[True] / 400 >= 0.95


def test_clusters_with_labelled_and_unlabelled_rows_use_the_stacked_sandwich():
    """Items labelled at random within customers: a customer holds labelled and unlabelled items, and the two parts
    of the estimate covary within it. The variance is the cluster-robust variance of the stacked mean — checked
    against statsmodels' cluster-robust OLS on an intercept (``cov_type="cluster"``, no small-sample correction)
    of each row's contribution scaled by the number of rows."""
    from statsmodels.regression.linear_model import OLS

    rng = np.random.default_rng(4)
    customers = np.repeat(np.arange(15), 8)
    level = rng.uniform(0.2, 0.9, 15)[customers]
    y_all = (rng.uniform(size=customers.size) < level).astype(float)
    yhat_all = np.where(rng.uniform(size=customers.size) < 0.8, y_all, 1 - y_all)
    lab = rng.uniform(size=customers.size) < 0.4
    r = ppi_mean(y_all[lab], yhat_all[lab], yhat_all[~lab], clusters=(customers[lab], customers[~lab]),
                 small_sample=False).iloc[0]
    lam = r["lambda"]
    rect, proxy = y_all[lab] - lam * yhat_all[lab], lam * yhat_all[~lab]
    m = customers.size
    w = np.concatenate([(rect - rect.mean()) * m / rect.size, (proxy - proxy.mean()) * m / proxy.size])
    groups = np.concatenate([customers[lab], customers[~lab]])
    fit = OLS(w, np.ones((m, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
    assert r["std_error"] ** 2 == pytest.approx(fit.bse[0] ** 2, rel=1e-10)
    independent = ppi_mean(y_all[lab], yhat_all[lab], yhat_all[~lab], small_sample=False).iloc[0]
    assert r["estimate"] == independent["estimate"]  # clusters change the variance, not the estimate
