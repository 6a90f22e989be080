"""Tests of kit.stats. Every figure is checked against an independent reference named in a comment."""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import ttost_paired

from kit.cli.stats import register_cli
from kit.errors import ConfigError, KitError
from kit.stats import (
    MACRO_F1, accuracy_ci, agreement, compare_arms, epoch_variation, errors_table, holm, latency_summary,
    latency_test, mcnemar, metric_from_function, metric_table, non_inferiority, pair_arms, paired_bootstrap,
    power_difference, power_noninferiority, sample_size_difference, sample_size_noninferiority,
    tango_bound, tango_z, vectorised_metric,
)

REF = "openai:gpt-4o-mini"
LOCAL = "llama_cpp:smollm2-135m"


def paired_correct(n: int, p_both: float, p10: float, p01: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong for two arms on n items with the given cell probabilities."""
    rng = np.random.default_rng(seed)
    cell = rng.choice(4, size=n, p=[p_both, p10, p01, 1 - p_both - p10 - p01])
    return np.isin(cell, (0, 1)), np.isin(cell, (0, 2))


def score_table(arms: dict[str, np.ndarray], *, epochs: int = 1, seed: int = 0) -> pd.DataFrame:
    """A score table shaped like kit.tasks.scoring's output."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm, correct in arms.items():
        correct = np.atleast_2d(correct)
        for e in range(epochs):
            row_correct = correct[e % correct.shape[0]]
            for i, c in enumerate(row_correct):
                rows.append({"option": arm, "item_id": f"item-{i}", "epoch": e, "correct": bool(c), "score": float(c),
                             "error": None, "parse_error": False, "answer": "a" if c else "b", "gold": "a",
                             "latency_s": float(rng.gamma(4, 0.1)), "ttft_s": 0.05,
                             "completion_tokens": 10, "prompt_tokens": 50})
    return pd.DataFrame(rows)


# -- McNemar -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("table", [[[40, 15], [8, 37]], [[5, 0], [3, 2]], [[10, 1], [7, 12]], [[3, 2], [2, 1]]])
def test_mcnemar_exact_matches_statsmodels(table):
    (n11, n10), (n01, n00) = table
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00)
    r = mcnemar(a, b).iloc[0]
    # statsmodels 0.15 contingency_tables.mcnemar(exact=True)
    assert r["p_exact"] == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert (r["b10"], r["b01"], r["n"], r["discordant"]) == (n10, n01, sum(map(sum, table)), n10 + n01)
    assert r["difference"] == pytest.approx((n10 - n01) / r["n"])


def test_mcnemar_mid_p_published_value():
    # Fagerland, Lydersen & Laake (2013) BMC Med Res Methodol 13:91, Bentur et al. data (b=1, c=7):
    # exact conditional p = 0.070, mid-p = 0.039.
    a = np.array([1] * 1 + [1] * 1 + [0] * 7 + [0] * 12)
    b = np.array([1] * 1 + [0] * 1 + [1] * 7 + [0] * 12)
    r = mcnemar(a, b).iloc[0]
    assert round(r["p_exact"], 3) == 0.070
    assert round(r["p_mid"], 3) == 0.039
    # scipy.stats.binomtest on the discordant pairs gives the same exact p
    assert r["p_exact"] == pytest.approx(stats.binomtest(1, 8, 0.5).pvalue)


def test_mcnemar_no_discordant_pairs_and_all_correct():
    r = mcnemar([1, 0, 1, 1], [1, 0, 1, 1]).iloc[0]
    assert (r["b10"], r["b01"], r["p_exact"], r["p_mid"]) == (0, 0, 1.0, 1.0)
    assert "no discordant pair" in r["statement"]
    r = mcnemar([True] * 6, [True] * 6).iloc[0]
    assert (r["both_correct"], r["p_exact"]) == (6, 1.0)


def test_mcnemar_refuses_bad_input():
    with pytest.raises(ConfigError, match="same items"):
        mcnemar([1, 0], [1, 0, 1])
    with pytest.raises(ConfigError, match="right/wrong"):
        mcnemar([0.5, 1], [1, 0])
    with pytest.raises(KitError, match="missing values"):
        mcnemar([1, np.nan], [1, 0])


def test_holm_matches_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    # statsmodels 0.15 multipletests(method="holm")
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert np.isnan(holm([0.01, np.nan])[1])


# -- Tango's score test, non-inferiority -----------------------------------------------------------------

