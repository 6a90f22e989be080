"""Hung and odd endpoints: a server that accepts and never answers trips the breaker and no item outlasts its
deadline; an HTTP 200 HTML page is named as one; credentials in a base URL are never shown or stored; an
n_ctx the machine cannot hold is named as such.

Everything runs for real: loopback servers on 127.0.0.1 (one that holds connections without answering, one
that answers a captive portal's login page), real SQLite, the embedded SmolLM2's GGUF header.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import AnthropicServer, HungServer, OpenAIServer

from kit.arms import Request, get_arm
from kit.arms.retry import Breaker, RetryPolicy, with_retries
from kit.errors import ArmError, ConfigError, EndpointDown
from kit.run.runner import run_arm
from kit.tasks import load_task

SERVERS = {"openai": OpenAIServer, "anthropic": AnthropicServer}


@pytest.fixture
def mini(task_dir):
    return load_task(task_dir / "mini.yaml")  # 6 test items "request number N", gold yes for odd N


@pytest.fixture(autouse=True)
def _anthropic_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-odd-endpoints-0000")


def _request() -> Request:
    return Request(item_id="x", messages=({"role": "user", "content": "request number 3"},))


def _stored(store) -> list[tuple]:
    return list(store.db.execute("SELECT item_id, error FROM responses"))


# --- a server that accepts connections and never answers --------------------------------------------------


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_hung_endpoint_trips_the_breaker_after_three_timeouts(backend, concurrency, mini, store):
    """Three attempts in a row without an answer stop the arm: one item's three attempts one at a time, or the
    first four items' first attempts at once. Nothing is stored; the message says the server hangs."""
    with HungServer() as hung:
        url = hung.url + ("/v1" if backend == "openai" else "")
        arm = get_arm(f"{backend}:fake", base_url=url, timeout=0.3, backoff_s=0.02, breaker=3,
                      concurrency=concurrency, deadline=10)  # the breaker, not the deadline, stops it
        started = time.perf_counter()
        with pytest.raises(EndpointDown) as info:
            run_arm(mini, arm, store=store)
        elapsed = time.perf_counter() - started
        accepted = hung.accepted
    # one at a time: 3 x 0.3 s (+ 2 short waits); four in flight: the first request goes alone until the endpoint
    # has answered or failed (one timeout), then the rest time out together (a second): about 0.6 s
    # (before, timeouts did not count: 5 attempts x 0.3 s an item and every item stored as an error, 9 s in all)
    assert (0.85 if concurrency == 1 else 0.55) < elapsed < (1.6 if concurrency == 1 else 1.3)
    assert arm._breaker.failures == 3
    # four in flight: the breaker trips at the third timeout, while attempts that started with it may not yet have
    # been accepted by the server (it accepts on one thread)
    assert accepted == 3 if concurrency == 1 else 2 <= accepted <= 5
    message = str(info.value)
    assert "the endpoint stopped answering" in message
    assert "3 attempts in a row got no answer in time (last: no answer within 0.3 s)" in message
    assert "accepts connections but does not answer" in message and "-o timeout=S, now 0.3 s" in message
    assert [tuple(r) for r in _stored(store)] == []  # no item is stored as an error because the server hung
    assert store.runs().iloc[-1]["status"] == "stopped"


def test_a_trip_ends_the_attempts_still_in_flight():
    """When the breaker trips, an attempt with a long time limit does not wait it out: it ends at once."""
    breaker = Breaker(threshold=1)

    async def hang() -> str:
        await asyncio.sleep(30)
        return "late"

    async def both():
        return await asyncio.gather(
            with_retries(hang, policy=RetryPolicy(), breaker=breaker, timeout_s=0.1),
            with_retries(hang, policy=RetryPolicy(), breaker=breaker, timeout_s=20.0))

    started = time.perf_counter()
    short, long = asyncio.run(both())
    assert time.perf_counter() - started < 2.0  # not 20 s
    assert short.tripped and long.tripped and (short.attempts, long.attempts) == (1, 1)
    assert breaker.notice == "1 attempts in a row got no answer in time (last: no answer within 0.1 s)"


