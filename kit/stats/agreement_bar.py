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

from kit.errors import ConfigError
from kit.format import p_words, pct
from kit.stats._data import candidates_of, check_level, z_of
from kit.stats.agreement import agreement
from kit.stats.conclusions import Conclusion, finish_comparison, holm_words



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
    target = check_level(target, "target", where=where)
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
    return pd.DataFrame([{"n": n, "agree": agree, "agreement": agree / n, "ci_low": lo2, "ci_high": hi2,
                          "lower_bound": lower, "target": target, "p_meets": p_meets, "p_below": p_below,
                          "conclusion": verdict, "n_needed": need,
                          "statement": _words(agree, n, lower, target, alpha, verdict, p_meets, need)}])


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
    """
    where = "kit.stats.compare_agreement"
    alpha = check_level(alpha, "alpha", where=where)
    missing = [c for c in ("arm", "item_id", "correct", "answer", "gold") if c not in scores_df.columns]
    if missing:
        raise ConfigError(f"score table lacks columns {missing}", where=where,
                          fix="pass the table from kit.tasks.scoring.score_unlabelled")
    df = scores_df.assign(arm=scores_df["arm"].astype(str))
    if "epoch" in df:
        df = df[df["epoch"] == df["epoch"].min()]
    if "score" not in df:
        df = df.assign(score=df["correct"].astype(float))
    candidates = candidates_of(df, reference, where=where)
    all_items = set(df["item_id"])
    rows = []
    for arm in candidates:
        mine = df[df["arm"] == arm]
        gaps = set(df.loc[pd.to_numeric(df["score"], errors="coerce").isna(), "item_id"])
        usable = mine[~mine["item_id"].isin(gaps)]
        absent = sorted(all_items - gaps - set(mine["item_id"]))  # never answered by the candidate: disagreement
        n = len(usable) + len(absent)
        if n == 0:
            raise ConfigError(f"{arm} has no item the reference answered", where=where,
                              fix="run both options on the same items")
        agree = int(usable["correct"].astype(bool).sum())
        test = agreement_test(agree, n, target=target, alpha=alpha, ci=ci, power=power).iloc[0]
        ref_gold = df[df["arm"] == reference].drop_duplicates("item_id").set_index("item_id")["gold"]
        kap = agreement(list(usable["answer"]) + [None] * len(absent),
                        list(usable["gold"]) + [ref_gold.get(i) for i in absent], ci=ci).iloc[0]
        rows.append({
            "arm": arm, "reference": reference, "n_items": n, "n_missing_candidate": len(absent),
            "n_missing_reference": len(gaps & set(mine["item_id"])), "n_gaps": len(gaps), "metric": "agreement with reference",
            "candidate_value": test["agreement"], "candidate_ci_low": test["ci_low"], "candidate_ci_high": test["ci_high"],
            "reference_value": 1.0, "reference_ci_low": 1.0, "reference_ci_high": 1.0, "target": target,
            "difference": test["agreement"] - target, "diff_ci_low": test["ci_low"] - target,
            "diff_ci_high": test["ci_high"] - target, "lower_bound": test["lower_bound"] - target,
            "agreement_lower_bound": test["lower_bound"], "n_disagreements": n - agree,
            "kappa": float(kap["kappa"]), "kappa_ci_low": float(kap["kappa_ci_low"]),
            "kappa_ci_high": float(kap["kappa_ci_high"]), "p_meets": test["p_meets"], "p_below": test["p_below"],
            "conclusion": test["conclusion"], "n_needed": test["n_needed"],
            "enough_items": bool(math.isfinite(test["n_needed"]) and n >= test["n_needed"]),
        })
    return finish_comparison(rows, p_columns=("p_meets", "p_below"), holm_adjust=holm_adjust,
                             rule=lambda p: _conclude(p["p_meets"], p["p_below"], alpha),
                             words=lambda r, k: _table_words(r, k, alpha=alpha))


def _table_words(r: pd.Series, k: int, *, alpha: float) -> str:
    text = (f"Without gold labels, quality here means agreement with {r['reference']}, not correctness. "
            + _words(int(round(r["candidate_value"] * r["n_items"])), int(r["n_items"]), r["agreement_lower_bound"],
                     r["target"], alpha, r["conclusion"], r["p_meets"], r["n_needed"]))
    if np.isfinite(r["kappa"]):
        text += (f" Cohen's kappa {r['kappa']:.2f} (CI {r['kappa_ci_low']:.2f} to {r['kappa_ci_high']:.2f}) "
                 "discounts agreement expected by chance.")
    text += holm_words(r, k)
    text += f" {r['n_disagreements']} item(s) disagree: read them first (the disagreement table)."
    if r["n_gaps"]:
        text += (f" {r['n_gaps']} item(s) have no reference answer (an error, nothing parseable, or missing from "
                 "a replay file) and are left out.")
    if r["n_missing_candidate"]:
        text += f" {r['n_missing_candidate']} item(s) the candidate never answered count as disagreements."
    return text

