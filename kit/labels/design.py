"""Labelling designs: which test items are drawn for labels, with what inclusion probability — and which labels
a design may use.

Two designs:

- ``random`` (the default, and the only one for a task with no stored answers): one seeded random permutation of
  the test items; a sample of n is its first n items (``label_sample``).
- ``stratified`` (``kit label TASK --design stratified --size N``, once the options have answered): strata from
  the options' stored answers — the *answer pattern* of each item (every option agrees; which options give the
  same answer), patterns of fewer than :data:`MIN_STRATUM` items merged — and a seeded random permutation inside
  each stratum. ``N`` labels are allocated by :func:`kit.stats.stratified.allocate` (Neyman on the paired
  differences, which are known to be 0 where every option agrees, plus a proportional share for each option's
  accuracy and the floor); each stratum's sample is the first ``n_h`` items of its permutation, recorded with its
  inclusion probability ``n_h / N_h``. Asking for more extends every stratum's prefix.

**Which labels a design uses.** A label counts only when it was given after its item was drawn (into any design
of the task) and not from the disagreements queue: a label given on an item because the labeller chose it (the
queue, an import of items outside the sample) is not a random one, even if a later draw covers the item — the
item is then presented again. **Gaps:** each stratum (the random design: the whole sample) uses the longest
prefix of its permutation in which every item is labelled. A prefix of a uniformly random permutation is itself a
uniformly random sample whatever made the labeller stop, so the estimate stays unbiased and its interval valid;
a skipped item holds back the labels after it (they are kept, and counted) until it is labelled. We chose this
over treating an unlabelled position as the worst case for the conclusion (Manski's bounds, *Partial
Identification of Probability Distributions*, 2003): those bounds depend on which question is asked and grow by
one item's full range per gap, while the prefix keeps one estimate for every question and loses only labels.

**A second design** (the stored answers changed — a new option, a re-run — so the strata differ): the first
design's labels stay valid under the strata and inclusion probabilities recorded when they were drawn; a new
draw starts a new design with new strata and an independent seed. Each design gives an unbiased estimate on its
own; :func:`kit.stats.stratified.combine_designs` weights them by inverse variance.

>>> from kit.run.store import Store
>>> from kit.tasks import load_task
>>> with Store(":memory:") as store:                             # doctest: +SKIP
...     design = draw_stratified(store, load_task("snips-intents"), 40)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from kit.columns import Col
from kit.errors import ConfigError
from kit.run.store import Store, now
from kit.stats.stratified import allocate
from kit.tasks.loading import Task

MIN_STRATUM = 5                 # answer patterns with fewer items are merged
ALL_AGREE = "all agree"
OTHER = "other disagreements"
NO_ANSWER = "(no answer)"


class Design(StrEnum):
    """How the items to label are drawn."""

    RANDOM = "random"
    STRATIFIED = "stratified"


@dataclass(frozen=True)
class StratifiedDesign:
    """A stratified design as drawn: every test item's stratum, the arms whose answers made the strata, and the
    draws in presentation order with their stratum and inclusion probability."""

    id: int
    task: str
    seed: int
    arms: tuple[str, ...]
    strata: Mapping[str, str]                  # every test item -> its stratum
    ranks: Mapping[str, int]                   # every test item -> its place in its stratum's permutation
    order: tuple[str, ...]                     # the drawn items, position 1 first
    inclusion: Mapping[str, float]             # drawn item -> inclusion probability at its draw
    drawn_after: Mapping[str, int]             # drawn item -> the last label row id when it was drawn

    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for stratum in self.strata.values():
            out[stratum] = out.get(stratum, 0) + 1
        return out

    def drawn(self) -> dict[str, list[str]]:
        """Stratum -> its drawn items, in permutation order."""
        out: dict[str, list[str]] = {h: [] for h in self.sizes()}
        for item_id in sorted(self.order, key=lambda i: self.ranks[i]):
            out[self.strata[item_id]].append(item_id)
        return out


def answer_strata(store: Store, task: Task) -> tuple[tuple[str, ...], dict[str, str]]:
    """The arms with stored answers on the task's test items, and each test item's stratum: its answer pattern
    (``all agree``, or the groups of arms that gave the same answer, e.g. ``api=local | smol``), patterns of fewer
    than :data:`MIN_STRATUM` items merged into ``other disagreements`` (and that, if still small, into the largest
    disagreement stratum). A ConfigError when fewer than two options have answered."""
    test_ids = [item.id for item in task.test]
    frame = store.responses(task=task.name, epoch=0, item_ids=test_ids)
    arms = tuple(sorted({str(a) for a in frame[Col.ARM]}))
    if len(arms) < 2:
        raise ConfigError(f"the stratified design needs the stored answers of at least two options on {task.name}; "
                          f"the store has {len(arms)}", where=store.path,
                          fix=f"run the experiment first (its answers go into this store), or draw a uniformly "
                              f"random sample: kit label {task.name} --size 50")
    answers: dict[str, dict[str, str]] = {}
    for item_id, arm, answer in zip(frame[Col.ITEM_ID], frame[Col.ARM], frame[Col.ANSWER]):
        answers.setdefault(str(item_id), {})[str(arm)] = json.dumps(answer, sort_keys=True)
    pattern = {i: _pattern(arms, answers.get(i, {})) for i in test_ids}
    return arms, _merged(pattern)


def _pattern(arms: Sequence[str], given: Mapping[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for arm in arms:
        groups.setdefault(given.get(arm, NO_ANSWER), []).append(arm)
    if len(groups) == 1:
        return ALL_AGREE
    return " | ".join("=".join(g) for g in sorted(groups.values()))


def _merged(pattern: dict[str, str]) -> dict[str, str]:
    sizes: dict[str, int] = {}
    for p in pattern.values():
        sizes[p] = sizes.get(p, 0) + 1
    small = {p for p, n in sizes.items() if n < MIN_STRATUM and p != ALL_AGREE}
    out = {i: OTHER if p in small else p for i, p in pattern.items()}
    merged = sum(sizes[p] for p in small)
    big = sorted((p for p in sizes if p not in small and p != ALL_AGREE), key=lambda p: (-sizes[p], p))
    if 0 < merged < MIN_STRATUM and big:
        out = {i: big[0] if p == OTHER else p for i, p in out.items()}
    return out


def designs(store: Store, task: Task) -> list[StratifiedDesign]:
    """The task's stratified designs, oldest first."""
    rows = store.db.execute("SELECT * FROM label_designs WHERE task=? AND kind=? ORDER BY id",
                            (task.name, str(Design.STRATIFIED))).fetchall()
    out = []
    for row in rows:
        items = store.db.execute("SELECT item_id, stratum, rank FROM label_design_items WHERE design=?",
                                 (row[Col.ID],)).fetchall()
        draws = store.db.execute("SELECT item_id, inclusion, drawn_after FROM label_design_draws WHERE design=? "
                                 "ORDER BY position", (row[Col.ID],)).fetchall()
        out.append(StratifiedDesign(
            id=int(row[Col.ID]), task=task.name, seed=int(row[Col.SEED]), arms=tuple(json.loads(row[Col.ARMS])),
            strata=MappingProxyType({r[Col.ITEM_ID]: r[Col.STRATUM] for r in items}),
            ranks=MappingProxyType({r[Col.ITEM_ID]: int(r[Col.RANK]) for r in items}),
            order=tuple(r[Col.ITEM_ID] for r in draws),
            inclusion=MappingProxyType({r[Col.ITEM_ID]: float(r[Col.INCLUSION]) for r in draws}),
            drawn_after=MappingProxyType({r[Col.ITEM_ID]: int(r[Col.DRAWN_AFTER]) for r in draws})))
    return out