def _score_stat_numerically(x: int, y: int, n: int, d0: float) -> float:
    """Score statistic with the restricted MLE found by scipy.optimize (no closed form)."""
    m = n - x - y

    def nll(p01: float) -> float:
        p10 = p01 + d0
        return -(x * np.log(p10) + y * np.log(p01) + m * np.log(1 - p10 - p01))

    lo, hi = max(0.0, -d0) + 1e-12, (1 - d0) / 2 - 1e-12
    p01 = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    return (x - y - n * d0) / np.sqrt(n * (2 * p01 + d0 - d0 ** 2))


@pytest.mark.parametrize("x,y,n,d0", [(15, 8, 100, -0.02), (1, 7, 21, -0.1), (30, 30, 500, -0.05), (3, 12, 60, 0.05)])
def test_tango_statistic_matches_numerical_restricted_mle(x, y, n, d0):
    # reference: Tango (1998) score statistic with the restricted MLE maximised numerically (scipy.optimize)
    assert tango_z(x, y, n, d0) == pytest.approx(_score_stat_numerically(x, y, n, d0), abs=1e-5)


def test_tango_at_zero_is_mcnemar_asymptotic():
    # statsmodels mcnemar(exact=False, correction=False): chi2 = (b - c)^2 / (b + c) = z^2
    stat = sm_mcnemar([[40, 15], [8, 37]], exact=False, correction=False).statistic
    assert tango_z(15, 8, 100, 0.0) ** 2 == pytest.approx(stat)


def test_tango_bounds_invert_the_test():
    lo, hi = tango_bound(15, 8, 100, 0.95, upper=False), tango_bound(15, 8, 100, 0.95, upper=True)
    z = stats.norm.ppf(0.95)
    # reference: the numerically computed statistic equals the critical value at each bound
    assert _score_stat_numerically(15, 8, 100, lo) == pytest.approx(z, abs=1e-4)
    assert _score_stat_numerically(15, 8, 100, hi) == pytest.approx(-z, abs=1e-4)
    assert lo < 0.07 < hi


def test_non_inferiority_identical_arms_never_differ():
    a, _ = paired_correct(600, 0.6, 0.1, 0.1, seed=1)
    r = non_inferiority(a, a).iloc[0]
    assert r["difference"] == 0 and r["conclusion"] == "non-inferior"
    assert r["p_superiority"] == pytest.approx(0.5) and r["p_inferiority"] > 0.5
    # with only 5 items nothing can be shown: inconclusive, not "no difference"
    r = non_inferiority([1, 0, 1, 1, 0], [1, 0, 1, 1, 0]).iloc[0]
    assert r["conclusion"] == "inconclusive"
    assert "not evidence that the arms are the same" in r["statement"]
    assert "Assumptions" in r["statement"]


def test_non_inferiority_superior_and_inferior():
    cand, ref = paired_correct(800, 0.6, 0.15, 0.03, seed=2)
    assert non_inferiority(cand, ref)["conclusion"].item() == "superior"
    assert non_inferiority(ref, cand)["conclusion"].item() == "inferior"
    close_c, close_r = paired_correct(2000, 0.7, 0.05, 0.055, seed=3)
    r = non_inferiority(close_c, close_r, margin=0.03).iloc[0]
    assert r["conclusion"] == "non-inferior" and r["lower_bound"] > -0.03
    # p-value of the margin test equals the one-sided normal tail of the (numerically checked) statistic
    x, y = int((close_c & ~close_r).sum()), int((~close_c & close_r).sum())
    assert r["p_noninferiority"] == pytest.approx(stats.norm.sf(_score_stat_numerically(x, y, 2000, -0.03)), abs=1e-5)


def test_non_inferiority_t_method_matches_scipy_and_statsmodels_tost():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0.4, 1.0, 80)
    cand = np.clip(ref + rng.normal(0.0, 0.05, 80), 0, 1)
    r = non_inferiority(cand, ref, margin=0.03, method="t").iloc[0]
    # scipy.stats.ttest_1samp(d, -margin, alternative="greater")
    assert r["p_noninferiority"] == pytest.approx(stats.ttest_1samp(cand - ref, -0.03, alternative="greater").pvalue)
    # scipy.stats.t.interval at 90% two-sided = 95% one-sided bounds
    lo, hi = stats.t.interval(0.90, 79, loc=(cand - ref).mean(), scale=stats.sem(cand - ref))
    assert (r["lower_bound"], r["upper_bound"]) == pytest.approx((lo, hi))
    eq = non_inferiority(cand, ref, margin=0.03, method="t", equivalence=True).iloc[0]
    # statsmodels ttost_paired(x1, x2, low, upp) p-value
    assert eq["p_value"] == pytest.approx(ttost_paired(cand, ref, -0.03, 0.03)[0])
    assert eq["conclusion"] == "equivalent"


