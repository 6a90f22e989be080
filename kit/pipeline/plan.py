"""Before a run: the items (and labels) each candidate's decision needs at the margin, from a pilot or assumptions.

No model runs. Per task and candidate the plan uses a **pilot** — the reference's and the candidate's answers
already in the store on the same test items, found under the arm the answer stage stores them under
(:func:`kit.pipeline.arming.arm_for`) — or, without one, stated **assumptions** (:class:`Assumptions`), and
says which of the two it used. It plans for the test the comparison will run:

- a labelled task whose answers are right or wrong: Tango's paired test, Nam's (1997) formula
  (:func:`kit.stats.sample_size_noninferiority`);
- a labelled task whose per-item scores lie between 0 and 1 (an extraction task's share of fields right): the
  same formula on the per-item score differences (the comparison runs Tango's test on the scores); a free-text
  task (paired scores): the paired t-test's sample size from the score differences' mean and spread
  (:func:`kit.stats.items_needed_mean`, noncentral t);
- an unlabelled task: the gold labels that would turn its agreement decision into a correctness decision, under
  random labels and under a stratified design that labels only the disagreements
  (:mod:`kit.stats.label_designs`), side by side.

On a task with ``cluster:``, the pilot's design effect (:func:`kit.stats.clusters.design_effect`) scales the
items and labels; without a pilot it is unknown and said so. A plan larger than the task's test split is
flagged ("more than the task has: …").

>>> plans = plan_experiment(Experiment.load("notebooks/params/default.yaml"), None)   # doctest: +SKIP
>>> plans[0].items_needed                                                               # doctest: +SKIP
1578.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Experiment, Option
from kit.format import pts
from kit.pipeline.arming import arm_for
from kit.pipeline.folder import Doc, RunFolder
from kit.run.store import Store
from kit.stats.clusters import design_effect
from kit.stats.label_designs import LabelSize, random_labels, stratified_labels
from kit.stats.power import sample_size_noninferiority
from kit.stats.scores import items_needed_mean, t_test_items
from kit.stats.sequential import simulate_noninferiority
from kit.tasks import Task, load_task
from kit.tasks.scoring import score_responses, score_unlabelled
from kit.tasks.types import ComparisonKind


class Assumption(StrEnum):
    """A value a plan may assume where the store holds no pilot."""

    DISCORDANCE = "discordance"   # share of items only one of the two answers right (labelled)
    DIFFERENCE = "difference"     # the true difference candidate - reference
    AGREEMENT = "agreement"       # share of items the candidate agrees with the reference on (unlabelled)

    @property
    def flag(self) -> str:
        return f"--assume-{self.value}"


@dataclass(frozen=True)
class Assumptions:
    """What a plan assumes where the store holds no pilot, and which of them the user ``stated`` (a plan from a
    pilot says which stated ones it did not use). Checked when made: shares in [0, 1], and a difference that the
    discordance allows (only items where exactly one option is right move it: ``|difference| <= discordance``).

    >>> Assumptions(discordance=0.05, difference=0.5)
    Traceback (most recent call last):
    kit.errors.ConfigError: ...impossible with 5% of items discordant... Fix: ...
    """

    discordance: float = 0.10
    difference: float = 0.0
    agreement: float = 0.90
    power: float = 0.80
    stated: frozenset[Assumption] = frozenset()

    def __post_init__(self) -> None:
        for what in (Assumption.DISCORDANCE, Assumption.AGREEMENT):
            value = getattr(self, what.value)
            if not 0 <= value <= 1:
                raise ConfigError(f"{what.flag} {value:g} is not a share of items", where=f"kit plan {what.flag}",
                                  fix=f"give a number in [0, 1], e.g. {what.flag} 0.1")
        flag = Assumption.DIFFERENCE.flag
        if not -1 <= self.difference <= 1:
            raise ConfigError(f"{flag} {self.difference:g} is not a difference of two shares (it lies in [-1, 1])",
                              where=f"kit plan {flag}", fix=f"give the difference as a share, e.g. {flag} 0.02 "
                                                           "for 2 points in the candidate's favour")
        if abs(self.difference) > self.discordance + 1e-12:
            raise ConfigError(
                f"{flag} {self.difference:g} is impossible with {100 * self.discordance:g}% of items discordant "
                f"({Assumption.DISCORDANCE.flag} {self.discordance:g}): only items where exactly one option is right "
                "move the difference, so |difference| <= discordance", where=f"kit plan {flag}",
                fix=f"raise {Assumption.DISCORDANCE.flag} to at least {abs(self.difference):g}, or give a difference "
                    f"within ±{self.discordance:g}")


class Source(StrEnum):
    PILOT = "pilot"
    ASSUMED = "assumed"


class Decides(StrEnum):
    """What the decision of a (task, candidate) is tested on."""

    CORRECTNESS = "paired correctness"
    MEAN_SCORE = "paired mean score"
    AGREEMENT = "agreement"


@dataclass(frozen=True)
class Basis:
    """What a plan rests on: a pilot of ``pilot_items`` stored items or assumptions, the assumptions ``used`` and
    those the user stated that it did not use (a pilot measured them)."""

    source: Source
    pilot_items: int = 0
    used: tuple[Assumption, ...] = ()
    ignored: tuple[Assumption, ...] = ()

    def words(self, assume: Assumptions) -> str:
        """``'pilot: 30 stored items'``, ``'assumed: 10% discordant, true difference +0 pts'``, … with a note of the
        stated assumptions left unused."""
        if self.source is Source.PILOT:
            text = f"pilot: {self.pilot_items} stored items"
        else:
            text = "assumed: " + ", ".join(_assumed_words(a, assume) for a in self.used)
        if self.source is Source.PILOT and self.used:
            text += " (and " + ", ".join(_assumed_words(a, assume) for a in self.used) + ")"
        if self.ignored:
            text += " — not used: " + ", ".join(a.flag for a in self.ignored)
        return text


def _assumed_words(what: Assumption, assume: Assumptions) -> str:
    if what is Assumption.DISCORDANCE:
        return f"{100 * assume.discordance:g}% discordant"
    if what is Assumption.DIFFERENCE:
        return f"true difference {100 * assume.difference:+g} pts"
    return f"{100 * assume.agreement:g}% agreement"


@dataclass(frozen=True)
class SequentialStop:
    """A sequential run's expected stop: the median items of simulated runs and the share settled before the cap."""

    median_items: float
    settled_share: float


