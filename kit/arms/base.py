"""The one contract every arm follows, and the registry that finds arms by spec string.

An arm answers a :class:`Request` with a :class:`Completion`. The llama.cpp arm, the OpenAI-compatible
arm, the Anthropic arm and the replay arm differ only inside ``complete``.

>>> register_arm("echo", lambda name, **options: EchoArm(f"echo:{name}"))  # doctest: +SKIP
>>> get_arm("echo:hello").complete(Request(item_id="1", messages=[...]))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections.abc
import difflib
import math
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable, Sequence

from kit.errors import ArmError, ConfigError


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


O = typing.TypeVar("O")


def build_options(cls: type[O], spec: str, options: dict[str, Any]) -> O:
    """The options dataclass ``cls`` of arm ``spec`` from ``options``, every value checked by its annotation.

    One rule for every arm: a name the arm does not take is an :class:`ArmError` that lists the names it
    does take; a value of the wrong type (``n_ctx="abc"``, ``temperature=[1, 2]``) or outside its field's
    ``metadata`` bounds (``{"min": 1}``, ``{"above": 0}``, ``{"choices": (...)}``) is a :class:`ConfigError` naming the option
    and an example. A whole number is accepted where a number (float) is asked for.

    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     n_ctx: int = field(default=4096, metadata={"min": 1})
    >>> build_options(Opts, "llama_cpp:x", {"n_ctx": 2048}).n_ctx
    2048
    >>> build_options(Opts, "llama_cpp:x", {"n_ctx": "abc"})
    Traceback (most recent call last):
    kit.errors.ConfigError: llama_cpp:x: option n_ctx='abc' is not a whole number. Fix: write e.g. -o n_ctx=4096
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(known))
    if unknown:
        backend = spec.partition(":")[0]
        near = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        names = ", ".join(sorted(known)) if known else "none (everything comes from the spec)"
        raise ArmError(f"unknown {backend} option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}", where=spec,
                       fix=f"{hint}the options {backend} arms take: {names}")
    hints = typing.get_type_hints(cls)
    checked: dict[str, Any] = {}
    for name, value in options.items():
        f = known[name]
        example = f.default if f.default is not MISSING and f.default is not None else None
        fix = f"write e.g. -o {name}={_shown(example)}" if example is not None else f"see the arm's options for {name}"
        ok, value = _fits(value, hints[name])
        if not ok:
            raise ConfigError(f"option {name}={value!r} is not {_describe(hints[name])}", where=spec, fix=fix)
        low, above, choices = f.metadata.get("min"), f.metadata.get("above"), f.metadata.get("choices")
        if low is not None and value is not None and value < low:
            raise ConfigError(f"option {name}={value!r} must be at least {low}", where=spec, fix=fix)
        if above is not None and value is not None and value <= above:
            raise ConfigError(f"option {name}={value!r} must be above {above}", where=spec, fix=fix)
        if choices is not None and value not in choices:
            raise ConfigError(f"option {name}={value!r} is not one of {', '.join(map(repr, choices))}", where=spec,
                              fix=f"write -o {name}={choices[0]}")
        checked[name] = value
    return cls(**checked)


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fits(value: Any, hint: Any) -> tuple[bool, Any]:
    """(True, the value, a whole number turned float where a float is asked) when ``value`` fits ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, out = _fits(value, arg)
            if ok:
                return True, out
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return fits, float(value) if fits else value
    if hint is str:
        return isinstance(value, str), value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, value
        return all(_fits(v, args[1])[0] for v in value.values()) if args else True, value
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value), value
    return isinstance(value, hint) if isinstance(hint, type) else True, value


def _describe(hint: Any) -> str:
    """Words for a type: ``int | None`` -> 'a whole number (or none)'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + (" (or none)" if type(None) in args else "")
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    if hint in words:
        return words[hint]
    if origin is dict:
        return "a mapping of names to values"
    if origin is collections.abc.Callable:
        return "a function"
    return getattr(hint, "__name__", str(hint))


ArmFactory = Callable[..., Arm]


def _no_models(name: str) -> list[str]:
    return []


@dataclass(frozen=True)
class Backend:
    """A registered backend and what the rest of the kit may ask of it without building an arm.

    ``in_process``: its model runs inside this process (self-hosted by nature). ``gives_confidence``: every answer
    it gives carries the chosen answer's probability (what a cascade routes on) — a promise, so a backend whose
    answers carry one only sometimes (``openai``: where the endpoint sends logprobs; ``replay``: where the file
    has the column) declares False, and a cascade reads the confidences the answers actually carry.
    ``models(NAME)``: the GGUF models (catalog ids or paths) behind ``backend:NAME``, for the manifest's sha256
    and the decoding ceiling. A new backend needs only its own module that calls :func:`register_arm`.

    ==========  ==========  ================  =====================
    backend     in_process  gives_confidence  models(NAME)
    ==========  ==========  ================  =====================
    llama_cpp   yes         yes               [NAME]
    lora        yes         yes               [BASE of BASE+ADAPTER]
    openai      no          no (sometimes)    []
    anthropic   no          no                []
    replay      no          no (sometimes)    []
    ==========  ==========  ================  =====================
    """

    name: str
    factory: ArmFactory
    in_process: bool = False
    gives_confidence: bool = False
    models: Callable[[str], list[str]] = _no_models


_REGISTRY: dict[str, Backend] = {}


def register_arm(backend: str, factory: ArmFactory, *, in_process: bool = False, gives_confidence: bool = False,
                 models: Callable[[str], list[str]] = _no_models) -> None:
    """Make ``backend:NAME`` specs resolve to ``factory(NAME, **options)``, with the backend's capabilities."""
    _REGISTRY[backend] = Backend(backend, factory, in_process=in_process, gives_confidence=gives_confidence,
                                 models=models)


def registered_backends() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def backend_of(spec: str) -> Backend:
    """The registered backend a spec names, e.g. ``backend_of("lora:m+a.gguf").in_process`` is True.

    >>> backend_of("llama_cpp:smollm2-135m-instruct").models("smollm2-135m-instruct")
    ['smollm2-135m-instruct']
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
    return _REGISTRY[backend]


def get_arm(spec: str, **options: Any) -> Arm:
    """Build the arm a spec string names, e.g. ``llama_cpp:smollm2-135m-instruct``.

    Options are passed to the backend's factory (``n_ctx``, ``base_url``, ``concurrency``…).
    """
    return backend_of(spec).factory(spec.partition(":")[2], **options)


# Each module registers its backend(s) on import; heavy libraries are imported inside factories.
BUILTIN_MODULES: tuple[str, ...] = (
    "kit.arms.llama_cpp", "kit.arms.lora", "kit.arms.openai_compat", "kit.arms.anthropic_arm", "kit.arms.replay",
)


def _load_builtin() -> None:
    """Import the built-in arm modules; each registers itself. Heavy imports stay in factories."""
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