def test_equivalence_with_tango():
    cand, ref = paired_correct(3000, 0.7, 0.04, 0.04, seed=5)
    r = non_inferiority(cand, ref, margin=0.03, equivalence=True).iloc[0]
    assert r["conclusion"] == "equivalent" and r["p_value"] == r["p_equivalence"]
    far_c, far_r = paired_correct(3000, 0.6, 0.15, 0.02, seed=6)
    assert non_inferiority(far_c, far_r, margin=0.03, equivalence=True)["conclusion"].item() == "not equivalent"
    assert non_inferiority([1, 0, 1], [1, 1, 0], equivalence=True)["conclusion"].item() == "inconclusive"


def test_fractional_scores_are_conservative():
    rng = np.random.default_rng(7)
    ref = rng.uniform(0.3, 1, 400)
    cand = np.clip(ref + rng.normal(0, 0.1, 400), 0, 1)
    tango = non_inferiority(cand, ref, margin=0.02).iloc[0]
    t = non_inferiority(cand, ref, margin=0.02, method="t").iloc[0]
    # fractional parts as discordant counts over-estimate the variance: wider than the t interval
    assert tango["lower_bound"] < t["lower_bound"] and tango["p_noninferiority"] >= t["p_noninferiority"]


# -- paired bootstrap -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method,sp_method", [("bca", "BCa"), ("percentile", "percentile")])
def test_paired_bootstrap_matches_scipy(method, sp_method):
    a, b = paired_correct(600, 0.55, 0.12, 0.08, seed=8)
    r = paired_bootstrap(a, b, n_resamples=10_000, method=method, seed=1).iloc[0]
    # scipy.stats.bootstrap(paired=True); different random draws, so agreement within Monte Carlo error
    ref = stats.bootstrap((a.astype(float), b.astype(float)), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                          paired=True, vectorized=True, n_resamples=10_000, method=sp_method, rng=2)
    assert r["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.004)
    assert r["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.004)
    assert r["difference"] == pytest.approx(a.mean() - b.mean())
    assert r["se"] == pytest.approx(ref.standard_error, rel=0.05)
    assert r["method_used"] == method


def test_paired_bootstrap_is_seeded_and_identical_arms_give_a_point():
    a, b = paired_correct(300, 0.5, 0.1, 0.1, seed=9)
    r1, r2 = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert r1.drop(columns="statement").equals(r2.drop(columns="statement"))
    assert paired_bootstrap(a, b, seed=4)["se"].item() != r1["se"].item()  # another seed, other resamples
    same = paired_bootstrap(a, a).iloc[0]
    assert (same["ci_low"], same["ci_high"], same["method_used"]) == (0.0, 0.0, "degenerate")


def test_paired_bootstrap_few_items_and_errors():
    r = paired_bootstrap([1, 1, 0, 1, 1, 0], [1, 0, 0, 0, 1, 0], n_resamples=2000).iloc[0]
    assert r["n"] == 6 and r["ci_low"] <= r["difference"] <= r["ci_high"]
    with pytest.raises(ConfigError, match="at least 2"):
        paired_bootstrap([1], [0])
    with pytest.raises(ConfigError, match="same items"):
        paired_bootstrap([1, 0], [1, 0, 1])


def _labels_frame(n: int, acc: float, seed: int, unparsed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["billing", "bug", "feature", "account"])
    gold = labels[rng.integers(0, 4, n)]
    ans = np.where(rng.random(n) < acc, gold, labels[rng.integers(0, 4, n)]).astype(object)
    ans[:unparsed] = None
    return pd.DataFrame({"answer": ans, "gold": gold}), gold


def _macro_f1_by_hand(df: pd.DataFrame) -> float:
    """Per-label F1 averaged over the labels present in gold or (parsed) answers."""
    f1s = []
    for lab in sorted(set(df["gold"]) | set(df["answer"].dropna())):
        tp = ((df["answer"] == lab) & (df["gold"] == lab)).sum()
        fp = ((df["answer"] == lab) & (df["gold"] != lab)).sum()
        fn = ((df["answer"] != lab) & (df["gold"] == lab)).sum()
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def test_macro_f1_published_style_example():
    # hand-worked: gold a a b b c, answers a b b b (unparsed): F1(a)=2/3, F1(b)=4/5, F1(c)=0 -> 0.48889
    df = pd.DataFrame({"answer": ["a", "b", "b", "b", None], "gold": ["a", "a", "b", "b", "c"]})
    assert MACRO_F1(df) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)


def test_macro_f1_bootstrap_matches_a_per_resample_loop():
    a, _ = _labels_frame(150, 0.7, seed=10, unparsed=5)
    b, _ = _labels_frame(150, 0.5, seed=11)
    b["gold"] = a["gold"]
    fast = paired_bootstrap(a, b, metric="macro_f1", n_resamples=400, seed=5).iloc[0]
    slow = paired_bootstrap(a, b, metric=_macro_f1_by_hand, n_resamples=400, seed=5).iloc[0]
    # reference: the same resamples evaluated one by one with a plain pandas implementation
    assert fast["estimate_a"] == pytest.approx(_macro_f1_by_hand(a))
    assert (fast["ci_low"], fast["ci_high"]) == pytest.approx((slow["ci_low"], slow["ci_high"]))


def test_custom_vectorised_metric():
    def error_rate(x, idx):
        return 1 - np.asarray(x, dtype=float)[idx].mean(axis=1)

    m = vectorised_metric(error_rate, name="error_rate")
    a, b = paired_correct(200, 0.6, 0.1, 0.05, seed=12)
    r = paired_bootstrap(a, b, metric=m, n_resamples=1000).iloc[0]
    mean = paired_bootstrap(a, b, n_resamples=1000).iloc[0]
    assert r["difference"] == pytest.approx(-mean["difference"])
    # percentile intervals of a negated statistic mirror each other on the same resamples
    assert paired_bootstrap(a, b, metric=m, n_resamples=1000, method="percentile")["ci_low"].item() == pytest.approx(
        -paired_bootstrap(a, b, n_resamples=1000, method="percentile")["ci_high"].item())
    assert metric_from_function(np.mean)([1, 0]) == 0.5
    with pytest.raises(ConfigError, match="unknown"):
        paired_bootstrap(a, b, metric="bleu")


# -- power and sample size ------------------------------------------------------------------------------

def test_sample_size_difference_gives_its_power_in_simulation():
    r = sample_size_difference(p10=0.15, p01=0.05, power=0.8).iloc[0]
    n = int(r["n_required"])
    rng = np.random.default_rng(13)
    counts = rng.multinomial(n, [0.15, 0.05, 0.8], size=1500)
    # reference: Monte Carlo with statsmodels mcnemar(exact=False, correction=False), the test Connor's formula targets
    hits = [sm_mcnemar([[0, b], [c, 0]], exact=False, correction=False).pvalue < 0.05 for b, c, _ in counts]
    assert np.mean(hits) == pytest.approx(0.80, abs=0.04)
    assert power_difference(n, p10=0.15, p01=0.05) >= 0.8 > power_difference(n - 1, p10=0.15, p01=0.05)


def test_sample_size_noninferiority_gives_its_power_in_simulation():
    r = sample_size_noninferiority(p10=0.06, p01=0.05, margin=0.03, power=0.8).iloc[0]
    n = int(r["n_required"])
    assert power_noninferiority(n, p10=0.06, p01=0.05, margin=0.03) >= 0.8
    assert power_noninferiority(n - 1, p10=0.06, p01=0.05, margin=0.03) < 0.8
    rng = np.random.default_rng(14)
    counts = rng.multinomial(n, [0.06, 0.05, 0.89], size=1500)
    # reference: Monte Carlo of the Tango test (its statistic checked above against a numerical MLE)
    hits = [stats.norm.sf(_score_stat_numerically(x, y, n, -0.03)) < 0.05 for x, y, _ in counts]
    assert np.mean(hits) == pytest.approx(0.80, abs=0.04)


def test_sample_size_from_data_says_when_too_few():
    ref = np.array([1] * 24 + [0] * 16, dtype=bool)
    cand = ref.copy()
    cand[:4], cand[-4:] = False, True  # 4 discordant pairs each way
    r = sample_size_noninferiority(cand, ref, margin=0.02).iloc[0]
    assert r["n_available"] == 40 and not r["enough"] and r["n_required"] > 40
    assert (r["p10"], r["p01"]) == (0.1, 0.1)
    assert "inconclusive" in r["statement"]
    assert non_inferiority(cand, ref, margin=0.02)["conclusion"].item() == "inconclusive"
    bad = sample_size_noninferiority(p10=0.02, p01=0.08, margin=0.02).iloc[0]
    assert np.isinf(bad["n_required"]) and "no number of items" in bad["statement"]
    # at the margin itself (float noise above it): unreachable in words, never a 35-digit number
    edge = sample_size_noninferiority(p10=0.03, p01=0.05 - 1e-15, margin=0.02).iloc[0]
    assert np.isinf(edge["n_required"]) and "no number of items" in edge["statement"]
    assert np.isinf(sample_size_difference(p10=0.05, p01=0.05)["n_required"].item())


# -- agreement without gold ----------------------------------------------------------------------------

def test_agreement_matches_statsmodels_kappa_and_wilson():
    rng = np.random.default_rng(16)
    labels = np.array(["billing", "bug", "feature"])
    api = labels[rng.integers(0, 3, 300)]
    local = np.where(rng.random(300) < 0.7, api, labels[rng.integers(0, 3, 300)])
    r = agreement(local, api)
    overall = r.iloc[0]
    table = pd.crosstab(pd.Series(local), pd.Series(api)).reindex(index=labels, columns=labels, fill_value=0)
    ck = cohens_kappa(table.to_numpy())  # statsmodels 0.15 inter_rater.cohens_kappa
    assert overall["kappa"] == pytest.approx(ck.kappa) and overall["kappa_se"] == pytest.approx(ck.std_kappa)
    assert (overall["kappa_ci_low"], overall["kappa_ci_high"]) == pytest.approx((ck.kappa_low, ck.kappa_upp))
    k = int((local == api).sum())
    # statsmodels proportion_confint(method="wilson")
    assert (overall["agreement_ci_low"], overall["agreement_ci_high"]) == pytest.approx(
        proportion_confint(k, 300, method="wilson"))
    bug = r.set_index("level").loc["bug"]
    both = ((local == "bug") & (api == "bug")).sum()
    assert bug["agreement"] == pytest.approx(2 * both / ((local == "bug").sum() + (api == "bug").sum()))
    two = np.array([[both, ((local == "bug") & (api != "bug")).sum()],
                    [((local != "bug") & (api == "bug")).sum(), ((local != "bug") & (api != "bug")).sum()]])
    assert bug["kappa"] == pytest.approx(cohens_kappa(two).kappa)


def test_agreement_edge_cases():
    same = agreement(["a", "b", "a"], ["a", "b", "a"]).iloc[0]
    assert (same["agreement"], same["kappa"], same["kappa_se"]) == (1.0, 1.0, 0.0)
    one = agreement(["a", "a"], ["a", "a"]).iloc[0]
    assert np.isnan(one["kappa"]) and "undefined" in one["statement"]
    r = agreement(["a", None, "zzz"], ["a", "b", "b"], labels=["a", "b"])
    assert set(r["level"]) == {"overall", "a", "b", "(unparsed)", "(other)"}
    assert r.set_index("level").loc["(unparsed)", "n_a"] == 1
    with pytest.raises(ConfigError):
        agreement(["a"], ["a", "b"])


# -- latency -------------------------------------------------------------------------------------------

def test_latency_test_exact_matches_scipy():
    rng = np.random.default_rng(17)
    a, b = rng.gamma(4, 0.1, 20), rng.gamma(4, 0.11, 20)
    r = latency_test(a, b).iloc[0]
    ref = stats.wilcoxon(a, b, method="exact")  # scipy 1.17 wilcoxon, exact null distribution
    assert r["statistic"] == ref.statistic and r["p_value"] == pytest.approx(ref.pvalue)
    for alt in ("less", "greater"):
        assert latency_test(a, b, alternative=alt)["p_value"].item() == pytest.approx(
            stats.wilcoxon(a, b, method="exact", alternative=alt).pvalue)


def test_latency_test_with_ties_and_zeros():
    a = np.array([1.0, 1.2, 1.2, 1.5, 2.0, 2.0, 0.9, 1.1, 1.3, 1.0, 1.7])
    b = np.array([1.1, 1.0, 1.0, 1.5, 1.8, 1.8, 1.2, 1.1, 1.0, 1.2, 1.2])
    r = latency_test(a, b).iloc[0]
    # scipy.stats.wilcoxon with ties/zeros and n <= 13: exhaustive permutation test
    ref = stats.wilcoxon(a, b)
    assert r["p_value"] == pytest.approx(ref.pvalue) and r["statistic"] == ref.statistic
    rng = np.random.default_rng(18)
    x = np.round(rng.gamma(4, 0.1, 200), 1)  # rounded: many ties and zero differences
    y = np.round(x + rng.normal(0.02, 0.05, 200), 1)
    for zm in ("wilcox", "pratt"):
        got = latency_test(x, y, zero_method=zm).iloc[0]
        # scipy wilcoxon normal approximation with tie correction, no continuity correction
        want = stats.wilcoxon(x, y, zero_method=zm, method="asymptotic")
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-9) and got["statistic"] == want.statistic
    flat = latency_test([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]).iloc[0]
    assert flat["p_value"] == 1.0 and flat["n_nonzero"] == 0


