"""The verdict for one task over any number of options: explicit rules over measured facts and your limits.

The options are a reference (an API, or recorded API outputs), any number of candidates, and the hybrids
(cascades) whose threshold passed. The rules, in order:

1. Only measured options count; a missing one is a caveat, never a guess.
2. Hard limits. ``data_residency``: nothing may leave the organisation, so third-party options and hybrids
   are out. ``privacy_required``: items with personal data may not reach a third party, so third-party
   options are out when the scan flagged any item (or none was run); a hybrid stays in only when it keeps
   those items on the self-hosted side.
3. The trivial baseline is the floor: an option not significantly better than the majority-class answer
   (and chance) is never recommended. When no option is, the verdict says that no option does the task yet.
4. Soft limits carry their uncertainty: an option misses the latency target only when the low end of its
   p95 interval is above it, the budget only when the low end of its cost band is above it; within the noise
   it is *borderline* and stays in (said so). When every option misses a limit, they are ranked by how far
   they miss (relative to the limit) and then by quality — never simply the cheapest.
5. Quality bar: the reference meets it by definition; a candidate when the paired test (Holm across all
   candidates) shows it non-inferior or better at the margin — or, for an unlabelled task, that it agrees with
   the reference on at least the target share. When the reference itself is below the floor, its
   non-inferiority means nothing and the floor is the bar.
6. Choice among the options within the limits that meet the bar. Quality gains count: with no cost per error
   given, the cheapest of the options not significantly worse than the best one (correctness tasks); with a
   cost per error, the lowest running cost + errors × cost per error. Whatever the rule, a dearer option that
   is significantly better than the pick is named with the price of its gain, and the runner-up is named.

>>> decide(facts, Constraints(monthly_volume=200_000)).verdict          # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import NewType

from kit.errors import ConfigError
from kit.format import p_words, pct, per_error, usd_month
from kit.stats.conclusions import Conclusion

OptionKey = NewType("OptionKey", str)  # an option's short name: the key of every table, never an arm spec


class Role(str, Enum):
    REFERENCE = "reference"
    CANDIDATE = "candidate"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Hybrid:
    """A cascade: ``first`` answers, items whose confidence is below ``tau`` are escalated to ``escalate_to``.

    >>> Hybrid(OptionKey("SmolLM2"), OptionKey("API"), 0.42).name
    'SmolLM2 ⇢ API'
    """

    first: OptionKey
    escalate_to: OptionKey
    tau: float

    @property
    def name(self) -> OptionKey:
        """What the hybrid is called in tables and the verdict: the self-hosted option first."""
        return OptionKey(f"{self.first} ⇢ {self.escalate_to}")


@dataclass(frozen=True)
class Floor:
    """An option against the trivial baselines: ``passes`` when it is significantly better than every one;
    otherwise ``reason`` says against which it is not."""

    passes: bool
    reason: str = ""


@dataclass(frozen=True)
class Interval:
    """A measured value with its interval (``low``/``high`` None when there is none)."""

    value: float
    low: float | None = None
    high: float | None = None

    @property
    def lowest(self) -> float:
        return self.value if self.low is None or not math.isfinite(self.low) else min(self.low, self.value)

    @property
    def highest(self) -> float:
        return self.value if self.high is None or not math.isfinite(self.high) else max(self.high, self.value)


@dataclass(frozen=True)
class OptionFacts:
    """What was measured for one option on one task.

    ``conclusion``: the comparison with the reference after Holm (None for the reference itself and for an
    option not tested); ``qualifies`` and ``better`` follow from it. ``floor``: None when the task has no
    trivial baseline. ``hybrid``: set for a cascade (its role is then HYBRID).
    """

    name: OptionKey
    role: Role = Role.CANDIDATE
    third_party: bool = False
    n_items: int = 0
    quality: Interval | None = None
    conclusion: Conclusion | None = None
    lower_bound: float | None = None
    n_needed: float | None = None
    floor: Floor | None = None
    hybrid: Hybrid | None = None
    monthly_cost: Interval | None = None
    p95_s: Interval | None = None
    error_rate: float = 0.0
    ops_hours: float = 0.0
    share_local: float | None = None
    keeps_pii_local: bool = False
    cost_basis: str = ""
    difference: float | None = None  # quality minus the reference's, as the comparison with it measured it
    p_better: float | None = None  # that comparison's p-value for "better than the reference" (after Holm)

    @property
    def measured(self) -> bool:
        return self.quality is not None

    @property
    def qualifies(self) -> bool:
        """Meets the quality bar against the reference (the reference meets it by definition)."""
        return self.role is Role.REFERENCE or (self.conclusion is not None and self.conclusion.passes)

    @property
    def better(self) -> bool:
        return self.conclusion is not None and self.conclusion.better

    @property
    def below_floor(self) -> bool:
        return self.floor is not None and not self.floor.passes

    @property
    def versus_reference(self) -> str:
        """The comparison in words for tables: the conclusion, "reference" or "untested"."""
        return ("reference" if self.role is Role.REFERENCE else
                str(self.conclusion) if self.conclusion is not None else "untested")


@dataclass(frozen=True)
class PairFacts:
    """A paired two-sided comparison: ``a`` minus ``b`` and its p-value (Holm across the pairs tested)."""

    a: OptionKey
    b: OptionKey
    difference: float
    p_value: float


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at for one task."""

    task: str
    volume: float
    options: tuple[OptionFacts, ...]
    pairs: tuple[PairFacts, ...] = ()
    metric: str = "accuracy"
    labelled: bool = True
    pii_share: float | None = None
    reference_is_standin: bool = False
    floor_text: str = ""  # the best trivial baseline, in words: "always 'ham' (70.0%)"
    notes: tuple[str, ...] = ()
    reference_gaps: int = 0  # items where the reference gave no usable answer (unlabelled: they cannot be scored)

    @property
    def reference(self) -> OptionFacts | None:
        return next((o for o in self.options if o.role is Role.REFERENCE), None)


