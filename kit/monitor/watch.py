"""Re-test the deployed verdict's questions on every window of traffic, as often as you like to look.

Each window of the router's log (a month, or a fixed number of items) answers the questions the verdict rested
on, each as a per-item value whose mean is tested against a threshold:

==================  ===================================================  =================================
question            per-item value (range)                               holds while
==================  ===================================================  =================================
agreement           deployed answer = the shadowed reference's (0/1)     mean > agreement at decision − margin
bar (labels)        deployed right − reference right (−1..1)             mean > −margin
floor (labels)      deployed right − [gold = the majority answer] (−1..1) mean > 0
latency             latency over the target (0/1)                        mean < 5% (p95 within the target)
drift               this window's texts against the first window's       not shown different
==================  ===================================================  =================================

**Reading it every window does not inflate false alarms.** Each question gets an equal share of ``alpha``; each
window spends a part of that share — ``(1 − ε) / H`` of it in each of the first ``H`` planned windows (12
months by default) and ``ε · 6 / (π² j²)`` in the j-th window after them (ε = 0.1), so the parts sum to at most
the share however long the monitor runs. Within a window the interval is the kit's always-valid confidence
sequence (:func:`kit.stats.sequential.confidence_sequence`) at that window's level, so it may also be read
daily. By the union bound, the chance of any false alarm over every window and question is at most ``alpha``
(``bench/bench_monitor.py`` measures it on simulated streams). Drift's share is split between its two tests.

Each window ends in an :class:`Advice`: still holds; re-decide (latency or inputs moved: run the report again on
fresh items); retrain the LoRA (a fine-tune's quality fell and its inputs drifted); fall back to the API (the
deployed option's quality is shown below its bar). An open question says how many more shadowed requests or
labels would settle it at the window's level, if the estimate stays where it is.

>>> report = watch(routing["tasks"]["snips-intents"], read_log(log, shadow=shadow), Windows(every=200))  # doctest: +SKIP
>>> report.advice[-1].advice                                                                           # doctest: +SKIP
<Advice.STILL_HOLDS: 'still holds'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pct
from kit.monitor.drift import DriftTest, c2st, length_test
from kit.monitor.logs import Windows, windowed
from kit.stats.sequential import Settled, confidence_sequence, settle

SLOW_SHARE = 0.05  # p95 within the target: at most 5% of items over it
TAIL = 0.1  # the share of each question's alpha kept for windows after the planned horizon
MAX_NEEDED = 100_000


class Question(StrEnum):
    AGREEMENT = "agreement with the reference"
    BAR = "non-inferior to the reference (labels)"
    FLOOR = "above the majority answer (labels)"
    LATENCY = "share over the latency target"
    DRIFT = "input drift against the first window"


class Advice(StrEnum):
    STILL_HOLDS = "still holds"
    RE_DECIDE = "re-decide"
    RETRAIN = "retrain the LoRA"
    FALL_BACK = "fall back to the API"


def spent(look: int, *, alpha: float, horizon: int = 12) -> float:
    """The level of the ``look``-th window (1-based) for a question given ``alpha``; the levels sum to at most
    ``alpha`` over any number of windows.

    >>> round(sum(spent(k, alpha=0.05) for k in range(1, 10_000)), 4) <= 0.05
    True
    >>> round(spent(1, alpha=0.05, horizon=12), 5)
    0.00375
    """
    if look < 1 or horizon < 1:
        raise ConfigError(f"look {look} of horizon {horizon}", where="kit.monitor.spent", fix="both at least 1")
    if look <= horizon:
        return alpha * (1.0 - TAIL) / horizon
    j = look - horizon
    return alpha * TAIL * 6.0 / (math.pi ** 2 * j * j)


def needed(values: np.ndarray, *, level: float, threshold: float, lo: float, hi: float, higher_is_better: bool,
           planned_n: int) -> float:
    """How many values (at the observed mix) the sequence at ``level`` needs before it settles the question
    against ``threshold``; ``inf`` when no number would (the estimate sits on the threshold).

    >>> needed(np.array([1.0] * 9 + [0.0]), level=0.05, threshold=0.5, lo=0, hi=1, higher_is_better=True,
    ...        planned_n=10) <= 40
    True
    """
    def settles(n: int) -> bool:
        cs = confidence_sequence(np.resize(values, n), alpha=level, planned_n=planned_n, lo=lo, hi=hi)
        return settle(cs, threshold=threshold, higher_is_better=higher_is_better).settled

    if values.size == 0 or math.isclose(float(values.mean()), threshold, abs_tol=1e-12):
        return math.inf
    n = max(values.size, 1)
    while not settles(n):
        if n >= MAX_NEEDED:
            return math.inf
        n = min(2 * n, MAX_NEEDED)
    low = max(values.size, n // 2)
    while low < n:
        mid = (low + n) // 2
        if settles(mid):
            n = mid
        else:
            low = mid + 1
    return float(n)


@dataclass(frozen=True)
class Look:
    """One question on one window: its estimate, the always-valid interval at the window's level, the
    threshold, where it stands, and how many more items (at the same mix) would settle it."""

    window: str
    question: Question
    n: int
    estimate: float | None
    low: float | None
    high: float | None
    threshold: float
    level: float
    status: Settled | None
    more_needed: float | None = None
    statement: str = ""


@dataclass(frozen=True)
class WindowAdvice:
    window: str
    n_items: int
    advice: Advice
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class MonitorReport:
    """Every look, every drift test and the advice per window (the last one is the current advice)."""

    task: str
    windows: str
    looks: tuple[Look, ...]
    drift: tuple[tuple[str, DriftTest], ...]
    advice: tuple[WindowAdvice, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def table(self) -> pd.DataFrame:
        """The looks as a tidy table, one row per window and question."""
        return pd.DataFrame([{Col.WINDOW: k.window, Col.QUESTION: str(k.question), Col.N: k.n,
                              Col.ESTIMATE: k.estimate, Col.CS_LOW: k.low, Col.CS_HIGH: k.high,
                              Col.THRESHOLD: k.threshold, Col.LEVEL: k.level,
                              Col.STATUS: str(k.status) if k.status else "no data",
                              Col.LABELS_NEEDED: k.more_needed, Col.STATEMENT: k.statement} for k in self.looks])


def _expect(route: dict[str, Any]) -> dict[str, Any]:
    expect = route.get("expect")
    if not expect:
        raise ConfigError(f"the routing of {route.get('task')} carries no expectations", where="kit monitor",
                          fix="export the decision again with this kit's `kit export`")
    return expect


def _questions(route: dict[str, Any], frame: pd.DataFrame) -> list[Question]:
    expect = _expect(route)
    deployed_is_reference = route["first"] == route["fallback"] and not route.get("escalate_to")
    out = []
    if not deployed_is_reference and expect.get("agreement") is not None and frame[Col.SHADOW_OUTPUT].notna().any():
        out.append(Question.AGREEMENT)
    if frame[Col.GOLD].notna().any():
        if not deployed_is_reference and frame[Col.SHADOW_OUTPUT].notna().any():
            out.append(Question.BAR)
        if expect.get("majority") is not None:
            out.append(Question.FLOOR)
    if expect.get("latency_target_s") is not None and frame[Col.LATENCY_S].notna().any():
        out.append(Question.LATENCY)
    out.append(Question.DRIFT)
    return out


def _norm(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.strip('"').str.casefold()


def question_values(question: Question, rows: pd.DataFrame, expect: dict[str, Any]) -> tuple[np.ndarray, float, float, float, bool]:
    """Per-item values, threshold, range (lo, hi) and direction (higher is better) of a question other than drift
    on one window's rows."""
    ok = rows[rows[Col.ERROR].isna()] if Col.ERROR in rows.columns else rows
    mine = _norm(ok[Col.OUTPUT])
    if question is Question.AGREEMENT:
        both = ok[Col.SHADOW_OUTPUT].notna()
        v = (mine[both] == _norm(ok.loc[both, Col.SHADOW_OUTPUT])).to_numpy(float)
        return v, float(expect["agreement"]) - float(expect["margin"]), 0.0, 1.0, True
    if question is Question.BAR:
        both = ok[Col.SHADOW_OUTPUT].notna() & ok[Col.GOLD].notna()
        gold = _norm(ok.loc[both, Col.GOLD])
        v = ((mine[both] == gold).to_numpy(float) - (_norm(ok.loc[both, Col.SHADOW_OUTPUT]) == gold).to_numpy(float))
        return v, -float(expect["margin"]), -1.0, 1.0, True
    if question is Question.FLOOR:
        has = ok[Col.GOLD].notna()
        gold = _norm(ok.loc[has, Col.GOLD])
        v = (mine[has] == gold).to_numpy(float) - (gold == str(expect["majority"]).casefold()).to_numpy(float)
        return v, 0.0, -1.0, 1.0, True
    # latency: every answered request, errors included (a failed call took its time too)
    lat = rows[Col.LATENCY_S].dropna()
    return (lat > float(expect["latency_target_s"])).to_numpy(float), SLOW_SHARE, 0.0, 1.0, False


