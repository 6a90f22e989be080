"""Paired statistics on scores and the agreement bar, each checked against an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp
from statsmodels.stats.descriptivestats import sign_test as sm_sign_test
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize
from statsmodels.stats.weightstats import DescrStatsW

from kit import stats
from kit.errors import ConfigError

STANDARD = ["option", "reference", "n_items", "metric", "candidate_value", "candidate_ci_low", "candidate_ci_high",
            "reference_value", "reference_ci_low", "reference_ci_high", "difference", "diff_ci_low", "diff_ci_high",
            "lower_bound", "conclusion", "conclusion_adjusted", "qualifies", "better", "n_needed", "statement"]


def test_wilcoxon_matches_the_published_example():
    # R's ?wilcox.test example (Hollander & Wolfe 1973, p. 29, depression scale):
    # wilcox.test(x, y, paired = TRUE, alternative = "greater") -> V = 40, p-value = 0.01953
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    r = stats.wilcoxon_signed_rank(x, y, alternative="greater").iloc[0]
    assert r["statistic"] == 40 and r["p_value"] == pytest.approx(0.01953, abs=5e-6)
    assert r["method"] == "exact"


def test_wilcoxon_drops_zero_differences_and_handles_all_equal():
    a, b = [0.5, 0.7, 0.2, 0.4, 0.9, 0.3], [0.5, 0.6, 0.3, 0.1, 0.9, 0.1]
    r = stats.wilcoxon_signed_rank(a, b).iloc[0]
    assert r["n_nonzero"] == 4
    # scipy 1.17, zero_method="wilcox" drops zeros: the same as testing the non-zero differences alone
    nz = np.array(a) - np.array(b)
    assert r["p_value"] == pytest.approx(sp.wilcoxon(nz[nz != 0]).pvalue)
    assert stats.wilcoxon_signed_rank([0.3, 0.3], [0.3, 0.3])["p_value"].item() == 1.0


def test_sign_test_and_win_tie_loss_match_statsmodels():
    rng = np.random.default_rng(3)
    cand = rng.integers(0, 5, 60) / 4
    ref = rng.integers(0, 5, 60) / 4
    r = stats.win_tie_loss(cand, ref).iloc[0]
    d = cand - ref
    assert (r["wins"], r["ties"], r["losses"]) == ((d > 0).sum(), (d == 0).sum(), (d < 0).sum())
    # statsmodels 0.15 sign_test: ties excluded, two-sided exact binomial
    assert r["sign_p"] == pytest.approx(sm_sign_test(d, 0)[1])
    for name, k in (("win", r["wins"]), ("loss", r["losses"])):
        lo, hi = proportion_confint(k, 60, alpha=0.05, method="wilson")
        assert (r[f"{name}_ci_low"], r[f"{name}_ci_high"]) == pytest.approx((lo, hi))


def test_score_noninferiority_is_the_paired_t_test_of_statsmodels():
    rng = np.random.default_rng(7)
    ref = rng.uniform(0.3, 0.9, 80)
    cand = np.clip(ref + rng.normal(-0.01, 0.08, 80), 0, 1)
    table = stats.compare_scores(pd.DataFrame({"option": ["api"] * 80 + ["local"] * 80, "item_id": list(range(80)) * 2,
                                               "score": np.r_[ref, cand]}), reference="api", margin=0.05,
                                 n_resamples=2000)
    row = table.iloc[0]
    d = DescrStatsW(cand - ref)
    # statsmodels 0.15: one-sided t-test of mean(d) > -margin, and the one-sided 95% bound
    assert row["p_noninferiority"] == pytest.approx(d.ttest_mean(-0.05, alternative="larger")[1])
    assert row["lower_bound"] == pytest.approx(d.tconfint_mean(alpha=0.10)[0])
    lo, hi = DescrStatsW(cand).tconfint_mean(alpha=0.05)
    assert (row["candidate_ci_low"], row["candidate_ci_high"]) == pytest.approx((lo, hi))
    assert row["wilcoxon_p"] == pytest.approx(sp.wilcoxon(cand, ref).pvalue)
    assert list(table.columns[:3]) == ["option", "reference", "n_items"] and set(STANDARD) <= set(table.columns)


def test_mean_difference_bootstrap_agrees_with_scipy():
    rng = np.random.default_rng(11)
    ref = rng.uniform(0, 1, 120)
    cand = np.clip(ref + rng.normal(0.03, 0.1, 120), 0, 1)
    mine = stats.mean_difference(cand, ref, n_resamples=20_000).iloc[0]
    # scipy 1.17: paired BCa bootstrap of the mean difference (different resamples: close, not equal)
    ref_ci = sp.bootstrap((cand, ref), lambda a, b, axis: np.mean(a - b, axis=axis), paired=True,
                          n_resamples=20_000, method="BCa", random_state=1).confidence_interval
    assert mine["difference"] == pytest.approx(np.mean(cand - ref))
    assert mine["ci_low"] == pytest.approx(ref_ci.low, abs=0.004)
    assert mine["ci_high"] == pytest.approx(ref_ci.high, abs=0.004)


def test_items_needed_matches_gpower_and_statsmodels():
    # G*Power 3.1, t tests - means: difference between two dependent means (matched pairs), one tail,
    # dz = 0.5, alpha 0.05, power 0.80 -> total sample size 27
    assert stats.t_test_items(0.5) == 27
    for dz in (0.2, 0.35, 0.8):
        assert stats.t_test_items(dz) == math.ceil(TTestPower().solve_power(effect_size=dz, alpha=0.05, power=0.8,
                                                                            alternative="larger"))
    assert stats.items_needed_mean([0.2, 0.3, 0.1], [0.9, 0.8, 0.9], margin=0.02) == math.inf


def test_compare_scores_holm_gaps_and_missing():
    n = 40
    rng = np.random.default_rng(5)
    ref = rng.uniform(0.4, 0.8, n)
    rows = [{"option": "api", "item_id": i, "score": ref[i]} for i in range(n)]
    rows += [{"option": "same", "item_id": i, "score": ref[i]} for i in range(n)]
    rows += [{"option": "bad", "item_id": i, "score": max(0.0, ref[i] - 0.3)} for i in range(n - 2)]  # 2 never answered
    rows[3]["score"] = float("nan")  # the judge gave no grade for the reference on item 3: a gap for everyone
    table = stats.compare_scores(pd.DataFrame(rows), reference="api", margin=0.02, n_resamples=1000).set_index("option")
    assert table.loc["same", "conclusion_adjusted"] == "non-inferior" and table.loc["same", "qualifies"]
    assert table.loc["bad", "conclusion_adjusted"] == "inferior" and not table.loc["bad", "qualifies"]
    assert table.loc["bad", "n_needed"] == math.inf
    assert table.loc["bad", "n_missing_candidate"] == 2 and table.loc["bad", "n_gaps"] == 1
    assert table.loc["bad", "n_items"] == n - 1
    assert "could not be scored" in table.loc["same", "statement"]
    p = table["p_noninferiority"].to_numpy()
    assert table["p_noninferiority_adj"].to_numpy() == pytest.approx(stats.holm(p))


def test_agreement_bound_and_test_match_statsmodels_and_the_binomial_tail():
    for k, n in ((95, 100), (48, 50), (180, 200), (0, 10), (10, 10)):
        # statsmodels 0.15: Clopper-Pearson ("beta") two-sided at 2*alpha gives the one-sided bound
        assert stats.agreement_bound(k, n, alpha=0.05) == pytest.approx(
            proportion_confint(k, n, alpha=0.10, method="beta")[0], abs=1e-12)
    for k in range(85, 101):
        r = stats.agreement_test(k, 100, target=0.9).iloc[0]
        tail = sum(math.comb(100, j) * 0.9 ** j * 0.1 ** (100 - j) for j in range(k, 101))  # P(X >= k | p = 0.9)
        assert r["p_meets"] == pytest.approx(tail)
        assert (r["p_meets"] < 0.05) == (r["lower_bound"] > 0.9)  # the bound and the test agree


def test_items_needed_agreement_matches_statsmodels():
    for rate, target in ((0.99, 0.95), (0.97, 0.9), (0.93, 0.9)):
        # statsmodels 0.15 NormalIndPower with ratio=0 is the one-sample test on Cohen's h
        h = proportion_effectsize(rate, target)
        want = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=0, alternative="larger")
        assert stats.items_needed_agreement(rate, target) == math.ceil(want)
    assert stats.items_needed_agreement(0.9, 0.95) == math.inf


def test_compare_agreement_table():
    gold = ["a", "b", "c", "a", "b"] * 20
    good = list(gold)
    poor = [g if i % 4 else "c" for i, g in enumerate(gold)]
    rows = [{"option": "api", "item_id": i, "answer": g, "gold": g, "correct": True, "score": 1.0} for i, g in enumerate(gold)]
    rows += [{"option": "good", "item_id": i, "answer": a, "gold": g, "correct": a == g, "score": float(a == g)}
             for i, (a, g) in enumerate(zip(good, gold))]
    rows += [{"option": "poor", "item_id": i, "answer": a, "gold": g, "correct": a == g, "score": float(a == g)}
             for i, (a, g) in enumerate(zip(poor, gold))]
    table = stats.compare_agreement(pd.DataFrame(rows), reference="api", target=0.95).set_index("option")
    assert table.loc["good", "qualifies"] and table.loc["good", "kappa"] == pytest.approx(1.0)
    assert table.loc["poor", "conclusion_adjusted"] == "below the bar" and not table.loc["poor", "qualifies"]
    assert not table["better"].any() and set(STANDARD) - {"option"} <= set(table.columns)
    assert table.loc["poor", "n_disagreements"] == sum(a != g for a, g in zip(poor, gold))
    with pytest.raises(ConfigError, match="target"):
        stats.agreement_test(9, 10, target=95)


def test_rater_agreement_matches_sklearn_and_scipy():
    from sklearn.metrics import cohen_kappa_score

    judge = [5, 4, 2, 1, 3, 5, 4, 4, 2, 3, 1, 5]
    human = [5, 4, 2, 2, 3, 4, 4, 3, 2, 3, 1, 5]
    r = stats.rater_agreement(judge, human).iloc[0]
    assert r["kappa"] == pytest.approx(cohen_kappa_score(judge, human))  # scikit-learn 1.9
    assert r["spearman"] == pytest.approx(sp.spearmanr(judge, human).statistic)  # scipy 1.17
    z, se = math.atanh(r["spearman"]), 1 / math.sqrt(len(judge) - 3)  # Fisher z on the ranks
    assert (r["spearman_ci_low"], r["spearman_ci_high"]) == pytest.approx(
        (math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)), abs=1e-5)
    lo, hi = proportion_confint(9, 12, alpha=0.05, method="wilson")
    assert r["agreement"] == pytest.approx(9 / 12) and (r["agreement_ci_low"], r["agreement_ci_high"]) == pytest.approx((lo, hi))
