"""Clustered items: intervals and tests when items come in groups (a customer's tickets, a thread's messages,
a document's questions).

Items of one cluster tend to be right or wrong together, so they carry less information than as many
independent items, and an item-level interval is too narrow. Following Miller (2024, "Adding Error Bars to
Evals: A Statistical Approach to Language Model Evaluations"), a mean (an accuracy, a mean score, a paired
difference — the mean of per-item differences) gets a **cluster-robust standard error**: the sandwich
variance of an ordinary least-squares fit on an intercept, with the CR1 small-sample factor,

    var = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2        (G clusters, n items)

and its intervals and tests use Student's t with ``G - 1`` degrees of freedom, not the normal: with few
clusters the variance estimate is itself noisy, and ``t(G - 1)`` is the usual correction (Cameron & Miller
2015, "A Practitioner's Guide to Cluster-Robust Inference"; Stata's default). These are exactly
``statsmodels.regression.linear_model.OLS(x, ones).fit(cov_type="cluster", cov_kwds={"groups": g},
use_t=True)`` — its default small-sample correction ``G/(G-1) * (n-1)/(n-k)`` is ``G/(G-1)`` for an intercept
(k = 1) — which ``tests/test_stats_clusters.py`` checks. With one item per cluster it is the item-level
interval with ``n/(n-1)`` (the usual sample variance).

A metric that is not a mean (macro-F1, a latency quantile, Cohen's kappa) gets a **cluster bootstrap**:
whole clusters are resampled with replacement, items inside them kept together (percentile interval).

>>> x = [1, 1, 0, 0, 1, 1, 1, 0]
>>> r = cluster_interval(x, ["a", "a", "b", "b", "c", "c", "d", "d"])
>>> r[["n", "n_clusters", "mean"]].to_dict("records")
[{'n': 8, 'n_clusters': 4, 'mean': 0.625}]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pct, pts
from kit.stats._data import as_values, check_level
from kit.stats.bootstrap import MEAN, Metric, prepared_pair

CLUSTER_METHOD = "cluster-robust t (CR1, G-1 df)"
CLUSTER_WORDS = ("Items come in {g} clusters ({col}); intervals and tests use cluster-robust standard errors "
                 "(CR1, Student's t with G - 1 = {df} degrees of freedom; Miller 2024), so items of one cluster are "
                 "not counted as independent evidence; none is narrower than its item-level counterpart.")


@dataclass(frozen=True)
class ClusteredMean:
    """A mean with its cluster-robust (CR1) standard error and the ``G - 1`` degrees of freedom of its t.

    >>> m = clustered_mean([1, 0, 1, 1], [0, 0, 1, 1])
    >>> m.estimate, m.n_clusters, m.df
    (0.75, 2, 1)
    """

    estimate: float
    se: float
    n: int
    n_clusters: int

    @property
    def df(self) -> int:
        return self.n_clusters - 1

    def interval(self, ci: float = 0.95, *, bounds: tuple[float, float] | None = None) -> tuple[float, float]:
        """Two-sided ``ci`` interval ``estimate +- t(G-1) * se``, clipped to ``bounds`` when given."""
        half = float(stats.t.ppf((1 + ci) / 2, self.df)) * self.se
        lo, hi = self.estimate - half, self.estimate + half
        return (lo, hi) if bounds is None else (max(bounds[0], lo), min(bounds[1], hi))

    def bound(self, level: float, *, upper: bool) -> float:
        """One-sided ``level`` confidence bound."""
        q = float(stats.t.ppf(level, self.df)) * self.se
        return self.estimate + q if upper else self.estimate - q

    def p_greater(self, value: float) -> float:
        """One-sided p-value of H0: mean <= value (small: the mean is above ``value``)."""
        return float(stats.t.sf(self._t(value), self.df))

    def p_less(self, value: float) -> float:
        """One-sided p-value of H0: mean >= value (small: the mean is below ``value``)."""
        return float(stats.t.cdf(self._t(value), self.df))

    def p_two_sided(self, value: float = 0.0) -> float:
        return float(min(1.0, 2 * min(self.p_greater(value), self.p_less(value))))

    def _t(self, value: float) -> float:
        if self.se > 0:
            return (self.estimate - value) / self.se
        return 0.0 if self.estimate == value else float(np.sign(self.estimate - value) * np.inf)


def cluster_codes(clusters: Any, n: int, *, where: str) -> np.ndarray:
    """Each item's cluster as an integer code 0..G-1; a clear error for a length mismatch, a missing cluster or
    fewer than two clusters.

    >>> cluster_codes(["b", "a", "b"], 3, where="x").tolist()
    [1, 0, 1]
    """
    raw = pd.Series(np.asarray(clusters, dtype=object).ravel())
    if raw.size != n:
        raise ConfigError(f"clusters name {raw.size} items but there are {n}", where=where,
                          fix="pass one cluster per item, in the same order as the values")
    blank = raw.isna() | (raw.astype(str).str.strip() == "")
    if blank.any():
        raise ConfigError(f"{int(blank.sum())} item(s) have no cluster (first at position {int(np.argmax(blank))})",
                          where=where, fix="give every item its cluster, or leave clusters out")
    codes, uniques = pd.factorize(raw.astype(str), sort=True)
    if uniques.size < 2:
        raise ConfigError(f"all {n} items are in one cluster ({uniques[0]!r}): a cluster-robust error needs at least "
                          "two clusters", where=where,
                          fix="run items from several clusters, or drop `cluster:` from the task file")
    return codes.astype(np.intp)


def clustered_mean(values: Any, clusters: Any, *, where: str = "kit.stats.clustered_mean") -> ClusteredMean:
    """The mean of per-item values with its CR1 cluster-robust standard error (see the module docstring)."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ConfigError(f"got {x.size} values, some missing", where=where,
                          fix="pass one finite value per item (errors count as wrong: 0)")
    codes = cluster_codes(clusters, x.size, where=where)
    g = int(codes.max()) + 1
    resid = x - x.mean()
    meat = float(np.sum(np.bincount(codes, weights=resid, minlength=g) ** 2))
    return ClusteredMean(float(x.mean()), float(np.sqrt(g / (g - 1) * meat) / x.size), int(x.size), g)


