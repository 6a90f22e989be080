"""Design-weighted estimates from a stratified sample of labels (kit.stats.stratified), against independent
references: the textbook formulas written out by hand (Cochran, Sampling Techniques 1977, eq. 5.1 and 5.6), and
an exhaustive enumeration of every possible stratified sample of a small population (the estimator's exact
design expectation and variance)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from kit.errors import ConfigError
from kit.stats.stratified import allocate, combine_designs, stratified_mean


def test_the_estimate_and_labelling_variance_are_cochran_s_by_hand():
    rng = np.random.default_rng(3)
    strata = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    y = rng.integers(0, 2, 100).astype(float)
    labelled = np.zeros(100, bool)
    for h, n in (("a", 6), ("b", 8), ("c", 5)):
        labelled[rng.choice(np.flatnonzero(strata == h), n, replace=False)] = True
    r = stratified_mean(np.where(labelled, y, np.nan), strata=strata, labelled=labelled, small_sample=False).iloc[0]
    # Cochran (5.1) and (5.6), by hand: ybar_st = sum W_h ybar_h; v = sum W_h^2 (1 - f_h) s_h^2 / n_h
    est = var = 0.0
    for h in "abc":
        sel = y[(strata == h) & labelled]
        big_n, n = (strata == h).sum(), sel.size
        est += big_n / 100 * sel.mean()
        var += (big_n / 100) ** 2 * (1 - n / big_n) * sel.var(ddof=1) / n
    assert r["estimate"] == pytest.approx(est)
    assert r["labelling_se"] == pytest.approx(math.sqrt(var))
    assert r["n_labelled"] == 19 and r["n_unlabelled"] == 81
    # the traffic's interval adds S^2 / N, S^2 estimated from the design: never narrower than the labelling's
    assert r["std_error"] > r["labelling_se"]
    # a share's interval: Korn & Graubard's (R: survey::svyciprop(method = "beta")), by hand with scipy's beta
    n_eff = est * (1 - est) / r["std_error"] ** 2 * (scipy_stats.t.ppf(0.975, 18) / scipy_stats.t.ppf(0.975, r["df"])) ** 2
    assert r["ci_low"] == pytest.approx(scipy_stats.beta.ppf(0.025, n_eff * est, n_eff * (1 - est) + 1))
    assert r["ci_high"] == pytest.approx(scipy_stats.beta.ppf(0.975, n_eff * est + 1, n_eff * (1 - est)))
    # other values (a difference of two shares): the Student-t interval with Satterthwaite's df
    d = stratified_mean(np.where(labelled, y - 1, np.nan), strata=strata, labelled=labelled, small_sample=False,
                        support=(-1.0, 0.0, 1.0)).iloc[0]
    q = scipy_stats.t.ppf(0.975, d["df"])
    assert d["ci_high"] - d["ci_low"] == pytest.approx(2 * q * d["std_error"])


def test_every_possible_sample_gives_the_exact_mean_and_an_unbiased_variance():
    """Exhaustive enumeration (the design's exact distribution): over every stratified sample of 3 of 6 and 2 of 5
    items, the estimate averages to the population mean, and the labelling variance estimator averages to the
    estimator's true variance (Cochran Theorem 5.4)."""
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0], float)
    strata = np.array(["a"] * 6 + ["b"] * 5)
    estimates, variances = [], []
    for sa in itertools.combinations(range(6), 3):
        for sb in itertools.combinations(range(6, 11), 2):
            lab = np.zeros(11, bool)
            lab[list(sa) + list(sb)] = True
            r = stratified_mean(np.where(lab, y, np.nan), strata=strata, labelled=lab, small_sample=False).iloc[0]
            estimates.append(r["estimate"])
            variances.append(r["labelling_se"] ** 2)
    assert np.mean(estimates) == pytest.approx(y.mean())
    assert np.mean(variances) == pytest.approx(np.var(estimates))


def test_a_paired_difference_is_the_disagreement_share_times_the_mean_on_labelled_disagreements():
    strata = np.array(["agree"] * 170 + ["disagree"] * 30)
    y = np.full(200, np.nan)
    known = np.zeros(200, bool)
    known[:170] = True
    y[:170] = 0.0
    labelled = np.zeros(200, bool)
    labelled[170:190] = True
    d = np.array([1, -1, 0, 1, 1, 0, -1, 1, 1, 0, 1, 1, -1, 0, 1, 1, 0, 1, -1, 1], float)
    y[170:190] = d
    r = stratified_mean(y, strata=strata, labelled=labelled, known=known, small_sample=False).iloc[0]
    assert r["estimate"] == pytest.approx(30 / 200 * d.mean())
    # finite-population correction on the disagreements: (1 - 20/30) s^2 / 20, weighted by (30/200)^2
    assert r["labelling_se"] ** 2 == pytest.approx((30 / 200) ** 2 * (1 - 20 / 30) * d.var(ddof=1) / 20)
    # with every disagreement labelled the labelling is exact and only the items' own sampling error is left
    labelled[170:] = True
    y[190:] = 0.0
    full = stratified_mean(y, strata=strata, labelled=labelled, known=known).iloc[0]
    assert full["labelling_se"] == 0.0
    assert full["std_error"] ** 2 == pytest.approx(np.var(y, ddof=1) / 200)  # the ordinary paired variance


