"""Retries and rate limits for calls to hosted APIs.

:func:`with_retries` runs one attempt after another: exponential backoff with jitter on 429, 5xx,
timeouts and dropped connections, honouring ``Retry-After``; a capped number of attempts. What still
fails comes back as an :class:`Outcome` with ``error`` set, so the arm records it on that item and the
run goes on. The SDKs' own retries are switched off (``max_retries=0``) so that this policy is the one
that runs. :class:`RateLimiter` spaces requests (``rpm``) and tokens (``tpm``) over each minute.

Each attempt has a time limit (``timeout_s``) and each item a :class:`Deadline` over all of its attempts and
waits: no item takes longer, however many attempts are left or however long a ``Retry-After`` asks for.

A :class:`Breaker` stops an arm whose endpoint is down instead of spending every item's retries on it:
connection failures (refused, reset, dropped) and attempts that got no answer in time (a hung server) —
not 429 or 5xx, which keep the policy above — are counted over all of the arm's requests, and
``threshold`` of them in a row trip it; a ``watch`` callable that reports the exit of the server process
behind the endpoint trips it at the first failure. A complete HTTP 200 reply that is not the API's JSON is not
a transient fault: it is retried once at most, and ``threshold`` such replies in a row trip the breaker too,
which then names the reply, not the connection.

>>> policy = RetryPolicy(max_attempts=3, base_s=0.0)
>>> asyncio.run(with_retries(lambda: asyncio.sleep(0, result="ok"), policy=policy)).value
'ok'
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
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
    timeout: bool = False  # no answer within the attempt's time limit (counts for the breaker too)
    # a complete reply that cannot be read as the API's (HTTP 200, body not JSON): not transient, so retried once
    # at most and counted by the breaker, which stops the arm naming the reply
    reply: bool = False


@dataclass(frozen=True)
class Deadline:
    """The time one item may take over all of its attempts and the waits between them.

    >>> deadline = Deadline.start(180.0)
    >>> 179.0 < deadline.left() <= 180.0
    True
    """

    at: float  # time.monotonic() when it passes
    seconds: float

    @classmethod
    def start(cls, seconds: float) -> Deadline:
        return cls(at=time.monotonic() + seconds, seconds=seconds)

    def left(self) -> float:
        """Seconds left (0 once it has passed)."""
        return max(0.0, self.at - time.monotonic())


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
    out_of_time: bool = False  # the item's deadline ended the attempts


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
    if isinstance(exc, NotJSON):  # the server answered; asking again gets the same page
        return Fault(retry=False, reason=str(exc), status=200)
    if isinstance(exc, UnreadableReply):
        return Fault(retry=True, reason=str(exc), reply=True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or names & {"APITimeoutError", "TimeoutException"}:
        return Fault(retry=True, reason="timed out", timeout=True)
    if isinstance(exc, ConnectionError) or names & {"APIConnectionError", "TransportError", "NetworkError",
                                                     "RemoteProtocolError", "IncompleteStream"}:
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return Fault(retry=True, reason=f"connection failed or dropped{detail}", connection=True)
    if isinstance(exc, ValueError) or names & {"APIResponseValidationError"}:  # JSONDecodeError is a ValueError
        return Fault(retry=True, reason=f"answered with a reply that is not the API's JSON ({type(exc).__name__}: "
                                        f"{str(exc)[:120]})", reply=True)
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


class NotJSON(Exception):
    """The server answered HTTP 200 with something other than the API's JSON: an HTML page (a captive portal,
    a proxy's login page, a web UI at the wrong path) or another kind of body."""


NOT_JSON_FIX = "is base_url the API's /v1 endpoint?"


class UnreadableReply(Exception):
    """The server answered (HTTP 200) with a complete reply whose body is not the API's JSON (a stream's data
    lines included). Asking again usually gets the same: retried once at most, counted by the breaker."""


