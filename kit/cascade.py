"""Cascade: answer locally first, escalate to the hosted API when the local answer's confidence is low.

Simulated from responses already in the store, item by item: for a threshold τ an item stays local
when the local arm's ``confidence`` (the probability of its chosen answer) is at least τ, and is
escalated otherwise — as are items without a confidence (errors, backends that give none) and items
the caller must keep local (``keep_local``: e.g. personal data under a privacy rule, never escalated).

Choosing τ on a set of items (:func:`choose_threshold`): thresholds are tested for non-inferiority to
API-only (kit.stats, paired, at the margin) in a fixed sequence from most to least escalation, each at
level α; the sequence stops at the first τ not shown non-inferior (fixed-sequence procedure: the sweep
does not inflate the chance of a false "non-inferior"). Among the thresholds that passed, the cheapest.

Testing it on items it never saw (:func:`fit_cascade`): a τ chosen on the items it is then scored on is
optimistic by construction. So τ is fitted on the dev items' answers when there are some, and applied to
every test item; without them it is cross-fitted: the test items fall into ``CROSS_FIT_FOLDS`` folds
(seeded, from the items' ids alone), each fold is routed by the τ chosen on the other folds, and the
hybrid's quality, share kept local, cost and its test against API-only are computed on those
out-of-fold routes. The τ to deploy is then the one fitted on all test items; its figures are the
out-of-fold estimates.

>>> fit = fit_cascade(scores, local_arm="llama_cpp:ft", hosted_arm="openai:gpt-4o-mini",         # doctest: +SKIP
...                   pricing=ApiPricing("gpt-4o-mini"), deployment=LocalDeployment(price_per_hour=1.0),
...                   volume=200_000)
>>> fit.choice.statement                                                                         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from enum import StrEnum
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.economics import ApiPricing, CostOption, LocalDeployment, api_option, hybrid_option, local_option
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


@dataclass(frozen=True)
class _Pricing:
    """What a route costs: the local machine answers every item, the API bills the escalated items' tokens."""

    scores: pd.DataFrame
    local_arm: str
    hosted_arm: str
    pricing: ApiPricing
    deployment: LocalDeployment
    volume: float
    concurrency: int
    epoch: int

    @cached_property
    def _local(self) -> CostOption:
        return local_option("local", self.scores, deployment=self.deployment, arm=self.local_arm,
                            concurrency=self.concurrency)

    @cached_property
    def _api(self) -> tuple[CostOption, pd.Series]:
        """The API priced on every item it answered, and each item's position in its per-item costs."""
        rows = self.scores[(self.scores[Col.OPTION] == self.hosted_arm) & (self.scores[Col.EPOCH] == self.epoch)]
        return (api_option("api", rows, pricing=self.pricing, arm=self.hosted_arm),
                pd.Series(np.arange(len(rows)), index=rows[Col.ITEM_ID].to_numpy()))

    def monthly(self, pairs: pd.DataFrame, esc: np.ndarray) -> float:
        parts = [(self._local, 1.0)]
        if esc.any():
            api, position = self._api
            assert api.item_costs is not None
            sent = api.item_costs[position.loc[pairs.loc[esc, Col.ITEM_ID]].to_numpy()]
            parts.append((replace(api, item_costs=sent), float(esc.mean())))
        return float(hybrid_option("cascade", parts).monthly(self.volume))


