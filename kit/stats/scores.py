"""Paired statistics on per-item scores in [0, 1] (free text: chrF, ROUGE-L, a judge's grade, a preference).

Per candidate against the reference: the mean difference with a paired bootstrap CI, the Wilcoxon
signed-rank test, non-inferiority on the mean at a margin in score units (a paired t-test), win/tie/loss
rates with Wilson intervals and the exact sign test, and the items a conclusive non-inferiority test would
need — gathered by :func:`compare_scores` into the standard comparison table (Holm across candidates).

Missing rows (an option never answered an item) count as score 0, as errors do; an item whose score is
NaN (the judge gave no grade, the reference had no answer) is a *gap*: it leaves the pair and is counted
in ``n_gaps`` and in the statement.

>>> r = win_tie_loss([0.9, 0.5, 0.2, 0.7], [0.5, 0.5, 0.5, 0.5])
>>> r[["wins", "ties", "losses"]].to_dict("records")
[{'wins': 2, 'ties': 1, 'losses': 1}]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import p_words, pts
from kit.stats._data import as_pair, candidates_of, check_level
from kit.stats.bootstrap import paired_bootstrap
from kit.stats.clusters import (cluster_ci, cluster_note, clustered_mean, clusters_for, design_effect, item_clusters,
                                widest)
from kit.stats.compare import P_COLUMNS
from kit.stats.conclusions import finish_comparison, holm_words
from kit.stats.paired_stats import ComparisonKind, PairedValues
from kit.stats.intervals import wilson_interval
from kit.stats.paired import conclude, non_inferiority


def t_interval(values: Any, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-item scores with a t interval, clipped to [0, 1] (a point when every value is equal).

    >>> [round(v, 4) for v in t_interval([0.2, 0.4, 0.6, 0.8])]
    [0.5, 0.0891, 0.9109]
    """
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2 or float(x.std(ddof=1)) == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + ci) / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def mean_difference(candidate: Any, reference: Any, *, ci: float = 0.95, n_resamples: int = 10_000,
                    seed: int = 0) -> pd.DataFrame:
    """Mean score difference (candidate - reference) with a paired bootstrap CI (BCa).

    Columns: n, candidate_mean, reference_mean, difference, ci_low, ci_high, method_used, statement.

    >>> mean_difference([0.5, 0.7, 0.9], [0.5, 0.5, 0.5], n_resamples=500)["difference"].round(3).item()
    0.2
    """
    cand, ref = as_pair(candidate, reference, names=("candidate", "reference"), where="kit.stats.mean_difference")
    boot = paired_bootstrap(cand, ref, n_resamples=n_resamples, ci=ci, seed=seed).iloc[0]
    words = (f"Mean score difference {pts(boot[Col.DIFFERENCE])} on {cand.size} paired items (paired bootstrap "
             f"{100 * ci:g}% CI {pts(boot[Col.CI_LOW])} to {pts(boot[Col.CI_HIGH])}).")
    return pd.DataFrame([{Col.N: cand.size, Col.CANDIDATE_MEAN: float(cand.mean()), "reference_mean": float(ref.mean()),
                          Col.DIFFERENCE: float(boot[Col.DIFFERENCE]), Col.CI_LOW: float(boot[Col.CI_LOW]),
                          Col.CI_HIGH: float(boot[Col.CI_HIGH]), "method_used": boot["method_used"], Col.STATEMENT: words}])


