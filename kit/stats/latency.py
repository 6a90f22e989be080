"""Latency: per-arm percentiles with bootstrap intervals, and a paired Wilcoxon signed-rank test.

Percentiles use linear interpolation (numpy's default, R's type 7); their intervals are percentile
bootstrap intervals. The signed-rank test is exact (the permutation distribution of the signed
ranks, ties included) up to 50 non-zero differences and the normal approximation with tie
correction above.

>>> latency_test([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5])[["n_nonzero", "p_value"]].to_dict("records")
[{'n_nonzero': 4, 'p_value': 0.125}]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import p_words
from kit.stats._data import check_level, check_scores
from kit.stats.clusters import cluster_codes, cluster_resamples

QUANTILES = (0.50, 0.95, 0.99)
EXACT_MAX = 50


def _quantile_cis(x: np.ndarray, ci: float, n_resamples: int, seed: int) -> np.ndarray:
    """Percentile-bootstrap intervals of the 50/95/99th percentiles: array (3 quantiles, 2)."""
    rng = np.random.default_rng(seed)
    n = x.size
    step = max(1, 2_000_000 // n)
    boots = []
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, n, size=(min(step, n_resamples - start), n))
        boots.append(np.quantile(x[idx], QUANTILES, axis=1).T)
    boot = np.concatenate(boots)
    return np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2], axis=0).T


def _cluster_quantile_cis(x: np.ndarray, groups: np.ndarray, ci: float, n_resamples: int, seed: int) -> np.ndarray:
    """Cluster-bootstrap percentile intervals of the 50/95/99th percentiles (whole clusters of requests resampled,
    :mod:`kit.stats.clusters`): array (3 quantiles, 2). One cluster only: the item-level bootstrap."""
    if pd.Series(groups).nunique() < 2:
        return _quantile_cis(x, ci, n_resamples, seed)
    codes = cluster_codes(groups, x.size, where="kit.stats.latency_summary")
    boot = np.array([np.quantile(x[idx], QUANTILES) for idx in cluster_resamples(codes, n_resamples, seed=seed)])
    return np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2], axis=0).T


def latency_summary(scores_df: pd.DataFrame, *, ci: float = 0.95, n_resamples: int = 2_000,
                    seed: int = 0) -> pd.DataFrame:
    """Per arm: p50/p95/p99 latency with bootstrap intervals, time to first token and tokens per second.

    Every request with a measured latency counts, failed ones included (``n_errors`` says how many) — except
    warm-up requests: rows whose ``warmup`` column is true (a run's first call, which pays for loading the model
    or opening the connection) are left out of the quantiles, so they describe the steady state, and their
    count and mean latency are given apart (``n_warmup``, ``warmup_s``). An arm with nothing but warm-up
    requests is summarised on those.
    ``tokens_per_s`` is completion tokens over total latency; ``decode_tokens_per_s`` leaves out the
    time to first token. Columns: arm, n, n_no_latency, n_errors, n_warmup, warmup_s, p50_s, p50_ci_low, p50_ci_high,
    p95_s, p95_ci_low, p95_ci_high, p99_s, p99_ci_low, p99_ci_high, mean_s, mean_ttft_s, p50_ttft_s,
    tokens_per_s, decode_tokens_per_s, statement. With a ``cluster`` column (a task that declares ``cluster:``)
    the intervals come from a cluster bootstrap (whole clusters of requests resampled) and ``n_clusters``
    counts the clusters.

    >>> df = pd.DataFrame({"option": "a", "item_id": range(4), "correct": True, "latency_s": [1.0, 2, 3, 4]})
    >>> latency_summary(df, n_resamples=200)["p50_s"].item()
    2.5
    >>> latency_summary(df.assign(warmup=[True, False, False, False]), n_resamples=200)[["p50_s", "warmup_s"]].values
    array([[3., 1.]])
    """
    where = "kit.stats.latency_summary"
    ci = check_level(ci, "ci", where=where)
    df = check_scores(scores_df, where=where)
    if "latency_s" not in df.columns:
        raise ConfigError("score table lacks 'latency_s'", where=where, fix="pass the table from kit.tasks.scoring")
    for col in ("ttft_s", "completion_tokens"):
        if col not in df.columns:
            df[col] = np.nan
    rows = []
    if "warmup" not in df.columns:
        df[Col.WARMUP] = False
    for arm, everything in df.groupby(Col.OPTION, sort=False):
        warm = everything[Col.WARMUP].fillna(False).astype(bool)
        g = everything[~warm] if (~warm).any() else everything
        cold = pd.to_numeric(everything.loc[warm, Col.LATENCY_S], errors="coerce").dropna()
        lat = pd.to_numeric(g[Col.LATENCY_S], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(lat)
        x = lat[ok]
        groups = g[Col.CLUSTER].to_numpy(dtype=object)[ok] if Col.CLUSTER in g.columns else None
        row: dict[str, Any] = {Col.OPTION: arm, Col.N: int(ok.sum()), Col.N_NO_LATENCY: int((~ok).sum()),
                               Col.N_ERRORS: int(g[Col.ERROR].notna().sum()), Col.N_WARMUP: int(warm.sum()),
                               Col.WARMUP_S: float(cold.mean()) if len(cold) else np.nan}
        if x.size:
            qs = np.quantile(x, QUANTILES)
            cis = (np.array([[v, v] for v in qs]) if x.size <= 1 else _quantile_cis(x, ci, int(n_resamples), seed)
                   if groups is None else _cluster_quantile_cis(x, groups, ci, int(n_resamples), seed))
        else:
            qs, cis = np.full(3, np.nan), np.full((3, 2), np.nan)
        for name, q, (lo, hi) in zip(("p50", "p95", "p99"), qs, cis):
            row.update({f"{name}_s": float(q), f"{name}_ci_low": float(lo), f"{name}_ci_high": float(hi)})
        ttft = pd.to_numeric(g[Col.TTFT_S], errors="coerce").to_numpy(dtype=float)
        tok = pd.to_numeric(g[Col.COMPLETION_TOKENS], errors="coerce").to_numpy(dtype=float)
        both = ok & np.isfinite(tok)
        dec = both & np.isfinite(ttft) & (lat > ttft)
        row.update({
            Col.MEAN_S: float(x.mean()) if x.size else np.nan,
            Col.MEAN_TTFT_S: float(np.nanmean(ttft)) if np.isfinite(ttft).any() else np.nan,
            Col.P50_TTFT_S: float(np.nanmedian(ttft)) if np.isfinite(ttft).any() else np.nan,
            Col.TOKENS_PER_S: float(tok[both].sum() / lat[both].sum()) if both.any() and lat[both].sum() > 0 else np.nan,
            Col.DECODE_TOKENS_PER_S: (float(tok[dec].sum() / (lat[dec] - ttft[dec]).sum()) if dec.any() else np.nan),
        })
        if len(cold) and len(g) < len(everything):
            note_warm = (f" Steady state: {int(warm.sum())} warm-up request(s) (a run's first call, loading the model "
                         f"or opening the connection: {cold.mean():.2f} s on average) are reported apart.")
        else:
            note_warm = ""
        note = note_warm + (" With fewer than 100 requests the p99 is close to the slowest single request; read it as indicative."
                if x.size < 100 else "")
        row[Col.STATEMENT] = (f"{arm}: median {row[Col.P50_S]:.3f} s, p95 {row[Col.P95_S]:.3f} s, p99 {row[Col.P99_S]:.3f} s "
                            f"over {x.size} requests ({100 * ci:g}% bootstrap intervals, {int(n_resamples):,} "
                            f"resamples); latency depends on this machine and its load.{note}")
        if groups is not None:
            row[Col.N_CLUSTERS] = int(pd.Series(groups).nunique())
            row[Col.STATEMENT] = row[Col.STATEMENT].replace(
                "bootstrap intervals,", f"cluster bootstrap intervals over {row[Col.N_CLUSTERS]} clusters,", 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _signed_rank_null(ranks: np.ndarray) -> np.ndarray:
    """Exact null distribution of W+ (in half-rank units) by sign flips of the given ranks."""
    w = np.rint(2 * ranks).astype(np.int64)
    dist = np.zeros(int(w.sum()) + 1)
    dist[0] = 1.0
    for r in w:
        dist[r:] = dist[r:] + dist[: dist.size - r]
    return dist / dist.sum()


def latency_test(a: Any, b: Any, *, zero_method: Literal["wilcox", "pratt"] = "wilcox",
                 alternative: Literal["two-sided", "less", "greater"] = "two-sided") -> pd.DataFrame:
    """Paired Wilcoxon signed-rank test on per-item latency ``a - b`` (same items, same order).

    Pairs where either latency is missing are left out and counted in ``n_dropped``. Columns: n,
    n_dropped, n_nonzero, median_a, median_b, median_difference, w_plus, w_minus, statistic, z,
    p_value, method, statement.

    >>> latency_test([1, 2, 3], [1, 2, 3])["p_value"].item()
    1.0
    """
    where = "kit.stats.latency_test"
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.size != y.size:
        raise ConfigError(f"a has {x.size} items but b has {y.size}", where=where,
                          fix="pass both arms' latencies on the same items, in the same order")
    if zero_method not in ("wilcox", "pratt") or alternative not in ("two-sided", "less", "greater"):
        raise ConfigError("unknown zero_method or alternative", where=where,
                          fix="zero_method 'wilcox'|'pratt'; alternative 'two-sided'|'less'|'greater'")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        raise ConfigError("no pair has both latencies", where=where, fix="pass measured latencies")
    d = x - y
    if zero_method == "wilcox":
        d = d[d != 0]
    ranks = stats.rankdata(np.abs(d)) if d.size else np.array([])
    nonzero = d != 0
    w_plus, w_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    n_nz = int(nonzero.sum())
    if n_nz == 0:
        z, p, method = 0.0, 1.0, "no non-zero differences"
    elif n_nz <= EXACT_MAX:
        dist = _signed_rank_null(ranks[nonzero])
        k = int(round(2 * w_plus))
        lower, upper = float(dist[: k + 1].sum()), float(dist[k:].sum())
        p = {"less": lower, "greater": upper, "two-sided": min(1.0, 2 * min(lower, upper))}[alternative]
        z, method = float("nan"), "exact (signed-rank permutation distribution)"
    else:
        n_all, n_zero = d.size, d.size - n_nz
        mean = (n_all * (n_all + 1) - n_zero * (n_zero + 1)) / 4.0
        _, ties = np.unique(ranks[nonzero], return_counts=True)
        var = (n_all * (n_all + 1) * (2 * n_all + 1) - n_zero * (n_zero + 1) * (2 * n_zero + 1)
               - (ties ** 3 - ties).sum() / 2.0) / 24.0
        z = (w_plus - mean) / np.sqrt(var)
        p = {"less": stats.norm.cdf(z), "greater": stats.norm.sf(z), "two-sided": 2 * stats.norm.sf(abs(z))}[alternative]
        z, p, method = float(z), float(p), "normal approximation with tie correction"
    diff = float(np.median(x - y))
    words = (f"Per-item latency differs by a median of {diff:+.3f} s (A minus B) over {x.size} paired requests; "
             f"Wilcoxon signed-rank {p_words(p)} ({method}). The test assumes the pairs are independent; "
             "latency depends on the machine and its load at the time.")
    return pd.DataFrame([{
        Col.N: int(x.size), "n_dropped": int((~ok).sum()), "n_nonzero": n_nz, "median_a": float(np.median(x)),
        "median_b": float(np.median(y)), "median_difference": diff, "w_plus": w_plus, "w_minus": w_minus,
        "statistic": min(w_plus, w_minus) if alternative == "two-sided" else w_plus, "z": z, Col.P_VALUE: float(p),
        Col.METHOD: method, Col.STATEMENT: words,
    }])
