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

from kit.economics import ApiPricing, LocalDeployment, api_option, hybrid_option, local_option
from kit.errors import ConfigError
from kit.stats import Conclusion, accuracy_ci, non_inferiority

SWEEP_COLUMNS = (
    "tau", "policy", "n", "n_local", "share_local", "accuracy", "ci_low", "ci_high", "api_accuracy", "difference",
    "lower_bound", "p_noninferiority", "conclusion", "in_sequence", "monthly_cost", "cost_per_item",
    "p95_latency_s", "statement",
)


def _paired(scores: pd.DataFrame, local_arm: str, hosted_arm: str, epoch: int) -> pd.DataFrame:
    where = "kit.cascade"
    for arm in (local_arm, hosted_arm):
        if arm not in set(scores["arm"]):
            raise ConfigError(f"arm {arm!r} is not in the score table", where=where,
                              fix=f"choose among {sorted(scores['arm'].unique())}")
    rows = scores[scores["epoch"] == epoch] if "epoch" in scores.columns else scores
    local = rows[rows["arm"] == local_arm].set_index("item_id")
    api = rows[rows["arm"] == hosted_arm].set_index("item_id")
    common = local.index.intersection(api.index)
    if common.empty:
        raise ConfigError(f"{local_arm} and {hosted_arm} share no items in epoch {epoch}", where=where,
                          fix="run both arms on the same task items")
    local, api = local.loc[common], api.loc[common]
    conf = pd.to_numeric(local.get("confidence"), errors="coerce")
    ok = local["error"].isna() if "error" in local.columns else pd.Series(True, index=common)
    return pd.DataFrame({
        "item_id": common, "confidence": conf.where(ok).to_numpy(dtype=float),
        "local_score": pd.to_numeric(local["score"], errors="coerce").fillna(0.0).to_numpy(),
        "api_score": pd.to_numeric(api["score"], errors="coerce").fillna(0.0).to_numpy(),
        "local_latency": pd.to_numeric(local["latency_s"], errors="coerce").fillna(0.0).to_numpy(),
        "api_latency": pd.to_numeric(api["latency_s"], errors="coerce").fillna(0.0).to_numpy(),
    }).sort_values("item_id").reset_index(drop=True)


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
    forced = pairs["item_id"].astype(str).isin({str(i) for i in keep_local}).to_numpy()
    taus = np.sort(np.asarray(thresholds if thresholds is not None else default_thresholds(pairs["confidence"]),
                              dtype=float))[::-1]  # most escalation first: the fixed sequence
    local_opt = local_option("local", scores, deployment=deployment, arm=local_arm, concurrency=concurrency)
    api_rows = scores[(scores["arm"] == hosted_arm) & (scores["epoch"] == epoch)].set_index("item_id")
    rows, still_passing = [], True
    for tau in taus:
        esc = escalated(pairs["confidence"].to_numpy(), tau) & ~forced
        value = np.where(esc, pairs["api_score"], pairs["local_score"])
        latency = pairs["local_latency"] + np.where(esc, pairs["api_latency"], 0.0)
        ni = non_inferiority(value, pairs["api_score"].to_numpy(), margin=margin, alpha=alpha).iloc[0]
        acc = accuracy_ci(value, ci=ci).iloc[0]
        passed = Conclusion(ni["conclusion"]).passes
        if esc.all():  # API-only is the reference itself: it starts the sequence, it cannot end it
            passed = True
        still_passing = still_passing and passed
        share_esc = float(esc.mean())
        parts = [(local_opt, 1.0)]
        if esc.any():
            sent = api_rows.loc[pairs.loc[esc, "item_id"]].reset_index()
            parts.append((api_option("api", sent, pricing=pricing, arm=hosted_arm), share_esc))
        monthly = float(hybrid_option("cascade", parts).monthly(volume))
        policy = "all local" if not esc.any() else "all API" if esc.all() else "cascade"
        rows.append({
            "tau": float(tau), "policy": policy, "n": len(pairs), "n_local": int((~esc).sum()),
            "share_local": 1 - share_esc, "accuracy": float(acc["accuracy"]), "ci_low": float(acc["ci_low"]),
            "ci_high": float(acc["ci_high"]), "api_accuracy": float(pairs["api_score"].mean()),
            "difference": float(ni["difference"]), "lower_bound": float(ni["lower_bound"]),
            "p_noninferiority": float(ni["p_noninferiority"]), "conclusion": ni["conclusion"],
            "in_sequence": still_passing, "monthly_cost": monthly, "cost_per_item": monthly / volume,
            "p95_latency_s": float(np.quantile(latency, 0.95)),
            "statement": (f"τ={tau:.3g}: {1 - share_esc:.0%} kept local, quality {acc['accuracy']:.1%} "
                          f"({100 * ci:g}% CI {acc['ci_low']:.1%} to {acc['ci_high']:.1%}) vs API-only "
                          f"{pairs['api_score'].mean():.1%}: {ni['conclusion']}; ${monthly:,.0f}/month at "
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
    passed = sweep[sweep["in_sequence"] & sweep["policy"].eq("cascade")]
    if passed.empty:
        cascades = sweep[sweep["policy"] == "cascade"]
        first = cascades.iloc[0] if not cascades.empty else None
        verdict = (Conclusion(first["conclusion"]) if first is not None and not Conclusion(first["conclusion"]).passes
                   else Conclusion.INCONCLUSIVE)
        why = ("no threshold both keeps items self-hosted and escalates some (the confidences do not separate "
               "them)" if first is None else
               f"no threshold keeps traffic local while being shown non-inferior to API-only; the most "
               f"escalating one (τ={first['tau']:.3g}, {first['share_local']:.0%} local) is {verdict} "
               f"(lower bound {100 * first['lower_bound']:+.1f} points, margin {100 * _margin(sweep):.1f})")
        return CascadeChoice(None, None, None, None, None, None, None, verdict, f"No cascade recommended: {why}.")
    best = passed.sort_values(["monthly_cost", "share_local"], ascending=[True, False]).iloc[0]
    words = (f"Escalating below τ={best['tau']:.3g} keeps {best['share_local']:.0%} of traffic local with quality "
             f"{best['accuracy']:.1%} (95% CI {best['ci_low']:.1%} to {best['ci_high']:.1%}), "
             f"{best['conclusion']} to API-only ({best['api_accuracy']:.1%}; lower bound "
             f"{100 * best['lower_bound']:+.1f} points), at ${best['monthly_cost']:,.0f}/month and p95 latency "
             f"{best['p95_latency_s']:.2f} s. τ was picked on these items; confirm it on fresh ones.")
    return CascadeChoice(float(best["tau"]), float(best["share_local"]), float(best["accuracy"]),
                         float(best["ci_low"]), float(best["ci_high"]), float(best["monthly_cost"]),
                         float(best["p95_latency_s"]), Conclusion(best["conclusion"]), words)


def _margin(sweep: pd.DataFrame) -> float:
    return float(sweep.attrs.get("margin", float("nan")))


def cascade_scores(scores: pd.DataFrame, *, local_arm: str, hosted_arm: str, tau: float,
                   keep_local: Iterable[str] = (), name: str | None = None, epoch: int = 0) -> pd.DataFrame:
    """The per-item table of the cascade at ``tau``: the local row, or the API row for escalated items.

    Columns: the score table's, with ``arm`` set to ``name``, plus ``source_arm``, ``escalated`` and
    ``latency_s`` = local + API latency for escalated items.
    """
    pairs = _paired(scores, local_arm, hosted_arm, epoch).set_index("item_id")
    forced = {str(i) for i in keep_local}
    rows = scores[scores["epoch"] == epoch]
    local = rows[rows["arm"] == local_arm].set_index("item_id")
    api = rows[rows["arm"] == hosted_arm].set_index("item_id")
    out = []
    for item_id, pair in pairs.iterrows():
        esc = bool(escalated(np.array([pair["confidence"]]), tau)[0]) and str(item_id) not in forced
        row = (api if esc else local).loc[item_id].to_dict()
        row.update(item_id=item_id, arm=name or f"cascade τ={tau:.3g}", source_arm=hosted_arm if esc else local_arm,
                   escalated=esc, latency_s=pair["local_latency"] + (pair["api_latency"] if esc else 0.0))
        out.append(row)
    return pd.DataFrame(out)
