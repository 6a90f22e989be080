"""Hosted-API arms through the runner and the store, against servers on 127.0.0.1.

The OpenAI path runs against a real llama-cpp-python server (the stand-in, Gemma 3 270M); the Anthropic
path against a loopback server that speaks the Messages API's SSE events; faults come from a server that
injects 429 + Retry-After, 500, slow answers, garbage JSON and connection resets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import AnthropicServer, OpenAIServer, last_user

from kit.arms import get_arm
from kit.arms.hosted import endpoint_identity
from kit.run.budget import CostBudget, make_budget
from kit.cli import main
from kit.errors import ArmError, ConfigError
from kit.arms.retry import RateLimiter, RetryPolicy, retry_after_seconds
from kit.run.budget import Budget
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
FAST = {"timeout": 1.0, "backoff_s": 0.02, "max_attempts": 3}


@pytest.fixture
def mini(task_dir):
    return load_task(task_dir / "mini.yaml")  # 6 test items "request number N", gold yes for odd N


@pytest.fixture(scope="session")
def llama_server():
    from kit.arms.standin import standin_server

    with standin_server("gemma-3-270m", n_ctx=1024) as url:
        yield url


def _number(body: dict) -> str:
    return last_user(body).split()[-1]


# --- the OpenAI path against a real llama-cpp-python server --------------------------------------------------


def test_openai_arm_against_llama_cpp_server(llama_server, mini, store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # loopback goes without a key
    arm = get_arm("openai:gemma-3-270m", base_url=llama_server, concurrency=2)
    # a loopback endpoint is described as what it is; only the report knows which one is the stand-in
    assert "on this machine" in arm.describe() and "stand-in" not in arm.describe()
    assert arm.hosted is False
    summary = run_arm(mini, arm, store=store, limit=3, max_tokens=24)
    assert (summary.new_calls, summary.errors) == (3, 0)
    rows = store.responses(task="mini", arms=[arm.spec])
    assert len(rows) == 3
    for row in rows.to_dict("records"):
        extra = json.loads(row["extra"])
        # llama.cpp rejects response_format json_schema (with a 500); the arm falls back to its json_object+schema
        assert extra["structured"] == "json_object"
        assert row["answer"] in ("yes", "no") and not row["parse_error"]  # the enum grammar makes it parse
        assert json.loads(extra["raw_output"]) == row["answer"]  # the labels went out as a bare JSON-string enum
        assert 0 < row["ttft_s"] <= row["latency_s"]
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        assert extra["usage"] == "counted"  # this server sends no usage in streams: counted from the stream
        assert 0 < row["confidence"] <= 1  # exp(sum of the answer tokens' logprobs)
    assert "json_schema" in arm._off
    # a re-run against the same server is served from the store; another port is another endpoint
    assert run_arm(mini, get_arm("openai:gemma-3-270m", base_url=llama_server), store=store, limit=3,
                   max_tokens=24).cached == 3
    port = int(llama_server.split(":")[2].split("/")[0])
    elsewhere = get_arm("openai:gemma-3-270m", base_url=llama_server.replace(f":{port}/", f":{port + 1}/"))
    assert elsewhere.identity() != arm.identity()


def test_openai_arm_json_schema_extraction_on_llama_server(llama_server, tmp_path, store):
    rows = [{"id": f"e{i}", "text": f"Order {i}: {i + 2} boxes", "count": i + 2} for i in range(4)]
    (tmp_path / "ex.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ex.yaml").write_text(
        "name: ex\ntype: extraction\ndata: ex.jsonl\nfields: {count: {type: integer}}\n"
        "instruction: 'How many boxes? Answer as JSON with the field count. {text}'\n"
        "split: {test_fraction: 0.5, seed: 1}\n")
    task = load_task(tmp_path / "ex.yaml")
    from kit.arms.standin import standin_arm_options

    arm = get_arm("openai:gemma-3-270m", base_url=llama_server, **standin_arm_options())
    summary = run_arm(task, arm, store=store, limit=2, max_tokens=24)
    assert summary.errors == 0
    out = store.responses(task="ex")
    assert len(out) == 2
    for row in out.to_dict("records"):  # grammar-constrained JSON always parses into the schema
        assert isinstance(row["answer"], dict) and isinstance(row["answer"]["count"], int)
        assert json.loads(row["output"])["count"] == row["answer"]["count"]


# --- the Anthropic path -------------------------------------------------------------------------------------


def test_anthropic_arm_streams_messages_api(mini, store, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-1234567890")
    with AnthropicServer(delay=0.05) as srv:
        arm = get_arm("anthropic:claude-fake", base_url=srv.base_url)
        summary = run_arm(mini, arm, store=store)
        assert (summary.new_calls, summary.errors) == (6, 0)
        rows = store.responses(task="mini", arms=[arm.spec])
        by_item = {i.id: i.gold for i in mini.test}
        assert all(r["answer"] == by_item[r["item_id"]] for r in rows.to_dict("records"))
        first = srv.requests[0]
        headers = {k.lower(): v for k, v in first["headers"].items()}
        assert first["path"] == "/v1/messages" and first["body"]["stream"] is True
        # the key travels as x-api-key (or, in recent SDKs, a bearer token)
        assert "sk-ant-test-1234567890" in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
        words = sum(len(m["content"].split()) for m in first["body"]["messages"])
    # usage from message_start (input) and message_delta (output); ttft from the first content_block_delta
    row = rows.iloc[0]
    assert row["prompt_tokens"] == words and row["completion_tokens"] == 1
    assert row["ttft_s"] is not None and 0 < row["ttft_s"] <= row["latency_s"]
    assert arm.identity()["endpoint"] == f"http://127.0.0.1:{srv.port}" and arm.hosted is False


def test_anthropic_system_message_goes_to_system(monkeypatch):
    from kit.arms.base import Request

    with AnthropicServer() as srv:
        arm = get_arm("anthropic:claude-fake", base_url=srv.base_url)
        req = Request(item_id="1", messages=({"role": "system", "content": "Be terse."},
                                             {"role": "user", "content": "request number 3"}))
        completion = arm.complete(req)
    assert completion.text == "yes" and completion.error is None
    body = srv.requests[0]["body"]
    assert body["system"] == "Be terse." and [m["role"] for m in body["messages"]] == ["user"]


def test_anthropic_structured_output_and_its_fallback():
    from kit.arms.base import Request

    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    request = Request(item_id="1", messages=({"role": "user", "content": "How many? 3"},), json_schema=schema)
    with AnthropicServer(answer=lambda body: '{"count": 3}') as srv:
        arm = get_arm("anthropic:claude-fake", base_url=srv.base_url)
        assert arm.complete(request).extra["structured"] == "json_schema"
        assert srv.requests[0]["body"]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}

    def reject(body, seen):
        return ("status", 400, {}, "output_config: Extra inputs are not permitted") if "output_config" in body else "ok"

    with AnthropicServer(answer=lambda body: '{"count": 3}', plan=reject) as srv:
        arm = get_arm("anthropic:claude-fake", base_url=srv.base_url)
        first, second = arm.complete(request), arm.complete(request)
        sent = ["output_config" in r["body"] for r in srv.requests]
    assert first.error is None and first.text == '{"count": 3}' and first.extra["dropped_params"] == ["output_config"]
    assert second.extra["structured"] is None and sent == [True, False, False]  # dropped for the rest of the run


# --- faults: retries, error recording, the run goes on -------------------------------------------------------


FAULTS = {
    "1": [("status", 429, {"Retry-After": "1"})],
    "3": [("status", 500, {})] * 2,
    "5": [("slow", 1.6)],
    "7": ["garbage"],
    "9": ["reset"],
    "11": ["reset_mid_stream"],
    "0": [("status", 503, {})] * 10,  # never recovers: recorded as an error on that item
}


def _fault_plan(body: dict, seen: int):
    actions = FAULTS.get(_number(body), [])
    return actions[seen - 1] if seen <= len(actions) else "ok"


@pytest.mark.parametrize("server_cls,spec", [(OpenAIServer, "openai:fake"), (AnthropicServer, "anthropic:fake")])
def test_faults_are_retried_recorded_and_the_run_finishes(server_cls, spec, task_dir, store):
    rows = [{"id": f"f{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(12)]
    (task_dir / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (task_dir / "mini.yaml").write_text(
        "name: faulty\ntype: classification\ndata: mini.jsonl\nlabels: ['yes', 'no']\n"
        "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 0.99, seed: 1}\n")
    task = load_task(task_dir / "mini.yaml")
    chosen = [i for i in task.test if i.text.split()[-1] in FAULTS]
    assert len(chosen) == len(FAULTS)
    with server_cls(plan=_fault_plan) as srv:
        arm = get_arm(spec, base_url=srv.base_url, concurrency=4, **FAST)
        started = time.perf_counter()
        summary = run_arm(task, arm, store=store, items=chosen)
        elapsed = time.perf_counter() - started
        calls = {n: sum(_number(r["body"]) == n for r in srv.requests) for n in FAULTS}
    assert summary.new_calls == len(FAULTS) and summary.errors == 1
    assert calls == {"1": 2, "3": 3, "5": 2, "7": 2, "9": 2, "11": 2, "0": 3}
    out = {r["item_id"]: r for r in store.responses(task="faulty").to_dict("records")}
    by_number = {i.text.split()[-1]: i for i in chosen}
    for n, item in by_number.items():
        row = out[item.id]
        extra = json.loads(row["extra"])
        if n == "0":
            assert str(row["error"]).startswith("HTTP 503") and "gave up after 3 attempts" in row["error"]
            assert row["answer"] is None
            continue
        assert pd.isna(row["error"]) and row["answer"] == item.gold
        assert extra["attempts"] == calls[n]
    assert json.loads(out[by_number["1"].id]["extra"])["total_s"] >= 1.0  # Retry-After: 1 was honoured
    assert json.loads(out[by_number["5"].id]["extra"])["faults"][0] == "no answer within 1 s"  # the timeout option
    assert "connection" in json.loads(out[by_number["9"].id]["extra"])["faults"][0]
    assert elapsed < 8


def test_rejected_parameters_are_dropped_and_remembered(mini, store):
    with OpenAIServer(reject=("seed", "logprobs")) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=1)
        summary = run_arm(mini, arm, store=store)
        bodies = [r["body"] for r in srv.requests]
    assert summary.errors == 0 and summary.new_calls == 6
    assert len(bodies) == 6 + 2  # two rejections on the first item, then the remembered plan
    assert all("seed" not in b and "logprobs" not in b for b in bodies[2:])
    first = json.loads(store.responses(task="mini").sort_values("created_at").iloc[0]["extra"])
    assert sorted(first["dropped_params"]) == ["logprobs", "seed"]


def test_unparseable_answer_is_recorded_and_scored_wrong(mini, store):
    from kit.tasks.scoring import score_responses

    with OpenAIServer(answer=lambda body: "I would rather not say") as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, structured="off")
        run_arm(mini, arm, store=store, limit=2)
        assert "response_format" not in srv.requests[0]["body"]
    rows = store.responses(task="mini")
    assert len(rows) == 2 and rows["parse_error"].all() and rows["error"].isna().all()
    assert (rows["output"] == "I would rather not say").all()
    scores = score_responses(mini, rows)
    assert len(scores) == 2 and not scores["correct"].any()


def test_rejected_key_stops_the_run_with_the_variable_named(mini, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0000000000")
    with OpenAIServer(plan=lambda body, seen: ("status", 401, {})) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=1)
        with pytest.raises(ArmError, match="OPENAI_API_KEY") as info:
            run_arm(mini, arm, store=store)
    assert "sk-wrong" not in str(info.value)
    assert store.runs()["status"].tolist() == ["interrupted"]


# --- resume: no call paid twice ---------------------------------------------------------------------------------


def test_stopped_run_resumes_without_paying_twice(mini, store):
    with OpenAIServer() as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=2)
        first = run_arm(mini, arm, store=store, budget=Budget(max_calls=2))
        assert first.new_calls == 2 and "--max-calls 2" in first.stopped
        second = run_arm(mini, arm, store=store)
        assert (second.cached, second.new_calls) == (2, 4)
        counts = [srv.calls(text=i.text) for i in mini.test]
    assert counts == [1] * 6


def test_killed_cli_run_resumes_without_paying_twice(task_dir, tmp_path):
    db = tmp_path / "runs.sqlite"
    env = {**os.environ, "OPENAI_API_KEY": "sk-resume-test-123456"}
    cmd = [sys.executable, "-m", "kit.cli", "run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake",
           "--store", str(db), "--concurrency", "1"]
    with OpenAIServer(delay=0.4) as srv:
        proc = subprocess.Popen(cmd + ["--base-url", srv.base_url], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        stored: list[str] = []
        while time.monotonic() < deadline and len(stored) < 3:
            time.sleep(0.05)
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        stored = [r[0] for r in con.execute("SELECT item_id FROM responses")]
                    except sqlite3.OperationalError:
                        pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(db) as con:
            stored = [r[0] for r in con.execute("SELECT item_id FROM responses")]
        assert 3 <= len(stored) < 6
        done = subprocess.run(cmd + ["--base-url", srv.base_url], env=env, cwd=ROOT, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        task = load_task(task_dir / "mini.yaml")
        counts = {i.id: srv.calls(text=i.text) for i in task.test}
    assert all(counts[i] == 1 for i in stored)  # answers in the store were not asked for again
    assert sum(counts.values()) <= 6 + 1  # at most the one call in flight at the kill is repeated
    with Store(db) as store:
        assert len(store.responses(task="mini")) == 6


# --- keys -----------------------------------------------------------------------------------------------------


def test_planted_key_never_reaches_store_logs_or_output(task_dir, tmp_path, monkeypatch, capsys, caplog):
    key = "sk-planted-Zq8WfT3xK9mLr2Vb7Yc4"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    db = tmp_path / "kit.sqlite"
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx's debug logs included
    fail_five = lambda body, seen: ("status", 500, {}) if _number(body) == "5" else "ok"
    # the server quotes the Authorization header in its error messages, as some gateways do
    with OpenAIServer(plan=fail_five, echo_auth=True) as srv:
        code = main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url", srv.base_url,
                     "--store", str(db), "-o", "max_attempts=2", "-o", "backoff_s=0.01"])
        sent = [{k.lower(): v for k, v in r["headers"].items()}["authorization"] for r in srv.requests]
    assert code == 0
    assert sent and all(h == f"Bearer {key}" for h in sent)  # the key was really used
    captured = capsys.readouterr()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("kit.sqlite"))
    assert key.encode() not in blob and b"[redacted]" in blob
    assert key not in captured.out + captured.err
    assert caplog.records and key not in caplog.text
    with Store(db) as store:
        rows = store.responses(task="mini")
    failed = rows[rows["error"].notna()]
    assert len(failed) == 1 and "HTTP 500" in failed.iloc[0]["error"]  # recorded, without the key


def test_redact():
    from kit.arms.retry import redact

    key = "sk-echoed-Hh3kLm9PqR5tUv7W"
    assert redact(f"Incorrect API key provided: {key}", (key,)) == "Incorrect API key provided: [redacted]"
    assert redact("key sk-proj-abc123DEF456ghi was wrong", ()) == "key [redacted] was wrong"
    assert redact("nothing secret", ("k",)) == "nothing secret"


def test_missing_key_is_an_error_naming_the_variable(monkeypatch, capsys, task_dir):
    for var in ("OPENAI_API_KEY", "MISTRAL_API_KEY", "ANTHROPIC_API_KEY", "MY_GATEWAY_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ArmError, match="OPENAI_API_KEY"):
        get_arm("openai:gpt-4o-mini")
    with pytest.raises(ArmError, match="MISTRAL_API_KEY"):
        get_arm("openai:mistral-small-latest", base_url="https://api.mistral.ai/v1")
    with pytest.raises(ArmError, match="ANTHROPIC_API_KEY"):
        get_arm("anthropic:claude-3-5-haiku-latest")
    with pytest.raises(ArmError, match="MY_GATEWAY_KEY"):
        get_arm("openai:gpt-4o-mini", api_key_env="MY_GATEWAY_KEY")
    with pytest.raises(ArmError, match="MY_GATEWAY_KEY"):  # named explicitly: needed even on loopback
        get_arm("openai:x", base_url="http://127.0.0.1:9/v1", api_key_env="MY_GATEWAY_KEY")
    assert get_arm("openai:x", base_url="http://localhost:9/v1").hosted is False  # loopback: a dummy key
    code = main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:gpt-4o-mini", "--store",
                 str(task_dir / "s.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and "OPENAI_API_KEY" in err and "export OPENAI_API_KEY" in err


def test_identity_holds_no_key_and_keeps_the_port(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-identity-check-999999")
    arm = get_arm("openai:gpt-4o-mini", seed=7)
    ident = arm.identity()
    assert ident == {"backend": "openai", "model": "gpt-4o-mini", "endpoint": "https://api.openai.com/v1",
                     "temperature": 0.0, "structured": "auto", "seed": 7}
    assert "sk-identity" not in repr(arm) + json.dumps(ident) + arm.describe()
    assert arm.hosted is True and "stand-in" not in arm.describe()
    assert endpoint_identity("http://localhost:5123/v1/") == "http://localhost:5123/v1"  # loopback keeps it too
    assert endpoint_identity("https://my.vllm:8443/v1") == "https://my.vllm:8443/v1"


# --- spending cap ---------------------------------------------------------------------------------------------


def test_max_cost_stops_before_the_cap_is_passed(mini, store):
    # $1000 per million tokens each way: a call here costs about a cent; the cap allows a few
    with OpenAIServer(delay=0.05) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=4, price_in=1000, price_out=1000)
        budget = make_budget(arm, max_cost=0.06)
        assert isinstance(budget, CostBudget)
        summary = run_arm(mini, arm, store=store, budget=budget, max_tokens=16)
        paid = srv.calls()
    assert summary.stopped and "stopped before call" in summary.stopped and "--max-cost 0.06" in summary.stopped
    assert 0 < summary.new_calls < 6 and paid == summary.new_calls
    rows = store.responses(task="mini")
    spent = ((rows["prompt_tokens"] + rows["completion_tokens"]) * 1000 / 1e6).sum()
    assert spent == pytest.approx(budget.spent) and spent <= 0.06


def test_max_cost_cli_message_and_unknown_price(task_dir, tmp_path, monkeypatch, capsys):
    with OpenAIServer() as srv:
        code = main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url",
                     srv.base_url, "--store", str(tmp_path / "k.sqlite"), "--max-cost", "0.03",
                     "-o", "price_in=1000", "-o", "price_out=1000", "--concurrency", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "note: stopped before call" in err and "--max-cost 0.03" in err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-price-test-000000")
    hosted = get_arm("openai:some-new-model", base_url="https://llm.example.invalid/v1")
    with pytest.raises(ConfigError, match="price_in=") as info:
        make_budget(hosted, max_cost=1.0)
    assert "some-new-model" in str(info.value)
    priced = make_budget(get_arm("openai:gpt-4o-mini"), max_cost=1.0)  # the price table (genai-prices)
    assert (priced.price_in, priced.price_out) == (0.15, 0.6)
    assert make_budget(hosted, max_calls=3).max_calls == 3  # a call cap needs no price


# --- rate limits and retry policy -------------------------------------------------------------------------------


def test_rpm_spaces_requests(mini, store):
    with OpenAIServer() as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=6, rpm=600)  # one every 0.1 s
        started = time.perf_counter()
        run_arm(mini, arm, store=store)
        assert time.perf_counter() - started >= 0.5 - 0.02


def test_tpm_bucket_waits_for_tokens():
    limiter = RateLimiter(tpm=600)  # 10 tokens per second

    async def go():
        t0 = time.perf_counter()
        await limiter.acquire(tokens=600)  # a full minute's worth, at once
        t1 = time.perf_counter()
        await limiter.acquire(tokens=3)  # must wait about 0.3 s for the bucket to refill
        return t1 - t0, time.perf_counter() - t1

    first, second = asyncio.run(go())
    assert first < 0.05 and 0.25 <= second < 0.6


def test_retry_after_and_backoff():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    from email.utils import formatdate

    assert 8 <= retry_after_seconds({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None
    policy = RetryPolicy(base_s=0.5, cap_s=4.0, jitter=0.5)
    waits = [policy.backoff(n) for n in range(1, 7)]
    assert all(0.25 * 2 ** (n - 1) <= w <= 0.5 * 2 ** (n - 1) for n, w in zip(range(1, 4), waits))
    assert all(2.0 <= w <= 4.0 for w in waits[3:])  # capped
    assert math.isclose(RetryPolicy(jitter=0).backoff(3), 2.0)


# --- the stand-in server command ------------------------------------------------------------------------------


def test_kit_serve_runs_on_loopback_and_stops_cleanly():
    from kit.arms.standin import free_port, standin_command

    cmd = standin_command("gemma-3-270m", port=12345)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--interrupt_requests") + 1] == "False"  # else concurrent streams are cut short
    assert cmd[cmd.index("--chat_format") + 1] == "hf-tokenizer-config"  # Gemma 3's turns, not Llama 2's
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kit.cli", "serve", "--port", str(port), "--n-ctx", "512"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in first and "stand-in for a hosted API" in first
        rest = [proc.stdout.readline() for _ in range(2)]
        assert "export OPENAI_API_KEY=" in rest[1]
        import urllib.request

        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == "gemma-3-270m"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    import socket

    with socket.socket() as sock:  # the server child is gone with it: the port is free again
        assert sock.connect_ex(("127.0.0.1", port)) != 0