def wilcoxon_signed_rank(candidate: Any, reference: Any, *, alternative: str = "two-sided") -> pd.DataFrame:
    """Wilcoxon signed-rank test on paired scores (zero differences dropped, as R's ``wilcox.test`` does).

    ``statistic`` is the sum of the ranks of positive differences (R's V). The p-value is scipy's: exact
    for small samples without ties, else the normal approximation with a tie correction. Columns: n,
    n_nonzero, statistic, p_value, alternative, method, statement.

    >>> wilcoxon_signed_rank([1, 2, 3], [1, 2, 3])["p_value"].item()
    1.0
    """
    where = "kit.stats.wilcoxon_signed_rank"
    if alternative not in ("two-sided", "greater", "less"):
        raise ConfigError(f"alternative={alternative!r} is unknown", where=where, fix="use two-sided, greater or less")
    a = np.asarray(candidate, dtype=float).ravel()
    b = np.asarray(reference, dtype=float).ravel()
    if a.size != b.size or a.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        raise ConfigError(f"got {a.size} and {b.size} paired values (NaN not allowed)", where=where,
                          fix="pass both arms' scores on the same items, in the same order")
    d = a - b
    nz = d[d != 0]
    if nz.size == 0:
        return pd.DataFrame([{Col.N: d.size, "n_nonzero": 0, "statistic": 0.0, Col.P_VALUE: 1.0, "alternative": alternative,
                              Col.METHOD: "none", Col.STATEMENT: f"All {d.size} items scored the same for both arms: "
                                                             "the signed-rank test has nothing to weigh (p = 1)."}])
    ranks = stats.rankdata(np.abs(nz))
    v = float(ranks[nz > 0].sum())
    res = stats.wilcoxon(nz, alternative=alternative, zero_method="wilcox")
    ties = len(np.unique(np.abs(nz))) < nz.size
    method = "normal approximation with tie correction" if ties or nz.size > 50 else "exact"
    words = (f"Wilcoxon signed-rank on {nz.size} items whose scores differ ({d.size - nz.size} equal, left out): "
             f"V = {v:g}, {p_words(float(res.pvalue))} ({alternative}; {method}).")
    return pd.DataFrame([{Col.N: d.size, "n_nonzero": int(nz.size), "statistic": v, Col.P_VALUE: float(res.pvalue),
                          "alternative": alternative, Col.METHOD: method, Col.STATEMENT: words}])


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: are wins and losses equally likely? (ties left out).

    >>> round(sign_test(8, 2), 4)
    0.1094
    """
    n = int(wins) + int(losses)
    return 1.0 if n == 0 else float(stats.binomtest(int(wins), n, 0.5).pvalue)


def win_tie_loss(candidate: Any, reference: Any, *, ci: float = 0.95, tolerance: float = 0.0) -> pd.DataFrame:
    """Items the candidate scored higher (win), within ``tolerance`` (tie) or lower (loss) than the reference.

    Rates carry Wilson intervals; ``sign_p`` is the exact two-sided sign test on wins against losses.
    Columns: n, wins, ties, losses, win_rate, win_ci_low, win_ci_high, tie_rate, tie_ci_low, tie_ci_high,
    loss_rate, loss_ci_low, loss_ci_high, sign_p, statement.

    >>> win_tie_loss([1, 1, 0], [0, 1, 1])["sign_p"].item()
    1.0
    """
    where = "kit.stats.win_tie_loss"
    ci = check_level(ci, "ci", where=where)
    cand, ref = as_pair(candidate, reference, names=("candidate", "reference"), where=where)
    d = cand - ref
    wins, losses = int((d > tolerance).sum()), int((d < -tolerance).sum())
    ties, n = int(d.size - wins - losses), int(d.size)
    row: dict[str, Any] = {Col.N: n, Col.WINS: wins, Col.TIES: ties, Col.LOSSES: losses}
    for name, k in (("win", wins), ("tie", ties), ("loss", losses)):
        lo, hi = wilson_interval(k, n, ci)
        row.update({f"{name}_rate": k / n, f"{name}_ci_low": lo, f"{name}_ci_high": hi})
    row[Col.SIGN_P] = sign_test(wins, losses)
    row[Col.STATEMENT] = (f"Item by item the candidate scored higher on {wins}, the same on {ties} and lower on "
                        f"{losses} of {n} items (win rate {100 * wins / n:.0f}%, {100 * ci:g}% CI "
                        f"{100 * row['win_ci_low']:.0f}% to {100 * row['win_ci_high']:.0f}%); exact sign test on "
                        f"wins against losses {p_words(row[Col.SIGN_P])}.")
    return pd.DataFrame([row])


def items_needed_mean(candidate: Any, reference: Any, *, margin: float, alpha: float = 0.05,
                      power: float = 0.80) -> float:
    """Items for a one-sided paired t-test to show non-inferiority at ``margin`` with ``power``, if the
    observed mean difference and its spread hold (noncentral t). inf when the observed difference is at or
    below -margin (no number of items would do); the observed n when the spread is zero.

    >>> items_needed_mean([0.5] * 10, [0.5] * 10, margin=0.02)
    10.0
    """
    cand, ref = as_pair(candidate, reference, names=("candidate", "reference"), where="kit.stats.items_needed_mean")
    d = cand - ref
    gap = float(d.mean()) + margin
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    if gap <= 0:
        return math.inf
    if sd == 0:
        return float(d.size)
    return float(t_test_items(gap / sd, alpha=alpha, power=power))


def t_test_items(effect: float, *, alpha: float = 0.05, power: float = 0.80) -> int:
    """Smallest n at which a one-sided one-sample (paired) t-test at ``alpha`` reaches ``power`` for a
    standardised effect ``effect`` (mean over standard deviation), from the noncentral t distribution.

    >>> t_test_items(0.5)   # G*Power 3.1, matched pairs, one tail, dz = 0.5: total sample size 27
    27
    """
    if effect <= 0:
        raise ConfigError(f"effect={effect} must be positive", where="kit.stats.t_test_items",
                          fix="pass the expected mean difference over its standard deviation")

    def achieved(n: int) -> float:
        crit = stats.t.ppf(1 - alpha, n - 1)
        return float(stats.nct.sf(crit, n - 1, effect * math.sqrt(n)))

    low, high = 2, 4
    while achieved(high) < power:
        low, high = high, high * 2
        if high > 10**9:
            return 10**9
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if achieved(mid) < power else (low, mid)
    return low


def _pair(df: pd.DataFrame, arm: str, reference: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Per-item scores (epochs averaged) of two arms: absent rows count 0, NaN scores are gaps (dropped)."""
    per = df[df[Col.OPTION].isin([arm, reference])].groupby([Col.ITEM_ID, Col.OPTION])[Col.SCORE].mean().unstack(Col.OPTION)
    per = per.reindex(columns=[arm, reference])
    present = df[df[Col.OPTION].isin([arm, reference])].groupby([Col.ITEM_ID, Col.OPTION]).size().unstack(Col.OPTION)
    present = present.reindex(index=per.index, columns=[arm, reference])
    absent = present.isna()
    gaps = per.isna() & ~absent
    counts = {"missing_candidate": int(absent[arm].sum()), "missing_reference": int(absent[reference].sum()),
              "gaps": int(gaps.any(axis=1).sum())}
    keep = ~gaps.any(axis=1)
    per = per[keep].fillna(0.0)
    counts["index"] = per.index
    return per[arm].to_numpy(float), per[reference].to_numpy(float), counts


