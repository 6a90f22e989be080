"""Labels under random labels and under the stratified design on disagreements (kit.stats.label_designs)."""

from __future__ import annotations

import numpy as np
import pytest

from kit.errors import ConfigError
from kit.stats.label_designs import Design, power_stratified, random_labels, stratified_labels

Z95, Z80 = 1.644854, 0.841621  # standard normal quantiles (any table: z_0.95, z_0.80)


def test_stratified_labels_match_the_textbook_arithmetic():
    # Cochran (1977) eq. 5.25 with the other stratum exact: n = (z_a + z_b)^2 d^2 S^2 / (difference + margin)^2;
    # d = 0.15, S^2 = 1 (one option right on every disagreement), no true difference, margin 5 points
    by_hand = (Z95 + Z80) ** 2 * 0.15 ** 2 / 0.05 ** 2  # 55.6
    size = stratified_labels(disagreement=0.15, margin=0.05)
    assert size.design is Design.STRATIFIED and size.labels == np.ceil(by_hand) == 56


def test_the_finite_population_terms_cancel_when_every_disagreement_has_one_option_right():
    # labelling error d^2 S^2 (1/n - 1/N_D) plus the items' own error tau^2 / N, with tau^2 = d = d^2 S^2 N / N_D
    for n_items in (400, 1000, 5000):
        size = stratified_labels(disagreement=0.15, n_items=n_items, margin=0.05)
        assert size.labels == 56 and size.population == round(0.15 * n_items)


def test_too_few_disagreements_are_flagged_not_hidden():
    # 200 items hold ~30 disagreements, fewer than the 56 needed: labelling all of them is not enough
    size = stratified_labels(disagreement=0.15, n_items=200, margin=0.05)
    assert size.population == 30 and size.labels > 30 and not size.within_population


def _simulated_power(n: int, *, n_items: int, d: float, spread: float, difference: float, margin: float,
                     reps: int, seed: int) -> float:
    """The design simulated end to end (traffic drawn, disagreements sampled without replacement, the
    design-weighted estimate tested with its estimated variance): independent of the planning formula."""
    rng = np.random.default_rng(seed)
    n_dis = rng.binomial(n_items, d, reps)
    one_right = rng.binomial(n_dis, spread)  # the rest: both wrong, D = 0
    plus = rng.binomial(one_right, (1 + difference / (d * spread)) / 2)
    minus = one_right - plus
    counts = np.stack([plus, minus, n_dis - one_right], axis=1)
    draws = np.array([rng.multivariate_hypergeometric(c, min(n, int(c.sum()))) for c in counts])
    take = draws.sum(axis=1)
    y1, y2 = (draws[:, 0] - draws[:, 1]) / take, (draws[:, 0] + draws[:, 1]) / take  # mean D, mean D^2
    s2 = take / (take - 1) * (y2 - y1 ** 2)
    share = n_dis / n_items
    est = share * y1
    var = share ** 2 * s2 * (1 / take - 1 / n_dis) + (share * y2 - est ** 2) / n_items
    return float(np.mean(est - Z95 * np.sqrt(var) > -margin))


@pytest.mark.parametrize("d, spread, n_items", [(0.15, 1.0, 2000), (0.25, 0.8, 3000)])
def test_the_planned_labels_have_the_planned_power_in_simulation(d, spread, n_items):
    size = stratified_labels(disagreement=d, n_items=n_items, spread=spread, margin=0.05)
    measured = _simulated_power(int(size.labels), n_items=n_items, d=d, spread=spread, difference=0.0, margin=0.05,
                                reps=3000, seed=1)
    assert measured == pytest.approx(0.80, abs=0.03)  # 3,000 runs: standard error 0.7 points
    assert power_stratified(int(size.labels), disagreement=d, n_items=n_items, spread=spread,
                            margin=0.05) == pytest.approx(0.80, abs=0.01)


def test_at_85_percent_agreement_the_stratified_design_needs_under_a_quarter_of_the_random_labels():
    random = random_labels(agreement=0.85, margin=0.05)
    stratified = stratified_labels(disagreement=0.15, n_items=2000, margin=0.05)
    assert random.design is Design.RANDOM and stratified.labels / random.labels <= 0.25


def test_random_labels_are_nams_paired_items():
    # Nam (1997) at p10 = p01 = 0.05, margin 2 points, alpha 0.05, 80% power: 1578 (the kit's power tests)
    assert random_labels(agreement=0.9, margin=0.02).labels == 1578
    assert random_labels(agreement=0.9, margin=0.02, population=60).within_population is False


def test_an_impossible_difference_is_refused():
    with pytest.raises(ConfigError, match="impossible"):
        stratified_labels(disagreement=0.05, difference=0.5)
    with pytest.raises(ConfigError, match="impossible"):
        random_labels(agreement=0.95, difference=-0.2)


def test_the_power_functions_refuse_a_difference_the_discordance_cannot_carry():
    # issue 26 case 10: 5% discordant and a difference of 50 points used to become 50% discordant, silently
    from kit.stats import sample_size_noninferiority

    with pytest.raises(ConfigError, match="impossible when 0.05 of the items are discordant"):
        sample_size_noninferiority(p10=0.025, p01=0.025, difference=0.5, margin=0.05)
    moved = sample_size_noninferiority(p10=0.025, p01=0.025, difference=0.03, margin=0.05).iloc[0]
    assert (moved["p10"], moved["p01"]) == pytest.approx((0.04, 0.01))
