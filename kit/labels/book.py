"""The label book: a task's random sample of test items to label, and every label given, in the store.

A team with logged API answers and no gold labels labels a *uniformly random, seeded, recorded* sample of
the task's test items — what prediction-powered estimates need to stay valid. The sample is one seeded
random permutation of the test ids; asking for more items takes a longer prefix of the same permutation
(position k is the same item whatever size was asked for), so an extended sample is still uniformly random.

Each label is a row with who gave it, when (UTC), and how (:class:`Source`). Nothing is deleted: a later
label of an item supersedes an earlier one, an undo marks the row undone, and a skip is a row without a
label (the item stays unlabelled — skipping items on purpose, e.g. the hard ones, biases the estimate).

>>> from kit.run.store import Store
>>> from kit.tasks import load_task
>>> task = load_task("snips-intents")
>>> with Store(":memory:") as store:
...     book = LabelBook(store, task)
...     sample = book.draw(3, seed=7)
...     first = book.next_item()
...     _ = book.give(first.id, task.type.labels[0], who="ana", source=Source.CLI)
...     str(book.progress()), book.next_item().id == sample.order[1]
('1 / 3 labelled', True)
"""

from __future__ import annotations

import difflib
import getpass
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from kit.columns import Col
from kit.errors import ConfigError, TaskError
from kit.labels.design import Design, designs, used_prefix
from kit.run.store import Store, now
from kit.tasks.classification import Classification
from kit.tasks.loading import Task
from kit.tasks.types import Item

SUPPORTED = (Classification,)  # task types whose gold answer is one label of a fixed set
DEFAULT_SEED = 1  # the same in every store, so two stores of one task draw the same sample
LABELLER_ENV = "KIT_LABELLER"  # who labels, when --who is not given


class Source(StrEnum):
    """How a label came in."""

    FORM = "form"      # the notebook's form
    CLI = "cli"        # kit label TASK, interactively
    IMPORT = "import"  # a CSV/JSONL file (kit label TASK --import)
    QUEUE = "queue"    # the disagreements-first reading queue (kit label TASK --queue disagreements)


class Queue(StrEnum):
    """Which items are presented for labelling."""

    SAMPLE = "sample"                # the random sample, in order: the labels the estimates use
    DISAGREEMENTS = "disagreements"  # items the options answered differently, most answers first: for reading


@dataclass(frozen=True)
class Label:
    """One row of the book: ``label`` is None for a skip; ``undone_at`` is set once it was undone."""

    task: str
    item_id: str
    label: str | None
    who: str
    at: str
    source: Source
    undone_at: str | None = None
    row_id: int = field(default=0, compare=False)  # the store's row id (0 before it is written)

    @property
    def skipped(self) -> bool:
        return self.label is None


@dataclass(frozen=True)
class Sample:
    """The drawn sample of the task's active design: test item ids in presentation order (position 1 first),
    the seed, and — for a stratified design — its id and each drawn item's stratum (``groups``: stratum -> its
    drawn items in permutation order; the random design is one group)."""

    task: str
    seed: int
    order: tuple[str, ...]
    design: Design = Design.RANDOM
    design_id: int = 0
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def prefixes(self) -> dict[str, tuple[str, ...]]:
        """Stratum -> its drawn items in the order their prefix is read (the random design: one group)."""
        return dict(self.groups) if self.groups else {str(Design.RANDOM): self.order}


@dataclass(frozen=True)
class Progress:
    """How far the sample's labelling is: items labelled, skipped, the sample's size, and the labels that wait
    behind a skipped (or not yet labelled) item — not used until it is labelled (:mod:`kit.labels.design`).

    >>> str(Progress(labelled=12, skipped=1, size=50, waiting=4))
    '12 / 50 labelled, 1 skipped (4 labels after a gap wait for it: not used until it is labelled)'
    """

    labelled: int
    skipped: int
    size: int
    waiting: int = 0

    def __str__(self) -> str:
        return (f"{self.labelled} / {self.size} labelled" + (f", {self.skipped} skipped" if self.skipped else "")
                + (f" ({self.waiting} labels after a gap wait for it: not used until it is labelled)"
                   if self.waiting else ""))


