"""Decision: the seeds' checklist and decision matrix as explicit rules over measured facts and your constraints.

The options are "hosted API", "local base model", "local fine-tuned" and "hybrid" (local first,
escalating to the API). The rules, in order:

1. Only measured options are candidates (a missing arm is a caveat, never a guess).
2. Hard limits. ``data_residency``: no item may leave the machine, so the API and the hybrid are out.
   ``privacy_required``: items with personal data must never reach a hosted API, so API-only is out
   when the scan flagged any item (or when no scan was run), and a hybrid only stays in when it keeps
   flagged items local.
3. Soft limits: p95 latency above ``latency_target_s``, monthly cost above ``budget_per_month``, or
   local ops hours above ``ops_capacity`` (hours a month the team can spend) exclude an option. If
   they exclude every option, they are set aside and the verdict says which are missed
   (rule "constraints-unmet").
4. Quality bar: an option qualifies when the paired test shows it non-inferior (or superior) to the
   hosted API at ``margin`` (kit.stats; for the hybrid, the cascade's fixed-sequence test). The API
   is the reference and qualifies by definition. Nothing is called non-inferior without that test.
5. Choice: the cheapest qualifying option at your monthly volume — "cheapest-proven" when it is not
   the API, "api-cheapest" when the API is cheapest, "api-only-proven" when cheaper options exist
   but their quality is inconclusive or inferior. If the API is excluded (privacy, residency or a
   limit) and nothing qualifies, the best-quality remaining option is named and the verdict says its
   quality is not shown ("api-excluded-unproven"); without an API arm nothing can be tested ("no-api-baseline"); with
   no option left at all: "nothing-feasible".

>>> decide(facts, Constraints(privacy_required=True, monthly_volume=200_000)).verdict   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd

from kit.errors import ConfigError

API, BASE, TUNED, HYBRID = "hosted API", "local base model", "local fine-tuned", "hybrid"
OPTIONS = (API, BASE, TUNED, HYBRID)
PASSING = ("non-inferior", "superior")
MIN_ITEMS = 100  # below this a caveat is always given, whatever the sample-size estimate says


@dataclass(frozen=True)
class Constraints:
    """What the user requires. ``ops_capacity``: hours a month the team can spend running a local model
    (None: not limiting). ``margin``: the largest quality loss against the API you accept (0.02 = 2 points)."""

    privacy_required: bool = False
    monthly_volume: float = 10_000
    latency_target_s: float | None = None
    budget_per_month: float | None = None
    margin: float = 0.02
    ops_capacity: float | None = None
    data_residency: bool = False


@dataclass(frozen=True)
class OptionFacts:
    """What was measured for one option. ``conclusion``: its non-inferiority result against the API
    (None for the API itself, or when untested); ``monthly_cost`` at the facts' volume."""

    option: str
    arm: str | None = None
    n_items: int = 0
    quality: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    conclusion: str | None = None
    lower_bound: float | None = None
    n_needed: float | None = None
    monthly_cost: float | None = None
    p95_latency_s: float | None = None
    error_rate: float = 0.0
    ops_hours_per_month: float = 0.0
    share_local: float | None = None
    keeps_pii_local: bool = False


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at. Build it with :func:`facts_from_tables` from the kit's tables."""

    task: str
    volume: float
    options: Mapping[str, OptionFacts]
    pii_share: float | None = None
    api_is_stand_in: bool = False
    notes: tuple[str, ...] = ()


@dataclass
class Decision:
    recommended: str
    verdict: str
    rule: str
    conclusion: str  # the test result behind the choice: "reference", "non-inferior", "superior", "inconclusive", ...
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)

    def markdown(self) -> str:
        """The verdict, reasons and caveats as Markdown for the report."""
        rule = f"Rule: `{self.rule}`; test result behind it: {self.conclusion}."
        lines = [f"**{self.recommended}** — {self.verdict}", "", rule, ""]
        lines += ["Reasons:"] + [f"- {r}" for r in self.reasons] if self.reasons else []
        lines += ["", "Caveats:"] + [f"- {c}" for c in self.caveats] if self.caveats else []
        return "\n".join(lines)


def _money(x: float | None) -> str:
    return "cost unknown" if x is None or not math.isfinite(x) else f"${x:,.0f}/month"


def _q(f: OptionFacts) -> str:
    if f.quality is None:
        return "quality not measured"
    ci = f" (95% CI {f.ci_low:.1%}–{f.ci_high:.1%})" if f.ci_low is not None and f.ci_high is not None else ""
    return f"{f.quality:.1%}{ci}"


