"""Paired tests on two arms that answered the same items: McNemar, non-inferiority, equivalence, Holm.

The non-inferiority test is Tango's (1998) asymptotic score test for the difference of paired
proportions; its confidence bounds are found by inverting it. Fractional scores (mean field scores)
enter as fractional discordant counts (positive and negative parts of each item's difference), which
over-estimates the variance of a bounded difference, so the test stays conservative.

>>> mcnemar([1, 1, 0, 1], [1, 0, 0, 0])[["b10", "b01", "p_exact"]].to_dict("records")
[{'b10': 2, 'b01': 0, 'p_exact': 0.5}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import p_words, pts
from kit.stats.conclusions import Conclusion
from kit.stats._data import ASSUME_PAIRED, as_pair, check_level, z_of
from kit.stats.clusters import clustered_mean



def mcnemar(a_correct: Any, b_correct: Any) -> pd.DataFrame:
    """Exact (binomial) McNemar test and its mid-p on paired right/wrong results.

    ``b10`` counts items A got right and B wrong, ``b01`` the reverse; only these discordant items
    carry information. Columns: n, both_correct, b10, b01, both_wrong, discordant, accuracy_a,
    accuracy_b, difference, p_exact, p_mid, statement.

    >>> mcnemar([1, 0, 1, 1, 0], [1, 1, 0, 0, 0])[["n", "b10", "b01", "p_exact"]].to_dict("records")
    [{'n': 5, 'b10': 2, 'b01': 1, 'p_exact': 1.0}]
    """
    a, b = as_pair(a_correct, b_correct, where="kit.stats.mcnemar", binary=True)
    n = a.size
    b10 = int(((a == 1) & (b == 0)).sum())
    b01 = int(((a == 0) & (b == 1)).sum())
    both = int(((a == 1) & (b == 1)).sum())
    m = b10 + b01
    if m == 0:
        p_exact = p_mid = 1.0
    else:
        k = min(b10, b01)
        p_exact = float(min(1.0, 2 * stats.binom.cdf(k, m, 0.5)))
        p_mid = float(min(1.0, 2 * (stats.binom.cdf(k, m, 0.5) - 0.5 * stats.binom.pmf(k, m, 0.5))))
    diff = (b10 - b01) / n
    if m == 0:
        words = (f"On all {n} items both arms were right or both wrong: no discordant pair, so the test has "
                 f"nothing to weigh (p = 1). This does not prove the arms equal; with few items it says little.")
    else:
        verdict = ("the difference is unlikely to be chance" if p_exact < 0.05 else
                   "the data do not show a difference at the 5% level (which is not proof that there is none)")
        words = (f"Of {n} items the arms disagree on {m}: A alone right on {b10} (b10), B alone right on "
                 f"{b01} (b01). Exact McNemar {p_words(p_exact)} (mid-p: {p_words(p_mid)}): {verdict}.")
    return pd.DataFrame([{
        Col.N: n, "both_correct": both, Col.B10: b10, Col.B01: b01, "both_wrong": n - both - m, "discordant": m,
        "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()), Col.DIFFERENCE: diff,
        "p_exact": p_exact, "p_mid": p_mid, Col.STATEMENT: words,
    }])


# -- Tango's score test ------------------------------------------------------------------------------

def tango_z(x: float, y: float, n: int, delta0: float) -> float:
    """Tango's score statistic for H0: p10 - p01 = delta0, from discordant counts x (b10) and y (b01)."""
    num = x - y - n * delta0
    if num == 0:
        return 0.0
    a2 = 2.0 * n
    bq = -x - y + (2.0 * n - x + y) * delta0
    cq = -y * delta0 * (1.0 - delta0)
    p01 = (np.sqrt(max(bq * bq - 4.0 * a2 * cq, 0.0)) - bq) / (2.0 * a2)
    var = n * (2.0 * p01 + delta0 * (1.0 - delta0))
    if var <= 0:
        return float(np.sign(num) * np.inf)
    return float(num / np.sqrt(var))


def tango_bound(x: float, y: float, n: int, level: float, *, upper: bool) -> float:
    """One-sided ``level`` confidence bound for p10 - p01 by inverting Tango's test."""
    est = (x - y) / n
    z = z_of(level)
    eps = 1e-12
    if upper:
        if est >= 1 - eps:
            return 1.0
        f = lambda d: tango_z(x, y, n, d) + z  # noqa: E731
        return 1.0 if f(1 - eps) > 0 else float(optimize.brentq(f, est, 1 - eps, xtol=1e-10))
    if est <= -1 + eps:
        return -1.0
    f = lambda d: tango_z(x, y, n, d) - z  # noqa: E731
    return -1.0 if f(-1 + eps) < 0 else float(optimize.brentq(f, -1 + eps, est, xtol=1e-10))


