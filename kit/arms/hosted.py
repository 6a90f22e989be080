"""What the hosted-API arms share: keys from the environment, endpoint identity, limits, retries, breaker.

An API key is read from the environment only and is never part of an arm's identity, description,
errors or store rows. An endpoint is identified by its URL with its port — loopback ones too, so the
answers of one local server are never served as another's. A server the kit started itself, whose
model file it knows, is identified instead by what answers (``served_by``: the model's sha256 and the
server software), so the stand-in on a fresh port every run is still served from the store.

Each attempt may take ``timeout`` seconds, and each item ``deadline`` seconds over all of its attempts and
the waits between them (default three times ``timeout``: 180 s). Connection failures (refused, reset,
dropped) and attempts that got no answer in time (a server that accepts connections and hangs) are counted
over all requests of the arm; ``breaker`` of them in a row stop the arm with
:class:`~kit.errors.EndpointDown` (nothing is stored for the items not answered, so a re-run asks only
those). An HTTP 200 answer that is an HTML page (a captive portal, a proxy's login page, a web UI) stops
the arm with an :class:`~kit.errors.ArmError` that says so. Credentials in ``base_url``
(``http://user:pass@host/v1``) go with the requests only: descriptions and errors read
``http://***@host/v1``, identities hold the endpoint without them. ``watch`` — a callable that returns a notice once the server process behind the
endpoint has exited, else None — is asked at every connection failure before any retry, and stops the
arm at the first one:

>>> server = StandinServer("gemma-3-270m").start()                        # doctest: +SKIP
>>> arm = get_arm("openai:gemma-3-270m", base_url=server.base_url, watch=server.exit_notice,
...               served_by=server.served_by())                           # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from kit.arms.base import Arm, Completion, Request, estimate_tokens
from kit.arms.options import ArmOptions, Field, parse_options
from kit.errors import ArmError, ConfigError, EndpointDown
from kit.util import run_sync
from kit.arms.retry import (
    NOT_JSON_FIX,
    Breaker,
    Deadline,
    Fault,
    NotJSON,
    Outcome,
    RateLimiter,
    RetryPolicy,
    classify,
    redact,
    with_retries,
)

LOOPBACK_KEY = "sk-no-key-needed-on-loopback"


class HostedOptions(ArmOptions):
    """Options every hosted arm takes (``-o KEY=VALUE``, the named ``kit run`` flags, or ``options:`` in an
    experiment). A subclass sets the API's default URL and key variable."""

    default_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""

    base_url: str | None = Field(None, min_length=1, examples=["http://127.0.0.1:8080/v1"],
                                 description="the API's URL; default: the provider's")
    api_key_env: str | None = Field(None, min_length=1, examples=["MY_GATEWAY_KEY"],
                                    description="the environment variable that holds the key (never the key)")
    concurrency: int = Field(4, ge=1, description="requests in flight")
    rpm: float | None = Field(None, gt=0, examples=[60], description="requests per minute")
    tpm: float | None = Field(None, gt=0, examples=[100000], description="tokens per minute")
    timeout: float = Field(60.0, gt=0, description="seconds one attempt may take")
    deadline: float | None = Field(None, gt=0, examples=[180],
                                   description="seconds one item may take over all its attempts and waits; "
                                               "default three times `timeout`")
    max_attempts: int = Field(5, ge=1)
    backoff_s: float = Field(0.5, ge=0)
    temperature: float = Field(0.0, ge=0)
    structured: Literal["auto", "off"] = Field("auto", description="auto: constrain answers (labels, JSON "
                                                                   "schema) where the endpoint allows; off: never")
    price_in: float | None = Field(None, ge=0, examples=[0.15], description="USD per million input tokens")
    price_out: float | None = Field(None, ge=0, examples=[0.6], description="USD per million output tokens")
    breaker: int = Field(3, ge=0, description="connection failures (refused, reset) and timeouts in a row that "
                                              "stop the arm with EndpointDown; 0: never")
    # asked at every connection failure: a notice once the server process behind the endpoint has exited
    watch: Callable[[], str | None] | None = None
    # what answers, for a server the kit started (model sha256, server software): replaces the URL in the identity
    served_by: dict[str, str] | None = None

    def url(self) -> str:
        """The endpoint as given (credentials included), without a trailing slash."""
        return (self.base_url or self.default_url).rstrip("/")

    def key_variable(self) -> str:
        """The environment variable the key is read from."""
        return self.api_key_env or self.default_key_env

    def preflight(self, *, spec: str) -> None:
        """The URL is an http(s) URL, and a key variable named with ``api_key_env`` is set (a run reads it)."""
        url = check_url(self.url(), spec=spec)
        if self.api_key_env is not None:
            resolve_key(spec=spec, env=self.api_key_env, explicit=True, loopback=is_loopback(url))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")


