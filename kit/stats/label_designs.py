"""Labels a decision needs under two designs: random labels, or a stratified design that labels the disagreements.

The question is the paired difference candidate - reference in correctness, tested for non-inferiority at a
margin. Where the two options give the same answer, their difference is 0 whatever the gold label says, and
which items those are is known from the stored answers before anyone labels.

**Random labels** (the default design): ``n`` items drawn at random and labelled; the paired test is Tango's,
planned by Nam's (1997) formula (:func:`kit.stats.power.sample_size_noninferiority`) with the discordance
implied by the agreement (every disagreement has exactly one option right unless said otherwise).

**Stratified on disagreements**: of the ``N`` test items, ``N_D = d N`` are disagreements (``d``, the
disagreement share, is known exactly for these items). Labels go to a simple random sample of ``n`` of them,
without replacement. With ``D_i`` = right(candidate) - right(reference) on a disagreement item (in {-1, 0, +1}),
the estimate is ``d`` times the mean of the labelled ``D_i``, and its variance for the traffic is

    V(n) = d^2 S^2 (1/n - 1/N_D)  +  tau^2 / N

- the first term is the labelling error with the finite-population correction (Cochran, *Sampling
  Techniques*, 3rd ed. 1977, eqs. 5.3 and 5.25: a stratified mean whose other stratum contributes 0 with no
  error), ``S^2 = s - mu^2`` the variance of ``D`` on disagreement items (``s`` the share of them where
  exactly one option is right, ``mu = difference / d``);
- the second is the items' own sampling error (the ``N`` items are a sample of the traffic): ``tau^2 = d s -
  difference^2``, the per-item variance of the paired difference.

The labels needed are the smallest ``n`` at which a one-sided Wald test at ``alpha`` has the asked power,
``(difference + margin) >= (z_{1-alpha} + z_power) sqrt(V(n))``, i.e.

    n = d^2 S^2 / (V* - tau^2/N + d^2 S^2 / N_D),      V* = ((difference + margin) / (z_{1-alpha} + z_power))^2

With ``s = 1`` the two error terms' finite parts cancel (``d^2 S^2 / N_D = tau^2 / N``) and
``n = (z_{1-alpha} + z_power)^2 d^2 / (difference + margin)^2``; against Nam's random-label count at the same
agreement the ratio is about ``d`` (a sixth to a seventh at 85% agreement). ``bench/label_design_sizes.py``
checks the planned sizes by simulation (the measured power of the planned ``n``).

>>> stratified_labels(disagreement=0.15, margin=0.05).labels
56.0
>>> random_labels(agreement=0.85, margin=0.05).labels
389.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from scipy.special import ndtr

from kit.errors import ConfigError
from kit.stats._data import check_level, z_of
from kit.stats.power import sample_size_noninferiority


class Design(StrEnum):
    """How the labelled items are drawn."""

    RANDOM = "random"
    STRATIFIED = "stratified on disagreements"


@dataclass(frozen=True)
class LabelSize:
    """The labels a design needs for the asked power: ``labels`` (inf when no number of labels suffices), drawn
    from ``population`` items (all test items for random labels, the disagreement items for the stratified
    design; None when unbounded).

    >>> LabelSize(Design.STRATIFIED, 20.0, 30).within_population
    True
    """

    design: Design
    labels: float
    population: int | None = None

    @property
    def within_population(self) -> bool:
        """Whether the items at hand hold enough to label (the stratified design labels each at most once)."""
        return math.isfinite(self.labels) and (self.population is None or self.labels <= self.population)


def _check_share(value: float, name: str, *, where: str) -> float:
    if isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name}={value!r} is not a share of items", where=where, fix="pass a number in [0, 1]")
    return float(value)


def random_labels(*, agreement: float, difference: float = 0.0, spread: float = 1.0, margin: float = 0.02,
                  alpha: float = 0.05, power: float = 0.80, population: int | None = None) -> LabelSize:
    """Random gold labels for Tango's paired test to show non-inferiority at ``margin`` (Nam 1997), when the
    options agree on ``agreement`` of the items, the true difference is ``difference`` and on a share ``spread``
    of the disagreements exactly one option is right (1: the widest, the default).

    >>> random_labels(agreement=0.9, margin=0.02).labels   # Nam (1997) at p10 = p01 = 0.05
    1578.0
    """
    where = "kit.stats.random_labels"
    d = 1.0 - _check_share(agreement, "agreement", where=where)
    psi = d * _check_share(spread, "spread", where=where)
    _check_difference(difference, psi, where=where)
    plan = sample_size_noninferiority(p10=(psi + difference) / 2, p01=(psi - difference) / 2, margin=margin,
                                      alpha=alpha, power=power)
    return LabelSize(Design.RANDOM, float(plan["n_required"].iloc[0]), population)


def _check_difference(difference: float, psi: float, *, where: str) -> None:
    if abs(difference) > psi + 1e-12:
        raise ConfigError(f"a true difference of {difference:+g} is impossible when {psi:g} of the items have exactly "
                          "one option right: only those items move the difference", where=where,
                          fix=f"give a difference within ±{psi:g}, or a larger discordance")


def _variance_parts(d: float, spread: float, difference: float) -> tuple[float, float]:
    """(d^2 S^2, tau^2): the labelling variance's numerator and the per-item variance of the paired difference."""
    mu = difference / d if d > 0 else 0.0
    return d * d * max(spread - mu * mu, 0.0), max(d * spread - difference * difference, 0.0)