def _evaluate(pairs: pd.DataFrame, esc: np.ndarray, price: _Pricing, *, margin: float, alpha: float,
              ci: float) -> dict[str, Any]:
    """One route of the items (``esc``: which go to the API): quality with its interval, the paired test
    against API-only, cost, share kept local and p95 latency (local, plus the API's for escalated items)."""
    value = np.where(esc, pairs["api_score"], pairs["local_score"])
    latency = pairs["local_latency"] + np.where(esc, pairs["api_latency"], 0.0)
    ni = non_inferiority(value, pairs["api_score"].to_numpy(), margin=margin, alpha=alpha).iloc[0]
    acc = accuracy_ci(value, ci=ci).iloc[0]
    share_esc = float(esc.mean())
    monthly = price.monthly(pairs, esc)
    return {
        Col.POLICY: "all local" if not esc.any() else "all API" if esc.all() else "cascade", Col.N: len(pairs),
        Col.N_LOCAL: int((~esc).sum()), Col.SHARE_LOCAL: 1 - share_esc, Col.ACCURACY: float(acc[Col.ACCURACY]),
        Col.CI_LOW: float(acc[Col.CI_LOW]), Col.CI_HIGH: float(acc[Col.CI_HIGH]),
        Col.API_ACCURACY: float(pairs["api_score"].mean()), Col.DIFFERENCE: float(ni[Col.DIFFERENCE]),
        Col.LOWER_BOUND: float(ni[Col.LOWER_BOUND]), Col.P_NONINFERIORITY: float(ni[Col.P_NONINFERIORITY]),
        Col.CONCLUSION: ni[Col.CONCLUSION], Col.MONTHLY_COST: monthly, Col.COST_PER_ITEM: monthly / price.volume,
        Col.P95_LATENCY_S: float(np.quantile(latency, 0.95)),
        Col.STATEMENT: (f"{1 - share_esc:.0%} kept local, quality {acc[Col.ACCURACY]:.1%} ({100 * ci:g}% CI "
                        f"{acc[Col.CI_LOW]:.1%} to {acc[Col.CI_HIGH]:.1%}) vs API-only "
                        f"{pairs['api_score'].mean():.1%}: {ni[Col.CONCLUSION]}; ${monthly:,.0f}/month at "
                        f"{price.volume:,.0f} items."),
    }


def escalated(confidence: np.ndarray, tau: float | np.ndarray) -> np.ndarray:
    """Which items go to the API at threshold ``tau`` (one for all, or one per item): confidence below it, or no
    confidence at all.

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
    price = _Pricing(scores, local_arm=local_arm, hosted_arm=hosted_arm, pricing=pricing, deployment=deployment,
                     volume=volume, concurrency=concurrency, epoch=epoch)
    rows, still_passing = [], True
    for tau in taus:
        esc = escalated(pairs[Col.CONFIDENCE].to_numpy(), tau) & ~forced
        row = _evaluate(pairs, esc, price, margin=margin, alpha=alpha, ci=ci)
        passed = Conclusion(row[Col.CONCLUSION]).passes
        if esc.all():  # API-only is the reference itself: it starts the sequence, it cannot end it
            passed = True
        still_passing = still_passing and passed
        rows.append({**row, Col.TAU: float(tau), Col.IN_SEQUENCE: still_passing,
                     Col.STATEMENT: f"τ={tau:.3g}: {row[Col.STATEMENT]}"})
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    table.attrs.update(margin=margin, alpha=alpha, local_arm=local_arm, hosted_arm=hosted_arm, volume=volume)
    return table


class Fit(StrEnum):
    """How a cascade's threshold was kept apart from the items its figures are measured on."""

    DEV = "dev"                    # fitted on the dev items' answers, applied to every test item
    CROSS_FITTED = "cross-fitted"  # each fold of the test items routed by the τ fitted on the other folds
    IN_SAMPLE = "in-sample"        # chosen and measured on the same items (choose_threshold on its own)


CROSS_FIT_FOLDS = 5  # K: each τ is fitted on 4/5 of the test items and routes the other 1/5
CROSS_FIT_SEED = 20  # the folds depend on this and the items' ids only, never on their answers