def _one_sided(cand: np.ndarray, ref: np.ndarray, method: str, alpha: float, clusters: Any = None):
    """Return (p_greater(d0), p_less(d0), lower, upper) closures/values for the chosen method; with
    ``clusters``, the more conservative of it and the cluster-robust Wald test (CR1, t with G - 1 df): the
    larger p-value, the wider bound."""
    d = cand - ref
    if clusters is not None:
        m = clustered_mean(d, clusters, where="kit.stats.non_inferiority")
        gt, lt, lo, hi = _one_sided(cand, ref, method, alpha)
        return (lambda d0: max(gt(d0), m.p_greater(d0)), lambda d0: max(lt(d0), m.p_less(d0)),  # noqa: E731
                min(lo, m.bound(1 - alpha, upper=False)), max(hi, m.bound(1 - alpha, upper=True)))
    n = d.size
    if method == "tango":
        x, y = float(np.clip(d, 0, None).sum()), float(np.clip(-d, 0, None).sum())
        stat = lambda d0: tango_z(x, y, n, d0)  # noqa: E731
        return (lambda d0: float(stats.norm.sf(stat(d0))), lambda d0: float(stats.norm.cdf(stat(d0))),
                tango_bound(x, y, n, 1 - alpha, upper=False), tango_bound(x, y, n, 1 - alpha, upper=True))
    mean, sd = float(d.mean()), float(d.std(ddof=1)) if n > 1 else 0.0
    se = sd / np.sqrt(n)
    if se == 0:  # every item differs by the same amount: the t-test has no spread to work with
        t = lambda d0: 0.0 if mean == d0 else np.sign(mean - d0) * np.inf  # noqa: E731
        return (lambda d0: float(stats.norm.sf(t(d0))), lambda d0: float(stats.norm.cdf(t(d0))), mean, mean)
    q = stats.t.ppf(1 - alpha, n - 1)
    return (lambda d0: float(stats.t.sf((mean - d0) / se, n - 1)),
            lambda d0: float(stats.t.cdf((mean - d0) / se, n - 1)), mean - q * se, mean + q * se)


def conclude(p: Mapping[str, float], alpha: float, *, equivalence: bool) -> Conclusion:
    """The conclusion the p-values support at level alpha."""
    if equivalence:
        if p[Col.P_EQUIVALENCE] < alpha:
            return Conclusion.EQUIVALENT
        if p[Col.P_INFERIORITY] < alpha or p[Col.P_ABOVE_MARGIN] < alpha:
            return Conclusion.NOT_EQUIVALENT
        return Conclusion.INCONCLUSIVE
    if p[Col.P_SUPERIORITY] < alpha:
        return Conclusion.SUPERIOR
    if p[Col.P_NONINFERIORITY] < alpha:
        return Conclusion.NON_INFERIOR
    if p[Col.P_INFERIORITY] < alpha:
        return Conclusion.INFERIOR
    return Conclusion.INCONCLUSIVE


def explain(conclusion: str, *, diff: float, lower: float, upper: float, margin: float, alpha: float,
            n: int) -> str:
    """One paragraph a report reader understands."""
    lvl = f"{100 * (1 - alpha):g}%"
    head = (f"Candidate minus reference = {pts(diff)} on {n} paired items (one-sided {lvl} bounds "
            f"{pts(lower)} and {pts(upper)}); the margin is {pts(margin, sign=False)}.")
    body = {
        "superior": "The candidate is better than the reference: even the lower bound is above zero.",
        "non-inferior": (f"The candidate is non-inferior: a loss larger than {pts(margin, sign=False)} is ruled "
                         f"out (lower bound above -{pts(margin, sign=False)})."
                         + (" It may still be slightly worse than the reference." if lower < 0 else "")),
        "inferior": f"The candidate is worse than the reference by more than the margin (upper bound below -{pts(margin, sign=False)}).",
        "inconclusive": ("Inconclusive: the interval still includes losses larger than the margin, so the data "
                         "can neither rule them out nor confirm them. More items are needed; this is not "
                         "evidence that the arms are the same."),
        "equivalent": f"Equivalent within ±{pts(margin, sign=False)}: both one-sided tests (TOST) reject.",
        "not equivalent": f"Not equivalent: the difference lies beyond ±{pts(margin, sign=False)}.",
    }[conclusion]
    return f"{head} {body} {ASSUME_PAIRED}"