def stratified_labels(*, disagreement: float, n_items: int | None = None, difference: float = 0.0,
                      spread: float = 1.0, margin: float = 0.02, alpha: float = 0.05,
                      power: float = 0.80) -> LabelSize:
    """Labels on disagreement items (a simple random sample of them, without replacement) for the design-weighted
    paired difference to show non-inferiority at ``margin`` with ``power`` (module docstring: Cochran 1977,
    eq. 5.25 with the finite-population correction, plus the items' own sampling error). ``n_items``: the test
    items the disagreement share is counted on (None: so many that both finite terms vanish). ``spread``: the
    share of disagreements where exactly one option is right (1 when unknown: the most labels).

    >>> stratified_labels(disagreement=0.15, n_items=1000, margin=0.05)
    LabelSize(design=<Design.STRATIFIED: 'stratified on disagreements'>, labels=56.0, population=150)
    """
    where = "kit.stats.stratified_labels"
    alpha, power = check_level(alpha, "alpha", where=where), check_level(power, "power", where=where)
    d = _check_share(disagreement, "disagreement", where=where)
    spread = _check_share(spread, "spread", where=where)
    _check_difference(difference, d * spread, where=where)
    if n_items is not None and n_items < 1:
        raise ConfigError(f"n_items={n_items!r} must be a positive count", where=where, fix="pass the test items")
    n_d = None if n_items is None else int(round(d * n_items))
    gap = difference + margin
    if gap <= 1e-9:
        return LabelSize(Design.STRATIFIED, math.inf, n_d)
    a, tau2 = _variance_parts(d, spread, difference)
    if a == 0.0:  # the options never disagree (or every disagreement has both wrong): the difference is known
        return LabelSize(Design.STRATIFIED, 0.0, n_d)
    target = (gap / (z_of(1 - alpha) + z_of(power))) ** 2
    unbounded = float(math.ceil(a / target - 1e-9))  # on a test split large enough (both finite terms vanish)
    if n_items is None or not n_d:
        return LabelSize(Design.STRATIFIED, unbounded, n_d)
    if target < tau2 / n_items:  # even every disagreement labelled leaves these items' own error too wide
        return LabelSize(Design.STRATIFIED, max(unbounded, n_d + 1.0), n_d)
    labels = float(math.ceil(a / (target - tau2 / n_items + a / n_d) - 1e-9))
    return LabelSize(Design.STRATIFIED, labels, n_d)


def power_stratified(n: int, *, disagreement: float, n_items: int | None = None, difference: float = 0.0,
                     spread: float = 1.0, margin: float = 0.02, alpha: float = 0.05) -> float:
    """The power of the stratified design's one-sided Wald test with ``n`` labels on disagreement items (the
    inverse of :func:`stratified_labels`).

    >>> round(power_stratified(56, disagreement=0.15, margin=0.05), 2)
    0.8
    """
    alpha = check_level(alpha, "alpha", where="kit.stats.power_stratified")
    d = _check_share(disagreement, "disagreement", where="kit.stats.power_stratified")
    a, tau2 = _variance_parts(d, spread, difference)
    n_d = None if n_items is None else max(int(round(d * n_items)), 1)
    var = a * (1.0 / n - (0.0 if n_d is None else 1.0 / n_d)) + (0.0 if n_items is None else tau2 / n_items)
    gap = difference + margin
    if var <= 0:
        return 1.0 if gap > 0 else 0.0
    return float(ndtr(gap / math.sqrt(var) - z_of(1 - alpha)))


__all__ = ["Design", "LabelSize", "power_stratified", "random_labels", "stratified_labels"]
