"""Clustered intervals and tests against an independent reference: statsmodels' cluster-robust OLS on an intercept.

The reference throughout is ``statsmodels.regression.linear_model.OLS(y, ones).fit(cov_type="cluster",
cov_kwds={"groups": g}, use_t=True)`` (statsmodels 0.14/0.15). Its default small-sample correction
(``use_correction=True``) is ``G/(G-1) * (n-1)/(n-k)``, which for an intercept (k = 1) is the CR1 factor
``G/(G-1)``; with ``use_t=True`` its intervals and tests use t with ``G - 1`` degrees of freedom
(``df_resid_inference``). kit.stats.clusters follows exactly that convention.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score
from statsmodels.regression.linear_model import OLS

from kit import stats
from kit.errors import ConfigError
from kit.stats.clusters import (cluster_bootstrap, cluster_codes, cluster_difference, cluster_interval, clustered_mean,
                                design_effect, item_clusters)
from kit.stats.intervals import mean_ci
from kit.stats.paired import tango_bound


def _clustered_data(seed: int = 3, n_clusters: int = 15, icc_shift: float = 0.35):
    """Right/wrong answers of two options on items in clusters of unequal size, correlated within a cluster."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=n_clusters)
    groups = np.repeat(np.arange(n_clusters), sizes)
    level = np.repeat(rng.normal(0, icc_shift, n_clusters), sizes)
    ref = (rng.random(groups.size) < np.clip(0.75 + level, 0, 1)).astype(float)
    cand = np.where(rng.random(groups.size) < 0.8, ref, 1 - ref)
    return cand, ref, groups


