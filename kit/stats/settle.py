"""Label until settled: after every gold label, an always-valid interval for the question the labels answer, and
whether its verdict is settled — so a labelling loop can stop asking as soon as more labels could not change it.

Pure (no I/O): the caller keeps the labels given so far, in the order the design drew them, and asks
:func:`look` after each one (or :func:`looks` for the whole path at once).

**The paired question** ("is the candidate within ``margin`` of the reference?") on a design that labels the
items where the two options *disagree*. On the ``N`` items both answered, ``D`` disagree; that share
``d = D / N`` is known exactly from the stored answers, and on an agreement item the paired difference of scores
is 0 whatever the gold label says. So the all-labels paired difference on these items is::

    delta = d * (mean of the per-item differences in [-1, 1] over the D disagreement items)

and the labels are a sample drawn uniformly **without replacement** from the D disagreement items. The interval
is the betting confidence sequence of :mod:`kit.stats.sequential` for that mean in its without-replacement form
(Waudby-Smith & Ramdas, JRSS-B 2024), scaled by ``d``: it narrows faster than a with-replacement
sequence as the labels use up the D items, and with all D labelled it is ``delta`` itself. Settled
"non-inferior" once its lower bound is above ``-margin``, "inferior" once its upper bound is below.

**A mean of one stratum** (an option's accuracy on a stratum, a floor): per-item scores in [0, 1] drawn without
replacement from the stratum's ``size`` items, against a threshold: "passes" / "fails".

**Two targets** (``traffic=``):

* ``traffic=False`` — the value all labels of *these* items would give (the all-labels value on the N items):
  the interval is the labels' confidence sequence alone, and it shrinks to a point once every item of the
  design is labelled;
* ``traffic=True`` (the default) — the traffic the N items were drawn from, which is what "the candidate is
  within 5 points of the API" claims. The N items are themselves a sample: the interval is widened on each side
  by ``z(1 - 0.96 alpha) * sqrt(v / N)``, the normal-approximation bound the kit's fixed tests use on how far
  the N items' value can lie from the traffic's, with the per-item variance ``v`` taken where the verdict is
  decided, at the threshold (as a score test takes it) and bounded from above by the labels so far: a paired
  difference is 0 on agreement items, so ``v <= d * (the disagreements' mean square)`` — that mean square gets
  its own upper confidence sequence, plus one pseudo-disagreement (none among N items does not prove none in
  traffic) — and at the margin ``v >= margin (1 - margin)``; a score in [0, 1] at a threshold t has
  ``v <= t (1 - t)``. alpha is split: the sequence for the mean runs at 0.04 alpha (one side: 0.02 alpha), the
  mean square's at 0.04 alpha (0.02 alpha), the items' sampling error gets 0.96 alpha — a wrong verdict needs
  one of the three to miss, so at most alpha in all. With every item labelled the interval is the all-labels
  value ± that bound: z(0.952) = 1.66 where the fixed test on all labels (Tango's) uses 1.645.

Each wrong verdict has probability at most alpha, however many looks and whenever the loop stops — provided the
labels come in the design's random order with no item skipped (a skipped item's label must come before any later
one is used).

>>> q = PairedQuestion(disagreements=28, items=200, margin=0.05)
>>> labels = [1, -1, 1, 1, 0, 1, 1, -1, 1, 1, 1, 0, 1, 1, -1, 1, 1, 1, 1, 0, 1, 1]   # candidate minus reference
>>> now = look(q, labels)
>>> now.labels, now.verdict.value, round(now.low, 3), round(now.estimate, 3)
(22, 'non-inferior', -0.007, 0.083)
>>> first_settled(q, labels)   # the label after which the loop could have stopped
18
>>> first_settled(PairedQuestion(disagreements=28, items=200, margin=0.05, traffic=False), labels)   # these items
9
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from kit.errors import ConfigError
from kit.stats._data import check_level, z_of
from kit.stats.sequential import Settled, bounds_path


class Verdict(StrEnum):
    """A question's verdict after a look."""

    NON_INFERIOR = "non-inferior"
    INFERIOR = "inferior"
    PASSES = "passes"
    FAILS = "fails"
    OPEN = "open"

    @property
    def settled(self) -> bool:
        return self is not Verdict.OPEN


def _count(value: Any, name: str, where: str, *, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name}={value!r} is not a number of items", where=where,
                          fix=f"pass a whole number of items, at least {least}")
    return int(value)