@dataclass(frozen=True)
class CascadeChoice:
    """The chosen threshold, or none; ``conclusion`` is the non-inferiority result behind the choice.

    ``fit`` says where τ came from: ``n_fit`` items (the dev items; for cross-fitting, the test items, each
    fold's τ fitted on the others), ``fold_taus`` the τ each fold was routed by (None: no τ passed on that
    fold's other items, so its items go to the API), ``n_tested`` the items the figures are measured on.
    """

    tau: float | None
    share_local: float | None
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    monthly_cost: float | None
    p95_latency_s: float | None
    conclusion: Conclusion
    statement: str
    fit: Fit = Fit.IN_SAMPLE
    n_fit: int = 0
    fold_taus: tuple[float | None, ...] = ()
    n_tested: int = 0


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
        return CascadeChoice(None, None, None, None, None, None, None, verdict, f"No cascade recommended: {why}.",
                             n_fit=_n(sweep), n_tested=_n(sweep))
    best = passed.sort_values([Col.MONTHLY_COST, Col.SHARE_LOCAL], ascending=[True, False]).iloc[0]
    words = (f"Escalating below τ={best[Col.TAU]:.3g} keeps {best[Col.SHARE_LOCAL]:.0%} of traffic local with quality "
             f"{best[Col.ACCURACY]:.1%} (95% CI {best[Col.CI_LOW]:.1%} to {best[Col.CI_HIGH]:.1%}), "
             f"{best[Col.CONCLUSION]} to API-only ({best[Col.API_ACCURACY]:.1%}; lower bound "
             f"{100 * best[Col.LOWER_BOUND]:+.1f} points), at ${best[Col.MONTHLY_COST]:,.0f}/month and p95 latency "
             f"{best[Col.P95_LATENCY_S]:.2f} s on the items it was chosen on.")
    return CascadeChoice(float(best[Col.TAU]), float(best[Col.SHARE_LOCAL]), float(best[Col.ACCURACY]),
                         float(best[Col.CI_LOW]), float(best[Col.CI_HIGH]), float(best[Col.MONTHLY_COST]),
                         float(best[Col.P95_LATENCY_S]), Conclusion(best[Col.CONCLUSION]), words,
                         n_fit=_n(sweep), n_tested=_n(sweep))


def _margin(sweep: pd.DataFrame) -> float:
    return float(sweep.attrs.get(Col.MARGIN, float("nan")))


def _n(sweep: pd.DataFrame) -> int:
    return int(sweep[Col.N].iloc[0]) if not sweep.empty else 0


def folds_of(item_ids: Sequence[str], *, folds: int = CROSS_FIT_FOLDS, seed: int = CROSS_FIT_SEED) -> np.ndarray:
    """Each item's fold (0 … folds−1), from a seeded shuffle of the sorted ids: never from the answers.

    >>> folds_of(["a", "b", "c", "d", "e"], folds=2).tolist()
    [0, 1, 0, 1, 0]
    """
    ids = np.asarray([str(i) for i in item_ids])
    order = np.argsort(ids, kind="stable")
    shuffled = order[np.random.default_rng(seed).permutation(len(ids))]
    out = np.empty(len(ids), dtype=int)
    out[shuffled] = np.arange(len(ids)) % folds
    return out


@dataclass(frozen=True)
class CascadeFit:
    """A cascade fitted apart from the items it is measured on: the choice (τ to deploy and the figures on the
    test items) and each test item's route (columns ``item_id``, ``fold``, ``tau``, ``escalated``)."""

    choice: CascadeChoice
    routes: pd.DataFrame


def _usable(scores: pd.DataFrame, local_arm: str, hosted_arm: str, epoch: int) -> bool:
    """Dev answers can fit τ when both arms answered the same dev items and the local arm gave confidences."""
    if scores.empty or Col.OPTION not in scores.columns:
        return False
    rows = scores[scores[Col.EPOCH] == epoch] if Col.EPOCH in scores.columns else scores
    local = rows[rows[Col.OPTION] == local_arm]
    api = rows[rows[Col.OPTION] == hosted_arm]
    common = set(local[Col.ITEM_ID]) & set(api[Col.ITEM_ID])
    return bool(common) and pd.to_numeric(local[Col.CONFIDENCE], errors="coerce").notna().any()