def _statsmodels(y: np.ndarray, groups: np.ndarray):
    """The reference: OLS of y on an intercept, cluster-robust covariance, t with G - 1 df."""
    return OLS(y, np.ones((y.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)


def _greater(fit, value: float) -> float:
    """One-sided p-value of H0: mean <= value from statsmodels' two-sided t-test at ``value``."""
    test = fit.t_test(f"const = {value}")
    t, p = np.asarray(test.tvalue).item(), np.asarray(test.pvalue).item()
    return p / 2 if t > 0 else 1 - p / 2


def _two_sided(fit, value: float = 0.0) -> float:
    return np.asarray(fit.t_test(f"const = {value}").pvalue).item()


def test_clustered_mean_matches_statsmodels_cluster_ols():
    cand, _, groups = _clustered_data()
    fit = _statsmodels(cand, groups)
    m = clustered_mean(cand, groups)
    assert m.estimate == pytest.approx(fit.params[0], abs=1e-12)
    assert m.se == pytest.approx(fit.bse[0], rel=1e-10)
    assert m.df == fit.df_resid_inference == 14
    low, high = fit.conf_int(alpha=0.05)[0]
    assert m.interval(0.95) == pytest.approx((low, high), rel=1e-10)
    assert m.p_two_sided(0.7) == pytest.approx(_two_sided(fit, 0.7), rel=1e-8)


def test_cr1_factor_is_statsmodels_default_and_not_its_uncorrected_form():
    cand, _, groups = _clustered_data(seed=5)
    corrected = _statsmodels(cand, groups).bse[0]
    raw = OLS(cand, np.ones((cand.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups,
                                                                              "use_correction": False}).bse[0]
    g = 15
    assert corrected == pytest.approx(raw * np.sqrt(g / (g - 1)), rel=1e-10)  # CR1 = CR0 * sqrt(G/(G-1))
    assert clustered_mean(cand, groups).se == pytest.approx(corrected, rel=1e-10)


def test_cluster_interval_table_clips_to_unit_interval_and_counts_clusters():
    cand, _, groups = _clustered_data()
    r = cluster_interval(cand, groups, ci=0.9).iloc[0]
    low, high = _statsmodels(cand, groups).conf_int(alpha=0.10)[0]
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((max(0, low), min(1, high)), rel=1e-10)
    assert r["n_clusters"] == 15 and r["n"] == cand.size and r["df"] == 14


def test_paired_difference_matches_statsmodels_ols_of_the_difference():
    cand, ref, groups = _clustered_data(seed=11)
    d = cand - ref
    fit = _statsmodels(d, groups)
    r = cluster_difference(cand, ref, groups, margin=0.05, alpha=0.05).iloc[0]
    assert r["difference"] == pytest.approx(fit.params[0], abs=1e-12)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(fit.conf_int(alpha=0.05)[0]), rel=1e-10)
    # one-sided H0: difference <= -margin; statsmodels' two-sided t-test at -margin, halved on the right side
    assert r["p_noninferiority"] == pytest.approx(_greater(fit, -0.05), rel=1e-8)
    # the one-sided 95% lower bound is the lower end of statsmodels' 90% two-sided interval
    assert r["lower_bound"] == pytest.approx(fit.conf_int(alpha=0.10)[0][0], rel=1e-10)


def test_one_item_per_cluster_is_the_item_level_t_interval():
    x = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    m = clustered_mean(x, np.arange(x.size))
    assert m.se == pytest.approx(x.std(ddof=1) / np.sqrt(x.size), rel=1e-12)  # G/(G-1) = n/(n-1)


def test_non_inferiority_with_clusters_takes_the_more_conservative_of_wald_and_tango():
    cand, ref, groups = _clustered_data(seed=7)
    fit = _statsmodels(cand - ref, groups)
    r = stats.non_inferiority(cand, ref, margin=0.05, clusters=groups).iloc[0]
    x, y = float((cand > ref).sum()), float((cand < ref).sum())
    expected_lower = min(tango_bound(x, y, cand.size, 0.95, upper=False), fit.conf_int(alpha=0.10)[0][0])
    assert r["lower_bound"] == pytest.approx(expected_lower, rel=1e-8)
    item = stats.non_inferiority(cand, ref, margin=0.05).iloc[0]
    assert r["p_noninferiority"] == pytest.approx(max(item["p_noninferiority"], _greater(fit, -0.05)), rel=1e-8)
    assert "cluster-robust" in r["method"]


def test_no_discordant_item_is_not_proof_with_clusters():
    same = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    r = stats.non_inferiority(same, same, margin=0.02, clusters=[1, 1, 2, 2, 3, 3]).iloc[0]
    assert r["conclusion"] == "inconclusive"  # the Wald SE is 0 here; Tango's bound keeps it honest
    assert r["lower_bound"] == pytest.approx(tango_bound(0, 0, 6, 0.95, upper=False))


def _table(cand, ref, groups, *, value="correct"):
    n = cand.size
    ids = [f"i{k}" for k in range(n)]
    return pd.DataFrame({"option": ["api"] * n + ["local"] * n, "item_id": ids * 2, value: np.r_[ref, cand],
                         **({"correct": np.r_[ref, cand] > 0.5} if value != "correct" else {}),
                         "cluster": [f"c{g}" for g in groups] * 2})


def test_metric_table_with_a_cluster_column_widens_wilson_by_the_cluster_robust_interval():
    cand, ref, groups = _clustered_data()
    table = stats.metric_table(_table(cand, ref, groups)).set_index("option")
    low, high = _statsmodels(cand, groups).conf_int(alpha=0.05)[0]
    _, wlo, whi = mean_ci(cand)
    row = table.loc["local"]
    assert row["accuracy_ci_low"] == pytest.approx(min(max(0, low), wlo), rel=1e-10)
    assert row["accuracy_ci_high"] == pytest.approx(max(min(1, high), whi), rel=1e-10)
    assert row["accuracy_ci_low"] < wlo  # correlated clusters: wider than Wilson
    assert row["n_clusters"] == 15 and row["ci_method"].startswith("cluster-robust")
    assert "15 clusters" in row["statement"]
    plain = stats.metric_table(_table(cand, ref, groups).drop(columns="cluster"))
    assert "n_clusters" not in plain.columns and plain["ci_method"].eq("wilson").all()


def test_compare_arms_with_clusters_uses_cluster_robust_difference_and_margin_test():
    cand, ref, groups = _clustered_data(seed=2)
    df = _table(cand, ref, groups)
    r = stats.compare_arms(df, reference="api", margin=0.05, n_resamples=1000).iloc[0]
    plain = stats.compare_arms(df.drop(columns="cluster"), reference="api", margin=0.05, n_resamples=1000).iloc[0]
    fit = _statsmodels(cand - ref, groups)
    low, high = fit.conf_int(alpha=0.05)[0]
    assert r["diff_ci_low"] == pytest.approx(min(low, plain["diff_ci_low"]), rel=1e-10)
    assert r["diff_ci_high"] == pytest.approx(max(high, plain["diff_ci_high"]), rel=1e-10)
    assert r["lower_bound"] == pytest.approx(min(plain["lower_bound"], fit.conf_int(alpha=0.10)[0][0]), rel=1e-8)
    assert r["mcnemar_p"] == pytest.approx(max(plain["mcnemar_p"], _two_sided(fit)), rel=1e-8)
    assert r["n_clusters"] == 15 and r["n_needed"] >= plain["n_needed"]
    assert "15 clusters" in r["statement"] and "cluster-robust" in r["statement"]
    assert "n_clusters" not in plain.index


def test_compare_scores_with_clusters_bounds_the_margin_with_statsmodels():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(12), 6)
    shared = np.repeat(rng.uniform(0.2, 0.8, 12), 6)
    ref = np.clip(shared + rng.normal(0, 0.1, groups.size), 0, 1)
    cand = np.clip(ref + np.repeat(rng.normal(0, 0.1, 12), 6), 0, 1)
    df = _table(cand, ref, groups, value="score")
    r = stats.compare_scores(df, reference="api", margin=0.05, n_resamples=1000).iloc[0]
    plain = stats.compare_scores(df.drop(columns="cluster"), reference="api", margin=0.05, n_resamples=1000).iloc[0]
    fit = _statsmodels(cand - ref, groups)
    assert r["lower_bound"] == pytest.approx(min(plain["lower_bound"], fit.conf_int(alpha=0.10)[0][0]), rel=1e-8)
    assert r["lower_bound"] < plain["lower_bound"]  # the shift is shared within a cluster: clustering widens
    assert r["wilcoxon_p"] == pytest.approx(max(plain["wilcoxon_p"], _two_sided(fit)), rel=1e-8)
    assert r["n_clusters"] == 12 and "12 clusters" in r["statement"]


def test_floor_and_pairs_with_clusters_take_the_larger_p_value():
    cand, ref, groups = _clustered_data(seed=9)
    base = np.zeros_like(cand)
    r = stats.beats_baseline(cand, base, clusters=groups).iloc[0]
    plain = stats.beats_baseline(cand, base).iloc[0]
    assert r["p_value"] == pytest.approx(max(plain["p_value"], _greater(_statsmodels(cand - base, groups), 0)),
                                         rel=1e-8)
    assert r["n_clusters"] == 15
    chance = stats.beats_baseline(cand, np.full(cand.size, 0.5), paired=False, clusters=groups).iloc[0]
    assert chance["p_value"] >= _greater(_statsmodels(cand - 0.5, groups), 0) - 1e-12
    wide = pd.DataFrame({"a": cand, "b": ref})
    pairs = stats.pairwise(wide, clusters=groups).iloc[0]
    assert pairs["p_value"] == pytest.approx(max(stats.pairwise(wide).iloc[0]["p_value"],
                                                 _two_sided(_statsmodels(cand - ref, groups))), rel=1e-8)
    assert pairs["n_clusters"] == 15


def test_agreement_with_clusters_rate_interval_and_kappa_bootstrap():
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(20), 5)
    ref = rng.choice(["x", "y", "z"], groups.size)
    flip = np.repeat(rng.random(20) < 0.3, 5) & (rng.random(groups.size) < 0.8)
    cand = np.where(flip, "x", ref)
    r = stats.agreement(cand, ref, clusters=groups, n_resamples=1000)
    plain = stats.agreement(cand, ref)
    hits = (cand == ref).astype(float)
    low, high = _statsmodels(hits, groups).conf_int(alpha=0.05)[0]
    overall = r.iloc[0]
    assert overall["agreement_ci_low"] == pytest.approx(min(low, plain.iloc[0]["agreement_ci_low"]), rel=1e-10)
    assert overall["agreement_ci_high"] == pytest.approx(max(min(1, high), plain.iloc[0]["agreement_ci_high"]),
                                                         rel=1e-10)
    assert overall["kappa"] == plain.iloc[0]["kappa"]  # the estimate is the same
    assert overall["kappa_ci_low"] <= plain.iloc[0]["kappa_ci_low"] and overall["n_clusters"] == 20
    assert r["n_clusters"].eq(20).all() and "20 clusters" in overall["statement"]