@dataclass(frozen=True)
class Written:
    """What a write did: rows ``added`` (new labels or changed ones), ``unchanged``, labels of other people it
    ``replaced`` (who -> count), and those it ``kept`` because overwriting was not allowed."""

    rows: tuple[Label, ...]
    added: int
    unchanged: int
    replaced: dict[str, int]
    kept: int


def default_who() -> str:
    """Who labels when not told: ``$KIT_LABELLER``, else the operating system's user name."""
    given = os.environ.get(LABELLER_ENV, "").strip()
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "unknown"


def check_labelling(task: Task) -> tuple[str, ...]:
    """The label set of a task that can be labelled by hand; a clear error for the other task types.

    >>> from kit.tasks import load_task
    >>> check_labelling(load_task("snips-intents"))[:2]
    ('add_to_playlist', 'book_restaurant')
    """
    if not isinstance(task.type, SUPPORTED):
        raise ConfigError(f"task '{task.name}' is of type '{task.kind}': labelling by hand supports "
                          f"{', '.join(kind.kind for kind in SUPPORTED)} tasks (one label of a fixed set per item)",
                          where=str(task.path), fix="label a classification task; for other types put the gold "
                                                    "answers in the task's data file")
    return tuple(task.type.labels)


class LabelBook:
    """A task's labels and labelling sample in a store: draw, give, skip, undo, read.

    Every write is one transaction of the store (waiting for another process's lock up to the store's
    ``wait_s``), so a form and a terminal may label the same task at once.
    """

    def __init__(self, store: Store, task: Task) -> None:
        self.store = store
        self.task = task
        self.labels = check_labelling(task)
        self._test_ids = tuple(item.id for item in task.test)
        self._test = {item.id: item for item in task.test}

    # the sample ------------------------------------------------------------------------------------
    def sample(self) -> Sample | None:
        """The active design's sample (the latest stratified design when one was drawn, else the random
        sample); None before the first draw."""
        stratified = designs(self.store, self.task)
        if stratified:
            d = stratified[-1]
            self._check_ids(d.order)
            return Sample(task=self.task.name, seed=d.seed, order=d.order, design=Design.STRATIFIED, design_id=d.id,
                          groups=tuple((h, tuple(items)) for h, items in d.drawn().items()))
        return self.random_sample()

    def random_sample(self) -> Sample | None:
        """The uniformly random sample drawn so far (None before the first :meth:`draw`)."""
        rows = self.store.db.execute("SELECT item_id, seed FROM label_sample WHERE task=? ORDER BY position",
                                     (self.task.name,)).fetchall()
        if not rows:
            return None
        order = tuple(r[Col.ITEM_ID] for r in rows)
        self._check_ids(order)
        return Sample(task=self.task.name, seed=int(rows[0][Col.SEED]), order=order)

    def _check_ids(self, order: Sequence[str]) -> None:
        gone = [i for i in order if i not in self._test]
        if gone:
            raise TaskError(f"the labelling sample holds {len(gone)} ids that are not test items of the task any more "
                            f"(e.g. '{gone[0]}'): its data or split changed since the sample was drawn",
                            where=f"{self.store.path}, task {self.task.name}",
                            fix="restore the task's data and split, or label the changed task in a new store "
                                "(--store PATH)")

    def draw(self, size: int, *, seed: int | None = None) -> Sample:
        """Draw the sample, or extend it to ``size`` items (earlier positions are kept; a smaller size
        changes nothing). ``seed`` is recorded with the first draw; None uses :data:`DEFAULT_SEED`."""
        population = len(self._test_ids)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"sample size {size!r} is not a whole number of at least 1",
                              fix="ask for e.g. --size 50")
        if size > population:
            raise ConfigError(f"a sample of {size} items is more than the task's {population} test items",
                              where=f"task {self.task.name}", fix=f"ask for at most {population} (--size {population})")
        if designs(self.store, self.task):
            raise ConfigError(f"task '{self.task.name}' is labelled under a stratified design: a random draw now "
                              "would not add to it", where=self.store.path,
                              fix=f"extend the stratified design: kit label {self.task.name} --design stratified "
                                  "--size N")
        with self.store.writing() as db:
            drawn = self.random_sample()
            if drawn is not None and seed is not None and seed != drawn.seed:
                raise ConfigError(f"the sample of task '{self.task.name}' was drawn with seed {drawn.seed}, not {seed}",
                                  where=self.store.path, fix="leave --seed out to extend the recorded sample; "
                                  "to draw another sample, label in a new store (--store PATH)")
            use = drawn.seed if drawn is not None else DEFAULT_SEED if seed is None else int(seed)
            permuted = [self._test_ids[i] for i in np.random.default_rng(use).permutation(population)]
            have = drawn.order if drawn is not None else ()
            if tuple(permuted[:len(have)]) != have:
                raise TaskError("the recorded sample is not the seeded permutation of the task's test items any "
                                "more (their order or the random generator changed)",
                                where=f"{self.store.path}, task {self.task.name}",
                                fix="label this sample without extending it, or draw a new one in a new store "
                                    "(--store PATH)")
            watermark = int(db.execute("SELECT coalesce(max(id), 0) FROM labels WHERE task=?",
                                       (self.task.name,)).fetchone()[0])
            db.executemany("INSERT INTO label_sample(task, position, item_id, seed, drawn_after) VALUES (?,?,?,?,?)",
                           [(self.task.name, position + 1, permuted[position], use, watermark)
                            for position in range(len(have), size)])
        return self.random_sample() or Sample(task=self.task.name, seed=use, order=())

    # reading ---------------------------------------------------------------------------------------
    def history(self) -> list[Label]:
        """Every row of the task's labels, undone ones and skips included, oldest first."""
        rows = self.store.db.execute("SELECT * FROM labels WHERE task=? ORDER BY id", (self.task.name,)).fetchall()
        return [_label(row) for row in rows]

    def current(self) -> dict[str, Label]:
        """Item id -> its latest row not undone (a label, or a skip)."""
        return {row.item_id: row for row in self.history() if row.undone_at is None}

    def drawn_after(self) -> dict[str, int]:
        """Item -> the last label row id when it was first drawn into any design of the task."""
        rows = self.store.db.execute(
            "SELECT item_id, min(drawn_after) AS drawn_after FROM (SELECT item_id, drawn_after FROM label_sample "
            "WHERE task=:t UNION ALL SELECT d.item_id, d.drawn_after FROM label_design_draws d JOIN label_designs g "
            "ON g.id = d.design WHERE g.task=:t) GROUP BY item_id", {"t": self.task.name}).fetchall()
        return {r[Col.ITEM_ID]: int(r[Col.DRAWN_AFTER]) for r in rows}

    def design_labels(self) -> dict[str, Label]:
        """Drawn item -> its latest row (label or skip) not undone that a design may use: given after the item
        was drawn, and not from the disagreements queue (a label on an item the labeller chose is not random)."""
        drawn = self.drawn_after()
        out: dict[str, Label] = {}
        for row in self.history():
            if (row.undone_at is None and row.source is not Source.QUEUE and row.item_id in drawn
                    and row.row_id > drawn[row.item_id]):
                out[row.item_id] = row
        return out

    def used(self) -> tuple[set[str], int, int]:
        """The active sample's labels the estimate uses — each stratum's longest gap-free prefix — with the
        skips among the drawn items and the labels waiting behind a gap (:func:`kit.labels.design.used_prefix`)."""
        sample = self.sample()
        if sample is None:
            return set(), 0, 0
        given = {i: not row.skipped for i, row in self.design_labels().items()}
        return used_prefix(sample.prefixes(), given)

    def next_item(self, queue: Queue = Queue.SAMPLE) -> Item | None:
        """The first item of ``queue`` with neither a label nor a skip (None when none is left); in the sample,
        an item whose only label came from outside the design (the queue, before its draw) is asked again."""
        if queue is Queue.DISAGREEMENTS:
            return next(iter(self.disagreements()), None)
        sample, given = self.sample(), self.design_labels()
        pending = (i for i in (sample.order if sample else ()) if i not in given)
        return next((self._test[i] for i in pending), None)

    def disagreements(self) -> tuple[Item, ...]:
        """Test items not labelled or skipped yet whose options' stored answers differ — most distinct answers
        first, then in test order. A queue for *reading*: its labels outside the random sample are kept
        (counted as ``outside``) but never enter the estimates, which use the random sample alone."""
        frame = self.store.responses(task=self.task.name, epoch=0, item_ids=self._test_ids)
        answers: dict[str, set[str]] = {}
        for item_id, answer in zip(frame[Col.ITEM_ID], frame[Col.ANSWER]):
            answers.setdefault(str(item_id), set()).add(json.dumps(answer, sort_keys=True))
        current = self.current()
        split = [i for i in self._test_ids if len(answers.get(i, ())) > 1 and i not in current]
        return tuple(self._test[i] for i in sorted(split, key=lambda i: -len(answers[i])))

    def progress(self) -> Progress:
        sample, current = self.sample(), self.design_labels()
        order = sample.order if sample else ()
        given = [current[i] for i in order if i in current]
        _, _, waiting = self.used()
        return Progress(labelled=sum(not g.skipped for g in given), skipped=sum(g.skipped for g in given),
                        size=len(order), waiting=waiting)

    def position(self, item_id: str) -> int | None:
        """An item's position in the sample (1 is first), None outside it."""
        sample = self.sample()
        order = sample.order if sample else ()
        return order.index(item_id) + 1 if item_id in order else None

    def answers(self, item_id: str) -> dict[str, Any]:
        """The options' stored answers for an item (arm -> latest answer of epoch 0) — shown only after the
        item is labelled, so they do not sway the label."""
        frame = self.store.responses(task=self.task.name, epoch=0, item_ids=[item_id])
        return {str(arm): answer for arm, answer in zip(frame[Col.ARM], frame[Col.ANSWER])}

    def item(self, item_id: str) -> Item:
        """A test item by id (a clear error for any other id)."""
        problem = self.item_problem(item_id)
        if problem:
            raise ConfigError(problem, where=f"task {self.task.name}",
                              fix="give the id of one of the task's test items")
        return self._test[item_id]

    # checks (each returns what is wrong, or None) -------------------------------------------------------
    def item_problem(self, item_id: str) -> str | None:
        if item_id in self._test:
            return None
        if not item_id:
            return "the id is empty"
        if any(item.id == item_id for item in self.task.train):
            return f"'{item_id}' is a training item; only the task's test items are labelled"
        if any(item.id == item_id for item in self.task.dev):
            return (f"'{item_id}' is a dev item (used for the kit's choices, e.g. the prompt); only the task's test "
                    "items are labelled")
        near = difflib.get_close_matches(item_id, self._test_ids, n=1)
        hint = f" — did you mean '{near[0]}'?" if near else ""
        return f"unknown id '{item_id}': not a test item of task '{self.task.name}'{hint}"

    def nearest_label(self, label: str) -> str | None:
        """The task's label that ``label`` most likely misspells (the same letters in another case first)."""
        folded = [known for known in self.labels if known.casefold() == label.casefold()]
        near = difflib.get_close_matches(label, self.labels, n=1, cutoff=0.5)
        return (folded or near or [None])[0]

    def label_problem(self, label: str) -> str | None:
        if label in self.labels:
            return None
        nearest = self.nearest_label(label)
        hint = f" — did you mean '{nearest}'?" if nearest else ""
        return f"'{label}' is not one of the task's labels{hint} (labels: {', '.join(self.labels)})"

    # writing ---------------------------------------------------------------------------------------
    def give(self, item_id: str, label: str, *, who: str, source: Source) -> Label:
        """Label an item. Giving an item the label it has now writes nothing (and returns that label)."""
        self.item(item_id)
        problem = self.label_problem(label)
        if problem:
            raise ConfigError(problem, where=f"task {self.task.name}, item {item_id}",
                              fix=f"give one of: {', '.join(self.labels)}")
        return self.write([Label(task=self.task.name, item_id=item_id, label=label, who=check_who(who), at=now(),
                                 source=source)])[0]

    def skip(self, item_id: str, *, who: str, source: Source) -> Label:
        """Record a skip: the item stays unlabelled and is not presented again (undo brings it back)."""
        self.item(item_id)
        return self.write([Label(task=self.task.name, item_id=item_id, label=None, who=check_who(who), at=now(),
                                 source=source)])[0]

    def write(self, rows: Sequence[Label]) -> list[Label]:
        """Write checked rows in one transaction: all of them or none. A row equal to its item's current
        label (or skip) is not written again; what each item has now is returned, in order."""
        return list(self.write_counted(rows).rows)

    def write_counted(self, rows: Sequence[Label], *, overwrite: bool = True) -> Written:
        """:meth:`write`, saying what it did: labels added, unchanged, and other people's labels it replaced
        (read inside the same transaction, so a concurrent labeller's labels are counted too). With
        ``overwrite=False`` an item someone else labelled differently keeps that label."""
        out: list[Label] = []
        added = unchanged = kept = 0
        replaced: dict[str, int] = {}
        with self.store.writing() as db:
            current, usable, drawn = self.current(), self.design_labels(), self.drawn_after()
            for row in rows:
                counts = row.source is not Source.QUEUE and row.item_id in drawn
                now_has = usable.get(row.item_id) if counts else current.get(row.item_id)
                if now_has is not None and now_has.label == row.label:
                    out.append(now_has)
                    unchanged += 1
                    continue
                before = current.get(row.item_id)
                theirs = before is not None and not before.skipped and before.label != row.label \
                    and before.who != row.who
                if theirs and not overwrite:
                    out.append(before)
                    kept += 1
                    continue
                if theirs:
                    replaced[before.who] = replaced.get(before.who, 0) + 1
                cursor = db.execute("INSERT INTO labels(task, item_id, label, who, at, source) VALUES (?,?,?,?,?,?)",
                                    (row.task, row.item_id, None if row.label is None else json.dumps(row.label),
                                     row.who, row.at, str(row.source)))
                row = replace(row, row_id=int(cursor.lastrowid or 0))
                current[row.item_id] = row
                if counts:
                    usable[row.item_id] = row
                out.append(row)
                added += 1
        return Written(rows=tuple(out), added=added, unchanged=unchanged, replaced=replaced, kept=kept)

    def undo(self, *, who: str) -> Label | None:
        """Mark undone the last label (or skip) ``who`` gave on this task, never deleting it; that item's
        earlier label, if any, is current again. None when ``who`` has nothing left to undo."""
        with self.store.writing() as db:
            row = db.execute("SELECT * FROM labels WHERE task=? AND who=? AND undone_at IS NULL ORDER BY id DESC "
                             "LIMIT 1", (self.task.name, check_who(who))).fetchone()
            if row is None:
                return None
            at = now()
            db.execute("UPDATE labels SET undone_at=? WHERE id=?", (at, row[Col.ID]))
        return replace(_label(row), undone_at=at)


def check_who(who: str) -> str:
    """A labeller's name, stripped; a clear error for an empty one."""
    name = str(who or "").strip()
    if not name:
        raise ConfigError("who labels is not known", fix=f"pass --who NAME or set {LABELLER_ENV}")
    return name


def _label(row: Any) -> Label:
    return Label(task=row[Col.TASK], item_id=row[Col.ITEM_ID],
                 label=None if row[Col.LABEL] is None else json.loads(row[Col.LABEL]), who=row[Col.WHO],
                 at=row[Col.AT], source=Source(row[Col.SOURCE]), undone_at=row[Col.UNDONE_AT], row_id=int(row[Col.ID]))
