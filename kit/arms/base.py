"""The one contract every arm follows: an arm answers a :class:`Request` with a :class:`Completion`.

The llama.cpp arm, the OpenAI-compatible arm, the Anthropic arm and the replay arm differ only inside
``complete``. Backends are found by :mod:`kit.arms.registry`; their options are typed schemas
(:mod:`kit.arms.options`).

>>> get_arm("echo:hello").complete(Request(item_id="1", messages=[...]))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

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


CHARS_PER_TOKEN = 4
"""The estimate used where no tokenizer or server count is at hand: about 4 characters per token (OpenAI's rule
of thumb for English text); every figure built on it is marked as estimated."""


def estimate_tokens(request: Request) -> int:
    """A rough prompt size in tokens: :data:`CHARS_PER_TOKEN` characters per token, plus a few per message.

    >>> estimate_tokens(Request(item_id="1", messages=({"role": "user", "content": "x" * 400},)))
    106
    """
    chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    return chars // CHARS_PER_TOKEN + 4 * len(request.messages) + 2


def estimate_text_tokens(text: str) -> int:
    """A rough size of an answer in tokens (:data:`CHARS_PER_TOKEN` characters each, rounded up).

    >>> estimate_text_tokens("play_music"), estimate_text_tokens("")
    (3, 0)
    """
    return -(-len(text) // CHARS_PER_TOKEN)  # rounded up: a short answer is a token


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