def test_no_item_outlasts_its_deadline(store, mini):
    """Breaker off, ten attempts allowed: the item still gives up when its deadline passes, and says so."""
    with HungServer() as hung:
        arm = get_arm("openai:fake", base_url=hung.url + "/v1", timeout=0.4, deadline=1.0, max_attempts=10,
                      backoff_s=0.02, breaker=0, concurrency=1)
        started = time.perf_counter()
        done = arm.complete(_request())
        elapsed = time.perf_counter() - started
        assert hung.accepted == 3  # 0.4 + 0.4 + the 0.2 s left
    assert 1.0 <= elapsed < 1.5
    assert done.error.startswith("no answer within the item's deadline of 1 s (3 attempts; last: no answer in the 0.")
    assert done.error.endswith(" s left of the item's deadline)")
    assert done.extra["attempts"] == 3 and done.extra["faults"][0] == "no answer within 0.4 s"


def test_the_deadline_defaults_to_three_attempt_timeouts():
    assert get_arm("openai:fake", base_url="http://127.0.0.1:9/v1").deadline_s == 180.0
    assert get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", timeout=10).deadline_s == 30.0
    assert get_arm("anthropic:fake", base_url="http://127.0.0.1:9", deadline=45).deadline_s == 45.0
    with pytest.raises(ConfigError, match="deadline=0 must be above 0"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", deadline=0)


def test_a_long_retry_after_is_not_waited_past_the_deadline(mini, store):
    """A 429 asking for 30 s, with 1 s left: the item gives up at once, naming the deadline and the 429."""
    plan = lambda body, seen: ("status", 429, {"Retry-After": "30"}, "slow down")
    with OpenAIServer(plan=plan) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, deadline=1.0, backoff_s=0.02, concurrency=1)
        started = time.perf_counter()
        done = arm.complete(_request())
        assert time.perf_counter() - started < 0.9 and srv.calls() == 1
    assert done.error == "no answer within the item's deadline of 1 s (1 attempts; last: HTTP 429: slow down)"


# --- HTTP 200 with an HTML page -----------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "options"), [("openai", {}), ("openai", {"stream": False}), ("anthropic", {})])
def test_an_html_page_is_named_as_one(backend, options, mini, store):
    with SERVERS[backend](plan=lambda body, seen: "html") as srv:
        arm = get_arm(f"{backend}:fake", base_url=srv.base_url, concurrency=1, **options)
        with pytest.raises(ArmError) as info:
            arm.complete(_request())
        assert srv.calls() == 1  # not retried: the same page would come again, for every item
        with pytest.raises(ArmError) as stopped:  # and a run stops with it
            run_arm(mini, arm, store=store)
    for exc in (info.value, stopped.value):
        message = str(exc)
        assert not isinstance(exc, EndpointDown) and "stopped answering" not in message
        assert "answered HTTP 200 with an HTML page, not JSON" in message
        assert "is base_url the API's /v1 endpoint?" in message and "captive portal" in message
    assert _stored(store) == [] and store.runs()["status"].tolist() == ["interrupted"]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_html_page_costs_one_request_at_any_concurrency(concurrency, mini, store):
    """The first request goes alone until the endpoint has answered as the API: a web page costs one call, not
    one per request in flight (before: 4 at concurrency 4)."""
    with OpenAIServer(plan=lambda body, seen: "html") as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=concurrency)
        with pytest.raises(ArmError, match="answered HTTP 200 with an HTML page"):
            run_arm(mini, arm, store=store)
        assert srv.calls() == 1
    assert _stored(store) == []


def test_once_the_endpoint_has_answered_the_requests_go_together(mini, store):
    """The first request alone, then the concurrency asked for: four requests in flight at once."""
    starts: list[float] = []

    def plan(body, seen):
        starts.append(time.monotonic())
        return ("slow", 0.5)

    with OpenAIServer(plan=plan) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=4)
        summary = run_arm(mini, arm, store=store)
        assert srv.calls() == 6 and summary.errors == 0
    first, *rest = sorted(starts)
    assert rest[0] - first >= 0.45  # the second waited for the first answer
    assert rest[3] - rest[0] < 0.45  # then four went out before any of them was answered


