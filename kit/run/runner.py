"""The runner: the one place that asks an arm and stores what it answered — a task's items (:func:`run_arm`),
or any list of questions (:func:`ask`, which the judge uses) — each response written as it completes.

Responses already in the store (same task, item, model identity, parameters, prompt and epoch, no
error) are served from it: no stored answer is asked for again — also when several
processes run the same questions on one store at once: each question is claimed in the store before it
is asked (:meth:`~kit.run.store.Store.claim`), and a run comes back to questions another run is asking
until they are answered. A run stopped at any point — even by SIGKILL — continues where it stopped; the
calls it had in flight then are asked again (their answers never reached the store, though a provider may
have billed them), and the run that asks them says how many (``RunSummary.maybe_paid_twice``, and its note).

When an arm's endpoint goes down (:class:`~kit.errors.EndpointDown`: its breaker tripped, or its server
process exited) or an error ends the run (a rejected API key, a store that stays locked), no new call
starts, the calls in flight finish and are stored, the run is recorded (``stopped`` or ``interrupted``,
with the reason as its note) and the error is raised to the caller. A paid answer the store cannot take
(another process holds its lock) is kept aside and lands in the store with the next write; a run waits
for the lock up to the store's ``wait_s`` in all, then stops with an error naming who holds it.

Items go to the arm in groups of ``arm.max_batch`` (one call of ``acomplete_many``; 1 for every arm but
a batched llama.cpp arm), ``arm.concurrency`` groups in flight. An item's ``latency_s`` is the time from
the start of its group's call until that item's answer was complete.

>>> with Store("runs/kit.sqlite") as store, get_arm("llama_cpp:smollm2-135m-instruct") as arm:  # doctest: +SKIP
...     summary = run_arm(load_task("snips-intents"), arm, store=store, limit=50)
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kit import __version__
from kit.arms.base import Arm, Completion, Request
from kit.arms.retry import redact
from kit.columns import Col
from kit.errors import BudgetExceeded, ConfigError, EndpointDown, KitError, StoreError
from kit.progress import Progress
from kit.run.budget import Budget
from kit.run.store import Store, StoreBusy, cache_key
from kit.tasks import Item, Task
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, build_request, parse_answer, prompt_hash
from kit.util import run_sync

Withhold = Callable[[Item], "str | None"]
NOTE_CHARS = 300  # a run's note, at most
POLL_S = 0.2  # between two tries of a busy store, and two looks at questions another run is asking


@dataclass(frozen=True)
class Question:
    """One question to ask and store: the item it is about, the request, its cache key, the item itself
    (for the privacy hook; None when there is none) and what to file in the row's ``extra`` besides what
    the arm reports.

    >>> Question(item_id="r1", request=request, key=key, extra={"order": "AB"})   # doctest: +SKIP
    """

    item_id: str
    request: Request
    key: str
    item: Item | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


Parse = Callable[[Question, str], Any]  # a reply's text -> its answer; None when it does not parse


@dataclass
class RunSummary:
    run_id: str
    task: str
    arm: str
    items: int
    new_calls: int = 0
    cached: int = 0
    errors: int = 0
    withheld: int = 0
    reasked: int = 0  # questions asked again because the reply did not parse (``reask``)
    maybe_paid_twice: int = 0  # calls an earlier run had in flight when it was cut off, made again here
    stopped: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # item id -> cache key: exactly the questions asked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _fingerprint() -> dict[str, Any]:
    from kit.models.hardware import fingerprint

    return fingerprint()


def run_arm(task: Task, arm: Arm, *, store: Store, limit: int | None = None, items: Iterable[Item] | None = None,
            epoch: int = 0, budget: Budget | None = None, withhold: Withhold | None = None,
            progress: bool = False, max_tokens: int = 256, label: str | None = None,
            kind: str = "answer", load: int | None = None, variant: PromptVariant = DEFAULT_PROMPT) -> RunSummary:
    """Answer the task's test items (or ``items``) with ``arm``; return counts, the run id and the cache keys.

    ``limit`` takes the first N test items (N >= 1); ``epoch`` (>= 0) numbers deliberate repeats; ``label``
    names the option in progress output. Raises :class:`EndpointDown` when the arm's endpoint goes down.
    ``kind``/``load`` file the rows as something other than an option's answers (``kind="sweep"``,
    ``load=8``: a load-sweep measurement at level 8), under cache keys of their own.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} is not a number of items", where=f"{arm.spec} · {task.name}",
                          fix="give a whole number of at least 1 (--limit 50), or leave it out for every test item")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ConfigError(f"epoch={epoch!r} is not an epoch number", where=f"{arm.spec} · {task.name}",
                          fix="give a whole number of at least 0 (0 is the first run; --epoch 1 repeats it)")
    chosen = list(items) if items is not None else list(task.test)
    chosen = chosen[:limit] if limit is not None else chosen
    identity = arm.identity()
    questions = []
    for item in chosen:
        request = build_request(task, item, variant=variant, max_tokens=max_tokens)
        key = cache_key(task=task.name, item_id=request.item_id, identity=identity, prompt_hash=prompt_hash(request),
                        epoch=epoch, kind=kind, load=load)
        questions.append(Question(item_id=request.item_id, request=request, key=key, item=item))
    options = {"limit": limit, Col.EPOCH: epoch, "max_tokens": max_tokens, "concurrency": arm.concurrency,
               "batch": arm.max_batch, Col.KIND: kind, Col.LOAD: load}
    summary = ask(task, arm, questions, store=store, epoch=epoch, kind=kind, load=load, budget=budget,
                  withhold=withhold, progress=progress, label=label, options=options, hardware=_fingerprint(),
                  parse=lambda _question, text: parse_answer(task, text, variant))
    summary.keys = {q.item_id: q.key for q in questions}
    return summary