def _checks(facts: Facts, c: Constraints) -> pd.DataFrame:
    rows = []
    for name in OPTIONS:
        f = facts.options.get(name)
        hard, soft = [], []
        if f is not None:
            hosted = name in (API, HYBRID)
            if f.quality is None:
                hard.append("no quality measured (for a hybrid: no threshold passed the test)")
            if c.data_residency and hosted:
                hard.append("data may not leave the machine")
            if c.privacy_required and name == API and (facts.pii_share is None or facts.pii_share > 0):
                hard.append("items with personal data would be sent to the API" if facts.pii_share
                            else "no privacy scan was run")
            if c.privacy_required and name == HYBRID and not f.keeps_pii_local and (facts.pii_share or 0) > 0:
                hard.append("the cascade would escalate items with personal data")
            if c.latency_target_s is not None and f.p95_latency_s is not None and f.p95_latency_s > c.latency_target_s:
                soft.append(f"p95 latency {f.p95_latency_s:.2f} s > target {c.latency_target_s:g} s")
            if c.budget_per_month is not None and f.monthly_cost is not None and f.monthly_cost > c.budget_per_month:
                soft.append(f"{_money(f.monthly_cost)} > budget {_money(c.budget_per_month)}")
            if c.ops_capacity is not None and name != API and f.ops_hours_per_month > c.ops_capacity:
                soft.append(f"needs {f.ops_hours_per_month:g} ops hours/month > capacity {c.ops_capacity:g}")
        rows.append({"option": name, "measured": f is not None, "hard_ok": not hard, "soft_ok": not soft,
                     "qualifies": f is not None and (name == API or f.conclusion in PASSING),
                     "conclusion": "reference" if name == API and f is not None else (f.conclusion if f else None),
                     "quality": f.quality if f else None,
                     "monthly_cost": f.monthly_cost if f and f.monthly_cost is not None else math.inf,
                     "excluded_by": "; ".join(hard + soft)})
    return pd.DataFrame(rows)


def _caveats(facts: Facts, c: Constraints) -> list[str]:
    out = []
    missing = [o for o in OPTIONS if o not in facts.options]
    if missing:
        out.append(f"Not measured: {', '.join(missing)}; the decision only weighs the options that were run.")
    if facts.api_is_stand_in and API in facts.options:
        out.append("The 'hosted API' arm is a local stand-in (an OpenAI-compatible server on this machine), not a "
                   "hosted model: its quality and latency are not the real API's, so the comparison shows how the "
                   "verdict is reached, not what the real API would do.")
    for f in facts.options.values():
        if f.option != API and f.n_items < MIN_ITEMS:
            out.append(f"Only {f.n_items} items for {f.option}: too few to show small differences.")
        elif f.n_needed is not None and math.isfinite(f.n_needed) and f.n_needed > f.n_items and f.option != API:
            out.append(f"{f.option}: about {f.n_needed:,.0f} items would be needed to show non-inferiority at "
                       f"the {100 * c.margin:g}-point margin; {f.n_items} were run.")
        if f.error_rate > 0.05:
            out.append(f"{f.option}: {f.error_rate:.0%} of calls failed or gave no parseable answer (counted as wrong).")
    if c.privacy_required and facts.pii_share == 0:
        out.append("The scan found no personal data, but it does not detect bare names, addresses or medical "
                   "facts; check a sample by hand before sending data to a hosted API.")
    if HYBRID in facts.options:
        out.append("The cascade threshold was chosen on the same items it was tested on; confirm it on fresh items.")
    out.extend(facts.notes)
    return out


