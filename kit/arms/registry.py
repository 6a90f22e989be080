"""The arm backends: found through the ``kit.arms`` entry-point group, the kit's own included.

A backend is a :class:`Backend` record: its name (the part of a spec before ``:``), a factory that builds an
arm, its options' schema (:class:`~kit.arms.options.ArmOptions`) and what the rest of the kit may ask of it
without building an arm. A package adds one by declaring an entry point that names its record — no file of
the kit changes::

    # the plugin's pyproject.toml
    [project.entry-points."kit.arms"]
    echo = "kit_echo:BACKEND"

An entry point is loaded only when a spec names its backend (a broken plugin does not stop the others).
:func:`register_arm` adds a backend for this process only (a notebook, a test).

>>> backend_of("llama_cpp:smollm2-135m-instruct").models("smollm2-135m-instruct")
['smollm2-135m-instruct']
>>> check_options("llama_cpp:smollm2-135m-instruct", {"n_ctx": -1})
Traceback (most recent call last):
kit.errors.ConfigError: llama_cpp:smollm2-135m-instruct: option n_ctx=-1 must be at least 1. Fix: write e.g. -o n_ctx=4096
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kit.arms.base import Arm
from kit.arms.options import CLI_STYLE, ArmOptions, NoOptions, parse_options
from kit.errors import ArmError
from kit.plugins import load_entry_point

GROUP = "kit.arms"
"""The entry-point group arm backends are declared in."""

ArmFactory = Callable[..., Arm]


def _no_models(name: str) -> list[str]:
    return []


@dataclass(frozen=True)
class Backend:
    """A backend and what the rest of the kit may ask of it without building an arm.

    ``factory(NAME, **options)`` builds the arm of ``backend:NAME``. ``options``: the schema its options are
    checked against before any work (the arm checks them again with the same schema). ``in_process``: its model
    runs inside this process (self-hosted by nature). ``models(NAME)``: the GGUF models (catalog ids or paths)
    behind ``backend:NAME``, for the manifest's sha256 and the decoding ceiling.

    Whether answers carry a confidence is not declared: it depends on the endpoint (an OpenAI-compatible server
    may or may not send logprobs), so a cascade reads the confidences the answers actually carry.

    ==========  ==========  ======================  =====================
    backend     in_process  options                 models(NAME)
    ==========  ==========  ======================  =====================
    llama_cpp   yes         LlamaOptions            [NAME]
    lora        yes         LoraOptions             [BASE of BASE+ADAPTER]
    openai      no          OpenAIOptions           []
    anthropic   no          AnthropicOptions        []
    replay      no          NoOptions               []
    ==========  ==========  ======================  =====================
    """

    name: str
    factory: ArmFactory
    options: type[ArmOptions] = NoOptions
    in_process: bool = False
    models: Callable[[str], list[str]] = _no_models


_REGISTERED: dict[str, Backend] = {}  # register_arm: this process only
_LOADED: dict[str, Backend] = {}  # entry points loaded so far
_FOUND: dict[str, importlib.metadata.EntryPoint] | None = None


def register_arm(backend: str, factory: ArmFactory, *, options: type[ArmOptions] = NoOptions,
                 in_process: bool = False, models: Callable[[str], list[str]] = _no_models) -> Backend:
    """Make ``backend:NAME`` specs resolve to ``factory(NAME, **options)`` in this process (a package declares
    an entry point instead, see the module's docstring). Returns the record.

    >>> register_arm("echo", EchoArm, options=EchoOptions)          # doctest: +SKIP
    """
    record = Backend(backend, factory, options=options, in_process=in_process, models=models)
    _REGISTERED[backend] = record
    return record


def unregister_arm(backend: str) -> None:
    """Forget a backend :func:`register_arm` added."""
    _REGISTERED.pop(backend, None)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    global _FOUND
    if _FOUND is None:
        _FOUND = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    return _FOUND


def registered_backends() -> list[str]:
    """The names of every backend: installed packages' entry points and this process's :func:`register_arm`.

    >>> {"llama_cpp", "lora", "openai", "anthropic", "replay"} <= set(registered_backends())
    True
    """
    return sorted(set(_entry_points()) | set(_REGISTERED))


def _load(name: str) -> Backend | None:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _LOADED:
        return _LOADED[name]
    point = _entry_points().get(name)
    if point is None:
        return None
    record = load_entry_point(point, record=Backend, what="arm backend", group=GROUP, error=ArmError)
    _LOADED[name] = record
    return record


def backend_of(spec: str) -> Backend:
    """The backend a spec names, e.g. ``backend_of("lora:m+a.gguf").in_process`` is True."""
    backend, sep, name = spec.partition(":")
    known = registered_backends()
    if not known:
        raise ArmError("no arm backend is installed (the kit's own are declared as entry points)",
                       fix="install the kit into this environment: pip install -e .")
    if not sep or not name:
        raise ArmError(f"arm spec '{spec}' has no backend prefix",
                       fix=f"write BACKEND:MODEL with BACKEND one of {', '.join(known)}, "
                           "e.g. llama_cpp:smollm2-135m-instruct")
    record = _load(backend)
    if record is None:
        near = difflib.get_close_matches(backend, known, n=1)
        hint = f"did you mean '{near[0]}:{name}'? " if near else ""
        raise ArmError(f"unknown arm backend '{backend}' in '{spec}'", fix=f"{hint}known backends: {', '.join(known)}")
    return record


def check_options(spec: str, options: Mapping[str, Any], *, style: str = CLI_STYLE) -> ArmOptions:
    """The options of arm ``spec`` checked against its backend's schema, and the checks a run needs before it
    starts (an ``api_key_env`` naming a variable that is not set): what the experiment check and ``kit plan``
    ask before any work. ``style`` writes an option in a fix (``{name}: {value}`` for an experiment file).

    >>> check_options("openai:gpt-4o-mini", {"concurrency": "lots"})
    Traceback (most recent call last):
    kit.errors.ConfigError: openai:gpt-4o-mini: option concurrency='lots' is not a whole number. Fix: write e.g. -o concurrency=4
    """
    return parse_options(backend_of(spec).options, spec, options, style=style)


def get_arm(spec: str, **options: Any) -> Arm:
    """Build the arm a spec string names, e.g. ``llama_cpp:smollm2-135m-instruct``.

    Options are passed to the backend's factory (``n_ctx``, ``base_url``, ``concurrency``…), which checks them
    with the backend's schema.
    """
    return backend_of(spec).factory(spec.partition(":")[2], **options)
