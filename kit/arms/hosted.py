"""What the hosted-API arms share: keys from the environment, endpoint identity, limits, retries.

An API key is read from the environment only and is never part of an arm's identity, description,
errors or store rows. Loopback endpoints (127.0.0.1, localhost, ::1) are identified without their
port, so a stand-in server that picks a fresh port every run is still served from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from kit.arms.base import Arm, Completion, Request
from kit.errors import ArmError
from kit.util import run_sync
from kit.arms.retry import (
    Fault,
    Outcome,
    RateLimiter,
    RetryPolicy,
    classify,
    redact,
    with_retries,
)

LOOPBACK_KEY = "sk-no-key-needed-on-loopback"


@dataclass(frozen=True)
class HostedOptions:
    """Options every hosted arm takes (``-o KEY=VALUE`` or the named ``kit run`` flags)."""

    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 4
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0
    max_attempts: int = 5
    backoff_s: float = 0.5
    temperature: float = 0.0
    structured: str = "auto"  # "auto": constrain answers (labels, JSON schema) where the endpoint allows; "off"
    price_in: float | None = None  # USD per million input tokens (overrides the price table)
    price_out: float | None = None  # USD per million output tokens


def split_options(cls: type, spec: str, options: dict[str, Any]) -> Any:
    """Build the options dataclass ``cls``, with a clear error for unknown names."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ArmError(f"unknown options {unknown} for {spec}", where=spec, fix=f"use any of {sorted(known)}")
    opts = cls(**options)
    if opts.structured not in ("auto", "off"):
        raise ArmError(f"structured={opts.structured!r} is not 'auto' or 'off'", where=spec,
                       fix="write -o structured=auto (default) or -o structured=off")
    return opts


def is_loopback(url: str) -> bool:
    """True for an endpoint on this machine only (127.0.0.0/8, ::1, localhost).

    >>> is_loopback("http://127.0.0.1:8080/v1"), is_loopback("https://api.openai.com/v1")
    (True, False)
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_identity(url: str) -> str:
    """The endpoint as stored in an identity: lower-case, no trailing slash, no port on loopback.

    >>> endpoint_identity("http://127.0.0.1:41873/v1/")
    'http://127.0.0.1/v1'
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    netloc = host if is_loopback(url) or parts.port is None else f"{host}:{parts.port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def resolve_key(*, spec: str, env: str, explicit: bool, loopback: bool) -> str:
    """The key held in environment variable ``env``; a dummy on loopback unless the variable was named."""
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if loopback and not explicit:
        return LOOPBACK_KEY
    raise ArmError(
        f"the environment variable {env} is not set; {spec} needs an API key from it",
        where=spec,
        fix=f"export {env}=... (keys are read from the environment only, never from flags or files), "
            "or name another variable with --api-key-env VAR",
    )


def estimate_tokens(request: Request) -> int:
    """A rough prompt size in tokens (about 4 characters per token, plus a few per message)."""
    chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    return chars // 4 + 4 * len(request.messages) + 2


