"""Every candidate arm against one reference arm, in one tidy table, with Holm's correction.

>>> df = pd.DataFrame({"arm": ["api"] * 4 + ["local"] * 4, "item_id": list(range(4)) * 2,
...                    "correct": [1, 1, 0, 1, 1, 0, 0, 1]})
>>> compare_arms(df, reference="api", n_resamples=500)[["arm", "b10", "b01", "conclusion"]].to_dict("records")
[{'arm': 'local', 'b10': 0, 'b01': 1, 'conclusion': <Conclusion.INCONCLUSIVE: 'inconclusive'>}]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

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
from kit.stats.intervals import mean_ci
from kit.stats.conclusions import finish_comparison, holm_words
from kit.stats.paired import conclude, mcnemar, non_inferiority
from kit.stats.power import sample_size_noninferiority

P_COLUMNS = ("p_noninferiority", "p_superiority", "p_inferiority", "p_equivalence", "p_above_margin")


def _metric_name(values: pd.DataFrame) -> str:
    return "accuracy" if np.isin(values.to_numpy(), (0.0, 1.0)).all() else "mean score"


def _one(df: pd.DataFrame, arm: str, reference: str, *, value: str, epochs: Any, missing: Missing,
         margin: float, alpha: float, equivalence: bool, ci: float, n_resamples: int, seed: int,
         power: float) -> dict[str, Any]:
    wide = pair_arms(df, arms=[arm, reference], value=value, epochs=epochs, missing=missing)
    if wide.empty:
        raise ConfigError(f"{arm} and {reference} share no items", where="kit.stats.compare_arms",
                          fix="run both arms on the same task items")
    right = pair_arms(df, arms=[arm, reference], value="correct",
                      epochs=epochs if isinstance(epochs, int) else "majority", missing=missing)
    cand, ref = wide[arm].to_numpy(), wide[reference].to_numpy()
    mc = mcnemar(right[arm], right[reference]).iloc[0]
    ni = non_inferiority(cand, ref, margin=margin, alpha=alpha, equivalence=equivalence).iloc[0]
    if cand.size >= 2:
        bs = paired_bootstrap(cand, ref, n_resamples=n_resamples, ci=ci, seed=seed).iloc[0]
        b_lo, b_hi = bs["ci_low"], bs["ci_high"]
    else:
        b_lo = b_hi = float("nan")
    need = sample_size_noninferiority(cand, ref, margin=margin, alpha=alpha, power=power).iloc[0]
    cv, clo, chi = mean_ci(cand, ci)
    rv, rlo, rhi = mean_ci(ref, ci)
    return {
        "arm": arm, "reference": reference, "n_items": int(cand.size),
        "n_missing_candidate": wide.attrs["missing"][arm], "n_missing_reference": wide.attrs["missing"][reference],
        "metric": _metric_name(wide), "candidate_value": cv, "candidate_ci_low": clo, "candidate_ci_high": chi,
        "reference_value": rv, "reference_ci_low": rlo, "reference_ci_high": rhi,
        "difference": float(cand.mean() - ref.mean()), "diff_ci_low": b_lo, "diff_ci_high": b_hi,
        "b10": int(mc["b10"]), "b01": int(mc["b01"]), "mcnemar_p": mc["p_exact"], "mcnemar_mid_p": mc["p_mid"],
        "margin": margin, "lower_bound": ni["lower_bound"], "upper_bound": ni["upper_bound"],
        **{c: ni[c] for c in P_COLUMNS}, "conclusion": ni["conclusion"],
        "n_needed": need["n_required"], "enough_items": need["enough"],
    }


def _statement(r: pd.Series, k: int, *, alpha: float, ci: float, equivalence: bool) -> str:
    lvl = f"{100 * ci:g}%"
    one = f"one-sided {100 * (1 - alpha):g}%"
    bounds = (f"{one} bounds {pts(r['lower_bound'])} and {pts(r['upper_bound'])} against ±{pts(r['margin'], sign=False)}"
              if equivalence else f"{one} lower bound {pts(r['lower_bound'])}")
    text = (f"{r['arm']} against {r['reference']} on {r['n_items']} paired items: {r['metric']} "
            f"{pct(r['candidate_value'])} ({lvl} CI {pct(r['candidate_ci_low'])} to {pct(r['candidate_ci_high'])}) "
            f"versus {pct(r['reference_value'])} ({pct(r['reference_ci_low'])} to {pct(r['reference_ci_high'])}). "
            f"Difference {pts(r['difference'])} (paired bootstrap {lvl} CI {pts(r['diff_ci_low'])} to "
            f"{pts(r['diff_ci_high'])}). The candidate alone was right on {r['b10']} items, the reference alone on "
            f"{r['b01']} (exact McNemar {p_words(r['mcnemar_p'])}). Margin {pts(r['margin'], sign=False)}: "
            f"{bounds}, so the result is **{r['conclusion']}**.")
    if r["conclusion"] == "non-inferior" and r["lower_bound"] < 0:
        text += f" A loss of up to {pts(-r['lower_bound'], sign=False)} is not ruled out, but a larger one is."
    text += holm_words(r, k)
    if r["conclusion_adjusted"] == "inconclusive" and np.isfinite(r["n_needed"]) and r["n_needed"] > r["n_items"]:
        text += (f" About {int(r['n_needed']):,} items would be needed to show non-inferiority at this margin "
                 "if the observed difference and discordance hold.")
    elif r["conclusion_adjusted"] == "inconclusive" and not np.isfinite(r["n_needed"]):
        text += " At the observed difference, non-inferiority at this margin cannot be shown with any number of items."
    missing = r["n_missing_candidate"] + r["n_missing_reference"]
    if missing:
        text += f" {missing} item(s) one arm never answered are counted as wrong for that arm."
    return text + (" Assumptions: items are independent and represent the traffic the decision is about; errors "
                   "and unparseable answers count as wrong; the tests are large-sample approximations (Tango's "
                   "score test for the margin).")


def compare_arms(scores_df: pd.DataFrame, *, reference: str, margin: float = 0.02, alpha: float = 0.05,
                 holm: bool = True, equivalence: bool = False, value: Literal["score", "correct"] = "score",
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
    """
    where = "kit.stats.compare_arms"
    alpha = check_level(alpha, "alpha", where=where)
    df = check_scores(scores_df, where=where)
    candidates = candidates_of(df, reference, where=where)
    rows = [_one(df, a, reference, value=value, epochs=epochs, missing=missing, margin=margin, alpha=alpha,
                 equivalence=equivalence, ci=ci, n_resamples=n_resamples, seed=seed, power=power) for a in candidates]
    return finish_comparison(rows, p_columns=P_COLUMNS, holm_adjust=holm,
                             rule=lambda p: conclude(p, alpha, equivalence=equivalence),
                             words=lambda r, k: _statement(r, k, alpha=alpha, ci=ci, equivalence=equivalence))