def fit_cascade(scores: pd.DataFrame, *, local_arm: str, hosted_arm: str, pricing: ApiPricing,
                deployment: LocalDeployment, volume: float, dev_scores: pd.DataFrame | None = None,
                folds: int = CROSS_FIT_FOLDS, seed: int = CROSS_FIT_SEED, concurrency: int = 1,
                keep_local: Iterable[str] = (), margin: float = 0.02, alpha: float = 0.05, ci: float = 0.95,
                epoch: int = 0) -> CascadeFit:
    """The cascade's threshold fitted on items its figures are not measured on, and those figures on the test items.

    ``scores``: the test items' answers (both arms). ``dev_scores``: the dev items' answers, in the same columns;
    when both arms answered some dev items (the local one with confidences), τ is chosen there
    (:func:`choose_threshold`) and routes every test item. Otherwise τ is cross-fitted: the test items fall into
    ``folds`` folds (:func:`folds_of`), each fold is routed by the τ chosen on the other folds (a fold whose
    other items let no τ pass goes to the API, as the procedure would advise), so no item's route depends on
    its own answers. The τ to deploy is then the one chosen on all test items; its figures are out-of-fold
    estimates. Either way quality, share kept local, cost, p95 latency and the paired test against API-only
    are the routed test items'; a cascade is recommended (``tau`` set) only when that test passes.

    >>> fit = fit_cascade(scores, local_arm="llama_cpp:ft", hosted_arm="openai:gpt-4o-mini",     # doctest: +SKIP
    ...                   pricing=ApiPricing("gpt-4o-mini"), deployment=LocalDeployment(price_per_hour=1.0),
    ...                   volume=200_000)
    >>> fit.choice.fit, fit.choice.fold_taus                                                     # doctest: +SKIP
    (<Fit.CROSS_FITTED: 'cross-fitted'>, (0.81, 0.79, 0.83, 0.8, 0.81))
    """
    pairs = _paired(scores, local_arm, hosted_arm, epoch)
    forced = pairs[Col.ITEM_ID].astype(str).isin({str(i) for i in keep_local}).to_numpy()
    options = dict(local_arm=local_arm, hosted_arm=hosted_arm, pricing=pricing, deployment=deployment, volume=volume,
                   concurrency=concurrency, keep_local=keep_local, margin=margin, alpha=alpha, ci=ci, epoch=epoch)
    n = len(pairs)
    if folds < 2:
        raise ConfigError(f"cross-fitting needs at least 2 folds, got {folds}", where="kit.cascade",
                          fix=f"pass folds={CROSS_FIT_FOLDS} (the default)")
    if dev_scores is not None and _usable(dev_scores, local_arm, hosted_arm, epoch):
        dev = choose_threshold(sweep_cascade(dev_scores, **options))
        how, n_fit, deploy = Fit.DEV, dev.n_fit, dev.tau
        fold = np.zeros(n, dtype=int)
        fold_taus: tuple[float | None, ...] = (dev.tau,)
    elif n >= 2:
        how, n_fit, k = Fit.CROSS_FITTED, n, min(folds, n)
        fold = folds_of(pairs[Col.ITEM_ID].tolist(), folds=k, seed=seed)
        fold_taus = tuple(choose_threshold(sweep_cascade(
            scores[scores[Col.ITEM_ID].isin(pairs.loc[fold != f, Col.ITEM_ID])], **options)).tau for f in range(k))
        deploy = choose_threshold(sweep_cascade(scores, **options)).tau
    else:
        raise ConfigError(f"{local_arm} and {hosted_arm} share {n} item: too few to fit a threshold apart from "
                          "the items it is tested on", where="kit.cascade",
                          fix="answer more test items, or give dev answers for both arms")
    taus = np.array([np.inf if fold_taus[f] is None else fold_taus[f] for f in fold], dtype=float)
    esc = escalated(pairs[Col.CONFIDENCE].to_numpy(), taus) & ~forced
    price = _Pricing(scores, local_arm=local_arm, hosted_arm=hosted_arm, pricing=pricing, deployment=deployment,
                     volume=volume, concurrency=concurrency, epoch=epoch)
    row = _evaluate(pairs, esc, price, margin=margin, alpha=alpha, ci=ci)
    conclusion = Conclusion(row[Col.CONCLUSION])
    recommended = deploy is not None and conclusion.passes and bool((~esc).any())
    routes = pd.DataFrame({Col.ITEM_ID: pairs[Col.ITEM_ID], Col.FOLD: fold, Col.TAU: taus, Col.ESCALATED: esc})
    choice = CascadeChoice(
        deploy if recommended else None, float(row[Col.SHARE_LOCAL]), float(row[Col.ACCURACY]), float(row[Col.CI_LOW]),
        float(row[Col.CI_HIGH]), float(row[Col.MONTHLY_COST]), float(row[Col.P95_LATENCY_S]), conclusion,
        _fit_statement(row, how=how, n_fit=n_fit, fold_taus=fold_taus, deploy=deploy, recommended=recommended,
                       margin=margin),
        fit=how, n_fit=n_fit, fold_taus=fold_taus, n_tested=n)
    return CascadeFit(choice, routes)


def _taus(taus: Sequence[float | None]) -> str:
    return ", ".join("none" if t is None else f"{t:.3g}" for t in taus)