def test_cluster_bootstrap_of_the_mean_has_the_cluster_robust_spread():
    cand, ref, groups = _clustered_data(seed=12, n_clusters=40)
    boot = cluster_bootstrap(cand, ref, groups, n_resamples=4000, seed=1).iloc[0]
    se = _statsmodels(cand - ref, groups).bse[0]
    # the cluster bootstrap's variance is CR0's: CR1 without its G/(G-1) factor (up to resampling noise)
    assert boot["se"] == pytest.approx(se * np.sqrt(39 / 40), rel=0.08)
    assert boot["n_clusters"] == 40 and boot["method"] == "cluster bootstrap (percentile)"


def test_cluster_bootstrap_macro_f1_keeps_clusters_whole_and_matches_sklearn_point():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(10), 4)
    gold = rng.choice(["a", "b", "c"], groups.size)
    a = pd.DataFrame({"answer": np.where(rng.random(groups.size) < 0.8, gold, "a"), "gold": gold})
    b = pd.DataFrame({"answer": np.where(rng.random(groups.size) < 0.6, gold, "b"), "gold": gold})
    r = cluster_bootstrap(a, b, groups, metric="macro_f1", n_resamples=300).iloc[0]
    # sklearn 1.x f1_score(average="macro") over the labels seen in gold or answers
    expected = (f1_score(gold, a["answer"], average="macro") - f1_score(gold, b["answer"], average="macro"))
    assert r["difference"] == pytest.approx(expected, rel=1e-10)
    assert r["ci_low"] < expected < r["ci_high"]
    by_function = cluster_bootstrap(a, b, groups, metric=lambda d: f1_score(d["gold"], d["answer"], average="macro"),
                                    n_resamples=300).iloc[0]
    assert (by_function["ci_low"], by_function["ci_high"]) == pytest.approx((r["ci_low"], r["ci_high"]), rel=1e-10)