@dataclass(frozen=True)
class Constraints:
    """Your limits. ``ops_capacity``: hours a month the team can spend running self-hosted models (None: not
    limiting). ``margin``: the largest quality loss against the reference you accept (0.02 = 2 points).
    ``cost_per_error``: USD one wrong answer costs you (None: not given — quality first)."""

    monthly_volume: float = 100_000
    privacy_required: bool = False
    data_residency: bool = False
    latency_target_s: float | None = None
    budget_per_month: float | None = None
    ops_capacity: float | None = None
    margin: float = 0.02
    alpha: float = 0.05
    cost_per_error: float | None = None


@dataclass(frozen=True)
class Ranked:
    """One option's place in the decision: ``rank`` None when it was not measured."""

    rank: int | None
    option: OptionKey
    status: str
    quality: float | None
    vs_reference: str | None
    monthly_cost: float | None
    p95_s: float | None
    why: str


@dataclass
class Decision:
    """The verdict for one task. ``recommended`` is None when no option can be recommended."""

    task: str
    recommended: OptionKey | None
    verdict: str
    rule: str
    runner_up: OptionKey | None = None
    trade: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    ranking: tuple[Ranked, ...] = ()

    def ranking_rows(self) -> list[dict[str, object]]:
        """The ranking as plain records (one per option, in order)."""
        return [asdict(r) for r in self.ranking]

    def status_of(self, option: str) -> str | None:
        return next((r.status for r in self.ranking if r.option == option), None)

    def to_dict(self) -> dict[str, object]:
        return {"task": self.task, "recommended": self.recommended, "verdict": self.verdict, "rule": self.rule,
                "runner_up": self.runner_up, "trade": self.trade, "reasons": self.reasons, "caveats": self.caveats}


# ----------------------------------------------------------------------------------------- wording
def _q(o: OptionFacts) -> str:
    if o.quality is None:
        return "not measured"
    q = o.quality
    ci = f" (95% CI {pct(q.low)}–{pct(q.high)})" if q.low is not None and q.high is not None else ""
    return f"{pct(q.value)}{ci}"


# ----------------------------------------------------------------------------------------- checks
@dataclass
class _Check:
    facts: OptionFacts
    hard: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    borderline: list[str] = field(default_factory=list)
    excess: float = 0.0  # how far the soft limits are missed, summed relative to each limit
    bar: bool = False

    @property
    def name(self) -> str:
        return self.facts.name

    @property
    def quality(self) -> float:
        return self.facts.quality.value if self.facts.quality is not None else -1.0

    @property
    def cost(self) -> float:
        c = self.facts.monthly_cost
        return c.value if c is not None and math.isfinite(c.value) else math.inf


