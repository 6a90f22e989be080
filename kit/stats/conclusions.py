"""What a comparison concludes, as one enum, and the one function that finishes every comparison table.

Every comparison of a candidate with the reference — right/wrong answers (:func:`kit.stats.compare_arms`),
[0, 1] scores (:func:`kit.stats.compare_scores`) and agreement with an unlabelled reference
(:func:`kit.stats.compare_agreement`) — ends the same way: its p-values are Holm-adjusted across the
candidates, the adjusted conclusion is drawn, and each row gets ``qualifies`` (meets the quality bar),
``better`` (shown better than the reference) and a statement in plain words. :func:`finish_comparison` is
that ending; a new comparison supplies its rows, its p-value columns, its rule and its words, and — with its
``kind`` and each candidate's paired per-item values — gets every paired statistic registered for that kind
(:mod:`kit.stats.paired_stats`): its columns, its Holm-adjusted p-values, its say in the conclusion.

>>> Conclusion.NON_INFERIOR.passes, Conclusion.INCONCLUSIVE.passes, Conclusion("superior").better
(True, False, True)
>>> f"the result is **{Conclusion.MEETS_BAR}**"
'the result is **meets the bar**'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from kit.columns import Col
from kit.stats.paired_stats import ComparisonKind, PairedStatistic, PairedValues, for_kind, measure_all


class Conclusion(StrEnum):
    """The outcome of one candidate's test against the reference (its value is the words shown)."""

    SUPERIOR = "superior"
    NON_INFERIOR = "non-inferior"
    EQUIVALENT = "equivalent"
    NOT_EQUIVALENT = "not equivalent"
    INFERIOR = "inferior"
    INCONCLUSIVE = "inconclusive"
    MEETS_BAR = "meets the bar"      # unlabelled: agrees with the reference on at least the target share
    BELOW_BAR = "below the bar"

    @property
    def passes(self) -> bool:
        """The candidate meets the quality bar."""
        return self in (Conclusion.SUPERIOR, Conclusion.NON_INFERIOR, Conclusion.EQUIVALENT, Conclusion.MEETS_BAR)

    @property
    def better(self) -> bool:
        """The candidate is shown better than the reference."""
        return self is Conclusion.SUPERIOR

    @property
    def fails(self) -> bool:
        """The candidate is shown to miss the bar (not merely unproven)."""
        return self in (Conclusion.INFERIOR, Conclusion.NOT_EQUIVALENT, Conclusion.BELOW_BAR)


def holm(pvalues: Any) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control); NaN stays NaN.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


Rule = Callable[[Mapping[str, float]], Conclusion]


def finish_comparison(rows: Sequence[Mapping[str, object]], *, p_columns: Sequence[str], rule: Rule,
                      words: Callable[[pd.Series, int], str], holm_adjust: bool = True,
                      kind: ComparisonKind | None = None, paired: Sequence[PairedValues] = ()) -> pd.DataFrame:
    """The comparison table from one row per candidate: ``<p>_adj`` for each of ``p_columns`` (Holm across the
    candidates, or unadjusted), ``adjustment``, ``conclusion_adjusted`` (``rule`` on the adjusted p-values),
    ``survives_adjustment``, ``qualifies``, ``better``, the columns ``n_needed`` and ``enough_items`` moved to the
    end, and ``statement`` (``words(row, k)``, k the number of candidates the correction was for).

    Each paired statistic registered for ``kind`` (:func:`kit.stats.paired_stats.register`) adds its columns,
    computed from ``paired`` (one :class:`~kit.stats.paired_stats.PairedValues` per row); its p-value columns
    are adjusted with ``p_columns``; its ``sway`` rule is applied, in registration order, to ``conclusion``
    (unadjusted values) and to ``conclusion_adjusted`` (adjusted ones); its words end the statement.

    >>> rule = lambda p: Conclusion.SUPERIOR if p["p"] < 0.05 else Conclusion.INCONCLUSIVE
    >>> t = finish_comparison([{"option": "a", "p": 0.01, "conclusion": Conclusion.SUPERIOR},
    ...                        {"option": "b", "p": 0.04, "conclusion": Conclusion.SUPERIOR}], p_columns=["p"],
    ...                       rule=rule, words=lambda r, k: f"{r['option']}: {r['conclusion_adjusted']}")
    >>> t[["p_adj", "conclusion_adjusted", "qualifies", "statement"]].to_dict("records")[1]
    {'p_adj': 0.04, 'conclusion_adjusted': <Conclusion.SUPERIOR: 'superior'>, 'qualifies': True, 'statement': 'b: superior'}
    """
    extra = for_kind(kind)
    out = pd.DataFrame(measure_all(extra, rows, paired) if extra else list(rows))
    for col in (*p_columns, *(p for s in extra for p in s.p_columns)):
        out[f"{col}_adj"] = holm(out[col]) if holm_adjust else out[col]
    out[Col.ADJUSTMENT] = "holm" if holm_adjust else "none"
    out[Col.CONCLUSION] = [_swayed(extra, r, Conclusion(r[Col.CONCLUSION]), adjusted=False) for _, r in out.iterrows()]
    out[Col.CONCLUSION_ADJUSTED] = [_swayed(extra, r, rule({c: float(r[f"{c}_adj"]) for c in p_columns}), adjusted=True)
                                    for _, r in out.iterrows()]
    out[Col.SURVIVES_ADJUSTMENT] = out[Col.CONCLUSION_ADJUSTED] == out[Col.CONCLUSION]
    out[Col.QUALIFIES] = [c.passes for c in out[Col.CONCLUSION_ADJUSTED]]
    out[Col.BETTER] = [c.better for c in out[Col.CONCLUSION_ADJUSTED]]
    tail = [c for c in ("n_needed", "enough_items") if c in out.columns]
    out = out[[c for c in out.columns if c not in tail] + tail]
    k = len(out) if holm_adjust else 1
    out[Col.STATEMENT] = [words(r, k) + "".join(s.words(r) for s in extra if s.words) for _, r in out.iterrows()]
    return out


def _swayed(statistics: Sequence[PairedStatistic], row: pd.Series, conclusion: Conclusion, *, adjusted: bool) -> Conclusion:
    """``conclusion`` after each registered statistic's ``sway`` rule (its p-values adjusted or not)."""
    for s in statistics:
        if s.sway is not None:
            values = {**row.to_dict(), **({p: row[f"{p}_adj"] for p in s.p_columns} if adjusted else {})}
            conclusion = Conclusion(s.sway(values, conclusion))
    return conclusion


def holm_words(row: Mapping[str, object], k: int) -> str:
    """The sentence on Holm's correction for ``k`` candidates ("" for one), for a comparison's statement.

    >>> holm_words({"survives_adjustment": False, "conclusion_adjusted": Conclusion.INCONCLUSIVE}, 3)
    " With Holm's correction for 3 candidates the conclusion becomes **inconclusive**."
    """
    if k <= 1:
        return ""
    return (f" With Holm's correction for {k} candidates the conclusion "
            + ("stands." if row[Col.SURVIVES_ADJUSTMENT] else f"becomes **{row[Col.CONCLUSION_ADJUSTED]}**."))
