"""Tests between options beyond the reference: against a trivial baseline (the floor), and between every pair
(is a dearer option significantly better than the pick?).

Right/wrong results are compared with the exact McNemar (binomial) test on the discordant items; fractional
scores with the exact sign test on the items where the two differ. A result that is a random guess's expected
value (``chance``) is compared through a one-sided exact binomial test of the correct answers against it.
Clustered items (``clusters=``) also get the cluster-robust test of the mean difference; the larger p-value counts.

>>> beats_baseline([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0])["p_value"].item()
0.03125
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.format import p_words, pct, pts
from kit.stats._data import as_pair, as_values, check_level
from kit.stats.clusters import CLUSTER_METHOD, cluster_note, clustered_mean
from kit.stats.conclusions import holm


def _binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def beats_baseline(candidate: Any, baseline: Any, *, alpha: float = 0.05, paired: bool = True,
                   name: str = "the baseline", clusters: Any = None) -> pd.DataFrame:
    """One-sided test that the candidate is better than a trivial baseline.

    ``paired``: the baseline's per-item results (e.g. always the majority class) — exact McNemar on
    right/wrong, exact sign test on fractional scores. Otherwise ``baseline`` holds the per-item expected score
    of a random guess (chance): a one-sided exact binomial test of the candidate's correct answers against it.
    With ``clusters`` (each item's cluster), the one-sided cluster-robust test of the mean per-item difference
    (:mod:`kit.stats.clusters`: CR1, t with G - 1 df) joins either, since the exact tests assume independent
    items; the larger p-value counts. Columns: n, candidate_mean, baseline_mean, difference, wins, losses,
    p_value, passes, method, statement (and n_clusters, with clusters).

    >>> beats_baseline([1, 1, 1, 0, 1, 1], [0, 0, 0, 0, 1, 0], clusters=[1, 1, 2, 2, 3, 3])["method"].item()
    'cluster-robust t (CR1, G-1 df), one-sided, or the exact McNemar (one-sided) where larger'
    """
    where = "kit.stats.beats_baseline"
    alpha = check_level(alpha, "alpha", where=where)
    cand = as_values(candidate, name="candidate", where=where)
    base = as_values(baseline, name="baseline", where=where)
    if cand.size != base.size:
        base = np.full(cand.size, float(base.mean())) if not paired else as_pair(cand, base, where=where)[1]
    if paired:
        diff = cand - base
        wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
        p = float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
        method = "exact McNemar (one-sided)" if _binary(cand) and _binary(base) else "exact sign test (one-sided)"
    else:
        wins, losses = int(round(cand.sum())), int(cand.size - round(cand.sum()))
        p = float(stats.binomtest(wins, cand.size, float(base.mean()), alternative="greater").pvalue)
        method = "exact binomial test against the guess rate (one-sided)"
    extra: dict[str, Any] = {}
    if clusters is not None:
        m = clustered_mean(cand - base, clusters, where=where)
        p, extra = max(p, m.p_greater(0.0)), {Col.N_CLUSTERS: m.n_clusters}
        method = f"{CLUSTER_METHOD}, one-sided, or the {method} where larger"
    passes = p < alpha
    words = (f"{pct(cand.mean())} against {name}'s {pct(base.mean())} on {cand.size} items"
             + (f" in {extra[Col.N_CLUSTERS]} clusters" if extra else "") + ": "
             f"{pts(cand.mean() - base.mean())}, {p_words(p)} ({method}) — "
             + ("significantly better." if passes else "not shown to be better, so it does not clear the floor."))
    return pd.DataFrame([{Col.N: int(cand.size), Col.CANDIDATE_MEAN: float(cand.mean()), Col.BASELINE_MEAN: float(base.mean()),
                          Col.DIFFERENCE: float(cand.mean() - base.mean()), Col.WINS: wins, Col.LOSSES: losses,
                          Col.P_VALUE: p, Col.PASSES: passes, Col.METHOD: method, Col.STATEMENT: words, **extra}])


def pairwise(wide: pd.DataFrame, *, alpha: float = 0.05, clusters: Any = None) -> pd.DataFrame:
    """Every pair of columns of a per-item table (one column per option): the paired difference, a two-sided
    exact test (McNemar on right/wrong, sign test on scores) and Holm's correction across all pairs. With
    ``clusters`` (each row's cluster) the p-value is the larger of the exact test's and the two-sided
    cluster-robust test's of the mean difference (:mod:`kit.stats.clusters`), and an ``n_clusters`` column
    counts the clusters.

    Columns: a, b, n, mean_a, mean_b, difference (a − b), p_value, p_holm, significant, statement.

    >>> wide = pd.DataFrame({"x": [1, 1, 1, 1, 1, 1, 1, 0], "y": [0, 0, 0, 0, 0, 0, 0, 0]})
    >>> round(pairwise(wide)["p_value"].item(), 4)
    0.0156
    """
    alpha = check_level(alpha, "alpha", where="kit.stats.pairwise")
    rows = []
    for a, b in combinations(wide.columns, 2):
        x, y = wide[a].to_numpy(dtype=float), wide[b].to_numpy(dtype=float)
        diff = x - y
        wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
        p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
        if clusters is not None:
            p = max(p, clustered_mean(diff, clusters, where="kit.stats.pairwise").p_two_sided())
        rows.append({Col.A: a, Col.B: b, Col.N: int(x.size), Col.MEAN_A: float(x.mean()), Col.MEAN_B: float(y.mean()),
                     Col.DIFFERENCE: float(x.mean() - y.mean()), Col.P_VALUE: p})
    out = pd.DataFrame(rows, columns=[Col.A, Col.B, Col.N, Col.MEAN_A, Col.MEAN_B, Col.DIFFERENCE, Col.P_VALUE])
    out[Col.P_HOLM] = holm(out[Col.P_VALUE]) if len(out) else []
    out[Col.SIGNIFICANT] = out[Col.P_HOLM] < alpha
    out[Col.STATEMENT] = [
        f"{r.a} {pct(r.mean_a)} vs {r.b} {pct(r.mean_b)}: {pts(r.difference)}, {p_words(r.p_holm)} after Holm over "
        f"{len(out)} pairs — " + ("a real difference." if r.significant else "not shown to differ.")
        for r in out.itertuples()]
    if clusters is not None and len(out):
        g = int(pd.Series(np.asarray(clusters, dtype=object)).nunique())
        out[Col.N_CLUSTERS] = g
        out[Col.STATEMENT] = out[Col.STATEMENT] + cluster_note(g)
    return out