def _limit(label: str, measured: Interval | None, limit: float | None, unit: str, check: _Check) -> None:
    if limit is None or measured is None or not math.isfinite(measured.value):
        return
    shown = f"{measured.value:.2f} s" if unit == "s" else usd_month(measured.value)
    shown_limit = f"{limit:g} s" if unit == "s" else usd_month(limit)
    if measured.lowest > limit:
        check.soft.append(f"{label} {shown} > {shown_limit}" + (" (even the low end of its interval)"
                                                                 if measured.low is not None else ""))
        check.excess += (measured.lowest - limit) / max(limit, 1e-9)
    elif measured.value > limit or measured.highest > limit:
        side = "above" if measured.value > limit else "within"
        check.borderline.append(f"{label} {shown} is {side} {shown_limit} but within the noise of it")


def _checks(facts: Facts, c: Constraints) -> list[_Check]:
    out = []
    pii = facts.pii_share
    for o in facts.options:
        if not o.measured:
            continue
        k = _Check(o)
        if c.data_residency and (o.third_party or o.role is Role.HYBRID):
            k.hard.append("data may not leave your organisation")
        if c.privacy_required and o.third_party and (pii is None or pii > 0):
            k.hard.append("items with personal data would reach a third party" if pii else
                          "no personal-data scan was run")
        if c.privacy_required and o.role is Role.HYBRID and not o.keeps_pii_local and (pii is None or pii > 0):
            k.hard.append("the cascade would escalate items with personal data")
        _limit("p95 latency", o.p95_s, c.latency_target_s, "s", k)
        _limit("monthly cost", o.monthly_cost, c.budget_per_month, "usd", k)
        if c.ops_capacity is not None and not o.third_party and o.ops_hours > c.ops_capacity:
            k.soft.append(f"needs {o.ops_hours:g} ops hours/month > capacity {c.ops_capacity:g}")
            k.excess += (o.ops_hours - c.ops_capacity) / max(c.ops_capacity, 1e-9)
        out.append(k)
    return out


def _significantly_better(facts: Facts, a: str, b: str, alpha: float) -> PairFacts | None:
    """The pair showing ``a`` significantly better than ``b``, if the tests show it: the test of the pair, or —
    when ``b`` is the reference — ``a``'s comparison with the reference concluding it better (the test the bar
    reads: a candidate shown better than the reference is never passed over for it)."""
    for p in facts.pairs:
        if {p.a, p.b} == {a, b}:
            diff = p.difference if p.a == a else -p.difference
            if diff > 0 and p.p_value < alpha:
                return PairFacts(a, b, diff, p.p_value)
    ref = facts.reference
    mine = next((o for o in facts.options if o.name == a), None)
    if ref is not None and b == ref.name and mine is not None and mine.better and mine.difference is not None:
        return PairFacts(a, b, mine.difference, mine.p_better if mine.p_better is not None else math.nan)
    return None