def _say(question: Question, status: Settled, est: float, threshold: float, n: int) -> str:
    side = {Settled.PASSES: "holds", Settled.FAILS: "is shown broken", Settled.OPEN: "is open"}[status]
    return f"{question} {side}: {pct(est)} on {n} items against {pct(threshold)}"


def watch(route: dict[str, Any], frame: pd.DataFrame, windows: Windows, *, alpha: float | None = None,
          horizon: int = 12, seed: int = 0, sizes: bool = True) -> MonitorReport:
    """The monitor over ``frame`` (:func:`kit.monitor.logs.read_log`) for one routed task (``route``: its entry
    in ``routing.json``), window by window (module docstring). ``sizes=False`` skips how many more items would
    settle an open question (simulations)."""
    expect = _expect(route)
    alpha = float(expect["alpha"] if alpha is None else alpha)
    rows = frame[frame[Col.TASK].astype(str) == route[Col.TASK]] if frame[Col.TASK].notna().any() else frame
    if rows.empty:
        raise ConfigError(f"no request of task {route['task']!r} in the log", where="kit monitor",
                          fix="pass the task the router answered (--task)")
    rows = windowed(rows, windows)
    questions = _questions(route, rows)
    share = alpha / len(questions)
    names = list(dict.fromkeys(rows[Col.WINDOW]))
    first = rows[rows[Col.WINDOW] == names[0]]
    planned = windows.every or len(first)
    looks, drifts, advice = [], [], []
    for k, name in enumerate(names, start=1):
        part = rows[rows[Col.WINDOW] == name]
        level = spent(k, alpha=share, horizon=horizon)
        window_looks: list[Look] = []
        for q in questions:
            if q is Question.DRIFT:
                continue
            v, threshold, lo, hi, up = question_values(q, part, expect)
            if v.size == 0:
                window_looks.append(Look(name, q, 0, None, None, None, threshold, level, None,
                                         statement=f"{q}: no items in this window"))
                continue
            cs = confidence_sequence(v, alpha=level, planned_n=planned, lo=lo, hi=hi)
            status = settle(cs, threshold=threshold, higher_is_better=up)
            more = None
            if status is Settled.OPEN and sizes:
                total = needed(v, level=level, threshold=threshold, lo=lo, hi=hi, higher_is_better=up,
                               planned_n=planned)
                more = total - v.size if math.isfinite(total) else math.inf
            window_looks.append(Look(name, q, int(v.size), cs.estimate, cs.low, cs.high, threshold, level, status,
                                     more, _say(q, status, cs.estimate, threshold, int(v.size))))
        drift_failed: list[str] = []
        if k > 1:
            texts_a, texts_b = first[Col.TEXT].astype(str).tolist(), part[Col.TEXT].astype(str).tolist()
            tests = [length_test(texts_a, texts_b)]
            if min(len(texts_a), len(texts_b)) >= 4:
                tests.append(c2st(texts_a, texts_b, seed=seed + k))
            for t in tests:
                drifts.append((name, t))
                if t.p_value < level / 2:
                    drift_failed.append(f"{t.test}: p = {t.p_value:.2g} < {level / 2:.2g} (statistic {t.statistic:.3g}, "
                                        f"{t.n_window} items against {t.n_first})")
        looks += window_looks
        told = _advise(name, len(part), window_looks, drift_failed, route, expect)
        if route.get("tau") is not None and route.get("share_local") is not None:  # a hybrid: is τ routing as fitted?
            kept = float((part[Col.ROUTE] == "local").mean())
            told = replace(told, evidence=(*told.evidence, f"kept local: {pct(kept)} of {len(part)} requests (the "
                                                              f"report's cascade: {pct(route['share_local'])})"))
        advice.append(told)
    notes = (f"alpha {alpha:g} split over {len(questions)} questions; each window's level is its share of it "
             f"(horizon {horizon} windows), so looking every window keeps the chance of any false alarm within "
             f"{alpha:g}.",)
    return MonitorReport(task=route[Col.TASK], windows=windows.describe(), looks=tuple(looks), drift=tuple(drifts),
                         advice=tuple(advice), notes=notes)


