"""Power and sample size for paired right/wrong comparisons, planned from the observed discordance.

Non-inferiority: Nam's (1997) asymptotic formula for Tango's score test (the test that
:func:`kit.stats.non_inferiority` runs). Detecting a difference: Connor's (1987) formula for the
(uncorrected) McNemar test. Both need the discordance: ``p10`` = share of items only the candidate
gets right, ``p01`` = share only the reference gets right.

>>> int(sample_size_noninferiority(p10=0.05, p01=0.05, margin=0.02)["n_required"].item())
1578
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pts
from kit.stats._data import as_pair, check_level, z_of


def restricted_p01(p10: float, p01: float, delta0: float) -> float:
    """Limit of the restricted MLE of p01 under H0: p10 - p01 = delta0 (Tango 1998; Nam 1997)."""
    bq = -p10 - p01 + (2.0 - p10 + p01) * delta0
    cq = -p01 * delta0 * (1.0 - delta0)
    return float((math.sqrt(max(bq * bq - 8.0 * cq, 0.0)) - bq) / 4.0)


def _sigmas(p10: float, p01: float, delta0: float) -> tuple[float, float]:
    """Per-item standard deviation of the difference under H0 (score test) and under the truth."""
    s0 = 2.0 * restricted_p01(p10, p01, delta0) + delta0 * (1.0 - delta0)
    s1 = p10 + p01 - (p10 - p01) ** 2
    return math.sqrt(max(s0, 0.0)), math.sqrt(max(s1, 0.0))


def _discordance(candidate: Any, reference: Any, p10: float | None, p01: float | None,
                 difference: float | None, *, where: str) -> tuple[float, float, int | None]:
    n_have = None
    if candidate is not None or reference is not None:
        if candidate is None or reference is None:
            raise ConfigError("pass both candidate and reference", where=where, fix="or pass p10= and p01=")
        c, r = as_pair(candidate, reference, names=("candidate", "reference"), where=where)
        d = c - r
        p10, p01, n_have = float(np.clip(d, 0, None).mean()), float(np.clip(-d, 0, None).mean()), c.size
    if p10 is None or p01 is None:
        raise ConfigError("the discordance is unknown", where=where,
                          fix="pass the paired results (candidate, reference) or p10= and p01=")
    if not (0 <= p10 <= 1 and 0 <= p01 <= 1 and p10 + p01 <= 1):
        raise ConfigError(f"p10={p10}, p01={p01} are not shares of items", where=where,
                          fix="both in [0, 1] with p10 + p01 <= 1")
    if difference is not None:  # keep the observed discordance, move the difference
        psi = p10 + p01
        if abs(difference) > psi + 1e-12:  # never widen the discordance silently to fit the difference
            raise ConfigError(f"a true difference of {difference:+g} is impossible when {psi:g} of the items are "
                              "discordant: only items where exactly one arm is right move the difference",
                              where=where, fix=f"give a difference within ±{psi:g}, or a larger discordance")
        p10, p01 = (psi + difference) / 2.0, (psi - difference) / 2.0
    return p10, p01, n_have


def power_noninferiority(n: int, *, p10: float, p01: float, margin: float = 0.02, alpha: float = 0.05) -> float:
    """Power of Tango's non-inferiority test with ``n`` items (Nam 1997 formula).

    >>> round(power_noninferiority(1578, p10=0.05, p01=0.05), 3)
    0.8
    """
    alpha = check_level(alpha, "alpha", where="kit.stats.power_noninferiority")
    delta = p10 - p01
    s0, s1 = _sigmas(p10, p01, -margin)
    gap = math.sqrt(n) * (delta + margin) - z_of(1 - alpha) * s0
    if s1 == 0:
        return 1.0 if gap > 0 else 0.0
    return float(ndtr(gap / s1))


def power_difference(n: int, *, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Power of the two-sided McNemar test to detect ``p10 - p01`` with ``n`` items (Connor 1987).

    >>> round(power_difference(155, p10=0.15, p01=0.05), 2)
    0.8
    """
    alpha = check_level(alpha, "alpha", where="kit.stats.power_difference")
    delta, psi = p10 - p01, p10 + p01
    if delta == 0:
        return float(alpha)
    s1 = math.sqrt(max(psi - delta ** 2, 0.0))
    gap = math.sqrt(n) * abs(delta) - z_of(1 - alpha / 2) * math.sqrt(psi)
    return float(ndtr(gap / s1)) if s1 > 0 else (1.0 if gap > 0 else 0.0)


def _table(n_req: float, n_have: int | None, p10: float, p01: float, extra: dict[str, Any], words: str) -> pd.DataFrame:
    enough = None if n_have is None else bool(math.isfinite(n_req) and n_have >= n_req)
    if n_have is not None and math.isfinite(n_req):
        words += (f" You have {n_have} items: " + ("enough." if enough else
                  "too few, so a result now is *inconclusive*, not 'no difference'."))
    elif n_have is not None:
        words += f" (Planned from {n_have} items; the observed difference itself is uncertain.)"
    row = {"n_required": n_req, "n_available": n_have, "enough": enough, "p10": p10, "p01": p01,
           "discordance": p10 + p01, Col.DIFFERENCE: p10 - p01, **extra, Col.STATEMENT: words}
    return pd.DataFrame([row])


