"""The runner: a task's items through one arm, each response written to the store as it completes.

Responses already in the store (same task, item, model identity, parameters, prompt and epoch, no
error) are served from it: no model call is made twice, no API call is paid twice. A run stopped at
any point — even by SIGKILL — continues where it stopped. When an arm's endpoint goes down
(:class:`~kit.errors.EndpointDown`: its breaker tripped, or its server process exited) the run stops at
once: it is recorded as ``stopped`` with the reason, nothing is stored for the items not answered, and
the error is raised to the caller.

Items go to the arm in groups of ``arm.max_batch`` (one call of ``acomplete_many``; 1 for every arm but
a batched llama.cpp arm), ``arm.concurrency`` groups in flight. An item's ``latency_s`` is the time from
the start of its group's call until that item's answer was complete.

>>> with Store("runs/kit.sqlite") as store, get_arm("llama_cpp:smollm2-135m-instruct") as arm:  # doctest: +SKIP
...     summary = run_arm(load_task("snips-intents"), arm, store=store, limit=50)
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from kit import __version__
from kit.arms.base import Arm, Completion, Request
from kit.errors import BudgetExceeded, ConfigError, EndpointDown, KitError
from kit.progress import Progress
from kit.run.budget import Budget
from kit.tasks.prompts import build_request, prompt_hash
from kit.run.store import Store, cache_key
from kit.tasks import Item, Task
from kit.util import run_sync

Withhold = Callable[[Item], "str | None"]


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
            kind: str = "answer", load: int | None = None) -> RunSummary:
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
    run_id = store.start_run(task=task.name, arm=arm.spec, identity=identity, hardware=_fingerprint(),
                             options={"limit": limit, "epoch": epoch, "max_tokens": max_tokens,
                                      "concurrency": arm.concurrency, "batch": arm.max_batch, "kind": kind,
                                      "load": load}, kit_version=__version__, n_items=len(chosen))
    summary = RunSummary(run_id=run_id, task=task.name, arm=arm.spec, items=len(chosen))
    requests = [build_request(task, item, max_tokens=max_tokens) for item in chosen]
    keys = [cache_key(task=task.name, item_id=r.item_id, identity=identity, prompt_hash=prompt_hash(r), epoch=epoch,
                      kind=kind, load=load) for r in requests]
    summary.keys = {r.item_id: k for r, k in zip(requests, keys)}
    hits = store.cached(keys)
    summary.cached = sum(k in hits for k in keys)
    todo = [(item, req, key) for item, req, key in zip(chosen, requests, keys) if key not in hits]
    status = "finished"
    try:
        run_sync(_answer(task, arm, todo, store=store, run_id=run_id, epoch=epoch, identity=identity,
                         budget=budget, withhold=withhold, summary=summary, progress=progress,
                         label=label or arm.spec, filed={"kind": kind, "load": load}))
        if summary.stopped:
            status = "stopped"
    except EndpointDown as exc:
        status, summary.stopped = "stopped", str(exc)
        raise
    except BaseException:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status=status, n_items=len(chosen), new_calls=summary.new_calls,
                         cached=summary.cached, errors=summary.errors, message=summary.stopped)
    return summary


async def _answer(task: Task, arm: Arm, todo: list[tuple[Item, Request, str]], *, store: Store, run_id: str,
                  epoch: int, identity: dict[str, Any], budget: Budget | None, withhold: Withhold | None,
                  summary: RunSummary, progress: bool, label: str, filed: dict[str, Any]) -> None:
    gate = asyncio.Semaphore(max(1, arm.concurrency))
    down: list[EndpointDown] = []  # the first one stops the run; requests in flight end without a row
    bar = Progress(f"{label} · {task.name}", total=len(todo), stage="run", show=progress,
                   detail=f"{summary.cached} from the store" if summary.cached else "")

    def save(item: Item, request: Request, key: str, completion: Completion) -> None:
        answer = task.type.parse(completion.text) if completion.error is None else None
        store.write(key, {
            "run_id": run_id, "task": task.name, "item_id": item.id, "arm": arm.spec,
            "model_identity": identity.get("sha256") or identity.get("model"), "params": identity,
            "prompt_hash": prompt_hash(request), "epoch": epoch, "output": completion.text, "answer": answer,
            "parse_error": completion.error is None and answer is None, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "latency_s": completion.latency_s,
            "ttft_s": completion.ttft_s, "confidence": completion.confidence, "error": completion.error,
            "extra": completion.extra or None, **filed,
        })
        summary.errors += completion.error is not None
        bar.advance()

    async def group(jobs: list[tuple[Item, Request, str]]) -> None:
        async with gate:
            if down:
                return
            ready = []
            for item, request, key in jobs:
                if summary.stopped:
                    break
                reason = withhold(item) if withhold else None
                if reason:
                    summary.withheld += 1
                    save(item, request, key, Completion(error=f"withheld: {reason}", extra={"withheld": True}))
                    continue
                if budget is not None:
                    try:
                        budget.reserve(request)
                    except BudgetExceeded as exc:
                        summary.stopped = str(exc)
                        break
                ready.append((item, request, key))
            if not ready:
                return
            try:
                completions = await arm.acomplete_many([request for _, request, _ in ready])
            except EndpointDown as exc:
                down.append(exc)
                return
            except KitError:
                raise
            except Exception as exc:  # a backend fault is recorded on the group's items, and the run goes on
                completions = [Completion(error=f"{type(exc).__name__}: {exc}") for _ in ready]
            for (item, request, key), completion in zip(ready, completions):
                summary.new_calls += 1
                if budget is not None:
                    budget.record(completion)
                save(item, request, key, completion)

    size = max(1, arm.max_batch)
    try:
        await asyncio.gather(*(group(todo[i:i + size]) for i in range(0, len(todo), size)))
    finally:
        bar.close()
    if down:
        raise down[0]