@dataclass(frozen=True)
class PairedQuestion:
    """Is the candidate within ``margin`` of the reference? ``disagreements`` (D) of ``items`` (N) answered items
    disagree; the labels are the per-item paired differences (candidate's score minus the reference's, in
    [-1, 1]) of disagreement items drawn in random order without replacement.

    >>> PairedQuestion(disagreements=28, items=200, margin=0.05).share
    0.14
    """

    disagreements: int
    items: int
    margin: float
    alpha: float = 0.05
    traffic: bool = True

    def __post_init__(self) -> None:
        where = "kit.stats.settle.PairedQuestion"
        _count(self.items, "items", where, least=1)
        _count(self.disagreements, "disagreements", where, least=0)
        if self.disagreements > self.items:
            raise ConfigError(f"{self.disagreements} disagreements among {self.items} items", where=where,
                              fix="disagreements counts items among the answered ones: at most items")
        if not 0 <= self.margin < 1:
            raise ConfigError(f"margin={self.margin!r} is not a share in [0, 1)", where=where,
                              fix="pass the margin as a share, e.g. margin=0.05 for 5 points")
        check_level(self.alpha, "alpha", where=where)

    @property
    def share(self) -> float:
        """``d``: the disagreement share, known exactly from the stored answers."""
        return self.disagreements / self.items


    @property
    def population(self) -> int:
        return self.disagreements

    @property
    def threshold(self) -> float:
        return -self.margin


@dataclass(frozen=True)
class MeanQuestion:
    """Is the mean of a stratum's per-item scores (in [0, 1]) above ``threshold``? The labels are the scores of
    items drawn in random order without replacement from the stratum's ``size`` items (an option's accuracy
    on a stratum against a floor, say).

    >>> first_settled(MeanQuestion(size=170, threshold=0.8), [1.0] * 60)   # 43 right of 43: above 80 %
    43
    """

    size: int
    threshold: float
    alpha: float = 0.05
    traffic: bool = True

    def __post_init__(self) -> None:
        where = "kit.stats.settle.MeanQuestion"
        _count(self.size, "size", where, least=1)
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold={self.threshold!r} is not a share", where=where,
                              fix="pass the threshold as a share in [0, 1], e.g. threshold=0.8")
        check_level(self.alpha, "alpha", where=where)

    @property
    def share(self) -> float:
        return 1.0


    @property
    def population(self) -> int:
        return self.size


Question = PairedQuestion | MeanQuestion


@dataclass(frozen=True)
class Look:
    """Where a question stands after ``labels`` labels: the estimate of the all-labels value, its always-valid
    interval, and the verdict (settled or open)."""

    labels: int
    estimate: float
    low: float
    high: float
    verdict: Verdict

    @property
    def settled(self) -> bool:
        return self.verdict.settled


def _verdict(question: Question, status: Settled) -> Verdict:
    paired = isinstance(question, PairedQuestion)
    if status is Settled.PASSES:
        return Verdict.NON_INFERIOR if paired else Verdict.PASSES
    if status is Settled.FAILS:
        return Verdict.INFERIOR if paired else Verdict.FAILS
    return Verdict.OPEN


def _range(question: Question) -> tuple[float, float]:
    return (-1.0, 1.0) if isinstance(question, PairedQuestion) else (0.0, 1.0)


# alpha's split for a claim about traffic: each two-sided sequence errs on one side with at most half its share
SEQUENCE_SHARE, SQUARES_SHARE, TRAFFIC_SHARE = 0.04, 0.04, 0.96


def _items(question: Question) -> int:
    return question.items if isinstance(question, PairedQuestion) else question.size


def _variance(question: Question, square_high: float) -> float:
    """An upper bound on the per-item variance of the N items (a stratum's items) where the verdict is decided:
    at the threshold, as a score test takes it. A paired difference is 0 on agreement items, so its variance is
    at most d x (the disagreements' mean square, bounded from above by ``square_high``; one pseudo-disagreement
    added), and at the margin it is at least margin (1 - margin) (the reference alone right on at least a
    margin's share of items): the larger of the two. A score in [0, 1] at a threshold t: t (1 - t), plus one
    pseudo-item's 1 / size."""
    if isinstance(question, PairedQuestion):
        m = question.margin
        return min(1.0, max((question.disagreements * square_high + 1.0) / question.items, m * (1.0 - m)))
    t = question.threshold
    return min(0.25, t * (1.0 - t) + 1.0 / question.size)


