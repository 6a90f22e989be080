"""Retries and rate limits for calls to hosted APIs.

:func:`with_retries` runs one attempt after another: exponential backoff with jitter on 429, 5xx,
timeouts and dropped connections, honouring ``Retry-After``; a capped number of attempts. What still
fails comes back as an :class:`Outcome` with ``error`` set, so the arm records it on that item and the
run goes on. The SDKs' own retries are switched off (``max_retries=0``) so that this policy is the one
that runs. :class:`RateLimiter` spaces requests (``rpm``) and tokens (``tpm``) over each minute.

A :class:`Breaker` stops an arm whose endpoint is down instead of spending every item's retries on it:
connection failures (refused, reset, dropped — not 429 or 5xx, which keep the policy above) are counted
over all of the arm's requests, and ``threshold`` of them in a row trip it; a ``watch`` callable that
reports the exit of the server process behind the endpoint trips it at the first failure.

>>> policy = RetryPolicy(max_attempts=3, base_s=0.0)
>>> asyncio.run(with_retries(lambda: asyncio.sleep(0, result="ok"), policy=policy)).value
'ok'
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Waits grow as ``base_s * 2**(attempt-1)``, capped at ``cap_s``,
    scaled by a random factor in ``[1 - jitter, 1]``; a server's ``Retry-After`` is honoured up to
    ``max_retry_after_s``."""

    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 20.0
    jitter: float = 0.5
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), without Retry-After."""
        raw = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return raw * (1 - self.jitter * (rng or random).random())


@dataclass(frozen=True)
class Fault:
    """What a failed attempt means: whether to retry it, in words, and the server's Retry-After."""

    retry: bool
    reason: str
    status: int | None = None
    retry_after: float | None = None
    connection: bool = False  # the endpoint was not reached, or the connection dropped (counts for the breaker)