@dataclass(frozen=True)
class CandidatePlan:
    """One candidate's plan on one task. ``items_needed`` (labelled tasks: paired items) and ``random_labels`` /
    ``stratified_labels`` (unlabelled tasks: gold labels under each design) are inf when no number suffices and
    None where they do not apply; ``flags`` says where a plan exceeds what the task has."""

    task: str
    candidate: str
    test_items: int
    items_planned: int
    basis: Basis
    basis_words: str
    decides_on: Decides
    method: str
    items_needed: float | None = None
    random_labels: float | None = None
    stratified_labels: float | None = None
    disagreement_items: int | None = None
    discordance: float | None = None
    difference: float | None = None
    sd: float | None = None
    agreement: float | None = None
    design_effect: float | None = None
    sequential: SequentialStop | None = None
    flags: tuple[str, ...] = ()
    statement: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (an unreachable count is ``"unreachable"``)."""
        def plain(v: Any) -> Any:
            if isinstance(v, float) and math.isinf(v):
                return "unreachable"
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v.value if isinstance(v, StrEnum) else v
        return plain(asdict(self))


@dataclass
class _Pilot:
    """A candidate's and the reference's stored answers on the same test items."""

    rows: pd.DataFrame
    items: list[str] = field(default_factory=list)


def stored_arm(option: Option, *, task: str, folder: RunFolder | None) -> str | None:
    """The arm the answer stage stores ``option``'s answers on ``task`` under (its own mapping,
    :func:`kit.pipeline.arming.arm_for`); None for a fine-tune that no report folder at hand has trained.

    >>> from kit.experiment import Where
    >>> stored_arm(Option(name="API", where=Where.THIRD_PARTY, arm="openai:gpt-4o-mini"), task="t", folder=None)
    'openai:gpt-4o-mini'
    """
    trained = folder.doc(Doc.FINETUNES, default={}) if folder is not None else {}
    if option.finetune is not None and task not in trained.get(option.name, {}):
        return None  # its arm exists once a report trained it: that folder records the adapter
    return arm_for(option, task=task, finetunes=trained, standin=None)[0]


def trained_folder(exp: Experiment, root: Path) -> RunFolder | None:
    """The newest report folder under ``root`` that trained one of the experiment's fine-tunes (its adapters'
    answers are a fine-tune's pilot); None when there is none or the experiment has no fine-tune."""
    names = {o.name for o in exp.options if o.finetune is not None}
    if not names or not root.is_dir():
        return None
    found = []
    for doc in root.glob(f"*/{Doc.FINETUNES.value}.json"):
        folder = RunFolder(doc.parent)
        if names & set(folder.doc(Doc.FINETUNES, default={})):
            found.append((doc.stat().st_mtime, folder))
    return max(found, key=lambda f: f[0])[1] if found else None