def test_latency_intervals_with_clusters_come_from_a_cluster_bootstrap():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(10), 10)
    lat = np.repeat(rng.exponential(1.0, 10), 10) + rng.exponential(0.1, 100)
    df = pd.DataFrame({"option": "a", "item_id": [str(i) for i in range(100)], "correct": True, "latency_s": lat,
                       "cluster": [f"c{g}" for g in groups]})
    r = stats.latency_summary(df, n_resamples=500).iloc[0]
    plain = stats.latency_summary(df.drop(columns="cluster"), n_resamples=500).iloc[0]
    assert r["p50_s"] == plain["p50_s"]
    assert r["p50_ci_high"] - r["p50_ci_low"] > 1.5 * (plain["p50_ci_high"] - plain["p50_ci_low"])
    assert r["n_clusters"] == 10 and "10 clusters" in r["statement"]


def test_design_effect_of_identical_clusters():
    # two clusters of two identical values: residual sums +1 and -1, so CR1 var = G/(G-1) * 2 / n^2 = 0.25, against
    # the item-level var(ddof=1)/n = (1/3)/4: a design effect of 3 (worked by hand)
    x = np.array([1.0, 1.0, 0.0, 0.0])
    assert design_effect(x, ["a", "a", "b", "b"]) == pytest.approx(3.0)


@pytest.mark.parametrize("clusters, message", [
    (["a", "a", "a"], "one cluster"),
    (["a", None, "b"], "have no cluster"),
    (["a", "", "b"], "have no cluster"),
    (["a", "b"], "clusters name 2 items but there are 3"),
])
def test_bad_clusters_are_clear_errors(clusters, message):
    with pytest.raises(ConfigError, match=message) as err:
        cluster_codes(clusters, 3, where="t")
    assert err.value.fix


def test_an_item_in_two_clusters_is_an_error():
    df = pd.DataFrame({"option": ["a", "b"], "item_id": ["1", "1"], "cluster": ["x", "y"], "correct": [1, 0]})
    with pytest.raises(ConfigError, match="more than one cluster"):
        item_clusters(df, where="t")
    with pytest.raises(ConfigError, match="more than one cluster"):
        stats.metric_table(df)


def test_t_with_g_minus_1_df_is_wider_than_the_normal():
    cand, _, groups = _clustered_data()
    m = clustered_mean(cand, groups)
    low, _ = m.interval(0.95)
    assert m.estimate - low == pytest.approx(sps.t.ppf(0.975, 14) * m.se)
    assert m.estimate - low > sps.norm.ppf(0.975) * m.se