def test_latency_summary_against_numpy_and_scipy_bootstrap():
    rng = np.random.default_rng(19)
    df = score_table({REF: rng.random(300) < 0.8, LOCAL: rng.random(300) < 0.7})
    df.loc[df["option"] == LOCAL, "latency_s"] = np.round(df.loc[df["option"] == LOCAL, "latency_s"], 2)  # ties
    df.loc[df.index[-1], "latency_s"] = np.nan
    r = latency_summary(df, n_resamples=3000).set_index("option")
    lat = df.loc[df["option"] == REF, "latency_s"]
    # pandas Series.quantile (linear interpolation, R type 7)
    assert r.loc[REF, "p95_s"] == pytest.approx(lat.quantile(0.95))
    boot = stats.bootstrap((lat.to_numpy(),), lambda x, axis=-1: np.quantile(x, 0.5, axis=axis), vectorized=True,
                           n_resamples=3000, method="percentile", rng=1)  # scipy.stats.bootstrap, percentile
    assert r.loc[REF, "p50_ci_low"] == pytest.approx(boot.confidence_interval.low, abs=0.01)
    assert r.loc[REF, "p50_ci_high"] == pytest.approx(boot.confidence_interval.high, abs=0.01)
    assert r.loc[REF, "tokens_per_s"] == pytest.approx(10 * 300 / lat.sum())
    slow = lat[lat > 0.05]  # requests that ended before the first token was timed are left out
    assert r.loc[REF, "decode_tokens_per_s"] == pytest.approx(10 * slow.size / (slow - 0.05).sum())
    assert r.loc[LOCAL, "n_no_latency"] == 1 and r.loc[LOCAL, "n"] == 299
    assert r.loc[REF, "mean_ttft_s"] == pytest.approx(0.05)


