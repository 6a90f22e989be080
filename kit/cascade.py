"""Cascade: answer locally first, escalate to the hosted API when the local answer's confidence is low.

Simulated from responses already in the store, item by item: for a threshold τ an item stays local
when the local arm's ``confidence`` (the probability of its chosen answer) is at least τ, and is
escalated otherwise — as are items without a confidence (errors, backends that give none) and items
the caller must keep local (``keep_local``: e.g. personal data under a privacy rule, never escalated).

Choosing τ: thresholds are tested for non-inferiority to API-only (kit.stats, paired, at the margin)
in a fixed sequence from most to least escalation, each at level α; the sequence stops at the first
τ not shown non-inferior (fixed-sequence procedure: the sweep does not inflate the chance of a false
"non-inferior"). Among the thresholds that passed, the cheapest is chosen.

>>> sweep = sweep_cascade(scores, local_arm="llama_cpp:ft", hosted_arm="openai:gpt-4o-mini",   # doctest: +SKIP
...                       pricing=ApiPricing("gpt-4o-mini"), deployment=LocalDeployment(price_per_hour=1.0),
...                       volume=200_000)
>>> choose_threshold(sweep).statement                                                           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.economics import ApiPricing, LocalDeployment, api_option, hybrid_option, local_option
from kit.errors import ConfigError
from kit.stats import Conclusion, accuracy_ci, non_inferiority

SWEEP_COLUMNS = (
    Col.TAU, Col.POLICY, Col.N, Col.N_LOCAL, Col.SHARE_LOCAL, Col.ACCURACY, Col.CI_LOW, Col.CI_HIGH, Col.API_ACCURACY, Col.DIFFERENCE,
    Col.LOWER_BOUND, Col.P_NONINFERIORITY, Col.CONCLUSION, Col.IN_SEQUENCE, Col.MONTHLY_COST, Col.COST_PER_ITEM,
    Col.P95_LATENCY_S, Col.STATEMENT,
)


def _paired(scores: pd.DataFrame, local_arm: str, hosted_arm: str, epoch: int) -> pd.DataFrame:
    where = "kit.cascade"
    for arm in (local_arm, hosted_arm):
        if arm not in set(scores[Col.OPTION]):
            raise ConfigError(f"arm {arm!r} is not in the score table", where=where,
                              fix=f"choose among {sorted(scores[Col.OPTION].unique())}")
    rows = scores[scores[Col.EPOCH] == epoch] if Col.EPOCH in scores.columns else scores
    local = rows[rows[Col.OPTION] == local_arm].set_index(Col.ITEM_ID)
    api = rows[rows[Col.OPTION] == hosted_arm].set_index(Col.ITEM_ID)
    common = local.index.intersection(api.index)
    if common.empty:
        raise ConfigError(f"{local_arm} and {hosted_arm} share no items in epoch {epoch}", where=where,
                          fix="run both arms on the same task items")
    local, api = local.loc[common], api.loc[common]
    conf = pd.to_numeric(local.get(Col.CONFIDENCE), errors="coerce")
    ok = local[Col.ERROR].isna() if Col.ERROR in local.columns else pd.Series(True, index=common)
    return pd.DataFrame({
        Col.ITEM_ID: common, Col.CONFIDENCE: conf.where(ok).to_numpy(dtype=float),
        "local_score": pd.to_numeric(local[Col.SCORE], errors="coerce").fillna(0.0).to_numpy(),
        "api_score": pd.to_numeric(api[Col.SCORE], errors="coerce").fillna(0.0).to_numpy(),
        "local_latency": pd.to_numeric(local[Col.LATENCY_S], errors="coerce").fillna(0.0).to_numpy(),
        "api_latency": pd.to_numeric(api[Col.LATENCY_S], errors="coerce").fillna(0.0).to_numpy(),
    }).sort_values(Col.ITEM_ID).reset_index(drop=True)


def escalated(confidence: np.ndarray, tau: float) -> np.ndarray:
    """Which items go to the API at threshold ``tau``: confidence below it, or no confidence at all.

    >>> escalated(np.array([0.9, 0.4, np.nan]), 0.5).tolist()
    [False, True, True]
    """
    conf = np.asarray(confidence, dtype=float)
    return np.isnan(conf) | (conf < tau)


def default_thresholds(confidence: np.ndarray, *, max_points: int = 60) -> np.ndarray:
    """0 (keep everything local), the observed confidences (or their quantiles) and ∞ (escalate all)."""
    conf = np.asarray(confidence, dtype=float)
    conf = conf[np.isfinite(conf)]
    cuts = np.unique(conf) if np.unique(conf).size <= max_points else np.unique(
        np.quantile(conf, np.linspace(0, 1, max_points)))
    return np.unique(np.r_[0.0, cuts, np.inf])


def sweep_cascade(scores: pd.DataFrame, *, local_arm: str, hosted_arm: str, pricing: ApiPricing,
                  deployment: LocalDeployment, volume: float, concurrency: int = 1,
                  thresholds: Sequence[float] | None = None, keep_local: Iterable[str] = (),
                  margin: float = 0.02, alpha: float = 0.05, ci: float = 0.95, epoch: int = 0) -> pd.DataFrame:
    """Quality (with CI), non-inferiority to API-only, cost, share kept local and p95 latency for each τ.

    Quality is the mean ``score`` (accuracy for classification). Latency is the local latency, plus
    the API's for escalated items. Cost is from :mod:`kit.economics` at ``volume`` items/month: the local
    machine answers every item, the API bills the escalated items' measured tokens. Columns: see
    ``SWEEP_COLUMNS``; ``in_sequence`` marks thresholds that passed the fixed-sequence test.
    """
    pairs = _paired(scores, local_arm, hosted_arm, epoch)
    forced = pairs[Col.ITEM_ID].astype(str).isin({str(i) for i in keep_local}).to_numpy()
    taus = np.sort(np.asarray(thresholds if thresholds is not None else default_thresholds(pairs[Col.CONFIDENCE]),
                              dtype=float))[::-1]  # most escalation first: the fixed sequence
    local_opt = local_option("local", scores, deployment=deployment, arm=local_arm, concurrency=concurrency)
    api_rows = scores[(scores[Col.OPTION] == hosted_arm) & (scores[Col.EPOCH] == epoch)].set_index(Col.ITEM_ID)
    rows, still_passing = [], True
    for tau in taus:
        esc = escalated(pairs[Col.CONFIDENCE].to_numpy(), tau) & ~forced
        value = np.where(esc, pairs["api_score"], pairs["local_score"])
        latency = pairs["local_latency"] + np.where(esc, pairs["api_latency"], 0.0)
        ni = non_inferiority(value, pairs["api_score"].to_numpy(), margin=margin, alpha=alpha).iloc[0]
        acc = accuracy_ci(value, ci=ci).iloc[0]
        passed = Conclusion(ni[Col.CONCLUSION]).passes
        if esc.all():  # API-only is the reference itself: it starts the sequence, it cannot end it
            passed = True
        still_passing = still_passing and passed
        share_esc = float(esc.mean())
        parts = [(local_opt, 1.0)]
        if esc.any():
            sent = api_rows.loc[pairs.loc[esc, Col.ITEM_ID]].reset_index()
            parts.append((api_option("api", sent, pricing=pricing, arm=hosted_arm), share_esc))
        monthly = float(hybrid_option("cascade", parts).monthly(volume))
        policy = "all local" if not esc.any() else "all API" if esc.all() else "cascade"
        rows.append({
            Col.TAU: float(tau), Col.POLICY: policy, Col.N: len(pairs), Col.N_LOCAL: int((~esc).sum()),
            Col.SHARE_LOCAL: 1 - share_esc, Col.ACCURACY: float(acc[Col.ACCURACY]), Col.CI_LOW: float(acc[Col.CI_LOW]),
            Col.CI_HIGH: float(acc[Col.CI_HIGH]), Col.API_ACCURACY: float(pairs["api_score"].mean()),
            Col.DIFFERENCE: float(ni[Col.DIFFERENCE]), Col.LOWER_BOUND: float(ni[Col.LOWER_BOUND]),
            Col.P_NONINFERIORITY: float(ni[Col.P_NONINFERIORITY]), Col.CONCLUSION: ni[Col.CONCLUSION],
            Col.IN_SEQUENCE: still_passing, Col.MONTHLY_COST: monthly, Col.COST_PER_ITEM: monthly / volume,
            Col.P95_LATENCY_S: float(np.quantile(latency, 0.95)),
            Col.STATEMENT: (f"τ={tau:.3g}: {1 - share_esc:.0%} kept local, quality {acc[Col.ACCURACY]:.1%} "
                          f"({100 * ci:g}% CI {acc[Col.CI_LOW]:.1%} to {acc[Col.CI_HIGH]:.1%}) vs API-only "
                          f"{pairs['api_score'].mean():.1%}: {ni[Col.CONCLUSION]}; ${monthly:,.0f}/month at "
                          f"{volume:,.0f} items."),
        })
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    table.attrs.update(margin=margin, alpha=alpha, local_arm=local_arm, hosted_arm=hosted_arm, volume=volume)
    return table


@dataclass(frozen=True)
class CascadeChoice:
    """The chosen threshold, or none; ``conclusion`` is the non-inferiority result behind the choice."""

    tau: float | None
    share_local: float | None
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    monthly_cost: float | None
    p95_latency_s: float | None
    conclusion: Conclusion
    statement: str


def choose_threshold(sweep: pd.DataFrame) -> CascadeChoice:
    """The cheapest τ that passed the fixed-sequence non-inferiority test (ties: the one keeping more local),
    among thresholds that both keep some traffic self-hosted and escalate some.

    With none passing, the conclusion is the one for the most-escalating cascade ("inconclusive" or
    "inferior") and no τ is recommended.
    """
    # a threshold that escalates nothing is the self-hosted option itself, one that escalates all is the API
    passed = sweep[sweep[Col.IN_SEQUENCE] & sweep[Col.POLICY].eq("cascade")]
    if passed.empty:
        cascades = sweep[sweep[Col.POLICY] == "cascade"]
        first = cascades.iloc[0] if not cascades.empty else None
        verdict = (Conclusion(first[Col.CONCLUSION]) if first is not None and not Conclusion(first[Col.CONCLUSION]).passes
                   else Conclusion.INCONCLUSIVE)
        why = ("no threshold both keeps items self-hosted and escalates some (the confidences do not separate "
               "them)" if first is None else
               f"no threshold keeps traffic local while being shown non-inferior to API-only; the most "
               f"escalating one (τ={first[Col.TAU]:.3g}, {first[Col.SHARE_LOCAL]:.0%} local) is {verdict} "
               f"(lower bound {100 * first[Col.LOWER_BOUND]:+.1f} points, margin {100 * _margin(sweep):.1f})")
        return CascadeChoice(None, None, None, None, None, None, None, verdict, f"No cascade recommended: {why}.")
    best = passed.sort_values([Col.MONTHLY_COST, Col.SHARE_LOCAL], ascending=[True, False]).iloc[0]
    words = (f"Escalating below τ={best[Col.TAU]:.3g} keeps {best[Col.SHARE_LOCAL]:.0%} of traffic local with quality "
             f"{best[Col.ACCURACY]:.1%} (95% CI {best[Col.CI_LOW]:.1%} to {best[Col.CI_HIGH]:.1%}), "
             f"{best[Col.CONCLUSION]} to API-only ({best[Col.API_ACCURACY]:.1%}; lower bound "
             f"{100 * best[Col.LOWER_BOUND]:+.1f} points), at ${best[Col.MONTHLY_COST]:,.0f}/month and p95 latency "
             f"{best[Col.P95_LATENCY_S]:.2f} s. τ was picked on these items; confirm it on fresh ones.")
    return CascadeChoice(float(best[Col.TAU]), float(best[Col.SHARE_LOCAL]), float(best[Col.ACCURACY]),
                         float(best[Col.CI_LOW]), float(best[Col.CI_HIGH]), float(best[Col.MONTHLY_COST]),
                         float(best[Col.P95_LATENCY_S]), Conclusion(best[Col.CONCLUSION]), words)


def _margin(sweep: pd.DataFrame) -> float:
    return float(sweep.attrs.get(Col.MARGIN, float("nan")))


def cascade_scores(scores: pd.DataFrame, *, local_arm: str, hosted_arm: str, tau: float,
                   keep_local: Iterable[str] = (), name: str | None = None, epoch: int = 0) -> pd.DataFrame:
    """The per-item table of the cascade at ``tau``: the local row, or the API row for escalated items.

    Columns: the score table's, with ``arm`` set to ``name``, plus ``source_arm``, ``escalated`` and
    ``latency_s`` = local + API latency for escalated items.
    """
    pairs = _paired(scores, local_arm, hosted_arm, epoch).set_index(Col.ITEM_ID)
    forced = {str(i) for i in keep_local}
    rows = scores[scores[Col.EPOCH] == epoch]
    local = rows[rows[Col.OPTION] == local_arm].set_index(Col.ITEM_ID)
    api = rows[rows[Col.OPTION] == hosted_arm].set_index(Col.ITEM_ID)
    out = []
    for item_id, pair in pairs.iterrows():
        esc = bool(escalated(np.array([pair[Col.CONFIDENCE]]), tau)[0]) and str(item_id) not in forced
        row = (api if esc else local).loc[item_id].to_dict()
        row.update({Col.ITEM_ID: item_id, Col.OPTION: name or f"cascade τ={tau:.3g}",
                    Col.LATENCY_S: pair["local_latency"] + (pair["api_latency"] if esc else 0.0)},
                   source_arm=hosted_arm if esc else local_arm, escalated=esc)
        out.append(row)
    return pd.DataFrame(out)