def ask(task: Task, arm: Arm, questions: Sequence[Question], *, store: Store, parse: Parse, options: dict[str, Any],
        hardware: dict[str, Any] | None, epoch: int = 0, kind: str = "answer", load: int | None = None,
        reask: int = 0, budget: Budget | None = None, withhold: Withhold | None = None, progress: bool = False,
        label: str | None = None, stage: str = "run", unit: str = "item") -> RunSummary:
    """Ask ``arm`` the ``questions`` not answered in the store yet, as one run recorded in the store; every
    reply is stored under its question's key (``kind``, ``load``, ``epoch`` filed with it).

    ``parse`` turns a reply into its answer; with ``reask`` a reply that does not parse is asked again up
    to that many times (the row keeps the replies and counts them in ``extra["attempts"]``; still none:
    a parse error). ``options`` and ``hardware`` are recorded with the run; ``stage``/``unit`` name the
    work in progress output. Returns the counts (``keys`` is left empty: the questions carry them).

    >>> summary = ask(task, judge_arm, questions, store=store, parse=grade, reask=1, kind="judge",
    ...               options={"kind": "judge"}, hardware=None, stage="judge", unit="question")  # doctest: +SKIP
    """
    identity = arm.identity()
    run_id = store.start_run(task=task.name, arm=arm.spec, identity=identity, hardware=hardware, options=options,
                             kit_version=__version__, n_items=len(questions))
    summary = RunSummary(run_id=run_id, task=task.name, arm=arm.spec, items=len(questions))
    status, note = "finished", None
    in_flight: set[str] = set()  # sent, not answered yet: their claims outlive a run cut off mid-call
    try:
        hits = store.cached(q.key for q in questions)
        summary.cached = sum(q.key in hits for q in questions)
        todo = list({q.key: q for q in questions if q.key not in hits}.values())
        with Progress(f"{label or arm.spec} · {task.name}", total=len(todo), stage=stage, unit=unit, show=progress,
                      detail=f"{summary.cached} from the store" if summary.cached else "") as bar:
            asking = _Asking(task, arm, store=store, run_id=run_id, epoch=epoch, identity=identity, budget=budget,
                             withhold=withhold, summary=summary, parse=parse, reask=reask, bar=bar,
                             filed={Col.KIND: kind, Col.LOAD: load}, in_flight=in_flight)
            run_sync(asking.run(todo))
        if summary.stopped:
            status = "stopped"
    except EndpointDown as exc:
        status, summary.stopped = "stopped", str(exc)
        raise
    except BaseException as exc:
        status, note = "interrupted", run_note(exc)
        raise
    finally:
        store.finish_run(run_id, status=status, n_items=len(questions), new_calls=summary.new_calls,
                         cached=summary.cached, errors=summary.errors,
                         message=note or summary.stopped or repaid_note(summary.maybe_paid_twice),
                         in_flight=in_flight)
    return summary


def repaid_note(count: int) -> str | None:
    """What a run says when it asked again questions an earlier run had in flight when it was cut off
    (Ctrl-C, SIGKILL): those calls may have been paid twice.

    >>> repaid_note(3)
    '3 calls may be paid twice: in flight when an earlier run was cut off'
    """
    if not count:
        return None
    return f"{count} call{'s' if count != 1 else ''} may be paid twice: in flight when an earlier run was cut off"


