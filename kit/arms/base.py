"""The one contract every arm follows, and the registry that finds arms by spec string.

An arm answers a :class:`Request` with a :class:`Completion`. The llama.cpp arm, the OpenAI-compatible
arm, the Anthropic arm and the replay arm differ only inside ``complete``.

>>> register_arm("echo", lambda name, **options: EchoArm(f"echo:{name}"))  # doctest: +SKIP
>>> get_arm("echo:hello").complete(Request(item_id="1", messages=[...]))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import difflib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from kit.errors import ArmError


@dataclass(frozen=True)
class Request:
    """One prompt for one item.

    ``choices`` (classification) constrains the answer to one of the labels; ``json_schema``
    (extraction) constrains it to a JSON object of that schema; with neither the text is free.
    """

    item_id: str
    messages: tuple[dict[str, str], ...]
    choices: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 256


@dataclass
class Completion:
    """What an arm returns for one request. ``answer`` is filled by the task's parser (runner)."""

    text: str = ""
    answer: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    confidence: float | None = None  # probability of the chosen answer, when the backend gives it
    error: str | None = None
    model: str | None = None  # model name reported by the backend, if any
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Arm(ABC):
    """A way of answering: a model behind a backend, with fixed generation parameters.

    Subclasses set ``spec`` and implement :meth:`complete` (blocking) or override :meth:`acomplete`
    (non-blocking). ``hosted`` marks arms that send data off the machine (privacy rules use it).

    ``concurrency`` is how many calls the runner keeps in flight; ``max_batch`` how many requests one
    call of :meth:`acomplete_many` answers together (the llama.cpp arm decodes them in one batch). An
    item's latency in a batch is the time from the start of that call until the item's answer was
    complete. ``load_kind`` says what :meth:`set_load` varies for a load sweep: ``"batch"`` (requests
    decoded together in process), ``"concurrency"`` (requests in flight to an endpoint), or None.
    """

    spec: str
    hosted: bool = False
    concurrency: int = 1
    max_batch: int = 1
    load_kind: str | None = None

    @abstractmethod
    def complete(self, request: Request) -> Completion:
        """Answer one request. Backend failures are returned as ``Completion(error=...)``."""

    async def acomplete(self, request: Request) -> Completion:
        """Answer one request without blocking the event loop (default: ``complete`` in a thread)."""
        return await asyncio.to_thread(self.complete, request)

    async def acomplete_many(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer up to ``max_batch`` requests, in order (default: :meth:`acomplete` for each, gathered)."""
        return list(await asyncio.gather(*(self.acomplete(r) for r in requests)))

    def set_load(self, level: int) -> None:
        """Serve ``level`` requests at once from now on: in flight (``load_kind == "concurrency"``) here;
        arms that batch (``"batch"``) override it."""
        if self.load_kind != "concurrency":
            raise ArmError(f"{self.spec} cannot be run at another load", where=self.spec,
                           fix="sweep a llama_cpp:/lora: arm (batch sizes) or an openai: endpoint (concurrency)")
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ArmError(f"load level {level!r} is not a number of requests", where=self.spec,
                           fix="give a whole number of at least 1")
        self.concurrency = level

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What exactly answers: model identity (GGUF sha256 or API model id) and generation params.

        Stored with every response; two runs with equal identities are interchangeable.
        """

    def describe(self) -> str:
        """One line for people: what this arm is."""
        return self.spec

    def close(self) -> None:
        """Release the backend (model memory, HTTP clients)."""

    def __enter__(self) -> "Arm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ArmFactory = Callable[..., Arm]
_REGISTRY: dict[str, ArmFactory] = {}


def register_arm(backend: str, factory: ArmFactory) -> None:
    """Make ``backend:NAME`` specs resolve to ``factory(NAME, **options)``."""
    _REGISTRY[backend] = factory


def registered_backends() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_arm(spec: str, **options: Any) -> Arm:
    """Build the arm a spec string names, e.g. ``llama_cpp:smollm2-135m-instruct``.

    Options are passed to the backend's factory (``n_ctx``, ``base_url``, ``concurrency``…).
    """
    _load_builtin()
    backend, sep, name = spec.partition(":")
    if not sep or not name:
        raise ArmError(
            f"arm spec '{spec}' has no backend prefix",
            fix=f"write BACKEND:MODEL with BACKEND one of {', '.join(sorted(_REGISTRY))}, "
            "e.g. llama_cpp:smollm2-135m-instruct",
        )
    if backend not in _REGISTRY:
        near = difflib.get_close_matches(backend, list(_REGISTRY), n=1)
        hint = f"did you mean '{near[0]}:{name}'? " if near else ""
        raise ArmError(
            f"unknown arm backend '{backend}' in '{spec}'",
            fix=f"{hint}known backends: {', '.join(sorted(_REGISTRY))}",
        )
    return _REGISTRY[backend](name, **options)


def _load_builtin() -> None:
    """Import the built-in arm modules; each registers itself. Heavy imports stay in factories."""
    from kit.arms import BUILTIN_MODULES  # noqa: PLC0415  (import cycle avoided)
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
