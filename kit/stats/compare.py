"""Every candidate arm against one reference arm, in one tidy table, with Holm's correction.

>>> df = pd.DataFrame({"option": ["api"] * 4 + ["local"] * 4, "item_id": list(range(4)) * 2,
...                    "correct": [1, 1, 0, 1, 1, 0, 0, 1]})
>>> compare_arms(df, reference="api", n_resamples=500)[["option", "b10", "b01", "conclusion"]].to_dict("records")
[{'option': 'local', 'b10': 0, 'b01': 1, 'conclusion': <Conclusion.INCONCLUSIVE: 'inconclusive'>}]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import p_words, pct, pts
from kit.stats._data import (
    Missing,
    candidates_of,
    check_level,
    check_scores,
    pair_arms,
)
from kit.stats.bootstrap import paired_bootstrap
from kit.stats.clusters import (cluster_ci, cluster_note, clustered_mean, clusters_for, design_effect, item_clusters,
                                widest)
from kit.stats.intervals import mean_ci
from kit.stats.conclusions import finish_comparison, holm_words
from kit.stats.paired import conclude, mcnemar, non_inferiority
from kit.stats.paired_stats import ComparisonKind, PairedValues
from kit.stats.power import sample_size_noninferiority

P_COLUMNS = (Col.P_NONINFERIORITY, Col.P_SUPERIORITY, Col.P_INFERIORITY, Col.P_EQUIVALENCE, Col.P_ABOVE_MARGIN)


def _metric_name(values: pd.DataFrame) -> str:
    return "accuracy" if np.isin(values.to_numpy(), (0.0, 1.0)).all() else "mean score"


def _one(df: pd.DataFrame, arm: str, reference: str, *, value: str, epochs: Any, missing: Missing,
         margin: float, alpha: float, equivalence: bool, ci: float, n_resamples: int, seed: int,
         power: float, by_item: pd.Series | None = None) -> tuple[dict[str, Any], PairedValues]:
    wide = pair_arms(df, arms=[arm, reference], value=value, epochs=epochs, missing=missing)
    if wide.empty:
        raise ConfigError(f"{arm} and {reference} share no items", where="kit.stats.compare_arms",
                          fix="run both arms on the same task items")
    right = pair_arms(df, arms=[arm, reference], value=Col.CORRECT,
                      epochs=epochs if isinstance(epochs, int) else "majority", missing=missing)
    cand, ref = wide[arm].to_numpy(), wide[reference].to_numpy()
    mc = mcnemar(right[arm], right[reference]).iloc[0]
    groups = clusters_for(wide.index, by_item)
    ni = non_inferiority(cand, ref, margin=margin, alpha=alpha, equivalence=equivalence, clusters=groups).iloc[0]
    if cand.size >= 2:
        bs = paired_bootstrap(cand, ref, n_resamples=n_resamples, ci=ci, seed=seed).iloc[0]
        b_lo, b_hi = bs[Col.CI_LOW], bs[Col.CI_HIGH]
    else:
        b_lo = b_hi = float("nan")
    need = sample_size_noninferiority(cand, ref, margin=margin, alpha=alpha, power=power).iloc[0]
    cv, clo, chi = mean_ci(cand, ci)
    rv, rlo, rhi = mean_ci(ref, ci)
    clustered: dict[str, Any] = {}
    if groups is not None:
        cv, clo, chi = cluster_ci(cand, groups, ci, item=(clo, chi))
        rv, rlo, rhi = cluster_ci(ref, groups, ci, item=(rlo, rhi))
        diff = clustered_mean(cand - ref, groups, where="kit.stats.compare_arms")
        b_lo, b_hi = widest(diff.interval(ci), (b_lo, b_hi)) if cand.size >= 2 else diff.interval(ci)
        p_right = clustered_mean(right[arm].to_numpy() - right[reference].to_numpy(), groups,
                                 where="kit.stats.compare_arms").p_two_sided()
        mc = mc.copy()
        mc["p_exact"], mc["p_mid"] = max(p_right, mc["p_exact"]), max(p_right, mc["p_mid"])
        deff = max(1.0, design_effect(cand - ref, groups))
        need = {"n_required": float(np.ceil(need["n_required"] * deff)) if np.isfinite(need["n_required"])
                else need["n_required"]}
        need["enough"] = bool(np.isfinite(need["n_required"]) and cand.size >= need["n_required"])
        clustered = {Col.N_CLUSTERS: diff.n_clusters}
    paired = PairedValues(ComparisonKind.PAIRED_ACCURACY, right[arm].to_numpy(float), right[reference].to_numpy(float),
                          clusters=groups, alpha=alpha)
    return {
        Col.OPTION: arm, Col.REFERENCE: reference, Col.N_ITEMS: int(cand.size),
        Col.N_MISSING_CANDIDATE: wide.attrs["missing"][arm], Col.N_MISSING_REFERENCE: wide.attrs["missing"][reference],
        Col.METRIC: _metric_name(wide), Col.CANDIDATE_VALUE: cv, Col.CANDIDATE_CI_LOW: clo, Col.CANDIDATE_CI_HIGH: chi,
        Col.REFERENCE_VALUE: rv, Col.REFERENCE_CI_LOW: rlo, Col.REFERENCE_CI_HIGH: rhi,
        Col.DIFFERENCE: float(cand.mean() - ref.mean()), Col.DIFF_CI_LOW: b_lo, Col.DIFF_CI_HIGH: b_hi,
        Col.B10: int(mc[Col.B10]), Col.B01: int(mc[Col.B01]), Col.MCNEMAR_P: mc["p_exact"], Col.MCNEMAR_MID_P: mc["p_mid"],
        Col.MARGIN: margin, Col.LOWER_BOUND: ni[Col.LOWER_BOUND], Col.UPPER_BOUND: ni[Col.UPPER_BOUND],
        **{c: ni[c] for c in P_COLUMNS}, Col.CONCLUSION: ni[Col.CONCLUSION],
        Col.N_NEEDED: need["n_required"], Col.ENOUGH_ITEMS: need["enough"], **clustered,
    }, paired


def _statement(r: pd.Series, k: int, *, alpha: float, ci: float, equivalence: bool) -> str:
    lvl = f"{100 * ci:g}%"
    one = f"one-sided {100 * (1 - alpha):g}%"
    bounds = (f"{one} bounds {pts(r[Col.LOWER_BOUND])} and {pts(r[Col.UPPER_BOUND])} against ±{pts(r[Col.MARGIN], sign=False)}"
              if equivalence else f"{one} lower bound {pts(r[Col.LOWER_BOUND])}")
    text = (f"{r[Col.OPTION]} against {r[Col.REFERENCE]} on {r[Col.N_ITEMS]} paired items: {r[Col.METRIC]} "
            f"{pct(r[Col.CANDIDATE_VALUE])} ({lvl} CI {pct(r[Col.CANDIDATE_CI_LOW])} to {pct(r[Col.CANDIDATE_CI_HIGH])}) "
            f"versus {pct(r[Col.REFERENCE_VALUE])} ({pct(r[Col.REFERENCE_CI_LOW])} to {pct(r[Col.REFERENCE_CI_HIGH])}). "
            f"Difference {pts(r[Col.DIFFERENCE])} (paired bootstrap {lvl} CI {pts(r[Col.DIFF_CI_LOW])} to "
            f"{pts(r[Col.DIFF_CI_HIGH])}). The candidate alone was right on {r[Col.B10]} items, the reference alone on "
            f"{r[Col.B01]} (exact McNemar {p_words(r[Col.MCNEMAR_P])}). Margin {pts(r[Col.MARGIN], sign=False)}: "
            f"{bounds}, so the result is **{r[Col.CONCLUSION]}**.")
    if r[Col.CONCLUSION] == "non-inferior" and r[Col.LOWER_BOUND] < 0:
        text += f" A loss of up to {pts(-r[Col.LOWER_BOUND], sign=False)} is not ruled out, but a larger one is."
    text += holm_words(r, k)
    if r[Col.CONCLUSION_ADJUSTED] == "inconclusive" and np.isfinite(r[Col.N_NEEDED]) and r[Col.N_NEEDED] > r[Col.N_ITEMS]:
        text += (f" About {int(r[Col.N_NEEDED]):,} items would be needed to show non-inferiority at this margin "
                 "if the observed difference and discordance hold.")
    elif r[Col.CONCLUSION_ADJUSTED] == "inconclusive" and not np.isfinite(r[Col.N_NEEDED]):
        text += " At the observed difference, non-inferiority at this margin cannot be shown with any number of items."
    missing = r[Col.N_MISSING_CANDIDATE] + r[Col.N_MISSING_REFERENCE]
    if missing:
        text += f" {missing} item(s) one arm never answered are counted as wrong for that arm."
    if Col.N_CLUSTERS in r and r[Col.N_CLUSTERS] == r[Col.N_CLUSTERS]:
        text = _clustered_words(text, r)
        return text + (" Assumptions: the clusters are independent and represent the traffic the decision is "
                       "about; errors and unparseable answers count as wrong; the tests are large-sample "
                       "approximations in the number of clusters.")
    return text + (" Assumptions: items are independent and represent the traffic the decision is about; errors "
                   "and unparseable answers count as wrong; the tests are large-sample approximations (Tango's "
                   "score test for the margin).")


def _clustered_words(text: str, r: pd.Series) -> str:
    """The statement of a clustered comparison: its intervals and tests name the cluster-robust methods."""
    g = int(r[Col.N_CLUSTERS])
    text = (text.replace(" paired items:", f" paired items in {g} clusters:", 1)
            .replace("(paired bootstrap ", "(paired bootstrap or cluster-robust, the wider: ", 1)
            .replace("(exact McNemar ", "(exact McNemar or cluster-robust Wald test of the difference in right "
                                        "answers, the larger: ", 1))
    return (text + cluster_note(g) + " The margin is tested with the cluster-robust Wald test of the mean "
            "per-item difference beside Tango's score test, which assumes independent items, and the more "
            "conservative counts; the items needed are scaled by the observed design effect.")


def compare_arms(scores_df: pd.DataFrame, *, reference: str, margin: float = 0.02, alpha: float = 0.05,
                 holm: bool = True, equivalence: bool = False, value: Literal[Col.SCORE, Col.CORRECT] = "score",
                 epochs: Literal["mean"] | int = "mean", missing: Missing = "wrong", ci: float = 0.95,
                 n_resamples: int = 10_000, seed: int = 0, power: float = 0.80) -> pd.DataFrame:
    """Compare every other arm with ``reference`` on the items they share (paired).

    Per candidate: value with Wilson CI for both arms, paired bootstrap CI of the difference,
    McNemar (on right/wrong; majority over epochs), Tango non-inferiority at ``margin`` (or TOST
    equivalence), Holm-adjusted p-values across candidates and whether each conclusion survives,
    and the items needed (Nam 1997). Epochs are averaged per item (``epochs="mean"``) or one is
    chosen. Columns: arm, reference, n_items, n_missing_candidate, n_missing_reference, metric,
    candidate_value, candidate_ci_low, candidate_ci_high, reference_value, reference_ci_low,
    reference_ci_high, difference, diff_ci_low, diff_ci_high, b10, b01, mcnemar_p, mcnemar_mid_p,
    margin, lower_bound, upper_bound, p_noninferiority, p_superiority, p_inferiority, p_equivalence,
    p_above_margin, conclusion, <each p>_adj, adjustment, conclusion_adjusted, survives_adjustment, qualifies
    (meets the quality bar after the correction), better (superior after the correction),
    n_needed (items for ``power`` to show non-inferiority, Nam 1997, from the observed difference and
    discordance), enough_items, statement.

    When the table has a ``cluster`` column (a task that declares ``cluster:``), every interval and test is
    clustered (:mod:`kit.stats.clusters`): the values' and the difference's intervals are cluster-robust (CR1,
    t with G - 1 df), the margin is also tested with the cluster-robust Wald test, the ``mcnemar_p`` columns
    also weigh the cluster-robust two-sided test of the difference in right answers — every interval the
    union with its item-level one, every p-value the larger of the two — ``n_needed`` is scaled by the design
    effect, and ``n_clusters`` counts the clusters.
    """
    where = "kit.stats.compare_arms"
    alpha = check_level(alpha, "alpha", where=where)
    df = check_scores(scores_df, where=where)
    candidates = candidates_of(df, reference, where=where)
    by_item = item_clusters(df, where=where)
    rows, paired = zip(*[_one(df, a, reference, value=value, epochs=epochs, missing=missing, margin=margin, alpha=alpha,
                 equivalence=equivalence, ci=ci, n_resamples=n_resamples, seed=seed, power=power, by_item=by_item)
                         for a in candidates])
    return finish_comparison(rows, p_columns=P_COLUMNS, holm_adjust=holm, kind=ComparisonKind.PAIRED_ACCURACY,
                             paired=paired,
                             rule=lambda p: conclude(p, alpha, equivalence=equivalence),
                             words=lambda r, k: _statement(r, k, alpha=alpha, ci=ci, equivalence=equivalence))