def pilot_answers(store: Store | None, task: str, option: Option, *, folder: RunFolder | None = None) -> pd.DataFrame:
    """The latest stored answers (epoch 0) of ``option`` on ``task``, its name in the ``option`` column; empty
    without any (or without a store)."""
    arm = None if store is None else stored_arm(option, task=task, folder=folder)
    if arm is None or arm not in store.arms(task=task):
        return pd.DataFrame(columns=[Col.ITEM_ID])
    rows = store.responses(task=task, arms=[arm], epoch=0)
    return rows.drop_duplicates(Col.ITEM_ID, keep="last").assign(**{Col.OPTION: option.name})


def plan_experiment(exp: Experiment, store: Store | None, *, assume: Assumptions = Assumptions(),
                    folder: RunFolder | None = None) -> list[CandidatePlan]:
    """One plan per (task, candidate that applies to it). ``store``: an open store, or None (every plan from the
    assumptions). ``folder``: a report folder whose trained fine-tunes' answers count as their pilot.

    >>> [p.items_needed for p in plan_experiment(exp, None)]                   # doctest: +SKIP
    [1578.0, 1578.0]
    """
    plans = []
    for name, limit in exp.tasks.items():
        task = load_task(name, ignore_labels=exp.ignore_labels)
        ref_rows = pilot_answers(store, name, exp.reference, folder=folder)
        test_ids = [i.id for i in task.test]
        k = max(sum(1 for c in exp.candidates if c.applies_to(name)), 1)
        for cand in exp.candidates:
            if not cand.applies_to(name):
                continue
            cand_rows = pilot_answers(store, name, cand, folder=folder)
            answered = set(ref_rows[Col.ITEM_ID]) & set(cand_rows[Col.ITEM_ID])
            common = [i for i in test_ids if i in answered]
            both = pd.concat([ref_rows, cand_rows], ignore_index=True)
            pilot = _Pilot(both[both[Col.ITEM_ID].isin(common)], common)
            one = _Context(exp, task, cand, assume, min(limit or len(test_ids), len(test_ids)), k)
            plans.append(one.labelled(pilot) if task.labelled else one.unlabelled(pilot))
    return plans


