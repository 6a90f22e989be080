"""Prediction-powered inference (PPI++) for a mean: a few gold labels plus a proxy on every item.

When only ``n`` items carry a gold label but a proxy — e.g. the reference API's answer, against which a
candidate's answer is judged right or wrong — is known on ``N`` more items, PPI (Angelopoulos, Bates, Fannjiang,
Jordan, Zrnic, *Science* 2023) estimates the mean of Y (a candidate's accuracy: Y = 1 when its answer equals
gold) as

    theta = lambda * mean(Yhat_unlabelled) + mean(Y - lambda * Yhat)    (over the N and the n items)

which is unbiased for any fixed lambda: the labelled items measure and remove the proxy's bias. Its
variance is ``lambda^2 var(Yhat)/N + var(Y - lambda Yhat)/n``; PPI++ (Angelopoulos, Duchi, Zrnic 2023,
"PPI++: Efficient Prediction-Powered Inference") takes the lambda that minimises it,
``cov(Y, Yhat) / ((1 + n/N) var(Yhat))``, clipped to [0, 1] — so a useless proxy gets lambda near 0 and the
interval falls back to the labels alone, never wider by much; ``lambda = 1`` is classic PPI. The interval
is the normal approximation ``theta +- z * se`` (the same estimates and intervals as ``ppi_py.ppi_mean_ci``
of ppi-python 0.2.3, which ``tests/test_stats_ppi.py`` checks).

Beside it: the labels-only mean with its Wald interval (the same normal approximation and variance
estimator, so the two widths compare like for like), the width ratio PPI / labels-only, and the **effective
labels** ``n * var(labels only) / var(PPI)``: how many gold labels alone would give an interval as narrow.

**Small-sample adjustment (the kit's own, on by default; ``small_sample=False`` gives ppi-python's numbers).**
With 40 labels and a proxy that seldom disagrees with Y, the plain normal interval covered the all-labels value
only 77–94% of the time (``bench/bench_ppi_coverage.py``): the rectifier ``Y - lambda Yhat`` is nonzero on a
handful of the labels and its variance is often underestimated — down to zero when no label disagrees. Since Y
and Yhat are right/wrong (0/1, or -1/0/1 for a difference), the kit smooths their labelled joint table with
0.5 pseudo-observations per cell (the Jeffreys prior of the table; for 0/1 values 2 in all, the Agresti–Caffo /
Wilson idea of adding a success and a failure), and then

1. takes lambda from the smoothed covariance (so 40 right answers out of 40 still let the proxy speak);
2. floors the rectifier's variance (ddof 1) at its variance under the smoothed table;
3. uses the Student-t quantile with n - 1 degrees of freedom (clusters - 1 with clusters) instead of z.

Values that are all 0/1, or all in -1/0/1, are smoothed over that grid. The labels-only interval gets the same
three steps (at lambda = 0 the floor is ``p(1 - p)`` with ``p = (right + 1) / (n + 2)``), so the width ratio
compares like for like. The estimate stays unbiased for any fixed lambda; only which lambda, and the
interval's width, change. At 40 labels this lifts the worst coverage from 77% to 95% (bench/README.md, PPI
section). Values other than right/wrong get step 3 and ddof 1 only.

Assumptions: the labelled items are a uniformly random sample of all the items (labelled and unlabelled
sets disjoint, drawn from the same traffic); items are independent, or grouped in ``clusters`` (several
epochs of one item, a task's ``cluster:`` column); a cluster holding labelled and unlabelled rows gets the
cluster-robust variance of the two parts together (their covariance within the cluster counted). No finite-population correction: when the labels are
a large share of the items, the interval is conservative.

>>> y = [1, 1, 0, 1, 0, 1, 1, 0, 1, 1]
>>> r = ppi_mean(y, y, [1, 0, 1, 1] * 50)
>>> r[["estimate", "n_labelled", "n_unlabelled"]].round(3).to_dict("records")
[{'estimate': 0.745, 'n_labelled': 10, 'n_unlabelled': 200}]
>>> bool(r["effective_labels"].item() > 20)  # 10 labels worth over 20 (over 200 without the adjustment)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pct, pts
from kit.stats._data import check_level, z_of

Clusters = tuple[Sequence[Any], Sequence[Any]]
PSEUDO_COUNT = 0.5  # small-sample smoothing: pseudo-observations per cell of the joint table (the Jeffreys prior)
BINARY = (0.0, 1.0)
DIFFERENCES = (-1.0, 0.0, 1.0)


def _finite(x: Any, *, name: str, where: str) -> np.ndarray:
    """A 1-D float array of finite values (booleans become 0/1); NaN and infinities are refused."""
    try:
        arr = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} is not a sequence of numbers ({exc})", where=where,
                          fix="pass per-item values: 1/0 or True/False for right/wrong") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ConfigError(f"{name} holds {int(bad.sum())} missing or infinite values", where=where,
                          fix="code errors and unparseable answers as wrong (0/False) instead of leaving them out")
    return arr


def _mean_variance(x: np.ndarray, groups: np.ndarray | None, *, ddof: int = 0) -> float:
    """Variance of the mean of ``x``: ``var/n`` (ddof 0, as ppi-python), or cluster-robust
    ``sum_c (sum_{i in c} (x_i - mean))^2 / n^2`` when rows are grouped in clusters. ``ddof=1`` scales by
    ``G / (G - 1)``, G the number of items or clusters (the unbiased variance for independent items)."""
    resid = x - x.mean()
    if groups is None:
        g, var = x.size, float(np.mean(resid ** 2) / x.size)
    else:
        uniq, codes = np.unique(groups, return_inverse=True)
        g, var = uniq.size, float(np.sum(np.bincount(codes, weights=resid) ** 2) / x.size ** 2)
    return var * g / (g - ddof) if g > ddof else var


def t_quantile(level: float, df: int) -> float:
    """Student-t quantile with ``df`` degrees of freedom (the small-sample interval's multiplier).

    >>> round(t_quantile(0.975, 39), 4)
    2.0227
    """
    return float(scipy_stats.t.ppf(level, df))


def _grid(values: Sequence[np.ndarray], supports: Sequence[tuple[float, ...]]) -> tuple[float, ...] | None:
    """The first of ``supports`` that holds every value, else None (no joint table to smooth)."""
    return next((s for s in supports if all(np.isin(v, s).all() for v in values)), None)


class _Smoothed:
    """The labelled (Y, Yhat) joint table plus :data:`PSEUDO_COUNT` pseudo-observations in each of its cells
    (``grid``: the values each of Y and Yhat can take)."""

    def __init__(self, y: np.ndarray, yhat: np.ndarray, grid: tuple[float, ...]) -> None:
        g = np.asarray(grid)
        self.ys, self.hs = np.meshgrid(g, g, indexing="ij")
        counts = np.array([[np.sum((y == a) & (yhat == b)) for b in g] for a in g], dtype=float)
        counts += PSEUDO_COUNT
        self.p = counts / counts.sum()

    def covariance(self) -> float:
        my, mh = float(np.sum(self.p * self.ys)), float(np.sum(self.p * self.hs))
        return float(np.sum(self.p * (self.ys - my) * (self.hs - mh)))

    def variance(self, lam: float) -> float:
        """Variance of ``Y - lam * Yhat`` under the smoothed table."""
        r = self.ys - lam * self.hs
        return float(np.sum(self.p * (r - np.sum(self.p * r)) ** 2))


def _power_tuned_lambda(y: np.ndarray, yhat: np.ndarray, yhat_u: np.ndarray,
                        smoothed: _Smoothed | None = None) -> float:
    """The variance-minimising lambda for the mean, ``cov(Y, Yhat) / ((1 + n/N) var(Yhat))``, clipped to
    [0, 1] (0 for a constant proxy, which carries no information); the covariance from the smoothed table
    when one is given (small-sample adjustment)."""
    n, big_n = y.size, yhat_u.size
    cov = (smoothed.covariance() if smoothed is not None
           else float(np.mean((y - y.mean()) * (yhat - yhat.mean()))))
    var = float(np.var(np.concatenate([yhat, yhat_u]), ddof=1))
    if var <= 0.0:
        return 0.0
    return float(np.clip(cov / ((1 + n / big_n) * var), 0.0, 1.0))


def _check_clusters(clusters: Clusters | None, n: int, big_n: int, *, where: str
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    if clusters is None:
        return None, None
    if len(clusters) != 2:
        raise ConfigError("clusters must be a pair: the cluster of each labelled row, then of each unlabelled row",
                          where=where, fix="pass clusters=(labelled_item_ids, unlabelled_item_ids)")
    lab, unl = np.asarray(clusters[0]), np.asarray(clusters[1])
    if lab.size != n or unl.size != big_n:
        raise ConfigError(f"clusters name {lab.size} labelled and {unl.size} unlabelled rows, "
                          f"for {n} and {big_n} values", where=where,
                          fix="pass one cluster id (e.g. the item id) per row, in the order of the values")
    return lab, unl


def _joint_variance(rect: np.ndarray, proxy_u: np.ndarray, g_lab: np.ndarray, g_unl: np.ndarray, *,
                    ddof: int) -> float:
    """Cluster-robust variance of ``mean(proxy_u) + mean(rect)`` when a cluster may hold labelled and unlabelled
    rows (items sampled for labelling within customers): per cluster, the sum of its rows' centred contributions
    to the estimate, squared and summed (``G / (G - 1)`` with ``ddof=1``) — the sandwich of the stacked mean,
    so the two parts' covariance within a cluster is counted."""
    contributions = np.concatenate([(rect - rect.mean()) / rect.size, (proxy_u - proxy_u.mean()) / proxy_u.size])
    uniq, codes = np.unique(np.concatenate([g_lab, g_unl]).astype(str), return_inverse=True)
    var = float(np.sum(np.bincount(codes, weights=contributions) ** 2))
    return var * uniq.size / (uniq.size - ddof) if uniq.size > ddof else var


def _ppi(y: Any, yhat: Any, yhat_u: Any, *, alpha: float, power_tuned: bool, clusters: Clusters | None,
         small_sample: bool, supports: Sequence[tuple[float, ...]], where: str, value_words: Callable[[Any], str],
         what: str) -> pd.DataFrame:
    alpha = check_level(alpha, "alpha", where=where)
    y = _finite(y, name="y_labelled", where=where)
    yhat = _finite(yhat, name="yhat_labelled", where=where)
    yhat_u = _finite(yhat_u, name="yhat_unlabelled", where=where)
    n, big_n = y.size, yhat_u.size
    if n < 2:
        raise ConfigError(f"{n} labelled items: an interval needs at least 2", where=where,
                          fix="label more items (a few dozen make PPI worthwhile)")
    if yhat.size != n:
        raise ConfigError(f"y_labelled has {n} items but yhat_labelled has {yhat.size}", where=where,
                          fix="pass the proxy's value for each labelled item, in the same order")
    if big_n == 0:
        raise ConfigError("no unlabelled items: the proxy adds nothing", where=where,
                          fix="pass the proxy on the items without gold labels, or use kit.stats.accuracy_ci")
    g_lab, g_unl = _check_clusters(clusters, n, big_n, where=where)
    grid = _grid((y, yhat), supports) if small_sample else None
    smoothed = _Smoothed(y, yhat, grid) if grid else None
    lam = _power_tuned_lambda(y, yhat, yhat_u, smoothed) if power_tuned else 1.0
    estimate = float(lam * yhat_u.mean() + (y - lam * yhat).mean())
    ddof = 1 if small_sample else 0
    var_rect, var_labels = _mean_variance(y - lam * yhat, g_lab, ddof=ddof), _mean_variance(y, g_lab, ddof=ddof)
    if smoothed is not None:  # floors: the variances under the smoothed table (ddof 1, per label)
        var_rect = max(var_rect, smoothed.variance(lam) / (n - 1))
        var_labels = max(var_labels, smoothed.variance(0.0) / (n - 1))
    var_ppi = _mean_variance(lam * yhat_u, g_unl) + var_rect
    if g_lab is not None and np.intersect1d(g_lab.astype(str), g_unl.astype(str)).size:
        # clusters on both sides: the labelled and unlabelled parts covary within a cluster (never below the floors)
        var_ppi = max(var_ppi, _joint_variance(y - lam * yhat, lam * yhat_u, g_lab, g_unl, ddof=ddof))
    groups = n if g_lab is None else np.unique(g_lab).size
    df = groups - 1 if small_sample and groups > 1 else math.inf
    z = t_quantile(1 - alpha / 2, df) if math.isfinite(df) else z_of(1 - alpha / 2)
    half, half_labels = z * math.sqrt(var_ppi), z * math.sqrt(var_labels)
    labels_only = float(y.mean())
    if var_ppi > 0:
        ratio, effective = half / half_labels, n * var_labels / var_ppi
    else:  # every label and proxy value equal: both intervals are points
        ratio, effective = (1.0, float(n)) if var_labels == 0 else (0.0, math.inf)
    level = f"{100 * (1 - alpha):g}%"
    how = f"PPI++, lambda = {lam:.2f}" if power_tuned else "classic PPI, lambda = 1"
    how += ", small-sample t interval" if small_sample else ""
    words = (f"{what} estimated at {value_words(estimate)} ({level} {how}: {value_words(estimate - half)} to "
             f"{value_words(estimate + half)}) from {n} gold labels and the proxy on {big_n} more items; the labels "
             f"alone give {value_words(labels_only - half_labels)} to {value_words(labels_only + half_labels)}, so "
             f"the proxy makes the {n} labels worth about {effective:,.0f}. Assumes the labelled items are a "
             "random sample of all the items" + (", independent between clusters." if clusters else
                                                  " and the items are independent."))
    return pd.DataFrame([{
        Col.ESTIMATE: estimate, Col.CI_LOW: estimate - half, Col.CI_HIGH: estimate + half, Col.LAMBDA: lam,
        Col.N_LABELLED: n, Col.N_UNLABELLED: big_n, Col.LABELS_ONLY: labels_only,
        Col.LABELS_ONLY_CI_LOW: labels_only - half_labels, Col.LABELS_ONLY_CI_HIGH: labels_only + half_labels,
        Col.WIDTH_RATIO: ratio, Col.EFFECTIVE_LABELS: effective, Col.CI_LEVEL: 1 - alpha,
        Col.STD_ERROR: math.sqrt(var_ppi), Col.DF: df,
        Col.METHOD: ("ppi++" if power_tuned else "ppi") + (" small-sample" if small_sample else ""),
        Col.STATEMENT: words}])


def ppi_mean(y_labelled: Any, yhat_labelled: Any, yhat_unlabelled: Any, *, alpha: float = 0.05,
             power_tuned: bool = True, clusters: Clusters | None = None, small_sample: bool = True) -> pd.DataFrame:
    """PPI++ estimate and ``1 - alpha`` interval of the mean of Y from n labels and a proxy on N more items.

    ``y_labelled``: Y on the labelled items (1/0 for right/wrong; any finite numbers work).
    ``yhat_labelled``: the proxy on the same items, in the same order; ``yhat_unlabelled``: the proxy on the
    items without a label. ``power_tuned=False`` fixes lambda = 1 (classic PPI). ``clusters``: a pair (cluster
    of each labelled row, cluster of each unlabelled row), e.g. item ids when items were asked several times;
    the interval then uses cluster-robust variances (lambda stays the row-level closed form).
    ``small_sample`` (default): the kit's small-sample adjustment (module docstring: smoothed lambda and
    variance floor for 0/1 values, t quantile); ``small_sample=False`` gives ppi-python's estimate and interval.

    Columns: estimate, ci_low, ci_high, lambda, n_labelled, n_unlabelled, labels_only, labels_only_ci_low,
    labels_only_ci_high (Wald, with the same adjustment), width_ratio (PPI / labels-only), effective_labels, ci_level,
    std_error, df (the t quantile's degrees of freedom; inf: the normal), method, statement.
    NaN is refused (an error is a wrong answer, coded 0). Neither the estimate nor the interval is clipped to
    [0, 1]: a proxy-corrected accuracy can stray a little past the range, which is left visible.

    >>> r = ppi_mean([1, 0, 1, 1], [1, 0, 1, 0], [1, 0, 1, 1, 0, 1, 0, 1], power_tuned=False)
    >>> round(r["estimate"].item(), 4), r["lambda"].item()
    (0.875, 1.0)
    """
    return _ppi(y_labelled, yhat_labelled, yhat_unlabelled, alpha=alpha, power_tuned=power_tuned,
                clusters=clusters, small_sample=small_sample, supports=(BINARY, DIFFERENCES),
                where="kit.stats.ppi_mean",
                value_words=pct, what="The mean")


def ppi_mean_difference(candidate_labelled: Any, reference_labelled: Any, candidate_proxy_labelled: Any,
                        reference_proxy_labelled: Any, candidate_proxy_unlabelled: Any,
                        reference_proxy_unlabelled: Any, *, alpha: float = 0.05, power_tuned: bool = True,
                        clusters: Clusters | None = None, small_sample: bool = True) -> pd.DataFrame:
    """PPI++ estimate and interval of the paired difference candidate - reference (e.g. in accuracy).

    On labelled items Y = candidate correct - reference correct (against gold); the proxy is the same
    difference judged by the proxy (e.g. candidate agrees with the reference's answer - 1, since the reference
    always agrees with itself). The mean of a difference is a mean, so this is :func:`ppi_mean` on the
    differences: one lambda, tuned for the difference's own variance, and the pairing (both options on the
    same items) enters through the per-item differences; with right/wrong inputs the small-sample smoothing
    spreads its pseudo-counts over the differences' values -1, 0, 1. Same columns as :func:`ppi_mean`,
    ``estimate`` being
    the difference.

    >>> r = ppi_mean_difference([1, 0, 1, 1], [1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1],
    ...                         [1, 0, 1, 1, 1, 1], [1] * 6, power_tuned=False)
    >>> round(r["estimate"].item(), 4)
    -0.1667
    """
    where = "kit.stats.ppi_mean_difference"
    names = ("candidate_labelled", "reference_labelled", "candidate_proxy_labelled", "reference_proxy_labelled",
             "candidate_proxy_unlabelled", "reference_proxy_unlabelled")
    values = [_finite(x, name=name, where=where) for name, x in zip(names, (
        candidate_labelled, reference_labelled, candidate_proxy_labelled, reference_proxy_labelled,
        candidate_proxy_unlabelled, reference_proxy_unlabelled))]
    for i in (0, 2, 4):
        if values[i].size != values[i + 1].size:
            raise ConfigError(f"{names[i]} has {values[i].size} items but {names[i + 1]} has {values[i + 1].size}",
                              where=where, fix="pass both options' values on the same items, in the same order")
    binary = _grid(values, (BINARY,)) is not None
    return _ppi(values[0] - values[1], values[2] - values[3], values[4] - values[5], alpha=alpha,
                power_tuned=power_tuned, clusters=clusters, small_sample=small_sample,
                supports=(DIFFERENCES,) if binary else (), where=where, value_words=pts,
                what="The difference candidate - reference")