# -- per-arm tables ------------------------------------------------------------------------------------

def test_accuracy_ci_and_metric_table_match_statsmodels_wilson():
    r = accuracy_ci([True] * 17 + [False] * 3).iloc[0]
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(proportion_confint(17, 20, method="wilson"))
    allc = accuracy_ci([1] * 7).iloc[0]  # all correct, fewer than 10 items
    assert allc["ci_high"] == 1.0 and allc["ci_low"] == pytest.approx(proportion_confint(7, 7, method="wilson")[0])
    df = score_table({REF: np.r_[np.ones(40), np.zeros(10)], LOCAL: np.r_[np.ones(30), np.zeros(20)]})
    t = metric_table(df).set_index("option")
    assert (t.loc[LOCAL, "accuracy_ci_low"], t.loc[LOCAL, "accuracy_ci_high"]) == pytest.approx(
        proportion_confint(30, 50, method="wilson"))


def test_errors_are_counted_and_kept_as_wrong():
    ref = np.ones(30, dtype=bool)
    local = np.ones(30, dtype=bool)
    df = score_table({REF: ref, LOCAL: local})
    bad = df.index[(df["option"] == LOCAL) & df["item_id"].isin(["item-1", "item-2", "item-3"])]
    df.loc[bad[:2], ["correct", "score", "error"]] = [False, 0.0, "HTTP 500"]
    df.loc[bad[2], ["correct", "score", "parse_error", "answer"]] = [False, 0.0, True, None]
    df = df.drop(df.index[(df["option"] == LOCAL) & (df["item_id"] == "item-9")])  # never answered
    e = errors_table(df).set_index("option")
    assert (e.loc[LOCAL, "n_errors"], e.loc[LOCAL, "n_parse_errors"], e.loc[LOCAL, "n_missing_items"]) == (2, 1, 1)
    assert e.loc[LOCAL, "top_error"] == "HTTP 500" and e.loc[REF, "n_failed"] == 0
    c = compare_arms(df, reference=REF, n_resamples=1000).iloc[0]
    assert c["n_items"] == 30 and c["b01"] == 4 and c["n_missing_candidate"] == 1  # 3 failures + 1 missing
    assert "counted as wrong" in c["statement"]
    dropped = compare_arms(df, reference=REF, missing="drop", n_resamples=1000).iloc[0]
    assert dropped["n_items"] == 29
    with pytest.raises(ConfigError, match="lack items"):
        compare_arms(df, reference=REF, missing="raise")