async def _close_at_loop_end(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


class HostedArm(Arm):
    """Base of the OpenAI-compatible and Anthropic arms: keys, identity, limiter, retries, errors."""

    backend = ""
    default_url = ""
    default_key_env = ""
    options_class: type = HostedOptions

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.spec = f"{self.backend}:{model}"
        self.options = split_options(self.options_class, self.spec, options)
        self.base_url = (self.options.base_url or self.default_url).rstrip("/")
        self.loopback = is_loopback(self.base_url)
        self.hosted = not self.loopback
        self.concurrency = max(1, int(self.options.concurrency))
        self.key_env = self.options.api_key_env or self._default_key_env()
        self._key = resolve_key(spec=self.spec, env=self.key_env, explicit=bool(self.options.api_key_env),
                                loopback=self.loopback)
        self._policy = RetryPolicy(max_attempts=max(1, int(self.options.max_attempts)), base_s=self.options.backoff_s)
        self._limiter = RateLimiter(rpm=self.options.rpm, tpm=self.options.tpm)
        self._client_obj: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._keeper: Any = None

    def __repr__(self) -> str:  # never shows the key
        return f"<{type(self).__name__} {self.spec} at {endpoint_identity(self.base_url)}>"

    # identity and description ------------------------------------------------------------------
    def _default_key_env(self) -> str:
        return self.default_key_env

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "endpoint": endpoint_identity(self.base_url),
                "temperature": self.options.temperature, "structured": self.options.structured}

    @property
    def price_overrides(self) -> tuple[float, float] | None:
        """USD per million (input, output) tokens given as options, else None."""
        o = self.options
        if o.price_in is None and o.price_out is None:
            return None
        return float(o.price_in or 0.0), float(o.price_out or 0.0)

    def describe(self) -> str:
        if self.loopback:
            return f"{self.model} at {self.base_url} (an endpoint on this machine)"
        return f"{self.model} through the {self.backend} API at {urlsplit(self.base_url).hostname} (hosted)"

    # clients: one per event loop (each run_arm has its own loop) ---------------------------------
    async def _client(self) -> Any:
        """This loop's SDK client. It is closed inside its own loop when the loop shuts down: a keeper
        async generator is finalised by ``asyncio.run``'s ``shutdown_asyncgens`` and closes it there."""
        loop = asyncio.get_running_loop()
        if self._client_obj is None or self._client_loop is not loop:
            client = self._make_client()
            self._client_obj, self._client_loop = client, loop
            self._keeper = _close_at_loop_end(client)
            await self._keeper.__anext__()
        return self._client_obj

    def _make_client(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self._client_obj = self._client_loop = self._keeper = None

    # answering -------------------------------------------------------------------------------------
    def complete(self, request: Request) -> Completion:
        """Blocking call; from inside a running event loop (Jupyter) it runs in a helper thread."""
        return run_sync(self.acomplete(request))

    async def acomplete(self, request: Request) -> Completion:
        estimate = estimate_tokens(request) + request.max_tokens
        await self._limiter.acquire(tokens=estimate)
        began = time.perf_counter()
        outcome, notes = await self._call(request)
        if outcome.value is not None:
            completion = outcome.value
        else:
            self._raise_if_fatal(outcome.fault)
            completion = Completion(error=redact(outcome.error, (self._key,)))
        used = None
        if completion.prompt_tokens is not None or completion.completion_tokens is not None:
            used = (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)
        self._limiter.settle(estimated=estimate, used=used)
        completion.extra.update(notes)
        completion.extra["attempts"] = outcome.attempts
        if outcome.attempts > 1 or outcome.faults:
            completion.extra["faults"] = [redact(f, (self._key,)) for f in outcome.faults]
            completion.extra["total_s"] = round(time.perf_counter() - began, 4)
        return completion

    async def _call(self, request: Request) -> tuple[Outcome[Completion], dict[str, Any]]:
        """Run the attempts for one request; subclasses may add fallbacks. Returns (outcome, extra notes)."""
        outcome = await with_retries(lambda: self._timed(request, None), policy=self._policy, classify=classify)
        return outcome, {}

    async def _timed(self, request: Request, plan: Any) -> Completion:
        async with asyncio.timeout(self.options.timeout):
            return await self._attempt(request, plan)

    async def _attempt(self, request: Request, plan: Any) -> Completion:
        raise NotImplementedError

    def _raise_if_fatal(self, fault: Fault | None) -> None:
        """A rejected key or an unknown model would fail every item: stop the run with a clear error."""
        if fault is None or fault.status not in (401, 403, 404):
            return
        if fault.status in (401, 403):
            raise ArmError(f"the endpoint refused the API key from {self.key_env} (HTTP {fault.status})",
                           where=f"{self.spec} at {self.base_url}",
                           fix=f"check the key in {self.key_env} and that it may use {self.model}")
        raise ArmError(f"the endpoint does not know this model or path: {redact(fault.reason, (self._key,))}",
                       where=f"{self.spec} at {self.base_url}",
                       fix="check the model name and --base-url (an OpenAI-compatible URL usually ends in /v1)")