def decide(facts: Facts, constraints: Constraints) -> Decision:
    """Apply the rules (module docstring) and say which option to choose, why, and what to watch."""
    c = constraints
    if not math.isclose(facts.volume, c.monthly_volume, rel_tol=1e-9):
        raise ConfigError(f"facts were costed at {facts.volume:,.0f} items/month but the constraints say "
                          f"{c.monthly_volume:,.0f}", where="kit.decision.decide",
                          fix="build the cost table at the constraints' monthly_volume")
    checks = _checks(facts, c)
    reasons = [f"{r.option} excluded: {r.excluded_by}." for r in checks.itertuples() if r.measured and r.excluded_by]
    caveats = _caveats(facts, c)
    hard = checks[checks["measured"] & checks["hard_ok"]]
    if hard.empty:
        pick = BASE if c.data_residency or c.privacy_required else API
        why = "no measured option meets the hard limits (data residency / privacy)"
        return Decision(pick, f"Nothing measured can be recommended: {why}; measure a local arm ({pick}) first.",
                        "nothing-feasible", "inconclusive", reasons + [why.capitalize() + "."], caveats, checks)
    pool, rule_override = hard[hard["soft_ok"]], None
    if pool.empty:
        pool, rule_override = hard, "constraints-unmet"
        reasons.append("No option meets the latency, budget and ops limits together; they are set aside below.")
    api = facts.options.get(API)
    volume = f"{c.monthly_volume:,.0f} items/month"
    if api is None:
        best = pool.sort_values(["quality", "monthly_cost"], ascending=[False, True]).iloc[0]
        f = facts.options[best["option"]]
        verdict = (f"Choose {f.option} ({_q(f)}, {_money(f.monthly_cost)} at {volume}); no hosted API arm was "
                   f"measured, so whether it matches the API is untested (inconclusive).")
        return Decision(f.option, verdict, rule_override or "no-api-baseline", "inconclusive",
                        reasons + ["Without an API arm there is no reference to test non-inferiority against."],
                        caveats, checks)
    proven = pool[pool["qualifies"]]
    if not proven.empty:
        best = proven.sort_values(["monthly_cost", "option"]).iloc[0]
        f = facts.options[best["option"]]
        cheaper = pool[(pool["monthly_cost"] < best["monthly_cost"]) & ~pool["qualifies"]]
        if f.option != API:
            rule, concl = "cheapest-proven", str(f.conclusion)
            local = f" keeping {f.share_local:.0%} of traffic local," if f.option == HYBRID and f.share_local else ""
            verdict = (f"Choose {f.option}: {_q(f)} is {f.conclusion} to the hosted API's {_q(api)} at a "
                       f"{100 * c.margin:g}-point margin,{local} at {_money(f.monthly_cost)} against "
                       f"{_money(api.monthly_cost)} for the API at {volume}.")
            reasons.append(f"{f.option} passed the non-inferiority test (lower bound "
                           f"{100 * (f.lower_bound or 0):+.1f} points) and is the cheapest option that did.")
        elif len(pool) == 1:
            rule, concl = "api-only-feasible", "reference"
            verdict = (f"Choose the hosted API: it is the only measured option within your limits, at "
                       f"{_money(api.monthly_cost)} for {volume} and quality {_q(api)}.")
            reasons.append("Every other measured option is excluded by a limit (see above).")
        elif cheaper.empty:
            rule, concl = "api-cheapest", "reference"
            others = ", ".join(f"{r.option} {_money(r.monthly_cost)}" for r in pool.itertuples() if r.option != API)
            verdict = (f"Choose the hosted API: at {volume} it costs {_money(api.monthly_cost)}, no more than the "
                       f"other options ({others}), and it is the quality reference at {_q(api)}.")
            reasons.append("The API is the cheapest option that meets every limit.")
        else:
            rule, concl = "api-only-proven", "reference"
            r = facts.options[cheaper.sort_values("monthly_cost").iloc[0]["option"]]
            need = (f"; about {r.n_needed:,.0f} items would be needed" if r.n_needed and math.isfinite(r.n_needed)
                    and r.n_needed > r.n_items else "")
            verdict = (f"Choose the hosted API ({_money(api.monthly_cost)} at {volume}): {r.option} would cost "
                       f"{_money(r.monthly_cost)} but its quality, {_q(r)} against {api.quality:.1%}, is "
                       f"{r.conclusion or 'untested'} at the {100 * c.margin:g}-point margin on {r.n_items:,} "
                       f"items{need}.")
            reasons.append("Cheaper options are not shown non-inferior: "
                           + ", ".join(f"{o} ({facts.options[o].conclusion})" for o in cheaper["option"]) + ".")
        missed = checks.set_index("option").loc[f.option, "excluded_by"]
        if rule_override and missed:
            verdict = verdict[:-1] + f" — but it misses your limits: {missed}."
        return Decision(f.option, verdict, rule_override or rule, concl, reasons, caveats, checks)
    # the API is excluded by a hard limit and nothing left is shown non-inferior
    measured = pool[pool["quality"].notna()]  # a hybrid without a threshold has no quality to offer
    best = (measured if not measured.empty else pool).sort_values(["quality", "monthly_cost"],
                                                                  ascending=[False, True]).iloc[0]
    f = facts.options[best["option"]]
    concl = f.conclusion or "inconclusive"
    why = checks.set_index("option").loc[API, "excluded_by"]
    loss = ("the loss exceeds the margin" if concl == "inferior" else "a loss larger than the margin is not ruled out")
    verdict = (f"Choose {f.option} because the API is ruled out ({why}); its quality {_q(f)} against the API's "
               f"{api.quality:.1%} is {concl} at the {100 * c.margin:g}-point margin, so {loss}; "
               f"{_money(f.monthly_cost)} at {volume}.")
    reasons.append(f"No remaining option is shown non-inferior; {f.option} has the best measured quality.")
    return Decision(f.option, verdict, rule_override or "api-excluded-unproven", concl, reasons, caveats, checks)