def _clustered(cand: np.ndarray, ref: np.ndarray, groups: np.ndarray, row: dict[str, Any], *, margin: float,
               alpha: float, ci: float) -> dict[str, Any]:
    """The row's intervals and tests redone for clustered items (:mod:`kit.stats.clusters`): cluster-robust
    intervals, the cluster-robust Wald test at the margin, and beside the sign and Wilcoxon tests the
    cluster-robust two-sided tests of the mean sign and of the mean difference — each interval the union with
    its item-level one, each p-value the larger of the two."""
    where = "kit.stats.compare_scores"
    d = cand - ref
    ni = non_inferiority(cand, ref, margin=margin, alpha=alpha, method="t", clusters=groups).iloc[0]
    diff = clustered_mean(d, groups, where=where)
    lo, hi = widest(diff.interval(ci), (row[Col.DIFF_CI_LOW], row[Col.DIFF_CI_HIGH]))
    row.update({Col.N_CLUSTERS: diff.n_clusters, Col.DIFF_CI_LOW: lo, Col.DIFF_CI_HIGH: hi,
                Col.LOWER_BOUND: float(ni[Col.LOWER_BOUND]), Col.UPPER_BOUND: float(ni[Col.UPPER_BOUND]),
                **{c: float(ni[c]) for c in P_COLUMNS}, Col.CONCLUSION: ni[Col.CONCLUSION],
                Col.SIGN_P: max(row[Col.SIGN_P], clustered_mean(np.sign(d), groups, where=where).p_two_sided()),
                Col.WILCOXON_P: max(row[Col.WILCOXON_P], diff.p_two_sided())})
    for name, col in ((Col.CANDIDATE_VALUE, cand), (Col.REFERENCE_VALUE, ref)):
        prefix = name.removesuffix("_value")
        item = (row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"])
        _, row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = cluster_ci(col, groups, ci, item=item)
    for name, hit in (("win", d > 0), ("loss", d < 0)):
        item = (row[f"{name}_ci_low"], row[f"{name}_ci_high"])
        _, row[f"{name}_ci_low"], row[f"{name}_ci_high"] = cluster_ci(hit.astype(float), groups, ci, item=item)
    need = row[Col.N_NEEDED] * max(1.0, design_effect(d, groups)) if math.isfinite(row[Col.N_NEEDED]) else math.inf
    row[Col.N_NEEDED] = float(math.ceil(need)) if math.isfinite(need) else need
    row[Col.ENOUGH_ITEMS] = bool(math.isfinite(need) and cand.size >= row[Col.N_NEEDED])
    return row


def _one(df: pd.DataFrame, arm: str, reference: str, *, metric: str, margin: float, alpha: float, ci: float,
         n_resamples: int, seed: int, power: float, by_item: pd.Series | None = None) -> dict[str, Any]:
    cand, ref, counts = _pair(df, arm, reference)
    if cand.size < 2:
        raise ConfigError(f"{arm} and {reference} share {cand.size} scored item(s)", where="kit.stats.compare_scores",
                          fix="score both options on at least two of the same items")
    groups = clusters_for(counts["index"], by_item)
    ni = non_inferiority(cand, ref, margin=margin, alpha=alpha, method="t").iloc[0]
    boot = paired_bootstrap(cand, ref, n_resamples=n_resamples, ci=ci, seed=seed).iloc[0]
    wtl = win_tie_loss(cand, ref, ci=ci).iloc[0]
    wil = wilcoxon_signed_rank(cand, ref).iloc[0]
    cv, clo, chi = t_interval(cand, ci)
    rv, rlo, rhi = t_interval(ref, ci)
    need = items_needed_mean(cand, ref, margin=margin, alpha=alpha, power=power)
    row = {
        Col.OPTION: arm, Col.REFERENCE: reference, Col.N_ITEMS: int(cand.size),
        Col.N_MISSING_CANDIDATE: counts["missing_candidate"], Col.N_MISSING_REFERENCE: counts["missing_reference"],
        Col.N_GAPS: counts["gaps"], Col.METRIC: metric, Col.CANDIDATE_VALUE: cv, Col.CANDIDATE_CI_LOW: clo,
        Col.CANDIDATE_CI_HIGH: chi, Col.REFERENCE_VALUE: rv, Col.REFERENCE_CI_LOW: rlo, Col.REFERENCE_CI_HIGH: rhi,
        Col.DIFFERENCE: float(cand.mean() - ref.mean()), Col.DIFF_CI_LOW: float(boot[Col.CI_LOW]),
        Col.DIFF_CI_HIGH: float(boot[Col.CI_HIGH]),
        **{c: wtl[c] for c in ("wins", "ties", "losses", "win_rate", "win_ci_low", "win_ci_high", "tie_rate",
                               "loss_rate", "loss_ci_low", "loss_ci_high", "sign_p")},
        Col.WILCOXON_P: float(wil[Col.P_VALUE]), Col.MARGIN: margin, Col.LOWER_BOUND: float(ni[Col.LOWER_BOUND]),
        Col.UPPER_BOUND: float(ni[Col.UPPER_BOUND]), **{c: float(ni[c]) for c in P_COLUMNS},
        Col.CONCLUSION: ni[Col.CONCLUSION], Col.N_NEEDED: need,
        Col.ENOUGH_ITEMS: bool(math.isfinite(need) and cand.size >= need),
    }
    if groups is None:
        return row
    return _clustered(cand, ref, groups, row, margin=margin, alpha=alpha, ci=ci)


def _statement(r: pd.Series, k: int, *, alpha: float, ci: float) -> str:
    lvl = f"{100 * ci:g}%"
    text = (f"{r[Col.OPTION]} against {r[Col.REFERENCE]} on {r[Col.N_ITEMS]} paired items, {r[Col.METRIC]} (0 to 1): "
            f"{r[Col.CANDIDATE_VALUE]:.3f} ({lvl} CI {r[Col.CANDIDATE_CI_LOW]:.3f} to {r[Col.CANDIDATE_CI_HIGH]:.3f}) versus "
            f"{r[Col.REFERENCE_VALUE]:.3f} ({r[Col.REFERENCE_CI_LOW]:.3f} to {r[Col.REFERENCE_CI_HIGH]:.3f}). Mean "
            f"difference {r[Col.DIFFERENCE]:+.3f} (paired bootstrap {lvl} CI {r[Col.DIFF_CI_LOW]:+.3f} to "
            f"{r[Col.DIFF_CI_HIGH]:+.3f}). The candidate scored higher on {r[Col.WINS]} items, the same on {r[Col.TIES]} "
            f"and lower on {r[Col.LOSSES]} (sign test {p_words(r[Col.SIGN_P])}; Wilcoxon signed-rank "
            f"{p_words(r[Col.WILCOXON_P])}). Margin {r[Col.MARGIN]:.3f} in score units: one-sided "
            f"{100 * (1 - alpha):g}% lower bound {r[Col.LOWER_BOUND]:+.3f} (paired t-test), so the result is "
            f"**{r[Col.CONCLUSION]}**.")
    text += holm_words(r, k)
    if r[Col.CONCLUSION_ADJUSTED] == "inconclusive":
        text += (f" About {int(r[Col.N_NEEDED]):,} items would be needed to show non-inferiority at this margin if "
                 "the observed difference and spread hold." if math.isfinite(r[Col.N_NEEDED]) else
                 " At the observed difference, non-inferiority at this margin cannot be shown with any number of items.")
    if r[Col.N_GAPS]:
        text += f" {r[Col.N_GAPS]} item(s) could not be scored for one of the two (no judge grade, or no reference answer) and are left out of the pair."
    missing = r[Col.N_MISSING_CANDIDATE] + r[Col.N_MISSING_REFERENCE]
    if missing:
        text += f" {missing} item(s) one option never answered count as score 0 for it."
    if Col.N_CLUSTERS in r and r[Col.N_CLUSTERS] == r[Col.N_CLUSTERS]:
        g = int(r[Col.N_CLUSTERS])
        text = (text.replace(" paired items,", f" paired items in {g} clusters,", 1)
                .replace("(paired bootstrap ", "(cluster-robust ", 1)
                .replace("(sign test ", "(sign test or cluster-robust test of the mean sign, the larger: ", 1)
                .replace("; Wilcoxon signed-rank ", "; Wilcoxon signed-rank or cluster-robust test of the mean "
                                                    "difference, the larger: ", 1)
                .replace("(paired t-test)", "(paired t-test and cluster-robust Wald test, the wider)", 1))
        return text + cluster_note(g) + (" Assumptions: the clusters are independent and represent the traffic the "
                                         "decision is about; errors and empty answers score 0; the tests are "
                                         "large-sample approximations in the number of clusters.")
    return text + (" Assumptions: items are independent and represent the traffic the decision is about; errors "
                   "and empty answers score 0; the t-test and its bound are large-sample approximations for scores.")


def compare_scores(scores_df: pd.DataFrame, *, reference: str, margin: float = 0.02, alpha: float = 0.05,
                   metric: str = "mean score", holm_adjust: bool = True, ci: float = 0.95,
                   n_resamples: int = 10_000, seed: int = 0, power: float = 0.80) -> pd.DataFrame:
    """The standard comparison table for [0, 1] scores: every other arm against ``reference``, paired.

    Columns: arm, reference, n_items, n_missing_candidate, n_missing_reference, n_gaps, metric,
    candidate_value, candidate_ci_low, candidate_ci_high, reference_value, reference_ci_low,
    reference_ci_high, difference, diff_ci_low, diff_ci_high, wins, ties, losses, win_rate, win_ci_low,
    win_ci_high, tie_rate, loss_rate, loss_ci_low, loss_ci_high, sign_p, wilcoxon_p, margin, lower_bound,
    upper_bound, p_noninferiority, p_superiority, p_inferiority, p_equivalence, p_above_margin, conclusion,
    <each p>_adj, adjustment, conclusion_adjusted, survives_adjustment, qualifies, better, n_needed,
    enough_items, statement.

    With a ``cluster`` column (a task that declares ``cluster:``) every interval and test is clustered
    (:mod:`kit.stats.clusters`): cluster-robust intervals (CR1, t with G - 1 df), the cluster-robust Wald test
    at the margin, and in ``sign_p`` and ``wilcoxon_p`` the cluster-robust tests of the mean sign and of the
    mean difference (rank tests assume independent items) — each interval never narrower than the item-level
    one, each p-value the larger of the two; ``n_needed`` is scaled by the design effect and ``n_clusters``
    counts the clusters.

    >>> df = pd.DataFrame({"option": ["api"] * 6 + ["local"] * 6, "item_id": list(range(6)) * 2,
    ...                    "score": [.8, .6, .7, .9, .5, .6, .7, .6, .8, .7, .5, .4]})
    >>> compare_scores(df, reference="api", n_resamples=500)[["option", "wins", "losses", "conclusion"]].to_dict("records")
    [{'option': 'local', 'wins': 1, 'losses': 3, 'conclusion': <Conclusion.INCONCLUSIVE: 'inconclusive'>}]
    """
    where = "kit.stats.compare_scores"
    alpha = check_level(alpha, "alpha", where=where)
    if not 0 <= margin < 1:
        raise ConfigError(f"margin={margin!r} must be in [0, 1)", where=where, fix="pass e.g. margin=0.02 (score units)")
    missing = [c for c in (Col.OPTION, Col.ITEM_ID, Col.SCORE) if c not in scores_df.columns]
    if missing:
        raise ConfigError(f"score table lacks columns {missing}", where=where,
                          fix="pass the per-item table from kit.tasks.scoring.score_generation")
    df = scores_df.assign(**{Col.OPTION: scores_df[Col.OPTION].astype(str),
                              Col.SCORE: pd.to_numeric(scores_df[Col.SCORE], errors="coerce")})
    if ((df[Col.SCORE] < 0) | (df[Col.SCORE] > 1)).any():
        raise ConfigError("scores outside [0, 1]", where=where, fix="scale scores to [0, 1] first")
    candidates = candidates_of(df, reference, where=where)
    by_item = item_clusters(df, where=where)
    rows = [_one(df, a, reference, metric=metric, margin=margin, alpha=alpha, ci=ci, n_resamples=n_resamples,
                 seed=seed, power=power, by_item=by_item) for a in candidates]
    paired = [_paired(df, a, reference, by_item=by_item, alpha=alpha) for a in candidates]
    return finish_comparison(rows, p_columns=P_COLUMNS, holm_adjust=holm_adjust,
                             kind=ComparisonKind.PAIRED_SCORES, paired=paired,
                             rule=lambda p: conclude(p, alpha, equivalence=False),
                             words=lambda r, k: _statement(r, k, alpha=alpha, ci=ci))


def _paired(df: pd.DataFrame, arm: str, reference: str, *, by_item: pd.Series | None, alpha: float) -> PairedValues:
    """The two arms' per-item scores, for the registered paired statistics."""
    cand, ref, counts = _pair(df, arm, reference)
    return PairedValues(ComparisonKind.PAIRED_SCORES, cand, ref, clusters=clusters_for(counts["index"], by_item),
                        alpha=alpha)


__all__ = ["compare_scores", "items_needed_mean", "mean_difference", "sign_test", "t_interval", "t_test_items",
           "wilcoxon_signed_rank", "win_tie_loss"]