def _advise(name: str, n: int, looks: list[Look], drift: list[str], route: dict[str, Any],
            expect: dict[str, Any]) -> WindowAdvice:
    broken = [k for k in looks if k.status is Settled.FAILS]
    quality = [k for k in broken if k.question is not Question.LATENCY]
    evidence = [k.statement for k in broken] + [f"input drift — {d}" for d in drift]
    deployed_is_reference = route["first"] == route["fallback"] and not route.get("escalate_to")
    if quality and expect.get("finetuned") and drift:
        choice = Advice.RETRAIN
    elif quality and not deployed_is_reference:
        choice = Advice.FALL_BACK
    elif broken or drift:
        choice = Advice.RE_DECIDE
    else:
        choice = Advice.STILL_HOLDS
        evidence += [k.statement for k in looks if k.status is not None]
    open_ = [k for k in looks if k.status is Settled.OPEN and k.more_needed is not None]
    for k in open_:
        what = "labels" if k.question in (Question.BAR, Question.FLOOR) else \
            "shadowed requests" if k.question is Question.AGREEMENT else "requests"
        evidence.append(f"{k.question} is open: about {k.more_needed:,.0f} more {what} at this mix would settle it"
                        if math.isfinite(k.more_needed) else
                        f"{k.question} is open and no number of {what} would settle it at this estimate")
    return WindowAdvice(name, n, choice, tuple(evidence))