# -- compare_arms ---------------------------------------------------------------------------------------

def test_compare_arms_three_candidates_with_holm():
    ref, close = paired_correct(800, 0.62, 0.06, 0.05, seed=20)
    rng = np.random.default_rng(23)
    bad = np.where(rng.random(800) < 0.3, False, ref)  # loses about 20 points
    better = np.where(rng.random(800) < 0.4, True, ref)  # gains about 13 points
    df = score_table({REF: ref, "local:close": close, "local:bad": bad, "local:better": better})
    out = compare_arms(df, reference=REF, margin=0.03, n_resamples=2000)
    assert list(out["option"]) == ["local:close", "local:bad", "local:better"]
    assert list(out["conclusion"]) == ["non-inferior", "inferior", "superior"]
    # statsmodels multipletests(method="holm") on the non-inferiority p-values
    assert out["p_noninferiority_adj"].to_numpy() == pytest.approx(multipletests(out["p_noninferiority"], method="holm")[1])
    assert (out["survives_adjustment"] == (out["conclusion"] == out["conclusion_adjusted"])).all()
    for _, r in out.iterrows():
        cand = df.loc[df["option"] == r["option"], "correct"].to_numpy()
        table = pd.crosstab(cand, ref).reindex(index=[True, False], columns=[True, False], fill_value=0)
        assert (r["b10"], r["b01"]) == (table.loc[True, False], table.loc[False, True])
        # statsmodels mcnemar(exact=True) on the same table
        assert r["mcnemar_p"] == pytest.approx(sm_mcnemar(table.to_numpy(), exact=True).pvalue)
        assert r["diff_ci_low"] <= r["difference"] <= r["diff_ci_high"]
        assert "Assumptions" in r["statement"]
    plain = compare_arms(df, reference=REF, margin=0.03, holm=False, n_resamples=500)
    assert (plain["adjustment"] == "none").all() and (plain["p_noninferiority_adj"] == plain["p_noninferiority"]).all()