# --- HTTP 200 whose body is not JSON (issue 26, case 4) ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_reply_that_is_not_json_is_not_bought_again_and_again(stream, concurrency, mini, store):
    """A complete 200 reply that cannot be read is not a transient fault: one retry at most, counted by the
    breaker, then a stop that names the reply — not the connection, the server is up. Before: 5 attempts for
    every item (30 billable calls here) and an exit with every item an error; streamed, "3 connection attempts
    failed … start the server"."""
    with OpenAIServer(plan=lambda body, seen: "garbage") as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=concurrency, stream=stream, backoff_s=0.01)
        with pytest.raises(ArmError) as info:
            run_arm(mini, arm, store=store)
        calls = srv.calls()
    assert calls == 3  # the first item: its attempt and one retry; the second item's attempt trips the breaker
    message = str(info.value)
    assert not isinstance(info.value, EndpointDown)
    assert "the endpoint answered, but not as the API: 3 replies in a row were not the API's JSON" in message
    assert "connection" not in message and "start the server" not in message
    assert "is base_url the API's /v1 endpoint?" in message
    assert len(_stored(store)) <= 1  # the first item gave up after its retry; nothing else was asked


def test_one_unreadable_reply_gets_one_retry(mini, store):
    """A glitch (one garbled reply, then a good one) costs one more call per item, and every item is answered."""
    with OpenAIServer(plan=lambda body, seen: "garbage" if seen == 1 else "ok") as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=2, stream=False, backoff_s=0.01)
        summary = run_arm(mini, arm, store=store)
        assert srv.calls() == 12
    assert (summary.new_calls, summary.errors) == (6, 0)


# --- credentials in the base URL ------------------------------------------------------------------------------


SECRET = "pw-s3cret-4711"


def test_credentials_in_the_base_url_go_with_requests_only(mini, store, tmp_path):
    """user:pass@ reaches the server (HTTP Basic) and nothing else: not describe(), repr, the identity, the
    store, errors that quote the credentials back, or the errors of a bad or a dead URL."""
    plan = lambda body, seen: ("status", 500, {}, "upstream failed") if "number 1" in body["messages"][-1]["content"] \
        else "ok"
    with OpenAIServer(plan=plan, echo_auth=True) as srv:
        url = f"http://alice:{SECRET}@127.0.0.1:{srv.port}/v1"
        arm = get_arm("openai:fake", base_url=url, concurrency=1, max_attempts=2, backoff_s=0.01)
        summary = run_arm(mini, arm, store=store)
        sent = {r["headers"].get("Authorization") for r in srv.requests}
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert sent == {basic}  # the credentials went with every request
    assert (summary.new_calls, summary.errors) == (6, 1)
    shown = [arm.describe(), repr(arm), str(arm.identity()), arm.base_url]
    assert f"http://***@127.0.0.1:{srv.port}/v1" in arm.describe()
    error = store.responses(task="mini", arms=[arm.spec])["error"].dropna().tolist()
    assert len(error) == 1 and "upstream failed for Basic [redacted]" in error[0]  # the gateway quoted them back
    dump = "\n".join(store.db.iterdump())  # every table of the store, as SQL
    for text in [*shown, dump]:
        assert SECRET not in text and "alice" not in text and basic.split()[1] not in text

    with pytest.raises(ConfigError) as bad:  # a URL that is not one: its message masks the credentials too
        get_arm("openai:fake", base_url=f"http://alice:{SECRET}@127.0.0.1:notaport/v1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://alice:{SECRET}@127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(EndpointDown) as down:
        get_arm("openai:fake", base_url=dead, backoff_s=0.01).complete(_request())
    for exc in (bad.value, down.value):
        assert SECRET not in str(exc) and "alice" not in str(exc) and "***@127.0.0.1" in str(exc)
    assert SECRET not in down.value.url


# --- an n_ctx the machine cannot hold ---------------------------------------------------------------------


def test_an_n_ctx_too_large_names_n_ctx_and_the_trained_context():
    started = time.perf_counter()
    with pytest.raises(ArmError) as info:
        get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=100_000_000)
    assert time.perf_counter() - started < 5  # told before llama.cpp tries to allocate it
    message = str(info.value)
    assert "n_ctx=100000000 needs a KV cache of 2.3 TB" in message  # 30 layers x 3 KV heads x 128 x 2 bytes a token
    assert "trained on a context of 8192 tokens" in message and "--n-ctx 8192" in message
    assert "newer llama-cpp-python" not in message
