"""Label until settled: where each open question stands on a stratified design's labels, so the terminal loop and
the notebook form can stop asking as soon as more labels could not change the verdict.

The open question of each candidate is the paired one ("is it within ``margin`` of the reference?",
:class:`kit.stats.settle.PairedQuestion`). Its information sits on the items where the two options'
stored answers differ: on an agreement item the paired difference of scores is 0 whatever the gold label. The
stratified design (:mod:`kit.labels.design`) makes strata from the answer patterns, so the candidate's
disagreements with the reference are whole strata — its **disagreement strata** (a merged stratum of small
patterns counts when any of its items disagree; its agreement items add a 0 to the mean, which keeps it exact).
Each stratum's labels are the gap-free prefix of its seeded random permutation: a uniformly random sample
without replacement, which is what the settle rule needs.

* One disagreement stratum (two options, or a candidate whose disagreements form one pattern): the settle rule
  as it stands, ``PairedQuestion(disagreements=D, items=N, margin, alpha)`` on that stratum's labels.
* ``K`` strata: the delta is the sum of each stratum's part, ``(D_h / N) x`` its mean; each part gets the settle
  rule at ``alpha / K`` and the interval is the sum of the parts' intervals — a wrong verdict needs one of the K
  to miss (Bonferroni), so at most alpha in all, whenever the loop stops.

No I/O beyond reading the store; nothing is printed here (``kit label`` and the form say it).

>>> from kit.run.store import Store
>>> from kit.tasks import load_task
>>> with Store("runs/kit.sqlite") as store:                                      # doctest: +SKIP
...     now = standings(store, load_task("snips-intents"), reference="standin", candidates=["llama_cpp:smol"])
>>> [s.sentence for s in now]                                                    # doctest: +SKIP
['enough: llama_cpp:smol is within 2 points of standin after 23 labels (difference ...)']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kit.columns import Col
from kit.errors import ConfigError
from kit.labels.design import StratifiedDesign, designs
from kit.run.store import Store
from kit.stats.settle import TIE, Look, PairedQuestion, Verdict, look, sentence
from kit.tasks.loading import Task
from kit.tasks.ppi_compare import SampledLabels


@dataclass(frozen=True)
class Standing:
    """Where one candidate's question stands: the design labels used, the estimate of the paired difference,
    its always-valid interval, the verdict and the line that says it."""

    candidate: str
    reference: str
    margin: float
    labels: int
    estimate: float
    low: float
    high: float
    verdict: Verdict
    strata: tuple[str, ...]

    @property
    def settled(self) -> bool:
        return self.verdict.settled

    @property
    def sentence(self) -> str:
        """E.g. "enough: SmolLM2 is within 5 points of API after 23 labels (difference ...)"."""
        q = PairedQuestion(disagreements=0, items=1, margin=self.margin)
        line = sentence(q, Look(self.labels, self.estimate, self.low, self.high, self.verdict),
                        candidate=self.candidate, reference=self.reference)
        return line.replace("difference +nan points, ", "")  # a stratum without labels yet: no point estimate


def all_settled(now: Sequence[Standing]) -> bool:
    """Every question settled (and at least one asked): the loop stops asking."""
    return bool(now) and all(s.settled for s in now)


def _answers(store: Store, task: Task, arms: Sequence[str]) -> dict[str, dict[str, Any]]:
    frame = store.responses(task=task.name, epoch=0, arms=list(arms), item_ids=[i.id for i in task.test])
    out: dict[str, dict[str, Any]] = {}
    for item_id, arm, answer in zip(frame[Col.ITEM_ID], frame[Col.ARM], frame[Col.ANSWER]):
        out.setdefault(str(item_id), {})[str(arm)] = answer
    return out


def _score(task: Task, answer: Any, gold: Any) -> float:
    return 0.0 if answer is None else float(task.type.score(answer, gold).score)


def standing(task: Task, design: StratifiedDesign, labels: SampledLabels, answers: Mapping[str, Mapping[str, Any]],
             *, candidate: str, reference: str, margin: float, alpha: float) -> Standing:
    """The candidate's question on ``labels`` (the design's used labels, in its order) — pure, for tests and
    for callers that already hold the answers (item id -> arm -> answer)."""
    def differs(item_id: str) -> bool:
        given = answers.get(item_id, {})
        a, b = given.get(candidate), given.get(reference)
        return json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True)

    n_items = len(design.strata)
    members: dict[str, list[str]] = {}
    for item_id in sorted(design.strata, key=lambda i: design.ranks[i]):
        members.setdefault(design.strata[item_id], []).append(item_id)
    split = sorted(h for h, items in members.items() if any(differs(i) for i in items))
    used = sum(1 for i in labels.gold if design.strata.get(i) is not None)
    parts = [(len(members[h]), [_score(task, answers.get(i, {}).get(candidate), labels.gold[i])
                                - _score(task, answers.get(i, {}).get(reference), labels.gold[i])
                                for i in members[h] if i in labels.gold]) for h in split]
    now = combined(parts, items=n_items, margin=margin, alpha=alpha)
    return Standing(candidate, reference, margin, used, now.estimate, now.low, now.high, now.verdict, tuple(split))


def combined(parts: Sequence[tuple[int, Sequence[float]]], *, items: int, margin: float, alpha: float = 0.05,
             traffic: bool = True) -> Look:
    """The paired question over several disagreement strata: ``parts`` holds each stratum's size and its labels'
    paired differences in the stratum's random order. Each stratum gets the settle rule at ``alpha / K``, and
    the interval is the sum of theirs (Bonferroni: a wrong verdict needs one of the K to miss). One stratum is
    the settle rule itself.

    >>> now = combined([(20, [1, 1, 1, 1, 0, 1]), (8, [1, 1])], items=200, margin=0.05)
    >>> now.labels, now.verdict.value
    (8, 'open')
    """
    if not parts:
        return look(PairedQuestion(disagreements=0, items=items, margin=margin, alpha=alpha, traffic=traffic), [])
    estimate, low, high = 0.0, 0.0, 0.0
    for size, diffs in parts:
        part = look(PairedQuestion(disagreements=size, items=items, margin=margin, alpha=alpha / len(parts),
                                   traffic=traffic), list(diffs))
        estimate += part.estimate if len(diffs) else math.nan
        low += part.low
        high += part.high
    verdict = (Verdict.NON_INFERIOR if low > -margin + TIE else Verdict.INFERIOR if high < -margin - TIE
               else Verdict.OPEN)
    return Look(sum(len(d) for _, d in parts), estimate, max(-1.0, low), min(1.0, high), verdict)


def standings(store: Store, task: Task, *, reference: str, candidates: Sequence[str], margin: float,
              alpha: float = 0.05) -> list[Standing]:
    """Each candidate's question on the task's latest stratified design, on the labels it uses now.

    A ConfigError when the task has no stratified design, or an arm named is not among the design's."""
    from kit.labels import sampled_labels

    drawn = designs(store, task)
    if not drawn:
        raise ConfigError(f"{task.name} has no stratified design to settle on", where=store.path,
                          fix=f"draw one: kit label {task.name} --design stratified --size 40")
    design = drawn[-1]
    labels = sampled_labels(store, task)
    if labels.design != "stratified":
        raise ConfigError(f"the active design of {task.name} is {labels.design}, not stratified", where=store.path,
                          fix=f"draw a stratified one: kit label {task.name} --design stratified --size 40")
    for arm in (reference, *candidates):
        if arm not in design.arms:
            raise ConfigError(f"{arm!r} has no stored answers in design {design.id} of {task.name}",
                              where=store.path, fix=f"name one of {', '.join(design.arms)}")
    answers = _answers(store, task, design.arms)
    return [standing(task, design, labels, answers, candidate=c, reference=reference, margin=margin, alpha=alpha)
            for c in candidates if c != reference]