def test_a_proxy_inside_a_stratum_is_ppi_s_difference_estimator():
    """Within one stratum with a proxy that varies, the estimate is lambda * mean(proxy, all) + mean(y - lambda
    proxy, labelled) — PPI's rectifier (Angelopoulos et al. 2023), with lambda PPI++'s clipped covariance ratio."""
    rng = np.random.default_rng(0)
    f = rng.integers(0, 2, 80).astype(float)
    y = np.where(rng.random(80) < 0.9, f, 1 - f)
    lab = np.zeros(80, bool)
    lab[rng.choice(80, 30, replace=False)] = True
    r = stratified_mean(np.where(lab, y, np.nan), strata=["s"] * 80, labelled=lab, proxy=f, small_sample=False).iloc[0]
    lam = float(np.clip(np.cov(y[lab], f[lab])[0, 1] / (np.var(f, ddof=1) * (1 + 30 / 80)), 0, 1))
    assert r["lambda"] == pytest.approx(lam)
    assert r["estimate"] == pytest.approx(lam * f.mean() + np.mean(y[lab] - lam * f[lab]))
    assert r["effective_labels"] > 30  # the proxy is worth labels
    assert r["labels_only"] == pytest.approx(y[lab].mean())


def test_designs_combine_by_inverse_variance():
    r = combine_designs([{"estimate": 0.10, "std_error": 0.05, "df": 30}, {"estimate": 0.04, "std_error": 0.10,
                                                                          "df": 10}])
    w1, w2 = 1 / 0.05 ** 2, 1 / 0.10 ** 2
    assert r["estimate"] == pytest.approx((w1 * 0.10 + w2 * 0.04) / (w1 + w2))
    assert r["std_error"] == pytest.approx(math.sqrt(1 / (w1 + w2)))
    assert 10 < r["df"] < 40
    shared = combine_designs([{"estimate": 0.10, "std_error": 0.05, "df": 30},
                              {"estimate": 0.04, "std_error": 0.10, "df": 10}], shared_variance=0.03 ** 2)
    assert shared["estimate"] == r["estimate"]  # the traffic's error is one, added once
    assert shared["std_error"] == pytest.approx(math.sqrt(1 / (w1 + w2) + 0.03 ** 2))
    exact = combine_designs([{"estimate": 0.2, "std_error": 0.0, "df": 5}, {"estimate": 0.1, "std_error": 0.1,
                                                                           "df": 5}])
    assert exact["estimate"] == 0.2 and exact["std_error"] == 0.0


def test_neyman_allocation_spends_labels_where_options_disagree():
    n = allocate({"all agree": 850, "a | b": 150}, {"all agree": 0.0, "a | b": 1.0}, total=40)
    assert sum(n.values()) == 40
    # 20% proportional (for the accuracies and the floor) + 80% Neyman on the differences: 7 and 33
    assert n == {"all agree": 7, "a | b": 33}
    assert allocate({"x": 3, "y": 2}, {"x": 1, "y": 1}, total=10) == {"x": 3, "y": 2}  # never beyond a stratum
    assert allocate({"x": 100, "y": 100, "z": 1}, {"x": 1, "y": 0, "z": 1}, total=10)["y"] >= 2  # a minimum of 2


def test_a_stratum_without_a_label_gives_no_estimate_and_bad_input_is_refused():
    r = stratified_mean([1.0, np.nan, np.nan], strata=["a", "b", "b"], labelled=[True, False, False]).iloc[0]
    assert math.isnan(r["estimate"])
    with pytest.raises(ConfigError, match="one entry per item"):
        stratified_mean([1.0, 0.0], strata=["a"], labelled=[True, True])
    with pytest.raises(ConfigError, match="have no value"):
        stratified_mean([np.nan, 0.0], strata=["a", "a"], labelled=[True, True])


def test_a_share_whose_labels_are_all_right_keeps_its_interval_inside_0_to_1():
    """Every labelled answer right (a share at 1, where Korn-Graubard has no effective sample size): the interval
    is a share's, [low, 1], never past 100% as a symmetric t interval would give it."""
    import numpy as np

    from kit.stats.stratified import stratified_mean

    values = np.r_[np.ones(15), np.full(331, np.nan)]
    strata = np.r_[["agree"] * 2, ["differ"] * 13, ["agree"] * 52, ["differ"] * 279]
    r = stratified_mean(values, strata=strata, labelled=np.isfinite(values)).iloc[0]
    assert r["estimate"] == 1.0 and 0.0 <= r["ci_low"] < 1.0 and r["ci_high"] == 1.0
    assert "to 1.000" in r["statement"]
