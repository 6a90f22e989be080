"""Label until settled (kit.stats.settle): the paired question on the disagreement items, a stratum's mean."""

from __future__ import annotations

import numpy as np
import pytest

from scipy import stats as sps

from kit.errors import ConfigError
from kit.stats.sequential import bounds_path
from kit.stats.settle import (Look, MeanQuestion, PairedQuestion, Verdict, first_settled, look, looks,
                              sentence)


def _population(d10: int, d01: int, d00: int) -> np.ndarray:
    """The per-item differences on the disagreement items: only the candidate right (+1), only the reference
    right (-1), both wrong with different answers (0)."""
    return np.r_[np.ones(d10), -np.ones(d01), np.zeros(d00)]


def test_the_paired_interval_is_the_disagreement_share_times_the_without_replacement_sequence() -> None:
    q = PairedQuestion(disagreements=30, items=200, margin=0.05, traffic=False)
    labels = np.random.default_rng(0).permutation(_population(12, 14, 4))[:18]
    path = looks(q, labels)
    low, high = bounds_path(labels, lo=-1, hi=1, population=30, planned_n=30)
    assert [x.labels for x in path] == list(range(19))
    assert path[-1].estimate == pytest.approx(0.15 * labels.mean())
    assert (path[-1].low, path[-1].high) == (pytest.approx(0.15 * low[-1]), pytest.approx(0.15 * high[-1]))
    assert (path[0].low, path[0].high) == (pytest.approx(-0.15), pytest.approx(0.15))  # before any label: ±d


def test_with_every_disagreement_labelled_the_interval_is_the_all_labels_difference() -> None:
    # the all-labels paired difference on the 200 items: (10 - 16) / 200 = -3 points; a 5-point margin
    q = PairedQuestion(disagreements=30, items=200, margin=0.05, traffic=False)
    labels = np.random.default_rng(1).permutation(_population(10, 16, 4))
    last = look(q, labels)
    assert (last.low, last.estimate, last.high) == (pytest.approx(-0.03), pytest.approx(-0.03), pytest.approx(-0.03))
    assert last.verdict is Verdict.NON_INFERIOR
    q2 = PairedQuestion(disagreements=30, items=200, margin=0.02, traffic=False)
    assert look(q2, labels).verdict is Verdict.INFERIOR
    # for the traffic: the all-labels value ± z(1 - 0.96 alpha) sqrt(v / N), v = (26 decisive + 1 pseudo) / 200,
    # the mean square known exactly once every disagreement is labelled (scipy.stats.norm as the reference)
    e = sps.norm.ppf(1 - 0.048) * np.sqrt(27 / 200 / 200)
    wide = look(PairedQuestion(disagreements=30, items=200, margin=0.05), labels)
    assert (wide.low, wide.high) == (pytest.approx(-0.03 - e), pytest.approx(-0.03 + e))
    assert wide.verdict is Verdict.OPEN  # -3 points ± 4.5: these 200 items cannot show the traffic within 5


def test_a_false_non_inferior_verdict_at_the_margin_is_rarer_than_alpha() -> None:
    # the null at the margin on these items: 200 items, 24 disagree, all-labels difference (7 - 17) / 200 = -5
    # points exactly. 400 labelling orders, each looked at after every label until settled.
    q = PairedQuestion(disagreements=24, items=200, margin=0.05, traffic=False)
    rng = np.random.default_rng(2)
    orders = np.array([rng.permutation(_population(7, 17, 0)) for _ in range(400)])
    low, _ = bounds_path(orders, lo=-1, hi=1, population=24, planned_n=24)
    assert (q.share * low > -0.05 + 1e-9).any(axis=1).mean() <= q.alpha
    assert not look(q, orders[0]).settled  # all labelled: exactly on the margin, neither side is shown


def test_under_a_null_on_the_traffic_the_default_question_rarely_says_non_inferior() -> None:
    # each run draws its own 200 items from traffic where the candidate is exactly 5 points worse (agreement 85 %);
    # the loop labels every disagreement in random order. For these items alone (traffic=False) it would say
    # "non-inferior" whenever the draw happened to favour the candidate; for the traffic it must stay <= alpha.
    rng = np.random.default_rng(4)
    said = {True: 0, False: 0}
    runs = 150
    for _ in range(runs):
        d10, d01, d00, _ = rng.multinomial(200, [0.035, 0.085, 0.03, 0.85])
        labels = rng.permutation(_population(d10, d01, d00))
        for traffic in (True, False):
            q = PairedQuestion(disagreements=labels.size, items=200, margin=0.05, traffic=traffic)
            n = first_settled(q, labels)
            said[traffic] += n is not None and look(q, labels[:n]).verdict is Verdict.NON_INFERIOR
    assert said[True] / runs <= 0.05 and said[False] / runs > 0.2