def cluster_interval(values: Any, clusters: Any, *, ci: float = 0.95) -> pd.DataFrame:
    """A mean in [0, 1] (an accuracy, a mean score) with its cluster-robust interval, clipped to [0, 1].

    Columns: n, n_clusters, mean, se, df, ci_low, ci_high, ci_level, method, statement.

    >>> round(cluster_interval([1, 0, 1, 1, 0, 1], [1, 1, 2, 2, 3, 3])["se"].item(), 4)
    0.1667
    """
    where = "kit.stats.cluster_interval"
    ci = check_level(ci, "ci", where=where)
    x = as_values(values, name="values", where=where)
    m = clustered_mean(x, clusters, where=where)
    lo, hi = m.interval(ci, bounds=(0.0, 1.0))
    words = (f"Mean {pct(m.estimate)} on {m.n} items in {m.n_clusters} clusters ({100 * ci:g}% cluster-robust "
             f"interval {pct(lo)} to {pct(hi)}, CR1 standard error, t with {m.df} df); items of a cluster are not "
             "assumed independent, the clusters are.")
    return pd.DataFrame([{Col.N: m.n, Col.N_CLUSTERS: m.n_clusters, "mean": m.estimate, "se": m.se, "df": m.df,
                          Col.CI_LOW: lo, Col.CI_HIGH: hi, Col.CI_LEVEL: ci, Col.METHOD: CLUSTER_METHOD,
                          Col.STATEMENT: words}])


