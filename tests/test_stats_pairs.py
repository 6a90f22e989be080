"""The floor test and the pairwise tests against independent references (scipy, statsmodels)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from kit.stats import beats_baseline, pairwise

rng = np.random.default_rng(7)


def test_floor_paired_equals_half_the_exact_mcnemar_when_the_candidate_leads():
    cand = rng.random(300) < 0.62
    base = rng.random(300) < 0.55
    b10, b01 = int((cand & ~base).sum()), int((~cand & base).sum())
    assert b10 > b01
    table = [[int((cand & base).sum()), b10], [b01, int((~cand & ~base).sum())]]
    two_sided = sm_mcnemar(table, exact=True).pvalue  # statsmodels 0.14: binomial, two-sided
    got = beats_baseline(cand, base)["p_value"].item()
    assert got == pytest.approx(two_sided / 2, rel=1e-9)


def test_floor_against_chance_is_scipys_one_sided_binomial():
    cand = np.array([1] * 33 + [0] * 67, dtype=float)  # 33% on a 4-label task
    got = beats_baseline(cand, np.full(100, 0.25), paired=False)
    # scipy 1.x: binomtest(33, 100, 0.25, alternative="greater") = 0.0446
    assert got["p_value"].item() == pytest.approx(stats.binomtest(33, 100, 0.25, alternative="greater").pvalue)
    assert got["passes"].item() and got["p_value"].item() == pytest.approx(0.0446, abs=5e-4)


def test_floor_fails_at_the_majority_class():
    """Always 'ham' at 70% beats an option at 48%: that option does not clear the floor."""
    gold_ham = rng.random(200) < 0.7
    base = gold_ham.astype(float)
    cand = (rng.random(200) < 0.48).astype(float)
    out = beats_baseline(cand, base, name="always 'ham'")
    assert not out["passes"].item() and "does not clear the floor" in out["statement"].item()


def test_pairwise_sign_test_and_holm():
    wide = np.column_stack([rng.random(80), rng.random(80) * 0.5, rng.random(80)])
    import pandas as pd

    table = pairwise(pd.DataFrame(wide, columns=["a", "b", "c"]))
    assert list(zip(table["a"], table["b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    d = wide[:, 0] - wide[:, 1]
    ref = stats.binomtest(int((d > 0).sum()), int((d != 0).sum()), 0.5).pvalue  # scipy exact sign test
    assert table["p_value"].iloc[0] == pytest.approx(ref)
    # Holm: the smallest p is multiplied by 3 (statsmodels multipletests(method="holm") agrees)
    from statsmodels.stats.multitest import multipletests

    assert np.allclose(table["p_holm"], multipletests(table["p_value"], method="holm")[1])