def test_a_clear_difference_settles_on_a_fraction_of_the_disagreements() -> None:
    # candidate right on 28 of 30 disagreements: shown within 5 points long before the 30th label
    q = PairedQuestion(disagreements=30, items=200, margin=0.05)
    labels = np.random.default_rng(3).permutation(_population(28, 2, 0))
    n = first_settled(q, labels)
    assert n is not None and n < 15
    assert look(q, labels[:n]).verdict is Verdict.NON_INFERIOR and not look(q, labels[:n - 1]).settled


def test_when_the_options_never_disagree_the_difference_is_zero_without_a_label() -> None:
    now = look(PairedQuestion(disagreements=0, items=120, margin=0.02, traffic=False), [])
    assert (now.labels, now.estimate, now.low, now.high, now.verdict) == (0, 0.0, 0.0, 0.0, Verdict.NON_INFERIOR)
    # for the traffic, no disagreement among 120 items shows "within 5 points" but not "within 2": were the
    # candidate 2 points worse, 0 of 120 would happen with probability about exp(-2.4) = 9 % > alpha. The bound:
    # z(1 - 0.96 alpha) sqrt(margin (1 - margin) / 120), the variance at the margin (a score test's).
    wide = look(PairedQuestion(disagreements=0, items=120, margin=0.05), [])
    assert wide.verdict is Verdict.NON_INFERIOR
    assert wide.low == pytest.approx(-sps.norm.ppf(1 - 0.048) * np.sqrt(0.05 * 0.95 / 120))
    assert look(PairedQuestion(disagreements=0, items=120, margin=0.02), []).verdict is Verdict.OPEN


def test_a_stratum_mean_passes_or_fails_against_its_threshold() -> None:
    q = MeanQuestion(size=60, threshold=0.8, traffic=False)
    assert look(q, np.ones(40)).verdict is Verdict.PASSES
    assert look(q, np.r_[np.zeros(20), np.ones(5)]).verdict is Verdict.FAILS
    assert look(q, [1.0, 0.0, 1.0]).verdict is Verdict.OPEN
    assert look(q, np.ones(60)).low == pytest.approx(1.0)  # the whole stratum labelled
    e = sps.norm.ppf(1 - 0.048) * np.sqrt((0.8 * 0.2 + 1 / 60) / 60)  # the traffic: the variance at the threshold
    assert look(MeanQuestion(size=60, threshold=0.8), np.ones(60)).low == pytest.approx(1.0 - e)


def test_the_loops_line_says_what_is_settled() -> None:
    q = PairedQuestion(disagreements=28, items=200, margin=0.05)
    done = sentence(q, Look(23, 0.01, -0.03, 0.05, Verdict.NON_INFERIOR), candidate="SmolLM2", reference="the API")
    assert done.startswith("enough: SmolLM2 is within 5 points of the API after 23 labels")
    assert sentence(q, Look(5, 0.0, -0.1, 0.1, Verdict.OPEN)).startswith("open after 5 labels")
    worse = sentence(q, Look(9, -0.12, -0.14, -0.07, Verdict.INFERIOR), candidate="Local", reference="the API")
    assert "Local is more than 5 points below the API after 9 labels" in worse


@pytest.mark.parametrize("make,fix", [
    (lambda: PairedQuestion(disagreements=30, items=20, margin=0.05), "at most items"),
    (lambda: PairedQuestion(disagreements=3, items=20, margin=5), "margin as a share"),
    (lambda: PairedQuestion(disagreements=3, items=0, margin=0.05), "whole number of items"),
    (lambda: MeanQuestion(size=10, threshold=80), "threshold as a share"),
    (lambda: look(PairedQuestion(disagreements=3, items=20, margin=0.05), [1, 0, -1, 1]), "at most once"),
    (lambda: look(MeanQuestion(size=10, threshold=0.5), [1, 2]), "in that range"),
])
def test_bad_questions_and_labels_are_a_clear_error(make, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        make()