@dataclass(frozen=True)
class Drawn:
    """What a stratified draw did: the design, whether it is ``new`` (first, or the answers changed), how many
    items it added, and the items a smaller ``size`` left as they were."""

    design: StratifiedDesign
    new: bool
    added: int
    asked: int


def draw_stratified(store: Store, task: Task, size: int, *, seed: int = 1) -> Drawn:
    """Draw a stratified sample of ``size`` labels, or extend the task's latest stratified design to ``size``
    (a design whose strata no longer match the stored answers is kept as it is, and a new one is drawn)."""
    population = len(task.test)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"sample size {size!r} is not a whole number of at least 1", fix="ask for e.g. --size 40")
    if size > population:
        raise ConfigError(f"a sample of {size} items is more than the task's {population} test items",
                          where=f"task {task.name}", fix=f"ask for at most {population} (--size {population})")
    arms, strata = answer_strata(store, task)
    with store.writing() as db:
        known = designs(store, task)
        latest = known[-1] if known else None
        new = latest is None or dict(latest.strata) != strata
        if new:
            design_id = int(db.execute("INSERT INTO label_designs(task, kind, seed, at, arms, population) "
                                       "VALUES (?,?,?,?,?,?)", (task.name, str(Design.STRATIFIED), int(seed), now(),
                                                                json.dumps(arms), population)).lastrowid)
            rng = np.random.default_rng([int(seed), design_id])
            ranks: dict[str, int] = {}
            for h in sorted(set(strata.values())):
                members = [i.id for i in task.test if strata[i.id] == h]
                for rank, k in enumerate(rng.permutation(len(members))):
                    ranks[members[int(k)]] = rank
            db.executemany("INSERT INTO label_design_items(design, item_id, stratum, rank) VALUES (?,?,?,?)",
                           [(design_id, i, strata[i], ranks[i]) for i in strata])
            latest = next(d for d in designs(store, task) if d.id == design_id)
        assert latest is not None
        sizes, drawn = latest.sizes(), latest.drawn()
        spreads = {h: 0.0 if h == ALL_AGREE else 1.0 for h in sizes}
        target = allocate(sizes, spreads, total=size)
        want = {h: max(target[h], len(drawn[h])) for h in sizes}
        by_rank: dict[str, list[str]] = {h: [] for h in sizes}
        for item_id in sorted(latest.strata, key=lambda i: latest.ranks[i]):
            by_rank[latest.strata[item_id]].append(item_id)
        fresh = [(rank / want[h], h, by_rank[h][rank]) for h in sizes for rank in range(len(drawn[h]), want[h])]
        watermark = int(db.execute("SELECT coalesce(max(id), 0) FROM labels WHERE task=?", (task.name,)).fetchone()[0])
        start = len(latest.order)
        db.executemany("INSERT INTO label_design_draws(design, position, item_id, stratum, inclusion, drawn_after) "
                       "VALUES (?,?,?,?,?,?)",
                       [(latest.id, start + k + 1, item_id, h, want[h] / sizes[h], watermark)
                        for k, (_, h, item_id) in enumerate(sorted(fresh))])
    final = next(d for d in designs(store, task) if d.id == latest.id)
    return Drawn(design=final, new=new, added=len(fresh), asked=size)


def used_prefix(groups: Mapping[str, Sequence[str]], given: Mapping[str, bool | None]) -> tuple[set[str], int, int]:
    """Each group's longest prefix whose items are all labelled (``given[item]`` True: labelled, False: skipped,
    absent/None: not yet). Returns the items used, the skips among the drawn items, and the labels held back
    behind a gap.

    >>> used_prefix({"a": ["x", "y", "z"]}, {"x": True, "y": False, "z": True})
    ({'x'}, 1, 1)
    """
    used: set[str] = set()
    skipped = waiting = 0
    for items in groups.values():
        gap = False
        for item_id in items:
            state = given.get(item_id)
            skipped += state is False
            if state is True and not gap:
                used.add(item_id)
            elif state is True:
                waiting += 1
            else:
                gap = True
    return used, skipped, waiting