def _fit_statement(row: dict[str, Any], *, how: Fit, n_fit: int, fold_taus: Sequence[float | None],
                   deploy: float | None, recommended: bool, margin: float) -> str:
    """Where τ came from, then the routed test items' figures, in words."""
    n = int(row[Col.N])
    fitted = (f"τ fitted on {n_fit} dev items and applied to the {n} test items" if how is Fit.DEV else
              f"τ cross-fitted over {len(fold_taus)} folds of the {n} test items, each fold routed by the τ chosen "
              f"on the others (τ per fold: {_taus(fold_taus)}); "
              + ("the τ to deploy is fitted on all items; its figures are out-of-fold estimates" if recommended else
                 "the figures are out of fold"))
    figures = (f"{row[Col.SHARE_LOCAL]:.0%} of test items kept local, quality {row[Col.ACCURACY]:.1%} (95% CI "
               f"{row[Col.CI_LOW]:.1%} to {row[Col.CI_HIGH]:.1%}), {row[Col.CONCLUSION]} to API-only "
               f"({row[Col.API_ACCURACY]:.1%}; lower bound {100 * row[Col.LOWER_BOUND]:+.1f} points, margin "
               f"{100 * margin:.1f}), ${row[Col.MONTHLY_COST]:,.0f}/month, p95 latency {row[Col.P95_LATENCY_S]:.2f} s")
    if recommended:
        return f"Escalating below τ={deploy:.3g} ({fitted}): {figures}."
    why = ("no threshold kept traffic local while being shown non-inferior to API-only on the items it was fitted on"
           if deploy is None else
           f"τ={deploy:.3g} passes on the items it was chosen on, but not on items it never saw" if not
           Conclusion(str(row[Col.CONCLUSION])).passes else
           f"τ={deploy:.3g} passes, but routed out of fold it keeps no item local")
    return f"No cascade recommended: {why} ({fitted}: {figures})."


def routed_scores(scores: pd.DataFrame, routes: pd.DataFrame, *, local_arm: str, hosted_arm: str, name: str,
                  epoch: int = 0) -> pd.DataFrame:
    """The per-item table of a cascade whose routes are given (``routes``: ``item_id``, ``escalated``): the local
    row, or the API row for escalated items.

    Columns: the score table's, with ``option`` set to ``name``, plus ``source_arm``, ``escalated`` and
    ``latency_s`` = local + API latency for escalated items.
    """
    pairs = _paired(scores, local_arm, hosted_arm, epoch).set_index(Col.ITEM_ID)
    go = routes.set_index(Col.ITEM_ID)[Col.ESCALATED]
    rows = scores[scores[Col.EPOCH] == epoch]
    local = rows[rows[Col.OPTION] == local_arm].set_index(Col.ITEM_ID)
    api = rows[rows[Col.OPTION] == hosted_arm].set_index(Col.ITEM_ID)
    out = []
    for item_id, pair in pairs.iterrows():
        esc = bool(go.loc[item_id])
        row = (api if esc else local).loc[item_id].to_dict()
        row.update({Col.ITEM_ID: item_id, Col.OPTION: name, Col.ESCALATED: esc,
                    Col.LATENCY_S: pair["local_latency"] + (pair["api_latency"] if esc else 0.0)},
                   source_arm=hosted_arm if esc else local_arm)
        out.append(row)
    return pd.DataFrame(out)


def cascade_scores(scores: pd.DataFrame, *, local_arm: str, hosted_arm: str, tau: float,
                   keep_local: Iterable[str] = (), name: str | None = None, epoch: int = 0) -> pd.DataFrame:
    """The per-item table of the cascade at one ``tau`` for every item (see :func:`routed_scores`)."""
    pairs = _paired(scores, local_arm, hosted_arm, epoch)
    forced = pairs[Col.ITEM_ID].astype(str).isin({str(i) for i in keep_local}).to_numpy()
    routes = pd.DataFrame({Col.ITEM_ID: pairs[Col.ITEM_ID],
                           Col.ESCALATED: escalated(pairs[Col.CONFIDENCE].to_numpy(), tau) & ~forced})
    return routed_scores(scores, routes, local_arm=local_arm, hosted_arm=hosted_arm,
                         name=name or f"cascade τ={tau:.3g}", epoch=epoch)