def test_compare_arms_conclusion_that_does_not_survive_holm():
    ref = np.array([True] * 350 + [False] * 150)
    arms = {REF: ref}
    for j in range(3):  # three candidates, each 15 items won and 15 lost against the reference
        cand = ref.copy()
        cand[j * 15:(j + 1) * 15] = False
        cand[350 + j * 15:350 + (j + 1) * 15] = True
        arms[f"local:{j}"] = cand
    out = compare_arms(score_table(arms), reference=REF, margin=0.02, n_resamples=1000)
    # each alone is non-inferior (p about 0.04), but Holm over 3 multiplies the smallest p by 3
    assert (out["conclusion"] == "non-inferior").all() and (out["p_noninferiority"] < 0.05).all()
    assert (out["conclusion_adjusted"] == "inconclusive").all() and not out["survives_adjustment"].any()
    assert out["p_noninferiority_adj"].to_numpy() == pytest.approx(multipletests(out["p_noninferiority"], method="holm")[1])
    assert "becomes **inconclusive**" in out.loc[0, "statement"]


def test_compare_arm_with_itself_is_not_different():
    ref, _ = paired_correct(500, 0.6, 0.1, 0.1, seed=24)
    df = score_table({REF: ref, "copy-of-reference": ref})
    r = compare_arms(df, reference=REF, n_resamples=1000).iloc[0]
    assert r["difference"] == 0 and (r["diff_ci_low"], r["diff_ci_high"]) == (0.0, 0.0)
    assert r["mcnemar_p"] == 1.0 and r["b10"] == r["b01"] == 0
    assert r["conclusion"] in ("non-inferior", "inconclusive") and r["conclusion"] == "non-inferior"