def check_json_answer(content_type: str | None, *, body: str | None = None) -> None:
    """Raise :class:`NotJSON` when an HTTP 200 answer is an HTML page, or (``body`` given: a body the SDK could
    not read as JSON) anything else that is not JSON. A stream's body is not read here: only an HTML one is
    refused, by its content type.

    >>> check_json_answer("text/event-stream; charset=utf-8")
    >>> check_json_answer("text/html; charset=utf-8")
    Traceback (most recent call last):
    kit.arms.retry.NotJSON: answered HTTP 200 with an HTML page, not JSON: is base_url the API's /v1 endpoint?
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    start = (body or "").lstrip()[:15].lower()
    if "html" in kind or start.startswith(("<!doctype html", "<html")):
        raise NotJSON(f"answered HTTP 200 with an HTML page, not JSON: {NOT_JSON_FIX}")
    if body is not None:
        shown = kind or "no content type"
        raise NotJSON(f"answered HTTP 200 with a body of {shown} ({body.strip()[:60]!r}), not JSON: {NOT_JSON_FIX}")


Watch = Callable[[], "str | None"]
"""Asked when a connection fails: a notice when the process behind the endpoint has exited, else None."""


class Breaker:
    """Trips when an endpoint is down, so an arm stops instead of retrying every item against it.

    :meth:`failure` counts a connection failure or an attempt that got no answer in time (``timeout=True``),
    over all requests of the arm, in any order; ``threshold`` of them in a row trip the breaker (0: never by
    count). Any answer from the server — a success or an HTTP status, even 429 or 500 — starts the count
    again (:meth:`answered`). ``watch``, when given, is asked at every failure, before any retry: a notice
    from it (the server process exited) trips the breaker at once. Once tripped it stays tripped; ``notice``
    says why, ``exited`` whether the process died. Attempts still in flight when it trips (their time limits
    :meth:`hold`) end at once instead of waiting out their timeouts.

    >>> breaker = Breaker(threshold=2)
    >>> breaker.failure("refused"); breaker.tripped
    False
    >>> breaker.failure("refused"); breaker.notice
    '2 connection attempts in a row failed (last: refused)'
    >>> hung = Breaker(threshold=2)
    >>> hung.failure("no answer within 60 s", timeout=True); hung.failure("no answer within 60 s", timeout=True)
    >>> hung.notice
    '2 attempts in a row got no answer in time (last: no answer within 60 s)'

    :meth:`unreadable` counts complete replies that are not the API's JSON the same way, in their own count:
    the server is up, but what answers is not the API (``replies`` tells the two apart).

    >>> odd = Breaker(threshold=2)
    >>> odd.unreadable("a body of text/plain ('hello')"); odd.unreadable("a body of text/plain ('hello')")
    >>> odd.notice, odd.replies
    ("2 replies in a row were not the API's JSON (last: a body of text/plain ('hello'))", True)
    """

    def __init__(self, threshold: int = 3, *, watch: Watch | None = None) -> None:
        self.threshold, self.watch = threshold, watch
        self.failures = 0
        self.timeouts = 0  # of the failures in a row, those that timed out
        self.unread = 0  # complete replies in a row that were not the API's JSON
        self.notice: str | None = None
        self.exited = False
        self.replies = False  # tripped by replies that could not be read (the server is up)
        self._clocks: set[asyncio.Timeout] = set()

    @contextlib.contextmanager
    def hold(self, clock: asyncio.Timeout) -> Iterator[None]:
        """While an attempt runs under ``clock`` (its time limit): a trip ends the attempt at once."""
        self._clocks.add(clock)
        try:
            yield
        finally:
            self._clocks.discard(clock)

    @property
    def tripped(self) -> bool:
        return self.notice is not None

    @property
    def hung(self) -> bool:
        """Whether the failures in a row that tripped it (or count now) all timed out: the server accepts
        connections but does not answer."""
        return self.failures > 0 and self.timeouts == self.failures

    def answered(self) -> None:
        """The server answered (success or HTTP status): it is up, and what answers speaks the API."""
        self.failures = self.timeouts = self.unread = 0

    def unreadable(self, reason: str) -> None:
        """A complete reply that is not the API's JSON; ``threshold`` in a row trip the breaker."""
        if self.tripped:
            return
        self.unread += 1
        self.failures = self.timeouts = 0  # the server answered
        if self.threshold and self.unread >= self.threshold:
            self.notice, self.replies = f"{self.unread} replies in a row were not the API's JSON (last: {reason})", True
            self._end_in_flight()

    def failure(self, reason: str, *, timeout: bool = False) -> None:
        """A connection attempt failed (refused, reset, dropped) or, ``timeout``, got no answer in time; may
        trip the breaker."""
        if self.tripped:
            return
        self.failures += 1
        self.timeouts += timeout
        exited = self.watch() if self.watch is not None else None
        if exited:
            self.notice, self.exited = exited, True
        elif self.threshold and self.failures >= self.threshold:
            what = ("attempts in a row got no answer in time" if self.hung else
                    "connection attempts in a row failed" if not self.timeouts else
                    "attempts in a row failed or got no answer in time")
            self.notice = f"{self.failures} {what} (last: {reason})"
        if self.tripped:
            self._end_in_flight()

    def _end_in_flight(self) -> None:
        for clock in list(self._clocks):  # the attempts in flight: their limits expire now
            if not clock.expired():  # (one that is expiring already ends by itself)
                clock.reschedule(asyncio.get_running_loop().time())

    def attempts_for(self, fault: Fault, max_attempts: int) -> int:
        """How many attempts an item may take: a connection failure or a timeout goes on until the breaker
        decides (or the item's deadline passes), so no item gives up (and is stored as an error) merely
        because the server was down."""
        counted = fault.connection or fault.timeout
        return max(max_attempts, self.threshold) if counted and self.threshold else max_attempts


