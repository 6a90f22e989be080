"""Runtime reliability: dead endpoints stop an arm fast, a dead stand-in stops the run at once, endpoint
identities, answers without choices, arm options checked by type, `kit run` input, interrupted runs.

Everything runs for real: loopback servers (in this process, in a subprocess, and llama-cpp-python's own
server as the stand-in), real sockets with nothing listening, real SQLite, `kit run` as a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import OpenAIServer, ResettingListener

from kit.arms import get_arm
from kit.cli import main
from kit.errors import ArmError, ConfigError, EndpointDown
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mini(task_dir):
    return load_task(task_dir / "mini.yaml")  # 6 test items "request number N", gold yes for odd N


def _dead_url() -> str:
    """An endpoint on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _rows(store: Store) -> list[dict]:
    return [dict(r) for r in store.db.execute("SELECT item_id, error FROM responses")]


# --- the breaker ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["openai:fake", "anthropic:fake"])
@pytest.mark.parametrize("options", [{}, {"concurrency": 1, "max_attempts": 1}])
def test_dead_port_trips_the_breaker_after_its_threshold(spec, options, mini, store, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-breaker-0000000")
    url = _dead_url()
    arm = get_arm(spec, base_url=url, **options)  # default policy: 5 attempts, backoff 0.5 s, breaker 3
    started = time.perf_counter()
    with pytest.raises(EndpointDown) as info:
        run_arm(mini, arm, store=store)
    elapsed = time.perf_counter() - started
    # three refusals in a row, with backoff waits of at most 0.5 + 1.0 s between them: not 6 items x 5 attempts
    # (about 5.5 s an item, 33 s in all, before the breaker)
    assert elapsed < 3.0
    assert arm._breaker.failures == 3
    message = str(info.value)
    assert "3 connection attempts in a row failed" in message and url in message
    assert f"start the server at {url}" in message and "only the missing items" in message
    assert info.value.url == url and not info.value.exited
    assert _rows(store) == []  # no item is stored as an error because the server was down
    run = store.runs().iloc[-1]
    assert run["status"] == "stopped" and "3 connection attempts in a row failed" in run["message"]
    with pytest.raises(EndpointDown):  # the arm stays stopped: the next call fails at once, with no attempt
        arm.complete(_request())
    assert arm._breaker.failures == 3


def _request():
    from kit.arms.base import Request

    return Request(item_id="x", messages=({"role": "user", "content": "request number 3"},))


def test_reset_connections_trip_the_breaker_counting_attempts(mini, store):
    with ResettingListener() as listener:
        arm = get_arm("openai:fake", base_url=listener.url + "/v1", concurrency=1, breaker=4, backoff_s=0.05)
        with pytest.raises(EndpointDown, match="4 connection attempts in a row failed"):
            run_arm(mini, arm, store=store)
        assert listener.accepted == 4  # four attempts in all, on the first item: not 6 items x 5 attempts
    assert _rows(store) == []


def test_an_answer_in_between_keeps_the_breaker_closed(mini, store):
    """Resets on odd attempts, answers on the next: the count starts again at every answer; nothing trips."""
    flip = lambda body, seen: "reset" if seen == 1 else "ok"
    with OpenAIServer(plan=flip) as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, concurrency=1, breaker=2, backoff_s=0.01)
        summary = run_arm(mini, arm, store=store)
        assert srv.calls() == 12
    assert (summary.new_calls, summary.errors, summary.stopped) == (6, 0, None)