def non_inferiority(candidate: Any, reference: Any, *, margin: float = 0.02, alpha: float = 0.05,
                    equivalence: bool = False, method: Literal["tango", "t"] = "tango",
                    clusters: Any = None) -> pd.DataFrame:
    """One-sided test that the candidate loses at most ``margin`` against the reference (paired).

    H0: mean(candidate - reference) <= -margin. ``p_value`` is the test of the chosen question
    (non-inferiority, or TOST equivalence within ±margin when ``equivalence=True``); superiority is
    reported when the lower bound clears zero. ``method="tango"`` is Tango's score test (paired
    proportions, also valid and conservative for scores in [0, 1]); ``"t"`` is a paired t-test. With
    ``clusters`` (each item's cluster), the cluster-robust Wald test of the mean per-item difference at the
    margin joins it (:mod:`kit.stats.clusters`: OLS of the difference on an intercept, CR1 standard error, t
    with G - 1 df): Tango's test assumes independent items, and a score test with a clustered variance under
    the null has no standard form. Each p-value is the larger of the two tests' and each bound the wider, since
    the Wald test is too liberal near 0 and 1 (no discordant item: a standard error of 0) where Tango's is not.
    Columns: n, candidate_mean, reference_mean, difference, margin, alpha, lower_bound, upper_bound,
    p_value, p_noninferiority, p_superiority, p_inferiority, p_equivalence, p_above_margin (H1: the
    candidate is better by more than the margin), conclusion, method, statement.

    >>> r = non_inferiority([1] * 300 + [0] * 100, [1] * 300 + [0] * 100)
    >>> r["conclusion"].item(), round(r["lower_bound"].item(), 4)
    (<Conclusion.NON_INFERIOR: 'non-inferior'>, -0.0067)
    """
    where = "kit.stats.non_inferiority"
    alpha = check_level(alpha, "alpha", where=where)
    if not 0 <= margin < 1:
        raise ConfigError(f"margin={margin!r} must be in [0, 1)", where=where, fix="pass e.g. margin=0.02 (2 points)")
    if method not in ("tango", "t"):
        raise ConfigError(f"method={method!r} is unknown", where=where, fix="use 'tango' or 't'")
    cand, ref = as_pair(candidate, reference, names=("candidate", "reference"), where=where)
    p_gt, p_lt, lower, upper = _one_sided(cand, ref, method, alpha, clusters)
    p = {Col.P_NONINFERIORITY: p_gt(-margin), Col.P_SUPERIORITY: p_gt(0.0), Col.P_INFERIORITY: p_lt(-margin),
         Col.P_ABOVE_MARGIN: p_gt(margin)}
    p[Col.P_EQUIVALENCE] = max(p[Col.P_NONINFERIORITY], p_lt(margin))
    verdict = conclude(p, alpha, equivalence=equivalence)
    diff = float(cand.mean() - ref.mean())
    name = "Tango (1998) score test" if method == "tango" else "paired t-test"
    if clusters is not None:
        name = f"cluster-robust Wald test (CR1, t with G-1 df) and {name}, the more conservative"
    return pd.DataFrame([{
        Col.N: cand.size, Col.CANDIDATE_MEAN: float(cand.mean()), "reference_mean": float(ref.mean()),
        Col.DIFFERENCE: diff, Col.MARGIN: float(margin), "alpha": alpha, Col.LOWER_BOUND: lower, Col.UPPER_BOUND: upper,
        Col.P_VALUE: p[Col.P_EQUIVALENCE] if equivalence else p[Col.P_NONINFERIORITY],
        Col.P_NONINFERIORITY: p[Col.P_NONINFERIORITY], Col.P_SUPERIORITY: p[Col.P_SUPERIORITY],
        Col.P_INFERIORITY: p[Col.P_INFERIORITY], Col.P_EQUIVALENCE: p[Col.P_EQUIVALENCE],
        Col.P_ABOVE_MARGIN: p[Col.P_ABOVE_MARGIN], Col.CONCLUSION: verdict, Col.METHOD: name + (" (TOST)" if equivalence else ""),
        Col.STATEMENT: explain(verdict, diff=diff, lower=lower, upper=upper, margin=margin, alpha=alpha,
                             n=cand.size) + f" Test: {name}, large-sample approximation.",
    }])