def _row(table: pd.DataFrame | None, key: str, value: str) -> dict | None:
    if table is None or table.empty or key not in table.columns:
        return None
    hit = table[table[key] == value]
    return hit.iloc[0].to_dict() if not hit.empty else None


def facts_from_tables(*, task: str, volume: float, arms: Mapping[str, str], scores: pd.DataFrame,
                      comparison: pd.DataFrame | None, costs: pd.DataFrame, latency: pd.DataFrame,
                      pii: pd.DataFrame | None = None, cascade: object | None = None,
                      cascade_local: str = TUNED, cascade_keeps_pii_local: bool = False, ops_hours: Mapping[str, float] | None = None,
                      api_is_stand_in: bool = False) -> Facts:
    """Assemble :class:`Facts` from the kit's tables — what the report notebook does.

    - ``arms``: option name -> arm spec for the measured arms, e.g. ``{"hosted API": "openai:gpt-4o-mini",
      "local base model": "llama_cpp:smollm2-135m-instruct"}``.
    - ``scores``: the per-item score table (kit.tasks.scoring), for item counts and error rates.
    - ``comparison``: ``kit.stats.compare_arms(scores, reference=arms["hosted API"], margin=...)``
      (Holm-adjusted conclusions are used); None when there is no API arm.
    - ``costs``: ``kit.economics.cost_table([...], volume=volume)`` whose ``option`` names are the option names
      (the hybrid's cost comes from the cascade).
    - ``latency``: ``kit.stats.latency_summary(scores)`` (p95 per arm).
    - ``pii``: ``kit.privacy.pii_share(kit.privacy.scan_items(task))``; None when no scan was run.
    - ``cascade``: ``kit.cascade.choose_threshold(sweep)`` (a CascadeChoice) of a sweep whose local arm is
      the ``cascade_local`` option; ``cascade_keeps_pii_local=True`` when the sweep was run with
      ``keep_local`` = the flagged items. A choice without τ enters as a hybrid that does not qualify.
    - ``ops_hours``: option -> ops hours a month (the LocalDeployment's ``ops_hours_per_month``).
    """
    options: dict[str, OptionFacts] = {}
    for name, arm in arms.items():
        if name not in OPTIONS or name == HYBRID:
            raise ConfigError(f"unknown option {name!r}", where="kit.decision.facts_from_tables",
                              fix=f"use {OPTIONS[:3]} for arms; the hybrid comes from `cascade`")
        rows = scores[scores["arm"] == arm]
        if rows.empty:
            continue
        failed = rows["error"].notna() | rows.get("parse_error", pd.Series(False, index=rows.index)).astype(bool)
        cmp_row = _row(comparison, "arm", arm) if name != API else None
        lat, cost = _row(latency, "arm", arm), _row(costs, "option", name)
        quality = float(rows["score"].astype(float).mean())
        ci = (cmp_row["candidate_ci_low"], cmp_row["candidate_ci_high"]) if cmp_row else (None, None)
        if name == API and comparison is not None and not comparison.empty:
            ci = (float(comparison["reference_ci_low"].iloc[0]), float(comparison["reference_ci_high"].iloc[0]))
        options[name] = OptionFacts(
            option=name, arm=arm, n_items=int(rows["item_id"].nunique()), quality=quality, ci_low=ci[0],
            ci_high=ci[1], conclusion=(cmp_row.get("conclusion_adjusted", cmp_row["conclusion"]) if cmp_row else None),
            lower_bound=cmp_row["lower_bound"] if cmp_row else None,
            n_needed=cmp_row["n_needed"] if cmp_row else None,
            monthly_cost=cost["monthly_cost"] if cost else None, p95_latency_s=lat["p95_s"] if lat else None,
            error_rate=float(failed.mean()), ops_hours_per_month=float((ops_hours or {}).get(name, 0.0)),
            share_local=0.0 if name == API else 1.0)
    local = options.get(cascade_local)
    if cascade is not None and local is not None:
        tau = getattr(cascade, "tau", None)
        options[HYBRID] = OptionFacts(
            option=HYBRID, arm=f"{local.arm} first, {arms.get(API)} below τ={tau:.3g}" if tau is not None else None,
            n_items=local.n_items, quality=cascade.accuracy, ci_low=cascade.ci_low, ci_high=cascade.ci_high,
            conclusion=cascade.conclusion, monthly_cost=cascade.monthly_cost, p95_latency_s=cascade.p95_latency_s,
            share_local=cascade.share_local, ops_hours_per_month=local.ops_hours_per_month,
            keeps_pii_local=cascade_keeps_pii_local)
    share = None
    if pii is not None and not pii.empty:
        share = float(pii.loc[pii["kind"] == "any", "share"].iloc[0])
    return Facts(task=task, volume=float(volume), options=options, pii_share=share, api_is_stand_in=api_is_stand_in)