def looks(question: Question, labels: Any) -> list[Look]:
    """The question after each label (the first entry: before any label). ``labels``: the per-item values in
    the order the design drew them (paired differences in [-1, 1], or scores in [0, 1]).

    >>> q = MeanQuestion(size=10, threshold=0.5, traffic=False)   # the mean of these 10 items
    >>> [x.verdict.value for x in looks(q, [1, 1, 1, 1, 1, 1])][4:]
    ['open', 'passes', 'passes']
    """
    where = "kit.stats.settle.looks"
    lo, hi = _range(question)
    x = np.asarray(labels, dtype=float).ravel()
    if x.size > question.population:
        raise ConfigError(f"{x.size} labels for a design of {question.population} items", where=where,
                          fix="each item of the design is labelled at most once: pass each label once")
    if x.size and (not np.isfinite(x).all() or x.min() < lo or x.max() > hi):
        raise ConfigError(f"labels must be numbers in [{lo:g}, {hi:g}]", where=where,
                          fix="pass per-item scores (a paired question: candidate minus reference) in that range")
    d, threshold, n_items = question.share, question.threshold, _items(question)
    traffic = question.traffic
    a_seq = question.alpha * (SEQUENCE_SHARE if traffic else 1.0)
    z = z_of(1 - question.alpha * TRAFFIC_SHARE)
    if question.population == 0:  # nothing disagrees: the difference on these items is 0, exactly
        e = z * math.sqrt(_variance(question, 0.0) / n_items) if traffic else 0.0
        return [_look(question, 0, 0.0, max(lo, -e), min(hi, e), threshold)]
    e0 = z * math.sqrt(_variance(question, 1.0) / n_items) if traffic else 0.0
    out = [_look(question, 0, float("nan"), max(lo, lo * d - e0), min(hi, hi * d + e0), threshold)]
    if x.size:
        low, high = bounds_path(x, alpha=a_seq, planned_n=question.population, lo=lo, hi=hi,
                                population=question.population)
        if traffic:
            if isinstance(question, PairedQuestion):  # the decisive share among the D items, from above
                _, square_high = bounds_path(x * x, alpha=question.alpha * SQUARES_SHARE, lo=0.0, hi=1.0,
                                             planned_n=question.population, population=question.population)
            else:
                square_high = np.ones(x.size)
            v = np.array([_variance(question, q) for q in square_high])
            e = z * np.sqrt(v / n_items)
        else:
            e = np.zeros(x.size)
        low, high = np.maximum(lo, d * low - e), np.minimum(hi, d * high + e)
        mean = np.cumsum(x) / np.arange(1, x.size + 1)
        out += [_look(question, i + 1, d * mean[i], low[i], high[i], threshold) for i in range(x.size)]
    return out


TIE = 1e-9  # a bound this close to the threshold is on it (rounding of d x mean): not shown either way


def _look(question: Question, n: int, estimate: float, low: float, high: float, threshold: float) -> Look:
    status = (Settled.PASSES if low > threshold + TIE else Settled.FAILS if high < threshold - TIE
              else Settled.OPEN)
    return Look(labels=n, estimate=float(estimate), low=float(low), high=float(high),
                verdict=_verdict(question, status))


def look(question: Question, labels: Any) -> Look:
    """The question after all the labels given so far (see :func:`looks`).

    >>> look(PairedQuestion(disagreements=0, items=200, margin=0.05), []).verdict   # nothing to label
    <Verdict.NON_INFERIOR: 'non-inferior'>
    """
    return looks(question, labels)[-1]


def first_settled(question: Question, labels: Any) -> int | None:
    """The number of labels after which the question was first settled (None: still open). The verdict at that
    look is the loop's answer: :func:`look` on those first labels.

    >>> first_settled(MeanQuestion(size=10, threshold=0.5, traffic=False), [1, 1, 1, 1, 1, 1])
    5
    """
    return next((x.labels for x in looks(question, labels) if x.settled), None)


def sentence(question: Question, now: Look, *, candidate: str = "the candidate",
             reference: str = "the reference") -> str:
    """The loop's line for a person, e.g. "enough: SmolLM2 is within 5 points of the API after 23 labels".

    >>> line = sentence(PairedQuestion(disagreements=28, items=200, margin=0.05),
    ...                 Look(23, 0.01, -0.03, 0.05, Verdict.NON_INFERIOR), candidate="SmolLM2", reference="the API")
    >>> line.split(" (")[0]
    'enough: SmolLM2 is within 5 points of the API after 23 labels'
    >>> line.split(" (")[1]
    'difference +1.0 points, always-valid interval -3.0 to +5.0)'
    """
    span = f"{100 * now.low:+.1f} to {100 * now.high:+.1f}"
    if isinstance(question, PairedQuestion):
        what = {Verdict.NON_INFERIOR: f"{candidate} is within {100 * question.margin:g} points of {reference}",
                Verdict.INFERIOR: f"{candidate} is more than {100 * question.margin:g} points below {reference}"}
        value = f"difference {100 * now.estimate:+.1f} points"
    else:
        what = {Verdict.PASSES: f"{candidate} is above {100 * question.threshold:g}%",
                Verdict.FAILS: f"{candidate} is below {100 * question.threshold:g}%"}
        value = f"mean {100 * now.estimate:.1f}%"
    if not now.settled:
        return f"open after {now.labels} labels: always-valid interval {span} — label on"
    return f"enough: {what[now.verdict]} after {now.labels} labels ({value}, always-valid interval {span})"


__all__ = ["Look", "MeanQuestion", "PairedQuestion", "Question", "Verdict", "first_settled", "look", "looks",
           "sentence"]