def run_note(exc: BaseException) -> str:
    """What ended a run, for its note in the store: short, with anything shaped like an API key redacted.

    >>> run_note(KeyboardInterrupt())
    'interrupted by Ctrl-C; run the same command again to continue'
    """
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by Ctrl-C; run the same command again to continue"
    return _short(str(exc) if isinstance(exc, KitError) else f"{type(exc).__name__}: {exc}") or type(exc).__name__


def _short(text: str) -> str:
    """One line of at most NOTE_CHARS, anything shaped like an API key redacted."""
    text = redact(" ".join(text.split()), ()) or ""
    return text if len(text) <= NOTE_CHARS else text[:NOTE_CHARS - 1] + "…"


class _Asking:
    """One run's asking: groups of questions claimed, asked, parsed (and asked again), stored."""

    def __init__(self, task: Task, arm: Arm, *, store: Store, run_id: str, epoch: int, identity: dict[str, Any],
                 budget: Budget | None, withhold: Withhold | None, summary: RunSummary, parse: Parse, reask: int,
                 bar: Progress, filed: dict[str, Any], in_flight: set[str]) -> None:
        self.task, self.arm, self.store, self.run_id, self.epoch = task, arm, store, run_id, epoch
        self.in_flight = in_flight  # cache keys sent and not answered yet
        self.taken_over: set[str] = set()  # claims taken over from a run cut off mid-call (counted when sent)
        self.identity, self.budget, self.withhold, self.summary = identity, budget, withhold, summary
        self.parse, self.reask, self.bar, self.filed = parse, reask, bar, filed
        self.halt: list[KitError] = []  # the first error that ends the run: no new call starts after it
        self.busy_since: float | None = None  # since when this run has found the store locked
        self.later: list[Question] = []  # questions another run is asking: looked at again after this round

    async def run(self, todo: list[Question]) -> None:
        gate = asyncio.Semaphore(max(1, self.arm.concurrency))
        size = max(1, self.arm.max_batch)
        queue = todo
        while True:
            self.later = []
            await asyncio.gather(*(self._group(queue[i:i + size], gate) for i in range(0, len(queue), size)))
            if not self.later or self.halt or self.summary.stopped:
                break
            queue = self.later
            self.bar.advance(0, detail=f"{len(queue)} being asked by another run")
            await asyncio.sleep(POLL_S)
        await self._flush()
        if self.halt:
            raise self.halt[0]

    async def _group(self, questions: list[Question], gate: asyncio.Semaphore) -> None:
        async with gate:
            if self.halt or self.summary.stopped:
                return
            ready = []
            for q in questions:
                reason = self.withhold(q.item) if self.withhold and q.item is not None else None
                if reason:
                    self.summary.withheld += 1
                    self._save(q, Completion(error=f"withheld: {reason}", extra={"withheld": True}), [])
                else:
                    ready.append(q)
            if not ready:
                return
            try:
                claims = await self._locked(lambda: self.store.claim([q.key for q in ready], run_id=self.run_id))
            except StoreError as exc:
                self.halt.append(exc)
                return
            self.summary.cached += len(claims.answered)
            if claims.answered:
                self.bar.advance(len(claims.answered))
            self.later += [q for q in ready if q.key in claims.held]
            self.taken_over.update(claims.taken_over)
            mine = set(claims.mine)
            await self._ask([q for q in ready if q.key in mine])

    async def _ask(self, questions: list[Question]) -> None:
        """Ask, parse, ask again what did not parse (``reask`` times), store each final reply."""
        replies: dict[str, list[str]] = {q.key: [] for q in questions}
        last: dict[str, Completion] = {}  # the reply that did not parse, per question asked again
        for round_ in range(self.reask + 1):
            asked = self._reserve(questions)
            completions = (await self._call(asked) if asked else None) or []
            redo = []
            for q, completion in zip(asked, completions):
                answer = None
                if completion.error is None:
                    replies[q.key].append(completion.text)
                    answer = self.parse(q, completion.text)
                    if answer is None and round_ < self.reask:
                        redo.append((q, completion))
                        continue
                self._save(q, completion, replies[q.key], answer=answer)
            for q in questions[len(completions):]:  # not asked this round: a cap, or the run ends
                if q.key in last:  # its paid reply is kept, marked not final (asked again next run)
                    self._save(q, self._unfinished(last[q.key]), replies[q.key])
            if not redo:
                return
            self.summary.reasked += len(redo)
            last = {q.key: completion for q, completion in redo}
            questions = [q for q, _ in redo]

    def _unfinished(self, completion: Completion) -> Completion:
        why = self.summary.stopped or (str(self.halt[0]) if self.halt else "the run ended")
        return Completion(text=completion.text, prompt_tokens=completion.prompt_tokens,
                          completion_tokens=completion.completion_tokens, latency_s=completion.latency_s,
                          ttft_s=completion.ttft_s, extra=dict(completion.extra),
                          error=_short(f"no parsable answer; asking again was stopped: {why}"))

    def _reserve(self, questions: list[Question]) -> list[Question]:
        """The questions the budget lets through (in order); the first refused stops the run."""
        if self.halt or self.summary.stopped:
            return []
        if self.budget is None:
            return questions
        allowed = []
        for q in questions:
            try:
                self.budget.reserve(q.request)
            except BudgetExceeded as exc:
                self.summary.stopped = str(exc)
                break
            allowed.append(q)
        return allowed

    async def _call(self, questions: list[Question]) -> list[Completion] | None:
        """The arm's completions, in order; None when an error ends the run (it is kept in ``halt``)."""
        keys = [q.key for q in questions]
        self.summary.maybe_paid_twice += sum(k in self.taken_over for k in keys)
        self.taken_over.difference_update(keys)
        self.in_flight.update(keys)  # a cut here (Ctrl-C, SIGKILL) leaves these claims behind
        try:
            completions = await self.arm.acomplete_many([q.request for q in questions])
        except KitError as exc:  # EndpointDown, a rejected key: stop asking, finish what is in flight
            self.in_flight.difference_update(keys)
            self.halt.append(exc)
            return None
        except Exception as exc:  # a backend fault is recorded on the group's questions, and the run goes on
            completions = [Completion(error=f"{type(exc).__name__}: {exc}") for _ in questions]
        self.in_flight.difference_update(keys)
        for completion in completions:
            self.summary.new_calls += 1
            if self.budget is not None:
                self.budget.record(completion)
        return completions

    def _save(self, q: Question, completion: Completion, replies: list[str], *, answer: Any = None) -> None:
        """The one place a row of the store is built."""
        failed = completion.error is not None
        extra = {**completion.extra, **q.extra}
        if self.reask:
            extra[Col.ATTEMPTS] = max(1, len(replies))
            if not failed and answer is None:
                extra["outputs"] = list(replies)
        row = {
            Col.RUN_ID: self.run_id, Col.TASK: self.task.name, Col.ITEM_ID: q.item_id, Col.ARM: self.arm.spec,
            Col.MODEL_IDENTITY: self.identity.get(Col.SHA256) or self.identity.get(Col.MODEL), Col.PARAMS: self.identity,
            Col.PROMPT_HASH: prompt_hash(q.request), Col.EPOCH: self.epoch, Col.OUTPUT: completion.text,
            Col.ANSWER: None if failed else answer, Col.PARSE_ERROR: not failed and answer is None,
            Col.PROMPT_TOKENS: completion.prompt_tokens, Col.COMPLETION_TOKENS: completion.completion_tokens,
            Col.LATENCY_S: completion.latency_s, Col.TTFT_S: completion.ttft_s, Col.CONFIDENCE: completion.confidence,
            Col.ERROR: completion.error, Col.EXTRA: extra or None, **self.filed,
        }
        self.summary.errors += failed or bool(self.reask and answer is None)
        try:
            if self.store.write(q.key, row):
                self.busy_since = None
        except StoreError as exc:  # read-only, disk full: the row is kept aside; no new call starts
            self.halt.append(exc)
        self.bar.advance(detail=f"{self.summary.reasked} retried" if self.reask else "")

    async def _locked(self, attempt: Callable[[], Any]) -> Any:
        """``attempt()`` (a quick store transaction), tried again while another process holds the store's lock
        — without blocking the event loop — until this run has waited the store's ``wait_s`` without once
        getting through."""
        while True:
            try:
                result = attempt()
            except StoreBusy:
                now = time.monotonic()
                self.busy_since = self.busy_since or now
                if now - self.busy_since >= self.store.wait_s:
                    raise self.store.busy_error(waited_s=now - self.busy_since) from None
                await asyncio.sleep(POLL_S)
                continue
            self.busy_since = None
            return result

    async def _flush(self) -> None:
        """Land what was kept aside; a run already ended by the store's lock does not wait again."""
        if not self.store.unwritten():
            return
        stuck = any(isinstance(e, StoreBusy) for e in self.halt)
        try:
            if stuck:
                self.store.flush()
            else:
                await self._locked(self.store.flush)
        except StoreBusy:  # said again with the count of answers kept aside now
            waited = time.monotonic() - self.busy_since if self.busy_since else 0.0
            others = [e for e in self.halt if not isinstance(e, StoreBusy)]
            self.halt[:] = [self.store.busy_error(waited_s=waited), *others]
        except StoreError as exc:
            self.halt.insert(0, exc)
