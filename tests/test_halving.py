"""Successive halving (kit.stats.halving): the schedule Karnin, Koren & Somekh (2013) give, the items each variant
is asked about, the pick and its ties, its error rate against an exact binomial reference, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from kit.errors import ConfigError
from kit.stats.halving import rank, successive_halving


def _recorder(scores: np.ndarray):
    """A score callback over a fixed matrix that records every (variant, range) it is asked."""
    asked: list[tuple[int, range]] = []

    def score(v: int, items: range) -> np.ndarray:
        asked.append((v, items))
        return scores[v, items.start:items.stop]

    return score, asked


def test_the_schedule_spends_an_equal_share_per_round_and_halves_the_variants():
    """Six variants, 60 items, half the answers: rounds of 6 x 10, 3 x 20 and 2 x 30 answers (60 each, Karnin et
    al.'s equal split of the budget over ceil(log2 6) = 3 rounds); the last two see every item."""
    truth = np.array([0.9, 0.2, 0.5, 0.3, 0.8, 0.1])
    scores = (np.random.default_rng(0).random((6, 60)) < truth[:, None]).astype(float)
    score, asked = _recorder(scores)
    pick = successive_halving(6, 60, score)
    assert pick.round_ends == (10, 30, 60) and pick.calls == 180 and pick.exhaustive_calls == 360
    assert pick.share == 0.5 == sum(len(r) for _, r in asked) / 360
    for v in range(6):  # each variant is asked a prefix of the items, consecutively, never an item twice
        ranges = [r for a, r in asked if a == v]
        assert ranges[0].start == 0 and all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
        assert pick.arms[v].items == ranges[-1].stop
        assert pick.arms[v].mean == pytest.approx(scores[v, :ranges[-1].stop].mean())
    assert [a.items for a in pick.arms] == [60, 10, 30, 10, 60, 10]
    assert pick.best == 0 and pick.arms[0].cut_in_round is None
    assert [a.cut_in_round for a in pick.arms] == [None, 0, 1, 0, 2, 0]


def test_the_best_reaching_the_last_round_on_every_item_is_exhaustive_selections_pick_ties_included():
    """When the last round sees every item, the pick is the exhaustive rule's: the best mean, a tie to the lower
    tiebreak (fewer prompt tokens), then to the variant listed first."""
    scores = np.zeros((4, 40))
    scores[0, :30] = 1  # 75%
    scores[1, :30] = 1  # 75%, a shorter prompt: wins the tie
    scores[2, :10] = 1
    scores[3, :5] = 1
    pick = successive_halving(4, 40, _recorder(scores)[0], budget=1.0, tiebreak=[120.0, 80.0, 10.0, 10.0])
    assert pick.best == 1 == rank(scores.mean(axis=1).tolist(), [0, 1, 2, 3], tiebreak=[120.0, 80.0, 10.0, 10.0])[0]
    assert pick.round_ends[-1] == 40
    assert successive_halving(4, 40, _recorder(scores)[0], budget=1.0).best == 0  # no tiebreak: listed first


def test_a_small_dev_split_gets_at_least_min_slice_items_per_round_never_more_than_exhaustive():
    """Twelve items for six variants: half the answers would leave 2 items for the first round; each round
    gives at least 5 new items instead (while items last), so the budget is exceeded — and said — but never the
    72 answers of asking everything."""
    scores = np.tile(np.linspace(0.9, 0.1, 6)[:, None], (1, 12)).round()
    pick = successive_halving(6, 12, _recorder(scores)[0])
    assert pick.round_ends == (5, 10, 12) and pick.calls == 6 * 5 + 3 * 5 + 2 * 2 == 49
    assert pick.share == pytest.approx(49 / 72) and pick.calls <= pick.exhaustive_calls
    one = successive_halving(1, 12, _recorder(scores)[0])
    assert one.best == 0 and one.calls == 0 and one.round_ends == ()


def test_two_variants_err_as_often_as_the_exact_binomial_probability():
    """With two variants one round compares them on half the items (budget 0.5 of 2 x 40: 20 each). With
    independent right/wrong answers at 70% and 50%, and ties going to the worse one, halving picks the worse
    with probability P(Y >= X), X ~ Bin(20, 0.7), Y ~ Bin(20, 0.5) — computed exactly from scipy.stats.binom."""
    n, p_best, p_worse = 20, 0.7, 0.5
    k = np.arange(n + 1)
    exact = float(sum(binom.pmf(x, n, p_best) * binom.sf(x - 1, n, p_worse) for x in k))  # scipy 1.x
    rng = np.random.default_rng(7)
    reps, wrong = 2000, 0
    for _ in range(reps):
        scores = (rng.random((2, 2 * n)) < np.array([[p_best], [p_worse]])).astype(float)
        wrong += successive_halving(2, 2 * n, _recorder(scores)[0], tiebreak=[1.0, 0.0]).best == 1
    se = np.sqrt(exact * (1 - exact) / reps)
    assert abs(wrong / reps - exact) < 4 * se, (wrong / reps, exact)
    assert 0.05 < exact < 0.2  # a real error rate, not a degenerate case


@pytest.mark.parametrize("returned, message", [
    (lambda items: [1.0] * (len(items) - 1), "gave 4 values for 5 items of variant 0"),
    (lambda items: [2.0] * len(items), "each must be a finite score in [0, 1]"),
    (lambda items: [float("nan")] * len(items), "each must be a finite score in [0, 1]"),
])
def test_a_callback_that_breaks_the_contract_is_a_clear_error(returned, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        successive_halving(2, 10, lambda v, items: returned(items))
    assert "one score per item" in err.value.fix


@pytest.mark.parametrize("kwargs, message", [
    ({"n_arms": 0, "n_items": 5}, "at least one variant and one item"),
    ({"n_arms": 2, "n_items": 5, "budget": 0.0}, "budget must be a share in (0, 1]"),
    ({"n_arms": 2, "n_items": 5, "tiebreak": [1.0]}, "tiebreak has 1 values for 2 variants"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        successive_halving(score=lambda v, items: [0.0] * len(items), **kwargs)
    assert message in err.value.problem and err.value.fix