def _serve_in_subprocess() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "servers.py"), "openai", "--delay", "0.3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def _kill_after(db: Path, rows: int, pid: int, when: dict) -> threading.Thread:
    """A thread that SIGKILLs ``pid`` once ``rows`` answers are in the store at ``db``; notes the time."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(db)) as con:
                if con.execute("SELECT count(*) FROM responses").fetchone()[0] >= rows:
                    break
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        when["killed"] = time.perf_counter()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_server_killed_mid_run_stops_the_arm_and_a_rerun_asks_only_the_rest(mini, tmp_path):
    """A server process killed half way (no watch): the breaker stops the run; the answers so far stay;
    a re-run on a fresh server (another port, the same ``served_by``) asks only the missing items."""
    db = tmp_path / "kit.sqlite"
    same = {"served_by": {"server": "tests/servers.py"}, "concurrency": 1}
    proc, url = _serve_in_subprocess()
    when: dict = {}
    try:
        with Store(db) as store:
            arm = get_arm("openai:fake", base_url=url, **same)
            killer = _kill_after(db, 2, proc.pid, when)
            with pytest.raises(EndpointDown, match="connection attempts in a row failed"):
                run_arm(mini, arm, store=store)
            stopped_after = time.perf_counter() - when["killed"]
            killer.join()
            answered = _rows(store)
    finally:
        proc.kill()
        proc.wait()
    assert stopped_after < 3.0
    assert 2 <= len(answered) < 6 and all(r["error"] is None for r in answered)
    with OpenAIServer() as fresh, Store(db) as store:
        again = run_arm(mini, get_arm("openai:fake", base_url=fresh.base_url, **same), store=store)
        assert fresh.calls() == 6 - len(answered)  # counted on the server: no answer asked for twice
        asked = {r["body"]["messages"][-1]["content"].split()[-1] for r in fresh.requests}
    assert (again.cached, again.new_calls, again.errors) == (len(answered), 6 - len(answered), 0)
    done = {i.text.split()[-1] for i in mini.test if i.id in {r["item_id"] for r in answered}}
    assert asked.isdisjoint(done) and len(asked | done) == 6


# --- the stand-in dies --------------------------------------------------------------------------------------


def _served_ok(log: str) -> int:
    return log.count('"POST /v1/chat/completions HTTP/1.1" 200')


def test_standin_killed_mid_run_stops_at_once_and_a_restart_resumes(mini, tmp_path):
    from kit.arms.standin import StandinServer, standin_arm_options

    db = tmp_path / "kit.sqlite"
    when: dict = {}
    fast = {"structured": "off"}  # plain short answers: the test is about the process, not the answers
    with StandinServer("gemma-3-270m", n_ctx=512) as server, Store(db) as store:
        arm = get_arm("openai:gemma-3-270m", **fast, **standin_arm_options(server=server))
        first_identity = arm.identity()
        killer = _kill_after(db, 1, server.process.pid, when)
        with pytest.raises(EndpointDown) as info:
            run_arm(mini, arm, store=store, limit=4, max_tokens=2)
        stopped_after = time.perf_counter() - when["killed"]
        killer.join()
        answered = _rows(store)
        run = store.runs().iloc[-1]
    message = str(info.value)
    assert stopped_after < 3.0, stopped_after
    assert info.value.exited and "was killed by SIGKILL" in message and "the end of its log" in message
    assert "restart the server" in message
    assert run["status"] == "stopped" and "SIGKILL" in run["message"]
    assert 1 <= len(answered) < 4 and all(r["error"] is None for r in answered)
    # a new stand-in on a new port is the same identity (model sha256, server version), so it resumes
    with StandinServer("gemma-3-270m", n_ctx=512) as server, Store(db) as store:
        arm = get_arm("openai:gemma-3-270m", **fast, **standin_arm_options(server=server))
        assert server.base_url not in json.dumps(arm.identity()) and arm.identity() == first_identity
        again = run_arm(mini, arm, store=store, limit=4, max_tokens=2)
        served = _served_ok(server.log_path.read_text())
    assert (again.cached, again.new_calls, again.errors) == (len(answered), 4 - len(answered), 0)
    assert served == 4 - len(answered)  # counted in the server's own access log


def test_standin_identity_names_what_answers_not_the_port():
    from kit.arms.standin import StandinServer

    a, b = StandinServer("gemma-3-270m"), StandinServer("gemma-3-270m")  # not started: nothing runs
    assert a.base_url != b.base_url and a.served_by() == b.served_by()
    served = a.served_by()
    assert len(served["model_sha256"]) == 64 and served["server"].startswith("llama-cpp-python ")
    assert a.exit_notice() is None  # not started: nothing has exited
    arm_a = get_arm("openai:gemma-3-270m", **a.arm_options())
    arm_b = get_arm("openai:gemma-3-270m", **b.arm_options())
    assert arm_a.identity() == arm_b.identity() and "endpoint" not in arm_a.identity()
    assert arm_a.identity()["served_by"] == served


def test_describe_exit_names_the_signal_and_the_log():
    from kit.arms.standin import describe_exit

    text = describe_exit(-signal.SIGILL, what="the stand-in server", log="\n".join(f"line {i}" for i in range(20)))
    assert "killed by SIGILL" in text and "rebuild llama-cpp-python" in text
    assert text.endswith("line 12 | line 13 | line 14 | line 15 | line 16 | line 17 | line 18 | line 19")
    assert describe_exit(3, what="it") == "it exited with status 3"


# --- identities ----------------------------------------------------------------------------------------------


def test_two_loopback_servers_never_share_answers(mini, store):
    with OpenAIServer(answer=lambda body: "yes") as one, OpenAIServer(answer=lambda body: "no") as two:
        first = run_arm(mini, get_arm("openai:fake", base_url=one.base_url), store=store)
        second = run_arm(mini, get_arm("openai:fake", base_url=two.base_url), store=store)
        assert (one.calls(), two.calls()) == (6, 6)
    assert (first.new_calls, second.new_calls, second.cached) == (6, 6, 0)
    answers = {k: store.rows([k]).iloc[0]["answer"] for k in [*first.keys.values(), *second.keys.values()]}
    assert {answers[k] for k in first.keys.values()} == {"yes"}
    assert {answers[k] for k in second.keys.values()} == {"no"}


# --- an answer without choices -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_empty_choices_is_recorded_as_what_it_is(stream, mini, store):
    with OpenAIServer(plan=lambda body, seen: "no_choices") as srv:
        arm = get_arm("openai:fake", base_url=srv.base_url, stream=stream, concurrency=1)
        summary = run_arm(mini, arm, store=store, limit=2)
        assert srv.calls() == 2  # not retried: the server answered, and would answer the same
    assert (summary.new_calls, summary.errors) == (2, 2)
    rows = store.rows(summary.keys.values())
    assert rows["error"].str.startswith("the endpoint answered with no choices").all()
    assert rows["error"].str.contains("prompt_filter_results").all()


# --- arm options, checked by type ----------------------------------------------------------------------------


def test_arm_options_are_checked_by_type(tmp_path):
    with pytest.raises(ConfigError, match=r"option n_ctx='abc' is not a whole number.*-o n_ctx=4096"):
        get_arm("llama_cpp:smollm2-135m-instruct", n_ctx="abc")
    with pytest.raises(ConfigError, match=r"temperature=\[1, 2\] is not a number"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", temperature=[1, 2])
    with pytest.raises(ConfigError, match="concurrency=0 must be at least 1"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", concurrency=0)
    with pytest.raises(ConfigError, match="concurrency=0 must be at least 1"):
        get_arm("anthropic:fake", base_url="http://127.0.0.1:9", concurrency=0)
    with pytest.raises(ConfigError, match="concurrency=2.5 is not a whole number"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", concurrency=2.5)
    with pytest.raises(ConfigError, match="structured='maybe' is not one of 'auto', 'off'"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", structured="maybe")
    with pytest.raises(ConfigError, match="served_by=.* is not a mapping"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", served_by="me")
    with pytest.raises(ConfigError, match="watch=3 is not a function"):
        get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", watch=3)
    with pytest.raises(ConfigError, match="is not a URL .Port out of range"):
        get_arm("openai:fake", base_url="http://127.0.0.1:999999/v1")
    # a whole number where a number is asked is fine, and stored as a float
    assert get_arm("openai:fake", base_url="http://127.0.0.1:9/v1", temperature=1).identity()["temperature"] == 1.0
    # an option an arm does not take: named, with the options it does take
    with pytest.raises(ArmError, match="unknown llama_cpp option concurrency.*n_ctx"):
        get_arm("llama_cpp:smollm2-135m-instruct", concurrency=0)
    replay = tmp_path / "r.jsonl"
    replay.write_text('{"item_id": "a", "output": "yes"}\n')
    with pytest.raises(ArmError, match=r"unknown replay option concurrency.*none \(everything comes from the spec"):
        get_arm(f"replay:{replay}", concurrency=2)
    adapter = tmp_path / "a.lora.gguf"
    adapter.write_bytes(b"not read: the options are checked first")
    with pytest.raises(ConfigError, match=f"lora:smollm2-135m-instruct\\+{adapter}: option n_ctx='abc'"):
        get_arm(f"lora:smollm2-135m-instruct+{adapter}", n_ctx="abc")


def test_cli_option_type_errors_are_one_line(task_dir, capsys):
    cases = [(["--arm", "llama_cpp:smollm2-135m-instruct", "-o", "n_ctx=abc"], "n_ctx='abc' is not a whole number"),
             (["--arm", "openai:fake", "--base-url", "http://127.0.0.1:9/v1", "-o", "temperature=[1,2]"],
              "temperature=[1, 2] is not a number")]
    for args, words in cases:
        code = main(["run", "--task", str(task_dir / "mini.yaml"), "--store", str(task_dir / "s.sqlite"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and words in err and "Traceback" not in err


# --- kit run input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags,words", [
    (["--limit", "-3"], "argument --limit: -3 is below 1"),
    (["--limit", "0"], "argument --limit: 0 is below 1"),
    (["--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
    (["--max-calls", "-1"], "argument --max-calls: -1 is below 0"),
    (["--max-cost", "-2"], "argument --max-cost: -2 is not above zero"),
    (["--epoch", "-1"], "argument --epoch: -1 is below 0"),
    (["--concurrency", "0"], "argument --concurrency: 0 is below 1"),
])
def test_kit_run_input_is_checked(flags, words, task_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", *flags])
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err and "Traceback" not in err


def test_runner_and_budget_check_their_input_too(mini, store):
    from kit.run.budget import make_budget

    arm = get_arm("openai:fake", base_url="http://127.0.0.1:9/v1")
    for bad in ({"limit": -3}, {"limit": 0}, {"epoch": -1}, {"epoch": 1.5}):
        with pytest.raises(ConfigError):
            run_arm(mini, arm, store=store, **bad)
    with pytest.raises(ConfigError, match="--max-calls -1"):
        make_budget(arm, max_calls=-1)
    assert store.runs().empty  # refused before a run was recorded


# --- interrupted runs ----------------------------------------------------------------------------------------


def test_run_killed_by_sigkill_shows_as_interrupted(task_dir, tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    cmd = [sys.executable, "-m", "kit.cli", "run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake",
           "--store", str(db), "--concurrency", "1"]
    with OpenAIServer(delay=0.3) as srv:
        proc = subprocess.Popen(cmd + ["--base-url", srv.base_url], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                with sqlite3.connect(db) as con:
                    if con.execute("SELECT count(*) FROM responses").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT count(*) FROM responses").fetchone()[0]
        raw = con.execute("SELECT status, pid, host, n_items FROM runs").fetchone()
    assert raw == ("running", proc.pid, socket.gethostname(), 6)  # what the killed process left behind
    assert main(["runs", "--store", str(db), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 1 and runs[0]["status"] == "interrupted"
    assert runs[0]["items"] == 6 and runs[0]["new_calls"] == stored and "killed?" in runs[0]["note"]
    with sqlite3.connect(db) as con:  # updated when read, once
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    main(["runs", "--store", str(db)])
    table = capsys.readouterr().out
    assert "interrupted" in table and "mini" in table and "openai:fake" in table


def test_a_live_run_stays_running(store):
    run_id = store.start_run(task="t", arm="a", identity={}, hardware=None, options=None, kit_version="x")
    assert store.runs().set_index("run_id").loc[run_id, "status"] == "running"  # this process is alive
    store.db.execute("UPDATE runs SET started_at='2000-01-01T00:00:00+00:00' WHERE run_id=?", (run_id,))
    # a pid that belongs to a process started after the run began is a reused pid: the run's process is gone
    assert store.runs().set_index("run_id").loc[run_id, "status"] == "interrupted"