async def with_retries(attempt: Callable[[], Awaitable[T]], *, policy: RetryPolicy,
                       classify: Callable[[BaseException], Fault] = classify,
                       rng: random.Random | None = None, breaker: Breaker | None = None,
                       timeout_s: float | None = None, deadline: Deadline | None = None) -> Outcome[T]:
    """Call ``attempt()`` until it succeeds, a fault is not retryable, attempts run out, ``breaker`` trips, or
    ``deadline`` passes.

    Each attempt is given at most ``timeout_s`` seconds, and never more than what is left of ``deadline``;
    an attempt cut short is a timeout (``Fault.timeout``: "no answer within S s"), which the breaker counts.
    A wait (backoff or ``Retry-After``) that would pass the deadline is not waited: the item gives up at once
    with ``Outcome.out_of_time`` set. Exceptions become ``Outcome.error`` (never raised), except
    cancellation and KitError-type problems that ``classify`` is not asked about (BaseException that is not
    Exception). A tripped breaker ends the attempts at once with ``Outcome.tripped`` set (its notice as the
    error), also when another request tripped it while this one waited.

    >>> async def hung() -> str:
    ...     await asyncio.sleep(10)
    ...     return "late"
    >>> done = asyncio.run(with_retries(hung, policy=RetryPolicy(base_s=0.0), timeout_s=0.05,
    ...                                 deadline=Deadline.start(0.12)))
    >>> done.out_of_time, done.error.split(" (")[0]
    (True, "no answer within the item's deadline of 0.12 s")
    >>> asyncio.run(with_retries(hung, policy=RetryPolicy(), deadline=Deadline(at=0.0, seconds=5.0))).error
    "no answer within the item's deadline of 5 s (no time was left for an attempt)"
    """
    outcome: Outcome[T] = Outcome()
    number = 0
    while True:
        if breaker is not None and breaker.tripped:
            outcome.tripped, outcome.error = True, breaker.notice
            return outcome
        if deadline is not None and deadline.left() <= 0:
            outcome.out_of_time = True
            break
        number += 1
        outcome.attempts = number
        limit_s = _attempt_limit(timeout_s, deadline)
        try:
            async with asyncio.timeout(limit_s) as clock:
                with breaker.hold(clock) if breaker is not None else contextlib.nullcontext():
                    value = await attempt()
            outcome.value = value
            outcome.error = outcome.fault = outcome.exception = None
            if breaker is not None:
                breaker.answered()
            return outcome
        except Exception as exc:  # noqa: BLE001 — every fault is sorted, recorded, never lost
            fault = classify(exc)
            if fault.timeout or clock.expired():  # ours, or the SDK's own (the same timeout_s)
                cut = clock.expired() and limit_s is not None and (timeout_s is None or limit_s < timeout_s)
                words = (f"no answer in the {_seconds(limit_s)} s left of the item's deadline" if cut else
                         f"no answer within {_seconds(timeout_s)} s" if timeout_s is not None else fault.reason)
                fault = Fault(retry=True, reason=words, timeout=True)
            outcome.fault, outcome.exception = fault, exc
            outcome.faults.append(fault.reason)
            outcome.error = fault.reason
            most = policy.max_attempts
            if breaker is not None:
                if fault.connection or fault.timeout:
                    breaker.failure(fault.reason, timeout=fault.timeout)
                elif fault.reply:
                    breaker.unreadable(fault.reason)
                elif fault.status is not None:
                    breaker.answered()
                if breaker.tripped:
                    continue
                most = breaker.attempts_for(fault, most)
            if fault.reply:  # the same reply would come again: one retry at most (a glitch gets its second try)
                most = min(most, 2)
            if not fault.retry or number >= max(1, most):
                break
            wait = policy.backoff(number, rng)
            if fault.retry_after is not None:
                wait = max(wait, min(fault.retry_after, policy.max_retry_after_s))
            if deadline is not None and wait >= deadline.left():
                outcome.out_of_time = True
                break
            outcome.waited_s += wait
            await asyncio.sleep(wait)
    if outcome.out_of_time and deadline is not None:
        tried = (f" ({outcome.attempts} attempts; last: {outcome.fault.reason})" if outcome.fault is not None
                 else " (no time was left for an attempt)")
        outcome.error = f"no answer within the item's deadline of {_seconds(deadline.seconds)} s{tried}"
    elif outcome.fault is not None and outcome.fault.retry:
        outcome.error = f"{outcome.fault.reason} (gave up after {outcome.attempts} attempts)"
    return outcome


def _attempt_limit(timeout_s: float | None, deadline: Deadline | None) -> float | None:
    """Seconds the next attempt may take: the attempt's own limit, cut to what is left of the deadline."""
    left = deadline.left() if deadline is not None else None
    if timeout_s is None:
        return left
    return timeout_s if left is None else min(timeout_s, left)


def _seconds(value: float) -> str:
    """``60`` -> '60', ``0.05`` -> '0.05', ``12.3456`` -> '12.3'."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


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