UNREACHABLE_ITEMS = 10_000_000  # beyond this a required sample size is reported as unreachable, in words


def sample_size_noninferiority(candidate: Any = None, reference: Any = None, *, p10: float | None = None,
                               p01: float | None = None, difference: float | None = None,
                               margin: float = 0.02, alpha: float = 0.05, power: float = 0.80) -> pd.DataFrame:
    """Items needed to show non-inferiority at ``margin`` with the given power (Nam 1997).

    Plans from the paired results (or ``p10``/``p01``); ``difference`` overrides the assumed true
    difference (default: the observed one). Columns: n_required (inf when unattainable),
    n_available, enough, p10, p01, discordance, difference, margin, alpha, power, method, statement.

    >>> sample_size_noninferiority(p10=0.0, p01=0.0, margin=0.02)["n_required"].item()
    133.0
    """
    where = "kit.stats.sample_size_noninferiority"
    alpha, power = check_level(alpha, "alpha", where=where), check_level(power, "power", where=where)
    p10, p01, n_have = _discordance(candidate, reference, p10, p01, difference, where=where)
    delta = p10 - p01
    s0, s1 = _sigmas(p10, p01, -margin)
    n_req = math.inf
    if delta + margin > 1e-9:
        n_req = float(math.ceil(((z_of(1 - alpha) * s0 + z_of(power) * s1) / (delta + margin)) ** 2))
    if n_req > UNREACHABLE_ITEMS:  # a difference at the margin itself: no sample a team could collect
        n_req = math.inf
        words = (f"Non-inferiority at {pts(margin, sign=False)} cannot be shown if the true difference is "
                 f"{pts(delta)}: it is at (or below) -{pts(margin, sign=False)}, so no number of items a team "
                 f"could collect suffices (more than {UNREACHABLE_ITEMS:,}).")
    else:
        words = (f"To show non-inferiority at a margin of {pts(margin, sign=False)} with {100 * power:g}% power "
                 f"(one-sided alpha {alpha:g}), about {int(n_req):,} paired items are needed, assuming a true "
                 f"difference of {pts(delta)} and that {100 * (p10 + p01):.1f}% of items are answered right by "
                 f"only one arm (Nam 1997). With a discordance measured on few items, read this as a rough guide.")
    extra = {Col.MARGIN: margin, "alpha": alpha, "power": power, Col.METHOD: "Nam (1997) formula, Tango score test"}
    return _table(n_req, n_have, p10, p01, extra, words)


def labels_for_agreement(agreement: float, *, margin: float = 0.02, alpha: float = 0.05,
                         power: float = 0.80) -> pd.DataFrame:
    """Random gold labels needed to turn an agreement decision into a correctness decision at ``margin``.

    A candidate that agrees with the reference on a share ``agreement`` of items can differ from it in
    correctness only on the rest. Planning for no true difference and the widest spread — on every
    disagreement exactly one of the two is right (p10 = p01 = (1 - agreement) / 2) — the labels a paired
    non-inferiority test needs are :func:`sample_size_noninferiority`'s items. Same columns.

    >>> int(labels_for_agreement(0.9, margin=0.02)["n_required"].item())
    1578
    """
    where = "kit.stats.labels_for_agreement"
    if isinstance(agreement, bool) or not 0.0 <= float(agreement) <= 1.0:
        raise ConfigError(f"agreement={agreement!r} is not a share of items", where=where, fix="pass a number in [0, 1]")
    half = (1.0 - float(agreement)) / 2.0
    return sample_size_noninferiority(p10=half, p01=half, margin=margin, alpha=alpha, power=power)


def sample_size_difference(candidate: Any = None, reference: Any = None, *, p10: float | None = None,
                           p01: float | None = None, difference: float | None = None,
                           alpha: float = 0.05, power: float = 0.80) -> pd.DataFrame:
    """Items needed for McNemar's test (two-sided) to detect a difference (Connor 1987).

    Same columns as :func:`sample_size_noninferiority` (margin is 0).

    >>> int(sample_size_difference(p10=0.15, p01=0.05)["n_required"].item())
    155
    """
    where = "kit.stats.sample_size_difference"
    alpha, power = check_level(alpha, "alpha", where=where), check_level(power, "power", where=where)
    p10, p01, n_have = _discordance(candidate, reference, p10, p01, difference, where=where)
    delta, psi = p10 - p01, p10 + p01
    if delta == 0:
        n_req = math.inf
        words = ("A difference of zero cannot be detected: pass difference= the smallest difference worth "
                 "detecting (e.g. difference=0.03).")
    else:
        s1 = math.sqrt(max(psi - delta ** 2, 0.0))
        n_req = float(math.ceil(((z_of(1 - alpha / 2) * math.sqrt(psi) + z_of(power) * s1) / delta) ** 2))
        words = (f"To detect a difference of {pts(delta)} with {100 * power:g}% power (two-sided alpha "
                 f"{alpha:g}), about {int(n_req):,} paired items are needed when {100 * psi:.1f}% of items are "
                 f"answered right by only one arm (Connor 1987).")
    extra = {Col.MARGIN: 0.0, "alpha": alpha, "power": power, Col.METHOD: "Connor (1987) formula, McNemar test"}
    return _table(n_req, n_have, p10, p01, extra, words)