def mask_url(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``: what is shown and stored
    of a ``base_url`` that carries credentials.

    >>> mask_url("http://user:pass@127.0.0.1:8080/v1")
    'http://***@127.0.0.1:8080/v1'
    """
    return _USERINFO.sub(r"\1***@", text)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials in ``url`` to redact: ``user:pass`` and the password, as written and decoded, and the
    HTTP Basic token they are sent as (a gateway may quote it back).

    >>> url_secrets("http://me:p%40ss@host/v1")
    ('me:p%40ss', 'p%40ss', 'me:p@ss', 'p@ss', 'bWU6cEBzcw==')
    """
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return ()
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    basic = base64.b64encode(unquote(userinfo).encode()).decode()
    found = [userinfo, password, unquote(userinfo), unquote(password), basic]
    return tuple(dict.fromkeys(v for v in found if v))


def check_url(url: str, *, spec: str) -> str:
    """``url`` when it is an http(s) URL with a host and a valid port, else a ConfigError that says so (with
    any credentials in it masked).

    >>> check_url("http://127.0.0.1:8080/v1", spec="openai:x")
    'http://127.0.0.1:8080/v1'
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"base_url {shown!r} is not a URL ({mask_url(str(exc))})", where=spec,
                          fix="write e.g. --base-url http://127.0.0.1:8080/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base_url {shown!r} is not an http(s) URL with a host", where=spec,
                          fix="write e.g. --base-url http://127.0.0.1:8080/v1")
    return url


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
    """The endpoint as stored in an identity: lower-case, no trailing slash, the port kept (loopback too:
    two local servers on different ports are different endpoints).

    >>> endpoint_identity("http://127.0.0.1:41873/v1/")
    'http://127.0.0.1:41873/v1'
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host if parts.port is None else f"{host}:{parts.port}"
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


async def _close_at_loop_end(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


class HostedArm(Arm):
    """Base of the OpenAI-compatible and Anthropic arms: keys, identity, limiter, retries, errors."""

    backend = ""
    options_class: type[HostedOptions] = HostedOptions

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.spec = f"{self.backend}:{model}"
        self.options = parse_options(self.options_class, self.spec, options)
        url = self.options.url()  # checked by the options' preflight
        self._url = url  # with any credentials in it: for the requests only
        self.base_url = mask_url(url)  # what is shown: credentials masked
        self.deadline_s = self.options.deadline or 3 * self.options.timeout
        self.loopback = is_loopback(self.base_url)
        self.hosted = not self.loopback
        self.concurrency = self.options.concurrency
        self.key_env = self.options.key_variable()
        self._key = resolve_key(spec=self.spec, env=self.key_env, explicit=bool(self.options.api_key_env),
                                loopback=self.loopback)
        self._secrets = (self._key, *url_secrets(url))  # never shown: redacted from every message
        self._policy = RetryPolicy(max_attempts=self.options.max_attempts, base_s=self.options.backoff_s)
        self._breaker = Breaker(self.options.breaker, watch=self.options.watch)
        self._limiter = RateLimiter(rpm=self.options.rpm, tpm=self.options.tpm)
        self._client_obj: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._keeper: Any = None
        # the first request goes alone (see _first_alone): a wrong URL, a rejected key, a web page cost one call
        self._open = False
        self._stop: BaseException | None = None  # the reply that ended the run, for the requests that waited
        self._gate: asyncio.Lock | None = None
        self._gate_loop: asyncio.AbstractEventLoop | None = None
        self._holder: asyncio.Lock | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"<{type(self).__name__} {self.spec} at {endpoint_identity(self.base_url)}>"

    # identity and description ------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What answers: the model at its endpoint (URL with port), or ``served_by`` when the kit started the
        server and knows its model file, so the same server on another port is the same identity."""
        where: dict[str, Any] = ({"served_by": dict(sorted(self.options.served_by.items()))}
                                 if self.options.served_by else {"endpoint": endpoint_identity(self.base_url)})
        return {"backend": self.backend, "model": self.model, **where,
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
            return f"{self.model} at {self.base_url} (an endpoint on this machine)"  # credentials masked
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

    def _hide(self, text: str | None) -> str | None:
        """``text`` without the key or the URL's credentials (and with any URL's user name and password masked)."""
        hidden = redact(text, self._secrets)
        return mask_url(hidden) if hidden is not None else None

    async def acomplete(self, request: Request) -> Completion:
        """Answer one request; raises :class:`EndpointDown` once the breaker has tripped (nothing to store).

        The item's deadline (``deadline`` seconds) starts once the rate limiter lets the request go."""
        if self._breaker.tripped:
            raise self._stopped()
        estimate = estimate_tokens(request) + request.max_tokens
        await self._limiter.acquire(tokens=estimate)
        async with self._first_alone():
            began = time.perf_counter()
            outcome, notes = await self._call(request, Deadline.start(self.deadline_s))
        if outcome.tripped:
            raise self._stopped()
        if outcome.value is not None:
            completion = outcome.value
        else:
            self._raise_if_fatal(outcome)
            completion = Completion(error=self._hide(outcome.error))
        used = None
        if completion.prompt_tokens is not None or completion.completion_tokens is not None:
            used = (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)
        self._limiter.settle(estimated=estimate, used=used)
        completion.extra.update(notes)
        completion.extra["attempts"] = outcome.attempts
        if outcome.attempts > 1 or outcome.faults:
            completion.extra["faults"] = [self._hide(f) for f in outcome.faults]
            completion.extra["total_s"] = round(time.perf_counter() - began, 4)
        return completion

    async def _call(self, request: Request, deadline: Deadline) -> tuple[Outcome[Completion], dict[str, Any]]:
        """Run the attempts for one request; subclasses may add fallbacks. Returns (outcome, extra notes)."""
        return await self._retrying(request, None, deadline), {}

    async def _retrying(self, request: Request, plan: Any, deadline: Deadline, *,
                        sort: Callable[[BaseException], Fault] = classify) -> Outcome[Completion]:
        """The attempts of ``plan`` for one request, under the arm's policy, breaker, timeout and ``deadline``."""
        return await with_retries(lambda: self._gated(request, plan), policy=self._policy, classify=sort,
                                  breaker=self._breaker, timeout_s=self.options.timeout, deadline=deadline)

    @contextlib.asynccontextmanager
    async def _first_alone(self) -> AsyncIterator[None]:
        """Until the endpoint has answered as the API, one request at a time (the others wait here, before their
        deadline starts).

        The gate opens at the first attempt that succeeds or fails in a way that is not the whole endpoint's (an
        HTTP error status, a timeout, a dropped connection: the breaker counts those). A reply that ends the run
        (an HTML page, a rejected key, an unknown model) is not sent again by the requests that waited; a reply
        that is not the API's JSON keeps them waiting, so the breaker stops the arm after its threshold of calls,
        whatever the concurrency."""
        if self._open:
            yield
            return
        lock = self._gate_lock()
        await lock.acquire()
        if self._open or self._stop is not None or self._breaker.tripped:
            lock.release()  # opened (or stopped) while this request waited: the next waiter goes on at once
            if self._stop is not None:
                raise self._fatal(self._stop) or self._stopped()
            if self._breaker.tripped:
                raise self._stopped()
            yield
            return
        self._holder = lock  # this request probes the endpoint
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.release()

    async def _gated(self, request: Request, plan: Any) -> Completion:
        """One attempt; the first that shows the endpoint speaks the API (or that it is down) opens the gate."""
        try:
            value = await self._attempt(request, plan)
        except Exception as exc:
            if not classify(exc).reply:
                if self._fatal(exc) is not None:
                    self._stop = exc  # the requests that waited stop with the same reply, unsent
                self._opened()
            raise
        except BaseException:  # cut by its time limit, or by the breaker
            self._opened()
            raise
        self._opened()
        return value

    def _opened(self) -> None:
        if not self._open:
            self._open = True
            self._release()

    def _gate_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate_loop is not loop:
            self._gate, self._gate_loop = asyncio.Lock(), loop
        return self._gate

    async def _attempt(self, request: Request, plan: Any) -> Completion:
        raise NotImplementedError

    def _stopped(self) -> ArmError:
        """The error that stops the arm once its breaker has tripped: what happened, where, and what to do.
        Replies that are not the API's JSON are named as replies (the server is up); else the endpoint is down."""
        breaker = self._breaker
        again = "run the same command again: the answers already stored are kept and only the missing items are asked"
        if breaker.replies:
            return ArmError(f"the endpoint answered, but not as the API: {self._hide(breaker.notice)}",
                            where=f"{self.spec} at {self.base_url}",
                            fix=f"{NOT_JSON_FIX} Check what serves {self.base_url} (a proxy, a gateway or a web UI "
                                f"answers like this; its log says more), then {again}")
        if breaker.exited:
            fix = f"restart the server (the end of its log is quoted above) and {again}"
        elif breaker.hung:
            fix = (f"the server at {self.base_url} accepts connections but does not answer: check that it is not "
                   f"stuck or overloaded (restart it), or give a slow model more time per attempt "
                   f"(-o timeout=S, now {self.options.timeout:g} s), and {again}")
        elif self.loopback:
            fix = f"start the server at {self.base_url} (or give the right --base-url) and {again}"
        else:
            fix = f"check the network, any proxy and the provider's status page, then {again}"
        return EndpointDown(f"the endpoint stopped answering: {self._hide(breaker.notice)}", url=self.base_url,
                            exited=breaker.exited, where=f"{self.spec} at {self.base_url}", fix=fix)

    def _raise_if_fatal(self, outcome: Outcome[Completion]) -> None:
        """A rejected key, an unknown model or a web page instead of the API would fail every item: stop the
        run with a clear error."""
        if outcome.exception is not None:
            error = self._fatal(outcome.exception, outcome.fault)
            if error is not None:
                raise error

    def _fatal(self, exc: BaseException, fault: Fault | None = None) -> ArmError | None:
        """The error that stops the run for a reply every item would get (else None)."""
        if isinstance(exc, NotJSON):
            what = str(exc).removesuffix(f": {NOT_JSON_FIX}")
            return ArmError(f"the endpoint {self._hide(what)}", where=f"{self.spec} at {self.base_url}",
                            fix=f"{NOT_JSON_FIX} Give the API's own URL (an OpenAI-compatible one usually ends in /v1, "
                                "e.g. http://127.0.0.1:8080/v1); a captive portal or a proxy's login page answers "
                                "like this too: sign in to the network, then run again")
        fault = fault or classify(exc)
        if fault.status in (401, 403):
            return ArmError(f"the endpoint refused the API key from {self.key_env} (HTTP {fault.status})",
                            where=f"{self.spec} at {self.base_url}",
                            fix=f"check the key in {self.key_env} and that it may use {self.model}")
        if fault.status == 404:
            return ArmError(f"the endpoint does not know this model or path: {self._hide(fault.reason)}",
                            where=f"{self.spec} at {self.base_url}",
                            fix="check the model name and --base-url (an OpenAI-compatible URL usually ends in /v1)")
        return None
