"""The quality bar without gold labels: "the candidate agrees with the reference on at least A% of items".

When a task has no gold answers, the reference option's answers (an API, or outputs recorded from it)
are the bar. A candidate qualifies when the **one-sided exact (Clopper–Pearson) lower confidence bound**
of its agreement rate clears the target A — the same as an exact binomial test of H0: rate <= A
rejecting at ``alpha``. Beside it: Cohen's kappa with its CI (agreement beyond chance) and the count of
disagreements. Quality here means agreement with the reference, not correctness.

>>> r = agreement_test(97, 100, target=0.9)
>>> r[["agreement", "conclusion"]].to_dict("records")
[{'agreement': 0.97, 'conclusion': <Conclusion.MEETS_BAR: 'meets the bar'>}]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import p_words, pct
from kit.stats._data import candidates_of, check_level, z_of
from kit.stats.agreement import agreement
from kit.stats.clusters import cluster_note, clustered_mean, clusters_for, design_effect, item_clusters, widest
from kit.stats.conclusions import Conclusion, finish_comparison, holm_words
from kit.stats.paired_stats import ComparisonKind, PairedValues



def agreement_bound(agree: int, n: int, *, alpha: float = 0.05, upper: bool = False) -> float:
    """One-sided exact (Clopper–Pearson) ``1 - alpha`` bound on the agreement rate.

    >>> round(agreement_bound(95, 100), 4)
    0.8977
    """
    if n <= 0:
        return float("nan")
    if upper:
        return 1.0 if agree >= n else float(stats.beta.ppf(1 - alpha, agree + 1, n - agree))
    return 0.0 if agree <= 0 else float(stats.beta.ppf(alpha, agree, n - agree + 1))


def items_needed_agreement(rate: float, target: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """Items for a one-sided test of rate > target to reach ``power`` if the observed rate holds
    (arcsine effect size, Cohen's h); inf when the rate is at or below the target.

    >>> items_needed_agreement(0.99, 0.95)
    99.0
    """
    if rate <= target:
        return math.inf
    h = 2 * math.asin(math.sqrt(rate)) - 2 * math.asin(math.sqrt(target))
    return float(math.ceil(((z_of(1 - alpha) + z_of(power)) / h) ** 2))


def agreement_test(agree: int, n: int, *, target: float = 0.95, alpha: float = 0.05, ci: float = 0.95,
                   power: float = 0.80) -> pd.DataFrame:
    """Does the agreement rate clear ``target``? Exact binomial tests and Clopper–Pearson bounds.

    ``p_meets`` tests H0: rate <= target (small: the bar is met); ``p_below`` tests H0: rate >= target
    (small: the candidate falls short). Columns: n, agree, agreement, ci_low, ci_high (two-sided ``ci``),
    lower_bound (one-sided 1 - alpha), target, p_meets, p_below, conclusion, n_needed, statement.

    >>> agreement_test(90, 100, target=0.95)["conclusion"].item()
    <Conclusion.BELOW_BAR: 'below the bar'>
    """
    where = "kit.stats.agreement_test"
    alpha, ci = check_level(alpha, "alpha", where=where), check_level(ci, "ci", where=where)
    target = check_level(target, name="target", where=where)
    if n <= 0 or not 0 <= agree <= n:
        raise ConfigError(f"{agree} agreements of {n} items is not a count", where=where,
                          fix="pass 0 <= agree <= n with n >= 1")
    p_meets = float(stats.binomtest(agree, n, target, alternative="greater").pvalue)
    p_below = float(stats.binomtest(agree, n, target, alternative="less").pvalue)
    lo2 = agreement_bound(agree, n, alpha=(1 - ci) / 2)
    hi2 = agreement_bound(agree, n, alpha=(1 - ci) / 2, upper=True)
    lower = agreement_bound(agree, n, alpha=alpha)
    verdict = _conclude(p_meets, p_below, alpha)
    need = items_needed_agreement(agree / n, target, alpha=alpha, power=power)
    return pd.DataFrame([{Col.N: n, "agree": agree, Col.AGREEMENT: agree / n, Col.CI_LOW: lo2, Col.CI_HIGH: hi2,
                          Col.LOWER_BOUND: lower, Col.TARGET: target, Col.P_MEETS: p_meets, Col.P_BELOW: p_below,
                          Col.CONCLUSION: verdict, Col.N_NEEDED: need,
                          Col.STATEMENT: _words(agree, n, lower, target, alpha, verdict, p_meets, need)}])


def _conclude(p_meets: float, p_below: float, alpha: float) -> Conclusion:
    return (Conclusion.MEETS_BAR if p_meets < alpha else Conclusion.BELOW_BAR if p_below < alpha
            else Conclusion.INCONCLUSIVE)


def _words(agree: int, n: int, lower: float, target: float, alpha: float, verdict: str, p: float, need: float) -> str:
    text = (f"Agrees with the reference on {agree} of {n} items ({pct(agree / n)}); one-sided {100 * (1 - alpha):g}% "
            f"exact lower bound {pct(lower)} against the bar of {pct(target)} (exact binomial test {p_words(p)}): "
            f"**{verdict}**.")
    if verdict == "inconclusive":
        text += (f" About {int(need):,} items would be needed to show the bar is met if this rate holds."
                 if math.isfinite(need) else " At this rate the bar cannot be shown met with any number of items.")
    return text


def compare_agreement(scores_df: pd.DataFrame, *, reference: str, target: float = 0.95, alpha: float = 0.05,
                      holm_adjust: bool = True, ci: float = 0.95, power: float = 0.80) -> pd.DataFrame:
    """The standard comparison table for an unlabelled task: each candidate's agreement with ``reference``.

    ``scores_df`` is :func:`kit.tasks.scoring.score_unlabelled`'s table: ``correct`` is agreement,
    ``answer`` and ``gold`` (the reference's answer) feed Cohen's kappa, ``score`` NaN marks a gap (the
    reference gave no answer there: counted in ``n_gaps``, left out). Epoch 0 is used (the lowest epoch
    present). ``difference``, its CI and ``lower_bound`` are the agreement rate minus ``target``, so a
    candidate qualifies when ``lower_bound`` clears 0 (after Holm). A candidate is never ``better``
    than the reference that defines the bar. Columns: arm, reference, n_items, n_missing_candidate,
    n_missing_reference, n_gaps, metric, candidate_value, candidate_ci_low, candidate_ci_high,
    reference_value, reference_ci_low, reference_ci_high, target, difference, diff_ci_low,
    diff_ci_high, lower_bound, agreement_lower_bound, n_disagreements, kappa, kappa_ci_low,
    kappa_ci_high, p_meets, p_below, conclusion, p_meets_adj, p_below_adj, adjustment,
    conclusion_adjusted, survives_adjustment, qualifies, better, n_needed, enough_items, statement.

    With a ``cluster`` column (a task that declares ``cluster:``) the rate's interval, bound and tests are the
    more conservative of the exact binomial ones and the cluster-robust ones (CR1, t with G - 1 df), kappa's
    interval is also a cluster bootstrap's, ``n_needed`` is scaled by the design effect and ``n_clusters``
    counts the clusters.
    """
    where = "kit.stats.compare_agreement"
    alpha = check_level(alpha, "alpha", where=where)
    missing = [c for c in (Col.OPTION, Col.ITEM_ID, Col.CORRECT, Col.ANSWER, Col.GOLD) if c not in scores_df.columns]
    if missing:
        raise ConfigError(f"score table lacks columns {missing}", where=where,
                          fix="pass the table from kit.tasks.scoring.score_unlabelled")
    df = scores_df.assign(**{Col.OPTION: scores_df[Col.OPTION].astype(str)})
    if "epoch" in df:
        df = df[df[Col.EPOCH] == df[Col.EPOCH].min()]
    if "score" not in df:
        df = df.assign(score=df[Col.CORRECT].astype(float))
    candidates = candidates_of(df, reference, where=where)
    by_item = item_clusters(df, where=where)
    all_items = set(df[Col.ITEM_ID])
    rows, paired = [], []
    for arm in candidates:
        mine = df[df[Col.OPTION] == arm]
        gaps = set(df.loc[pd.to_numeric(df[Col.SCORE], errors="coerce").isna(), Col.ITEM_ID])
        usable = mine[~mine[Col.ITEM_ID].isin(gaps)]
        absent = sorted(all_items - gaps - set(mine[Col.ITEM_ID]))  # never answered by the candidate: disagreement
        n = len(usable) + len(absent)
        if n == 0:
            raise ConfigError(f"{arm} has no item the reference answered", where=where,
                              fix="run both options on the same items")
        agree = int(usable[Col.CORRECT].astype(bool).sum())
        test = agreement_test(agree, n, target=target, alpha=alpha, ci=ci, power=power).iloc[0]
        ref_gold = df[df[Col.OPTION] == reference].drop_duplicates(Col.ITEM_ID).set_index(Col.ITEM_ID)[Col.GOLD]
        groups = clusters_for(list(usable[Col.ITEM_ID]) + absent, by_item)
        kap = agreement(list(usable[Col.ANSWER]) + [None] * len(absent),
                        list(usable[Col.GOLD]) + [ref_gold.get(i) for i in absent], ci=ci, clusters=groups).iloc[0]
        hits = np.concatenate([usable[Col.CORRECT].astype(bool).to_numpy(float), np.zeros(len(absent))])
        paired.append(PairedValues(ComparisonKind.AGREEMENT, hits, np.ones(hits.size), clusters=groups, alpha=alpha))
        if groups is not None:
            test = _clustered_test(test, hits, groups, target=target, alpha=alpha, ci=ci)
        rows.append({
            Col.OPTION: arm, Col.REFERENCE: reference, Col.N_ITEMS: n, Col.N_MISSING_CANDIDATE: len(absent),
            Col.N_MISSING_REFERENCE: len(gaps & set(mine[Col.ITEM_ID])), Col.N_GAPS: len(gaps), Col.METRIC: "agreement with reference",
            Col.CANDIDATE_VALUE: test[Col.AGREEMENT], Col.CANDIDATE_CI_LOW: test[Col.CI_LOW], Col.CANDIDATE_CI_HIGH: test[Col.CI_HIGH],
            Col.REFERENCE_VALUE: 1.0, Col.REFERENCE_CI_LOW: 1.0, Col.REFERENCE_CI_HIGH: 1.0, Col.TARGET: target,
            Col.DIFFERENCE: test[Col.AGREEMENT] - target, Col.DIFF_CI_LOW: test[Col.CI_LOW] - target,
            Col.DIFF_CI_HIGH: test[Col.CI_HIGH] - target, Col.LOWER_BOUND: test[Col.LOWER_BOUND] - target,
            Col.AGREEMENT_LOWER_BOUND: test[Col.LOWER_BOUND], Col.N_DISAGREEMENTS: n - agree,
            Col.KAPPA: float(kap[Col.KAPPA]), Col.KAPPA_CI_LOW: float(kap[Col.KAPPA_CI_LOW]),
            Col.KAPPA_CI_HIGH: float(kap[Col.KAPPA_CI_HIGH]), Col.P_MEETS: test[Col.P_MEETS], Col.P_BELOW: test[Col.P_BELOW],
            Col.CONCLUSION: test[Col.CONCLUSION], Col.N_NEEDED: test[Col.N_NEEDED],
            Col.ENOUGH_ITEMS: bool(math.isfinite(test[Col.N_NEEDED]) and n >= test[Col.N_NEEDED]),
            **({} if groups is None else {Col.N_CLUSTERS: int(test[Col.N_CLUSTERS])}),
        })
    return finish_comparison(rows, p_columns=("p_meets", "p_below"), holm_adjust=holm_adjust,
                             kind=ComparisonKind.AGREEMENT, paired=paired,
                             rule=lambda p: _conclude(p[Col.P_MEETS], p[Col.P_BELOW], alpha),
                             words=lambda r, k: _table_words(r, k, alpha=alpha))


def _clustered_test(test: pd.Series, hits: np.ndarray, groups: np.ndarray, *, target: float, alpha: float,
                    ci: float) -> pd.Series:
    """The agreement test redone for clustered items: the cluster-robust (CR1, t with G - 1 df) interval, bound
    and one-sided tests of the rate against the target, and the items needed scaled by the design effect. Where
    the clustered standard error is 0 (every cluster agrees at the overall rate, e.g. all items agree) the exact
    item-level test stands: clustering has nothing to widen, and a handful of items proves nothing. In general
    the more conservative of the two counts (the larger p-value, the wider interval, the lower bound): the Wald
    interval is too narrow near 100% agreement, where the exact one is not."""
    m = clustered_mean(hits, groups, where="kit.stats.compare_agreement")
    out = test.copy()
    out[Col.N_CLUSTERS] = m.n_clusters
    lo, hi = widest(m.interval(ci, bounds=(0.0, 1.0)), (test[Col.CI_LOW], test[Col.CI_HIGH]))
    p_meets, p_below = max(test[Col.P_MEETS], m.p_greater(target)), max(test[Col.P_BELOW], m.p_less(target))
    out[Col.CI_LOW], out[Col.CI_HIGH] = lo, hi
    out[Col.LOWER_BOUND] = min(test[Col.LOWER_BOUND], max(0.0, m.bound(1 - alpha, upper=False)))
    out[Col.P_MEETS], out[Col.P_BELOW] = p_meets, p_below
    out[Col.CONCLUSION] = _conclude(p_meets, p_below, alpha)
    need = test[Col.N_NEEDED]
    out[Col.N_NEEDED] = float(math.ceil(need * max(1.0, design_effect(hits, groups)))) if math.isfinite(need) else need
    return out


def _table_words(r: pd.Series, k: int, *, alpha: float) -> str:
    text = (f"Without gold labels, quality here means agreement with {r[Col.REFERENCE]}, not correctness. "
            + _words(int(round(r[Col.CANDIDATE_VALUE] * r[Col.N_ITEMS])), int(r[Col.N_ITEMS]), r[Col.AGREEMENT_LOWER_BOUND],
                     r[Col.TARGET], alpha, r[Col.CONCLUSION], r[Col.P_MEETS], r[Col.N_NEEDED]))
    if np.isfinite(r[Col.KAPPA]):
        text += (f" Cohen's kappa {r[Col.KAPPA]:.2f} (CI {r[Col.KAPPA_CI_LOW]:.2f} to {r[Col.KAPPA_CI_HIGH]:.2f}) "
                 "discounts agreement expected by chance.")
    text += holm_words(r, k)
    text += f" {r[Col.N_DISAGREEMENTS]} item(s) disagree: read them first (the disagreement table)."
    if r[Col.N_GAPS]:
        text += (f" {r[Col.N_GAPS]} item(s) have no reference answer (an error, nothing parseable, or missing from "
                 "a replay file) and are left out.")
    if r[Col.N_MISSING_CANDIDATE]:
        text += f" {r[Col.N_MISSING_CANDIDATE]} item(s) the candidate never answered count as disagreements."
    if Col.N_CLUSTERS in r and r[Col.N_CLUSTERS] == r[Col.N_CLUSTERS]:
        text = text.replace("exact lower bound", "lower bound (exact or cluster-robust, the lower)", 1).replace(
            "(exact binomial test ", "(exact binomial or cluster-robust test, the larger: ", 1) + cluster_note(
            int(r[Col.N_CLUSTERS]))
    return text