def test_compare_arms_with_few_items_is_inconclusive():
    df = score_table({REF: [1, 1, 0, 1, 0, 1, 1, 0], LOCAL: [1, 0, 0, 1, 0, 1, 1, 1]})
    r = compare_arms(df, reference=REF, n_resamples=1000).iloc[0]
    assert r["conclusion"] == "inconclusive" and r["enough_items"] == False  # noqa: E712
    assert r["n_needed"] > 8 and "items would be needed" in r["statement"]
    with pytest.raises(ConfigError, match="reference arm"):
        compare_arms(df, reference="nope")
    with pytest.raises(ConfigError, match="only the reference"):
        compare_arms(df[df["option"] == REF], reference=REF)


def test_compare_arms_fractional_scores_and_epochs():
    df = score_table({REF: np.ones(50, bool), LOCAL: np.ones(50, bool)}, epochs=2)
    df.loc[(df["option"] == LOCAL) & (df["epoch"] == 1) & (df["item_id"] == "item-0"), ["correct", "score"]] = [False, 0.0]
    wide = pair_arms(df, arms=[LOCAL, REF])
    assert wide.loc["item-0", LOCAL] == 0.5
    r = compare_arms(df, reference=REF, n_resamples=500).iloc[0]
    assert r["metric"] == "mean score" and r["difference"] == pytest.approx(-0.01)
    assert r["b01"] == 1  # majority over 2 epochs: right in 1 of 2 is not a majority
    first = compare_arms(df, reference=REF, epochs=0, n_resamples=500).iloc[0]
    assert first["difference"] == 0


# -- epochs ---------------------------------------------------------------------------------------------

def test_epoch_variation_reports_spread_and_changing_verdicts():
    ref, _ = paired_correct(400, 0.7, 0.0, 0.0, seed=25)
    e0 = ref.copy()
    e1 = ref.copy()
    e1[np.flatnonzero(ref)[:40]] = False  # second epoch of the candidate loses 10 points
    df = score_table({REF: ref, LOCAL: np.vstack([e0, e1])}, epochs=2)
    out = epoch_variation(df, reference=REF, margin=0.02).set_index("option")
    vals = df[df["option"] == LOCAL].groupby("epoch")["score"].mean()
    assert out.loc[LOCAL, "value_sd"] == pytest.approx(statistics.stdev(vals))  # stdlib statistics.stdev
    assert out.loc[LOCAL, "item_flip_rate"] == pytest.approx(40 / 400)
    assert out.loc[LOCAL, "conclusion_changes"] == True  # noqa: E712
    assert out.loc[LOCAL, "conclusions_by_epoch"] == "0: non-inferior, 1: inferior"
    assert "would not have been reliable" in out.loc[LOCAL, "statement"]
    assert out.loc[REF, "conclusion_changes"] is None
    single = epoch_variation(score_table({REF: ref})).iloc[0]
    assert single["n_epochs"] == 1 and "not measured" in single["statement"]


# -- CLI and input checks -------------------------------------------------------------------------------

def test_cli_compare_prints_table(tmp_path, capsys):
    ref, cand = paired_correct(200, 0.6, 0.08, 0.06, seed=26)
    path = tmp_path / "scores.csv"
    score_table({REF: ref, LOCAL: cand}).to_csv(path, index=False)
    parser = argparse.ArgumentParser(prog="kit")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stats", "compare", str(path), "--reference", REF, "--resamples", "1000", "--format", "csv"])
    assert args.func(args) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert table.loc[0, "option"] == LOCAL and table.loc[0, "b10"] == int((cand & ~ref).sum())
    args = parser.parse_args(["stats", "errors", str(path)])
    assert args.func(args) == 0 and "treated_as" in capsys.readouterr().out


def test_score_table_checks():
    with pytest.raises(ConfigError, match="lacks columns"):
        metric_table(pd.DataFrame({"option": ["a"], "item_id": [1]}))
    dup = pd.DataFrame({"option": ["a", "a"], "item_id": [1, 1], "correct": [True, False]})
    with pytest.raises(ConfigError, match="duplicate"):
        metric_table(dup)
    with pytest.raises(ConfigError, match="alpha"):
        non_inferiority([1, 0], [1, 0], alpha=1.5)