# ----------------------------------------------------------------------------------------- the rules
def decide(facts: Facts, c: Constraints) -> Decision:
    """Apply the rules (module docstring): which option to choose, why, what the runner-up and the quality
    trade are, and what to watch."""
    if not math.isclose(facts.volume, c.monthly_volume, rel_tol=1e-9):
        raise ConfigError(f"facts were costed at {facts.volume:,.0f} items/month but the constraints say "
                          f"{c.monthly_volume:,.0f}", where="kit.decision.decide",
                          fix="build the cost table at the constraints' monthly_volume")
    checks = _checks(facts, c)
    ref = facts.reference
    caveats = _caveats(facts, c, checks)
    reasons = [f"{k.name} is out: {'; '.join(k.hard)}." for k in checks if k.hard]
    volume = f"{c.monthly_volume:,.0f} items/month"
    if ref is not None and not ref.measured and facts.reference_gaps:
        return _finish(facts, checks, None, "no-reference",
                       f"No verdict: the reference {ref.name} gave no usable answer on {facts.reference_gaps} items, "
                       "so there is nothing to measure the candidates against. Read its errors (a failed call, an "
                       "answer that does not parse), fix the reference and run again, or label a sample of the items.",
                       reasons, caveats, c)
    if ref is None or not ref.measured:
        return _finish(facts, checks, None, "no-reference", "The reference option was not measured, so no "
                       "candidate can be tested against it: run the reference on the same items first.",
                       reasons, caveats, c)

    # the floor
    floored = [k for k in checks if k.facts.below_floor]
    reasons += [f"{k.name} is below the floor: {k.facts.floor.reason}." for k in floored if k.facts.floor]
    ref_below_floor = ref.below_floor
    eligible = [k for k in checks if not k.hard and not k.facts.below_floor]
    if not eligible:
        if any(not k.hard for k in checks):  # what the limits allow is all below the floor
            best = max((k for k in checks if not k.hard), key=lambda k: k.quality)
            verdict = (f"No option does this task yet: the best, {best.name} at {_q(best.facts)}, is not "
                       f"significantly better than the trivial baseline ({facts.floor_text}). Try more "
                       f"examples in the prompt (shots), a fine-tune, or a bigger model before choosing.")
            return _finish(facts, checks, None, "below-baseline", verdict, reasons, caveats, c)
        return _finish(facts, checks, None, "nothing-feasible",
                       "Nothing measured can be recommended: no option meets the hard limits (data residency, "
                       "privacy) and the trivial baseline; measure a self-hosted option that keeps data inside.",
                       reasons, caveats, c)

    # the quality bar
    for k in eligible:
        if k.facts.role is Role.REFERENCE:
            k.bar = True
        elif facts.labelled and ref_below_floor:
            k.bar = not k.facts.below_floor
        else:
            k.bar = k.facts.qualifies
    if ref_below_floor:
        reasons.append(f"The reference {ref.name} is not better than the trivial baseline, so being as good as it "
                       "means nothing: the floor is the quality bar.")

    within = [k for k in eligible if not k.soft]
    for k in eligible:
        if k.soft:
            reasons.append(f"{k.name} misses your limits: {'; '.join(k.soft)}.")
    if not within:
        order = sorted(eligible, key=lambda k: (len(k.soft), not k.bar, round(k.excess, 2), -k.quality, k.cost))
        pick = next((k for k in order if k.bar), None)  # an option is chosen only when it meets the quality bar
        if pick is None:
            verdict = (f"No option qualifies: every option misses a limit, and none of them is shown to meet the "
                       f"quality bar ({_bar_words(facts, c)}). The closest is {order[0].name} "
                       f"({'; '.join(order[0].soft)}) at {_q(order[0].facts)}. Relax a limit, or measure an option "
                       f"that can meet both.")
            return _finish(facts, checks, None, "nothing-qualifies", verdict, reasons, caveats, c,
                           order=[k.name for k in order])
        verdict = (f"Every option misses a limit. {pick.name} misses least among those that meet the quality bar "
                   f"({'; '.join(pick.soft)}) at {_q(pick.facts)}, {usd_month(pick.cost)} for {volume}. Options are "
                   "ranked by how far they miss your limits, then by quality; relax a limit or change the setup.")
        return _finish(facts, checks, pick.name, "constraints-unmet", verdict, reasons, caveats, c,
                       order=[pick.name] + [k.name for k in order if k is not pick])

    proven = [k for k in within if k.bar]
    if not proven:
        best = max(within, key=lambda k: (k.quality, -k.cost))
        why = "; ".join(next((k.hard + k.soft for k in checks if k.facts.role is Role.REFERENCE), []) or
                        ["it is below the floor"])
        loss = ("it is shown to miss the bar" if best.facts.conclusion is not None and best.facts.conclusion.fails
                else "it is not shown to meet the bar")
        verdict = (f"No option qualifies: the reference {ref.name} is ruled out ({why}), and no other option is "
                   f"shown to meet the quality bar ({_bar_words(facts, c)}). The best, {best.name} at "
                   f"{_q(best.facts)}, is {best.facts.versus_reference} against the reference's "
                   f"{pct(ref.quality.value)}, so {loss}. Relax the limit that excludes the reference, or measure "
                   "more items or another option.")
        reasons.append("No remaining option is shown to meet the quality bar, so none is recommended.")
        order = sorted(within, key=lambda k: (-k.quality, k.cost))
        return _finish(facts, checks, None, "nothing-qualifies", verdict, reasons, caveats, c,
                       order=[k.name for k in order])

    order, rule, basis = _order(facts, proven, c)
    pick = order[0]
    verdict = _verdict(facts, pick, ref, within, c, basis)
    rest = sorted((k for k in within if k not in proven), key=lambda k: (-k.quality, k.cost))
    return _finish(facts, checks, pick.name, rule, verdict, reasons, caveats, c,
                   order=[k.name for k in order + rest])


def _bar_words(facts: Facts, c: Constraints) -> str:
    """The quality bar of this task, in words."""
    if not facts.labelled:
        return "agreement with the reference on at least the target share of items"
    return f"non-inferior to the reference at a {100 * c.margin:g}-point margin, and above the trivial baseline"