@dataclass
class Outcome(Generic[T]):
    """The result of :func:`with_retries`: ``value`` or ``error``, with how many attempts it took."""

    value: T | None = None
    error: str | None = None
    fault: Fault | None = None
    exception: BaseException | None = None
    attempts: int = 0
    waited_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    tripped: bool = False  # the breaker stopped the attempts: the endpoint is down, the item is not answered


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` (or ``retry-after-ms``) header asks for; None when absent or unreadable.

    >>> retry_after_seconds({"retry-after": "2"})
    2.0
    """
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, ValueError, TypeError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> Fault:
    """Sort an exception from the openai/anthropic SDKs (or httpx, or asyncio) into retry or not.

    Works by duck typing (``status_code``, ``response.headers``, class names), so neither SDK is imported.
    """
    names = _class_names(exc)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        after = retry_after_seconds(getattr(response, "headers", None))
        message = _status_message(exc, status)
        return Fault(retry=status in RETRY_STATUS, reason=message, status=status, retry_after=after)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or names & {"APITimeoutError", "TimeoutException"}:
        return Fault(retry=True, reason="timed out")
    if isinstance(exc, ConnectionError) or names & {"APIConnectionError", "TransportError", "NetworkError",
                                                     "RemoteProtocolError", "IncompleteStream"}:
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return Fault(retry=True, reason=f"connection failed or dropped{detail}", connection=True)
    if isinstance(exc, ValueError) or names & {"APIResponseValidationError"}:  # JSONDecodeError is a ValueError
        return Fault(retry=True, reason=f"unreadable response ({type(exc).__name__}: {str(exc)[:120]})")
    return Fault(retry=False, reason=f"{type(exc).__name__}: {str(exc)[:300]}")


def _status_message(exc: BaseException, status: int) -> str:
    body = getattr(exc, "body", None)
    detail = ""
    if isinstance(body, dict):
        err = body.get("error", body)
        detail = str(err.get("message", err) if isinstance(err, dict) else err)
    elif body:
        detail = str(body)
    else:
        detail = str(getattr(exc, "message", "") or "")
    detail = re.sub(r"\s+", " ", detail).strip()[:300]
    return f"HTTP {status}" + (f": {detail}" if detail else "")


class IncompleteStream(Exception):
    """A stream ended before the server said it was finished (a dropped or cut connection)."""


Watch = Callable[[], "str | None"]
"""Asked when a connection fails: a notice when the process behind the endpoint has exited, else None."""


class Breaker:
    """Trips when an endpoint is down, so an arm stops instead of retrying every item against it.

    :meth:`failure` counts a connection failure (over all requests of the arm, in any order); ``threshold``
    of them in a row trip the breaker (0: never by count). Any answer from the server — a success or an
    HTTP status, even 429 or 500 — starts the count again (:meth:`answered`). ``watch``, when given, is
    asked at every connection failure, before any retry: a notice from it (the server process exited)
    trips the breaker at once. Once tripped it stays tripped; ``notice`` says why, ``exited`` whether the
    process died.

    >>> breaker = Breaker(threshold=2)
    >>> breaker.failure("refused"); breaker.tripped
    False
    >>> breaker.failure("refused"); breaker.notice
    '2 connection attempts in a row failed (last: refused)'
    """

    def __init__(self, threshold: int = 3, *, watch: Watch | None = None) -> None:
        self.threshold, self.watch = threshold, watch
        self.failures = 0
        self.notice: str | None = None
        self.exited = False

    @property
    def tripped(self) -> bool:
        return self.notice is not None

    def answered(self) -> None:
        """The server answered (success or HTTP status): it is up."""
        self.failures = 0

    def failure(self, reason: str) -> None:
        """A connection attempt failed (refused, reset, dropped); may trip the breaker."""
        if self.tripped:
            return
        self.failures += 1
        exited = self.watch() if self.watch is not None else None
        if exited:
            self.notice, self.exited = exited, True
        elif self.threshold and self.failures >= self.threshold:
            self.notice = f"{self.failures} connection attempts in a row failed (last: {reason})"

    def attempts_for(self, fault: Fault, max_attempts: int) -> int:
        """How many attempts an item may take: a connection failure goes on until the breaker decides, so no
        item gives up (and is stored as an error) merely because the server was down."""
        return max(max_attempts, self.threshold) if fault.connection and self.threshold else max_attempts


async def with_retries(attempt: Callable[[], Awaitable[T]], *, policy: RetryPolicy,
                       classify: Callable[[BaseException], Fault] = classify,
                       rng: random.Random | None = None, breaker: Breaker | None = None) -> Outcome[T]:
    """Call ``attempt()`` until it succeeds, a fault is not retryable, attempts run out, or ``breaker`` trips.

    Exceptions become ``Outcome.error`` (never raised), except cancellation and KitError-type problems
    that ``classify`` is not asked about (BaseException that is not Exception). A tripped breaker ends the
    attempts at once with ``Outcome.tripped`` set (its notice as the error), also when another request
    tripped it while this one waited.
    """
    outcome: Outcome[T] = Outcome()
    number = 0
    while True:
        if breaker is not None and breaker.tripped:
            outcome.tripped, outcome.error = True, breaker.notice
            return outcome
        number += 1
        outcome.attempts = number
        try:
            outcome.value = await attempt()
            outcome.error = outcome.fault = outcome.exception = None
            if breaker is not None:
                breaker.answered()
            return outcome
        except Exception as exc:  # noqa: BLE001 — every fault is sorted, recorded, never lost
            fault = classify(exc)
            outcome.fault, outcome.exception = fault, exc
            outcome.faults.append(fault.reason)
            outcome.error = fault.reason
            limit = policy.max_attempts
            if breaker is not None:
                if fault.connection:
                    breaker.failure(fault.reason)
                elif fault.status is not None:
                    breaker.answered()
                if breaker.tripped:
                    continue
                limit = breaker.attempts_for(fault, limit)
            if not fault.retry or number >= max(1, limit):
                break
            wait = policy.backoff(number, rng)
            if fault.retry_after is not None:
                wait = max(wait, min(fault.retry_after, policy.max_retry_after_s))
            outcome.waited_s += wait
            await asyncio.sleep(wait)
    if outcome.fault is not None and outcome.fault.retry:
        outcome.error = f"{outcome.fault.reason} (gave up after {outcome.attempts} attempts)"
    return outcome


class RateLimiter:
    """Requests per minute and tokens per minute, as spacing between request starts.

    ``rpm`` lets a request start every ``60/rpm`` seconds; ``tpm`` is a bucket of one minute's tokens that
    refills continuously (a request takes its estimate, :meth:`settle` gives back what it did not use).
    Use within one event loop; no lock is needed because slots are taken without awaiting.

    >>> limiter = RateLimiter(rpm=6000)
    >>> asyncio.run(limiter.acquire(tokens=10))
    """

    def __init__(self, *, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._next_slot = 0.0
        self._level = float(tpm or 0)
        self._stamp = time.monotonic()

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    async def acquire(self, *, tokens: int = 0) -> None:
        now = time.monotonic()
        wait = 0.0
        if self.rpm:
            slot = max(now, self._next_slot)
            self._next_slot = slot + 60.0 / self.rpm
            wait = slot - now
        if self.tpm:
            rate = self.tpm / 60.0
            self._level = min(float(self.tpm), self._level + (now - self._stamp) * rate)
            self._stamp = now
            self._level -= min(tokens, self.tpm)
            if self._level < 0:
                wait = max(wait, -self._level / rate)
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, *, estimated: int, used: int | None) -> None:
        """Give back (or take) the difference between the estimate and the tokens the call really used."""
        if self.tpm and used is not None:
            self._level = min(float(self.tpm), self._level + min(estimated, self.tpm) - used)


def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """``text`` with every secret (and anything shaped like an API key) replaced by ``[redacted]``.

    >>> redact("bad key sk-abcdef1234567890", ())
    'bad key [redacted]'
    """
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return re.sub(r"\b(sk|key|pk)-[A-Za-z0-9_\-*.]{6,}", "[redacted]", text)