@dataclass(frozen=True)
class _Context:
    exp: Experiment
    task: Task
    cand: Option
    assume: Assumptions
    planned: int
    n_candidates: int

    @property
    def n_test(self) -> int:
        return len(self.task.test)

    def _deff(self, values: np.ndarray, items: list[str], *, of: str) -> tuple[float | None, str]:
        """The pilot's design effect of ``values`` on a clustered task (None: items independent) and its words."""
        clusters = {i.id: i.cluster for i in self.task.items}
        if all(c is None for c in clusters.values()):
            return None, ""
        groups = [clusters[i] for i in items]
        if len(set(groups)) < 2:
            return None, (" The task's items come in clusters, but the pilot covers fewer than two of them, so the "
                          "design effect is unknown: the plan treats items as independent, which undercounts.")
        deff = max(1.0, design_effect(values, groups))
        return deff, (f" Items come in clusters: the counts are scaled by the design effect of {of} in the pilot, "
                      f"{deff:.2f} (its {len(set(groups))} clusters).")

    def _no_pilot_clusters(self) -> str:
        if all(i.cluster is None for i in self.task.items):
            return ""
        return (" The task's items come in clusters; without a pilot the design effect is unknown, so the plan "
                "treats items as independent, which undercounts (run a pilot to measure it).")

    def _ignored(self, *used: Assumption) -> tuple[Assumption, ...]:
        return tuple(a for a in Assumption if a in self.assume.stated and a not in used)

    # -- labelled: paired items ------------------------------------------------------------------------------
    def labelled(self, pilot: _Pilot) -> CandidatePlan:
        exp, task, assume = self.exp, self.task, self.assume
        kind = task.type.comparison_kind(labelled=True)
        deff, cluster_words, sd = None, self._no_pilot_clusters(), None
        if pilot.items:
            scored = score_responses(task, pilot.rows)
            wide = scored.pivot_table(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.SCORE, aggfunc="mean")
            wide = wide.reindex(index=pilot.items, columns=[self.cand.name, exp.reference.name]).fillna(0.0)  # an unparsed answer scores 0, as the comparison counts
            c, r = wide[self.cand.name].to_numpy(float), wide[exp.reference.name].to_numpy(float)
            binary = bool(np.isin(np.concatenate([c, r]), (0.0, 1.0)).all())
            basis = Basis(Source.PILOT, len(pilot.items), ignored=self._ignored())
            if kind is ComparisonKind.PAIRED_SCORES:
                n = items_needed_mean(c, r, margin=exp.margin, alpha=exp.alpha, power=assume.power)
                sd = float(np.std(c - r, ddof=1)) if c.size > 1 else 0.0
            else:
                row = sample_size_noninferiority(c, r, margin=exp.margin, alpha=exp.alpha, power=assume.power).iloc[0]
                n = float(row["n_required"])
            p10, p01 = float(np.clip(c - r, 0, None).mean()), float(np.clip(r - c, 0, None).mean())
            discordance = float(np.mean(c != r)) if not binary else p10 + p01
            deff, cluster_words = self._deff(c - r, pilot.items, of="the per-item differences")
            decides = Decides.CORRECTNESS if binary and kind is not ComparisonKind.PAIRED_SCORES else Decides.MEAN_SCORE
        else:
            psi, delta = assume.discordance, assume.difference
            p10, p01, discordance = (psi + delta) / 2, (psi - delta) / 2, psi
            basis = Basis(Source.ASSUMED, used=(Assumption.DISCORDANCE, Assumption.DIFFERENCE),
                          ignored=self._ignored(Assumption.DISCORDANCE, Assumption.DIFFERENCE))
            if kind is ComparisonKind.PAIRED_SCORES:  # scores differ on a share psi of items, by up to a whole point
                sd = math.sqrt(max(psi - delta ** 2, 0.0))
                gap = delta + exp.margin
                n = math.inf if gap <= 0 else (2.0 if sd == 0 else float(t_test_items(gap / sd, alpha=exp.alpha,
                                                                                       power=assume.power)))
            else:
                row = sample_size_noninferiority(p10=p10, p01=p01, margin=exp.margin, alpha=exp.alpha,
                                                 power=assume.power).iloc[0]
                n = float(row["n_required"])
            # without answers to look at, the task's headline metric says whether its items are right or wrong
            right_wrong = kind is ComparisonKind.PAIRED_ACCURACY and task.metrics[0] == Col.ACCURACY
            decides = Decides.CORRECTNESS if right_wrong else Decides.MEAN_SCORE
        if deff is not None and math.isfinite(n):
            n = float(math.ceil(n * deff))
        method = ("paired t-test (noncentral t) on the score differences" if kind is ComparisonKind.PAIRED_SCORES
                  else "Nam (1997) formula, Tango's paired test" + ("" if decides is Decides.CORRECTNESS else
                                                                     " on the per-item scores"))
        flags: tuple[str, ...] = ()
        if math.isfinite(n) and n > self.n_test:
            flags = (f"more than the task has: {int(n):,} paired items needed, its test split has {self.n_test:,}",)
        elif math.isfinite(n) and n > self.planned:
            cluster_words += (f" The experiment asks only {self.planned:,} of its {self.n_test:,} test items (its "
                              "`tasks:` limit): raise the limit to reach this power.")
        sequential = None
        if exp.sequential is not None and kind is ComparisonKind.PAIRED_ACCURACY:
            sequential = self._sequential(p10=p10, p01=p01)
        statement = self._items_words(n, decides=decides, difference=p10 - p01, discordance=discordance, sd=sd,
                                      method=method) + cluster_words + "".join(f" This is {f}." for f in flags)
        return CandidatePlan(task=task.name, candidate=self.cand.name, test_items=self.n_test,
                             items_planned=self.planned, basis=basis, basis_words=basis.words(assume),
                             decides_on=decides, method=method, items_needed=n, discordance=discordance,
                             difference=p10 - p01, sd=sd, design_effect=deff, sequential=sequential, flags=flags,
                             statement=statement)

    def _items_words(self, n: float, *, decides: Decides, difference: float, discordance: float, sd: float | None,
                     method: str) -> str:
        margin, power = self.exp.margin, self.assume.power
        spread = (f"per-item differences with standard deviation {sd:.3f}" if sd is not None else
                  f"{100 * discordance:.1f}% of items " + ("answered right by only one option"
                                                            if decides is Decides.CORRECTNESS else "scored differently"))
        if not math.isfinite(n):
            return (f"Non-inferiority at {pts(margin, sign=False)} cannot be shown with any number of items if the "
                    f"true difference is {pts(difference)} (at or below -{pts(margin, sign=False)}).")
        return (f"To show non-inferiority on {decides.value} at a margin of {pts(margin, sign=False)} with "
                f"{100 * power:g}% power (one-sided alpha {self.exp.alpha:g}), about {int(n):,} paired items are "
                f"needed, assuming a true difference of {pts(difference)} and {spread} ({method}).")

    def _sequential(self, *, p10: float, p01: float) -> SequentialStop:
        """Where a sequential run would stop: its bar at alpha split across the task's candidates (Bonferroni), in
        the experiment's rounds, up to its item cap (400 simulated runs)."""
        spec = self.exp.sequential
        cap = min(spec.max_items or self.exp.tasks.get(self.task.name) or self.n_test, self.n_test)
        sim = simulate_noninferiority(p10=p10, p01=p01, margin=self.exp.margin, alpha=self.exp.alpha / self.n_candidates,
                                      round_items=spec.round_items, max_items=cap)
        return SequentialStop(sim.median_items, sim.settled_share)

    # -- unlabelled: gold labels under two designs -------------------------------------------------------------
    def unlabelled(self, pilot: _Pilot) -> CandidatePlan:
        exp, task, assume = self.exp, self.task, self.assume
        deff, cluster_words = None, self._no_pilot_clusters()
        agreement = None
        if pilot.items:
            scored = score_unlabelled(task, pilot.rows, reference=exp.reference.name)
            mine = scored[(scored[Col.OPTION] == self.cand.name) & scored[Col.SCORE].notna()]
            mine = mine.drop_duplicates(Col.ITEM_ID, keep="last")
            if len(mine):
                agrees = mine[Col.CORRECT].astype(float).to_numpy()
                agreement = float(agrees.mean())
                deff, cluster_words = self._deff(1.0 - agrees, mine[Col.ITEM_ID].tolist(),
                                                 of="the disagreements (where the difference lives)")
        if agreement is not None:
            basis = Basis(Source.PILOT, len(pilot.items), used=(Assumption.DIFFERENCE,),
                          ignored=self._ignored(Assumption.DIFFERENCE))
        else:
            agreement = assume.agreement
            basis = Basis(Source.ASSUMED, used=(Assumption.AGREEMENT, Assumption.DIFFERENCE),
                          ignored=self._ignored(Assumption.AGREEMENT, Assumption.DIFFERENCE))
        d = 1.0 - agreement
        if abs(assume.difference) > d + 1e-12:
            flag = Assumption.DIFFERENCE.flag
            raise ConfigError(f"{flag} {assume.difference:g} is impossible for {self.cand.name} on {task.name}: it "
                              f"disagrees with the reference on {100 * d:.1f}% of items ({basis.words(assume)}), and "
                              "only those items can differ in correctness", where=f"kit plan {flag}",
                              fix=f"give a difference within ±{d:.3f}")
        common = dict(difference=assume.difference, margin=exp.margin, alpha=exp.alpha, power=assume.power)
        rand = _scaled(random_labels(agreement=agreement, population=self.n_test, **common), deff)
        strat = _scaled(stratified_labels(disagreement=d, n_items=self.n_test, **common), deff)
        flags = []
        if math.isfinite(rand.labels) and not rand.within_population:
            flags.append(f"more than the task has: {int(rand.labels):,} random labels, its test split has "
                         f"{self.n_test:,} items")
        if not strat.within_population and math.isfinite(strat.labels):
            flags.append(f"more than the task has: {int(strat.labels):,} labels on disagreements, its test split has "
                         f"about {strat.population:,} of them (of {self.n_test:,} items): run more items")
        statement = (self._labels_words(rand, strat, agreement) + cluster_words
                     + "".join(f" This is {f}." for f in flags))
        return CandidatePlan(task=task.name, candidate=self.cand.name, test_items=self.n_test,
                             items_planned=self.planned, basis=basis, basis_words=basis.words(assume),
                             decides_on=Decides.AGREEMENT, method="Nam (1997) for random labels; Cochran (1977) "
                             "stratified sample size with the finite-population correction for the disagreements",
                             random_labels=rand.labels, stratified_labels=strat.labels,
                             disagreement_items=strat.population, agreement=agreement,
                             difference=assume.difference, design_effect=deff, flags=tuple(flags),
                             statement=statement)

    def _labels_words(self, rand: LabelSize, strat: LabelSize, agreement: float) -> str:
        margin = pts(self.exp.margin, sign=False)
        head = (f"Gold labels to turn agreement ({100 * agreement:.1f}%) into a correctness decision at a margin of "
                f"{margin} with {100 * self.assume.power:g}% power, assuming a true difference of "
                f"{pts(self.assume.difference)} and one option right on every disagreement: ")
        if not math.isfinite(rand.labels):
            return head + "no number of labels suffices at that difference."
        return head + (f"about {int(rand.labels):,} random labels (Nam 1997), or about {int(strat.labels):,} "
                       f"labels drawn at random among the ~{strat.population:,} items where the two disagree "
                       "(stratified design; Cochran 1977, with the finite-population correction)."
                       if math.isfinite(strat.labels) else f"about {int(rand.labels):,} random labels (Nam 1997).")


def _scaled(size: LabelSize, deff: float | None) -> LabelSize:
    """Labels scaled by a cluster design effect (None or 1: unchanged)."""
    if deff is None or not math.isfinite(size.labels):
        return size
    return LabelSize(size.design, float(math.ceil(size.labels * deff)), size.population)


__all__ = ["Assumption", "Assumptions", "Basis", "CandidatePlan", "Decides", "SequentialStop", "Source",
           "pilot_answers", "plan_experiment", "stored_arm", "trained_folder"]