def _order(facts: Facts, proven: list[_Check], c: Constraints) -> tuple[list[_Check], str, str]:
    """The qualifying options in the order of the choice, the rule's name, and the basis in words."""
    if c.cost_per_error is not None:
        def total(k: _Check) -> float:
            return k.cost + c.monthly_volume * (1 - max(k.quality, 0.0)) * c.cost_per_error
        order = sorted(proven, key=lambda k: (total(k), -k.quality))
        return order, "least-total-cost", (f"running cost plus errors at ${c.cost_per_error:g} each "
                                           f"(lowest total {usd_month(total(order[0]))})")
    if not facts.labelled:
        return sorted(proven, key=lambda k: (k.cost, -k.quality)), "cheapest-agreeing", "the cheapest that agrees"
    best = max(proven, key=lambda k: (k.quality, -k.cost))
    top = [k for k in proven if k is best or not _significantly_better(facts, best.name, k.name, c.alpha)]
    others = [k for k in proven if k not in top]
    order = sorted(top, key=lambda k: (k.cost, -k.quality)) + sorted(others, key=lambda k: (-k.quality, k.cost))
    rule = "cheapest-proven" if len(top) > 1 or order[0] is not best else "best-quality"
    return order, rule, "the cheapest of the options not significantly worse than the best"


def _verdict(facts: Facts, pick: _Check, ref: OptionFacts, within: list[_Check], c: Constraints,
             basis: str) -> str:
    volume = f"{c.monthly_volume:,.0f} items/month"
    o = pick.facts
    if o.role is Role.REFERENCE:
        head = f"Choose {o.name}, the reference: {_q(o)} at {usd_month(pick.cost)} for {volume}"
    else:
        test = ("agrees with" if not facts.labelled else
                "beats the trivial baseline, unlike" if ref.below_floor else f"is {o.conclusion} to")
        local = (f", keeping {o.share_local:.0%} of traffic self-hosted" if o.role is Role.HYBRID and
                 o.share_local is not None else "")
        head = (f"Choose {o.name}: {_q(o)} {test} the reference {ref.name}'s {pct(ref.quality.value)}"
                + (f" at a {100 * c.margin:g}-point margin" if facts.labelled and not ref.below_floor else "")
                + f"{local}, at {usd_month(pick.cost)} against {usd_month(ref.monthly_cost.value if ref.monthly_cost else None)}"
                  f" for the reference, at {volume}")
    cheaper_unproven = [k for k in within if k.cost < pick.cost and not k.bar]
    tail = ""
    if o.role is Role.REFERENCE and cheaper_unproven:
        k = min(cheaper_unproven, key=lambda k: k.cost)
        need = (f"; about {k.facts.n_needed:,.0f} items would be needed" if k.facts.n_needed is not None and
                math.isfinite(k.facts.n_needed) and k.facts.n_needed > k.facts.n_items else
                "; no number of items would show it at the observed difference" if k.facts.n_needed is not None
                and not math.isfinite(k.facts.n_needed) else "")
        tail = (f". {k.name} would cost {usd_month(k.cost)} but its quality ({_q(k.facts)}) is "
                f"{k.facts.versus_reference} against the reference on {k.facts.n_items:,} items{need}")
    borderline = f" — borderline: {'; '.join(pick.borderline)}" if pick.borderline else ""
    return f"{head} ({basis}){tail}{borderline}."


def _trade(facts: Facts, pick: str, checks: list[_Check], c: Constraints) -> list[str]:
    """What quality would cost or save around the pick: dearer options significantly better, cheaper ones
    significantly worse (the three nearest in cost each way)."""
    by = {k.name: k for k in checks if not k.hard}
    if pick not in by or not facts.labelled:
        return []
    p = by[pick]
    out = []
    dearer = sorted((k for k in by.values() if k.cost > p.cost and k is not p), key=lambda k: k.cost)
    for k in dearer:
        pair = _significantly_better(facts, k.name, pick, c.alpha)
        if pair is not None and math.isfinite(k.cost) and math.isfinite(p.cost):
            extra = k.cost - p.cost
            out.append(f"{k.name} is {100 * pair.difference:+.1f} points better than {pick} ({p_words(pair.p_value)}) "
                       f"and costs {usd_month(extra)} more: it pays off if a wrong answer costs you more than "
                       f"{per_error(extra, pair.difference, c.monthly_volume)}.")
    cheaper = sorted((k for k in by.values() if k.cost < p.cost), key=lambda k: -k.cost)
    for k in cheaper:
        pair = _significantly_better(facts, pick, k.name, c.alpha)
        if pair is not None and math.isfinite(p.cost):
            saving = p.cost - k.cost
            out.append(f"{k.name} would save {usd_month(saving)} but is {100 * pair.difference:.1f} points worse "
                       f"({p_words(pair.p_value)}): {pick} is worth it if a wrong answer costs you more than "
                       f"{per_error(saving, pair.difference, c.monthly_volume)}.")
    return out[:6]