def cluster_ci(values: Any, clusters: Any, ci: float = 0.95, *,
               item: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Mean of per-item values in [0, 1] and its cluster-robust interval clipped to [0, 1] (the clustered
    counterpart of :func:`kit.stats.intervals.mean_ci`), widened to cover ``item`` — the item-level interval —
    when given (:func:`widest`).

    >>> [round(v, 4) for v in cluster_ci([1, 0, 1, 1], ["a", "a", "b", "b"])]
    [0.75, 0.0, 1.0]
    >>> cluster_ci([1, 1, 1, 1], ["a", "a", "b", "b"], item=(0.4, 1.0))
    (1.0, 0.4, 1.0)
    """
    m = clustered_mean(values, clusters, where="kit.stats.cluster_ci")
    interval = m.interval(ci, bounds=(0.0, 1.0))
    return (m.estimate, *(interval if item is None else widest(interval, item)))


def widest(clustered: tuple[float, float], item: tuple[float, float]) -> tuple[float, float]:
    """The union of a cluster-robust interval and the item-level one. The tables report it: clustering never
    makes items *more* informative than independent ones, and the Wald interval is too narrow near 0 and 1
    (at 100% accuracy its width is 0), where Wilson's and Tango's are not. Each of the two covers at its level,
    so their union does too (conservatively).

    >>> widest((0.2, 0.6), (0.25, 0.7))
    (0.2, 0.7)
    """
    return min(clustered[0], item[0]), max(clustered[1], item[1])


def cluster_difference(candidate: Any, reference: Any, clusters: Any, *, margin: float = 0.0, alpha: float = 0.05,
                       ci: float = 0.95) -> pd.DataFrame:
    """The paired difference candidate - reference (the mean of per-item differences) with its cluster-robust
    interval and a one-sided Wald test at the margin (H0: difference <= -margin), t with ``G - 1`` df.

    The same as OLS of the per-item difference on an intercept with clustered errors. Columns: n, n_clusters,
    difference, se, df, ci_low, ci_high, lower_bound (one-sided 1 - alpha), margin, p_noninferiority,
    p_two_sided, method, statement.

    >>> r = cluster_difference([1, 1, 1, 0], [1, 0, 1, 1], ["x", "x", "y", "y"])
    >>> r[["difference", "n_clusters"]].to_dict("records")
    [{'difference': 0.0, 'n_clusters': 2}]
    """
    where = "kit.stats.cluster_difference"
    ci, alpha = check_level(ci, "ci", where=where), check_level(alpha, "alpha", where=where)
    cand = as_values(candidate, name="candidate", where=where)
    ref = as_values(reference, name="reference", where=where)
    if cand.size != ref.size:
        raise ConfigError(f"candidate has {cand.size} items but reference has {ref.size}", where=where,
                          fix="pass both options' values on the same items, in the same order")
    m = clustered_mean(cand - ref, clusters, where=where)
    lo, hi = m.interval(ci)
    lower = m.bound(1 - alpha, upper=False)
    p_ni, p_two = m.p_greater(-margin), m.p_two_sided(0.0)
    words = (f"Candidate minus reference = {pts(m.estimate)} on {m.n} paired items in {m.n_clusters} clusters "
             f"({100 * ci:g}% cluster-robust interval {pts(lo)} to {pts(hi)}; one-sided {100 * (1 - alpha):g}% lower "
             f"bound {pts(lower)} against the margin {pts(margin, sign=False)}).")
    return pd.DataFrame([{Col.N: m.n, Col.N_CLUSTERS: m.n_clusters, Col.DIFFERENCE: m.estimate, "se": m.se, "df": m.df,
                          Col.CI_LOW: lo, Col.CI_HIGH: hi, Col.LOWER_BOUND: lower, Col.MARGIN: float(margin),
                          Col.P_NONINFERIORITY: p_ni, "p_two_sided": p_two, Col.METHOD: CLUSTER_METHOD,
                          Col.STATEMENT: words}])


def design_effect(values: Any, clusters: Any) -> float:
    """How many times the clustered variance of the mean exceeds the item-level one (ddof 1); 1 when the values
    do not vary. Items needed for a test scale by it.

    >>> design_effect([1, 1, 0, 0], ["a", "a", "b", "b"])
    3.0
    """
    x = np.asarray(values, dtype=float).ravel()
    naive = float(x.var(ddof=1)) / x.size if x.size > 1 else 0.0
    clustered = clustered_mean(x, clusters, where="kit.stats.design_effect").se ** 2
    return clustered / naive if naive > 0 else 1.0


def cluster_resamples(codes: np.ndarray, n_resamples: int, *, seed: int) -> Iterator[np.ndarray]:
    """Row positions of each cluster-bootstrap resample: ``G`` clusters drawn with replacement, all their rows
    kept (so resamples differ in length when clusters differ in size)."""
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(int(codes.max()) + 2))
    members = [order[starts[c]:starts[c + 1]] for c in range(starts.size - 1)]
    rng = np.random.default_rng(seed)
    for _ in range(int(n_resamples)):
        yield np.concatenate([members[c] for c in rng.integers(0, len(members), size=len(members))])


def cluster_weights(n_clusters: int, n_resamples: int, *, seed: int) -> np.ndarray:
    """How often each cluster is drawn in each resample (``n_resamples x G``): the vectorised form of
    :func:`cluster_resamples`, for statistics that are sums over clusters."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(int(n_resamples), n_clusters))
    offset = (np.arange(int(n_resamples)) * n_clusters)[:, None]
    return np.bincount((draws + offset).ravel(), minlength=int(n_resamples) * n_clusters).reshape(
        int(n_resamples), n_clusters).astype(float)


def percentile(boot: np.ndarray, ci: float) -> tuple[float, float]:
    """The percentile interval of bootstrap values (NaN resamples, e.g. an undefined kappa, left out)."""
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(ok, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def cluster_bootstrap(a: Any, b: Any, clusters: Any, *, metric: str | Metric | Callable[[Any], float] = "mean",
                      n_resamples: int = 2_000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Percentile interval of ``metric(a) - metric(b)`` by resampling whole clusters (items of a drawn cluster
    stay together, and both options' rows with them: paired).

    For a metric that is not a mean (``"macro_f1"``: pass DataFrames with ``answer`` and ``gold``). Columns:
    metric, n, n_clusters, estimate_a, estimate_b, difference, ci_low, ci_high, ci_level, method, se,
    n_resamples, seed, statement.

    >>> r = cluster_bootstrap([1, 1, 0, 1, 0, 0], [1, 0, 0, 1, 0, 0], [1, 1, 2, 2, 3, 3], n_resamples=500)
    >>> r[["difference", "n_clusters"]].round(4).to_dict("records")
    [{'difference': 0.1667, 'n_clusters': 3}]
    """
    where = "kit.stats.cluster_bootstrap"
    ci = check_level(ci, "ci", where=where)
    m, pa, pb, n = prepared_pair(metric, a, b, n_resamples=n_resamples, where=where)
    codes = cluster_codes(clusters, n, where=where)
    g = int(codes.max()) + 1
    est_a, est_b = m(a), m(b)
    if m.linear:
        d = np.asarray(pa - pb, dtype=float)
        w = cluster_weights(g, int(n_resamples), seed=seed)
        boot = (w @ np.bincount(codes, weights=d, minlength=g)) / (w @ np.bincount(codes, minlength=g))
    else:
        boot = np.array([m.on_index(pa, idx[None, :])[0] - m.on_index(pb, idx[None, :])[0]
                         for idx in cluster_resamples(codes, int(n_resamples), seed=seed)])
    lo, hi = percentile(boot, ci)
    theta = est_a - est_b
    words = (f"Cluster bootstrap (percentile, {int(n_resamples):,} resamples of the {g} clusters, seed {seed}): "
             f"{'accuracy (mean score)' if m is MEAN else m.name} of A minus B = {pts(theta)}, {100 * ci:g}% CI "
             f"{pts(lo)} to {pts(hi)}. Whole clusters are resampled, both arms' rows together, so the interval "
             "accounts for items of one cluster being alike and for the pairing; it assumes the clusters are "
             "independent.")
    return pd.DataFrame([{Col.METRIC: m.name, Col.N: n, Col.N_CLUSTERS: g, "estimate_a": est_a, "estimate_b": est_b,
                          Col.DIFFERENCE: theta, Col.CI_LOW: lo, Col.CI_HIGH: hi, Col.CI_LEVEL: ci,
                          Col.METHOD: "cluster bootstrap (percentile)", "se": float(np.nanstd(boot, ddof=1)),
                          "n_resamples": int(n_resamples), Col.SEED: seed, Col.STATEMENT: words}])


def item_clusters(scores_df: pd.DataFrame, *, where: str) -> pd.Series | None:
    """Each item's cluster (index ``item_id``) from a score table's ``cluster`` column; None when the table has
    no such column (items are independent). A clear error when an item sits in two clusters or has none.

    >>> df = pd.DataFrame({"option": ["a", "b"], "item_id": ["1", "1"], "cluster": ["c", "c"]})
    >>> item_clusters(df, where="x").to_dict()
    {'1': 'c'}
    """
    if Col.CLUSTER not in scores_df.columns:
        return None
    col = scores_df[[Col.ITEM_ID, Col.CLUSTER]]
    blank = col[Col.CLUSTER].isna() | (col[Col.CLUSTER].astype(str).str.strip() == "")
    if blank.any():
        raise ConfigError(f"{int(blank.sum())} row(s) of the score table have no cluster, e.g. item "
                          f"{col.loc[blank, Col.ITEM_ID].iloc[0]!r}", where=where,
                          fix="score with the task that declares `cluster:` (every item gets its cluster)")
    per = col.drop_duplicates().astype({Col.CLUSTER: str})
    twice = per[per[Col.ITEM_ID].duplicated(keep=False)]
    if not twice.empty:
        raise ConfigError(f"item {twice[Col.ITEM_ID].iloc[0]!r} is in more than one cluster", where=where,
                          fix="give each item one cluster in the task's data file")
    return per.set_index(Col.ITEM_ID)[Col.CLUSTER]


def clusters_for(index: Sequence[Any], by_item: pd.Series | None) -> np.ndarray | None:
    """The clusters of the items in ``index`` (e.g. a wide table's), None when there are none."""
    return None if by_item is None else by_item.reindex(pd.Index(index)).to_numpy(dtype=object)


def cluster_note(n_clusters: int, *, column: str = "the task's `cluster:` column") -> str:
    """The sentence a statement adds when its intervals are clustered."""
    return " " + CLUSTER_WORDS.format(g=n_clusters, col=column, df=n_clusters - 1)


__all__ = ["CLUSTER_METHOD", "ClusteredMean", "cluster_bootstrap", "cluster_ci", "cluster_codes", "cluster_difference",
           "cluster_interval", "cluster_note", "widest", "cluster_resamples", "cluster_weights", "clustered_mean",
           "clusters_for", "design_effect", "item_clusters", "percentile"]