def settler(store: Store, task: Task, *, reference: str, candidates: Sequence[str], margin: float,
            alpha: float = 0.05, names: Mapping[str, str] | None = None,
            skip_unknown: bool = False) -> Callable[[], list[Standing]]:
    """What a labelling loop asks after every label: each candidate's :class:`Standing` on the task's latest
    stratified design, named as the person named them. An option is found among the stored answers' arms by its
    arm, by ``names`` (arm -> option name, an experiment's options) or by the arm's model part; a ConfigError
    names the arms when one is not found or the task has no stratified design (``skip_unknown``: a candidate
    not found is left out instead — an experiment's option with no stored answers on this task).

    >>> ask = settler(store, task, reference="API", candidates=["SmolLM2"], margin=0.05,        # doctest: +SKIP
    ...               names={"standin": "API", "llama_cpp:smollm2-135m-instruct": "SmolLM2"})
    >>> all_settled(ask())                                                                      # doctest: +SKIP
    False
    """
    drawn = designs(store, task)
    if not drawn:
        raise ConfigError(f"labelling until settled reads a stratified design; {task.name} has none",
                          where=store.path, fix=f"draw one first: kit label {task.name} --design stratified --size 40")
    arms = drawn[-1].arms
    names = dict(names or {})

    def arm_of(name: str) -> str:
        if name in arms:
            return name
        matched = ([arm for arm, shown in names.items() if shown == name and arm in arms]
                   or [a for a in arms if name in (a.split(":", 1)[-1], a.split(":", 1)[0])])
        if len(matched) != 1:
            raise ConfigError(f"option {name!r} is not one of the stored answers' arms ({', '.join(arms)})",
                              where=store.path, fix="name the arm itself as the reference or candidate")
        return matched[0]

    def found(name: str) -> bool:
        try:
            arm_of(name)
        except ConfigError:
            return False
        return True

    ref_arm = arm_of(reference)
    shown = {arm_of(c): c for c in candidates if c != reference and (not skip_unknown or found(c))}
    if not shown:
        raise ConfigError(f"none of the candidates {', '.join(candidates)} has stored answers on {task.name}",
                          where=store.path, fix=f"name one of {', '.join(a for a in arms if a != ref_arm)}")
    shown[ref_arm] = reference

    def now() -> list[Standing]:
        return [replace(s, candidate=shown[s.candidate], reference=shown[s.reference])
                for s in standings(store, task, reference=ref_arm, candidates=[c for c in shown if c != ref_arm],
                                   margin=margin, alpha=alpha)]

    return now


__all__ = ["Standing", "all_settled", "combined", "settler", "standing", "standings"]