def _finish(facts: Facts, checks: list[_Check], pick: str | None, rule: str, verdict: str, reasons: list[str],
            caveats: list[str], c: Constraints, order: list[str] | None = None) -> Decision:
    order = order or []
    ranked = order + sorted((k.name for k in checks if k.name not in order),
                            key=lambda n: -next(k.quality for k in checks if k.name == n))
    runner_up = next((n for n in order if n != pick), None) if pick else None
    rows = []
    for rank, name in enumerate(ranked, start=1):
        k = next(k for k in checks if k.name == name)
        status = ("recommended" if name == pick else "runner-up" if name == runner_up else
                  "excluded" if k.hard else "below the floor" if k.facts.below_floor else
                  "misses limits" if k.soft else "meets the bar" if k.bar else "quality not shown")
        floor = [k.facts.floor.reason] if k.facts.floor is not None and k.facts.below_floor else []
        rows.append(Ranked(rank=rank, option=name, status=status,
                           quality=k.facts.quality.value if k.facts.quality else None,
                           vs_reference=k.facts.versus_reference,
                           monthly_cost=k.cost if math.isfinite(k.cost) else None,
                           p95_s=k.facts.p95_s.value if k.facts.p95_s else None,
                           why="; ".join(k.hard + floor + k.soft + k.borderline)))
    for o in facts.options:
        if not o.measured:
            rows.append(Ranked(rank=None, option=o.name, status="not measured", quality=None, vs_reference=None,
                               monthly_cost=None, p95_s=None, why="no answers were measured"))
    trade = _trade(facts, pick, checks, c) if pick else []
    if runner_up and pick:
        verdict += f" Runner-up: {runner_up}."
    return Decision(task=facts.task, recommended=pick, verdict=verdict, rule=rule, runner_up=runner_up, trade=trade,
                    reasons=reasons, caveats=caveats, ranking=tuple(rows))


def _caveats(facts: Facts, c: Constraints, checks: list[_Check]) -> list[str]:
    out = []
    missing = [o.name for o in facts.options if not o.measured]
    if missing:
        out.append(f"Not measured: {', '.join(missing)}; the decision weighs only the options that ran.")
    if facts.reference_is_standin:
        out.append("The reference is a local stand-in for a hosted API (an OpenAI-compatible server on this "
                   "machine): its quality and latency are not a real API's, so the report shows how the verdict is "
                   "reached, not what the real API would do.")
    if not facts.labelled:
        out.append(f"This task has no gold answers: quality means agreement with the reference "
                   f"{facts.reference.name if facts.reference else ''}, not correctness. Read the disagreements.")
    for o in facts.options:
        if not o.measured or o.role is Role.REFERENCE:
            continue
        if o.n_items < 100:
            out.append(f"Only {o.n_items} items for {o.name}: too few to show small differences.")
        elif o.n_needed is not None and math.isfinite(o.n_needed) and o.n_needed > o.n_items:
            out.append(f"{o.name}: about {o.n_needed:,.0f} items would be needed to show non-inferiority at the "
                       f"{100 * c.margin:g}-point margin; {o.n_items:,} were run.")
        elif o.n_needed is not None and not math.isfinite(o.n_needed) and not o.qualifies:
            out.append(f"{o.name}: at the observed difference, no number of items would show non-inferiority at "
                       f"the {100 * c.margin:g}-point margin.")
    for o in facts.options:
        if o.measured and o.error_rate > 0.05:
            out.append(f"{o.name}: {o.error_rate:.0%} of calls failed or gave no parseable answer (counted wrong).")
    for k in checks:
        if k.borderline:
            out.append(f"{k.name}: {'; '.join(k.borderline)}.")
    if c.privacy_required and facts.pii_share == 0:
        out.append("The scan found no personal data, but it does not detect bare names, addresses or medical facts; "
                   "check a sample by hand before sending data to a third party.")
    if any(o.role is Role.HYBRID for o in facts.options):
        out.append("Each cascade is measured on test items its threshold never saw (fitted on dev items, or "
                   "cross-fitted over folds of the test items); the τ to deploy is fitted on all of them.")
    out.extend(facts.notes)
    return out
