"""Several processes on one store: a lock held by another process, a read-only store, two processes creating a
store at once, three runs of the same questions, a run killed while it held claims — real processes, real
SQLite files and a loopback server that counts what it was asked (what would be paid)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT
from kit.run.store import MIGRATIONS
from servers import OpenAIServer, parity_answer, parity_task

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "KIT_PROJECT": str(ROOT), "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}


# `kit run` as a terminal starts it: Ctrl-C raises KeyboardInterrupt even where the test process was started with
# SIGINT ignored (a disposition a child inherits, and then Python keeps), as a test worker may be
CLI = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "sys.argv[0] = 'kit'; runpy.run_module('kit.cli', run_name='__main__')")


def _run(task: Path, url: str, store: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", CLI, "run", "--task", str(task), "--arm", "openai:fake", "--base-url", url,
           "--store", str(store), "--json", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _hold(store: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds the store's write lock (BEGIN IMMEDIATE) for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(store), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _until(condition, *, timeout: float = 120.0) -> None:  # a loaded machine starts a process slowly
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _rows(store: Path) -> list[str]:
    with sqlite3.connect(store) as db:
        return [r[0] for r in db.execute("SELECT item_id FROM responses WHERE error IS NULL")]


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_a_lock_held_mid_run_loses_no_paid_answer(tmp_path):
    task, store = parity_task(tmp_path, 40), tmp_path / "kit.sqlite"
    aside = Path(f"{store}.unwritten.jsonl")
    with OpenAIServer(answer=parity_answer, delay=0.05) as srv:
        run = _run(task, srv.base_url, store, "--concurrency", "2")
        _until(lambda: srv.calls() >= 6)
        holder = _hold(store, 2.0)
        # answers in flight when the lock was taken are paid: kept aside beside the store, not dropped
        _until(lambda: _lines(aside) >= 1, timeout=2.0)
        paid_while_locked = srv.calls()
        holder.wait(timeout=10)
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
        assert sorted(_rows(store)) == sorted(f"r{i}" for i in range(40))
        assert srv.calls() == 40  # every paid answer is in the store, each paid once
    assert paid_while_locked < 40 and _lines(aside) == 0
    summary = json.loads(out)[0]
    assert summary["new_calls"] == 40 and summary["errors"] == 0


def test_a_lock_held_past_the_bound_is_a_clear_error_and_the_kept_answers_land_next_run(tmp_path):
    task, store = parity_task(tmp_path, 40), tmp_path / "kit.sqlite"
    aside = Path(f"{store}.unwritten.jsonl")
    with OpenAIServer(answer=parity_answer, delay=0.05) as srv:
        run = _run(task, srv.base_url, store, "--concurrency", "2", "--store-wait", "0.5")
        _until(lambda: srv.calls() >= 6)
        holder = _hold(store, 30.0)
        _, err = run.communicate(timeout=30)
        paid, stored, kept = srv.calls(), len(_rows(store)), _lines(aside)
        holder.kill()
        holder.wait()
        assert run.returncode == 2 and "Traceback" not in err
        assert f"{store}: the store is locked by process {holder.pid}" in err
        assert "--store-wait SECONDS" in err and str(aside) in err and "without being paid again" in err
        assert kept >= 1 and stored + kept - 1 == paid  # every paid answer is stored or kept; +1: the run's end

        again = _run(task, srv.base_url, store, "--concurrency", "2")
        out, err = again.communicate(timeout=180)
        assert again.returncode == 0, err
        assert json.loads(out)[0]["new_calls"] == 40 - paid
        assert srv.calls() == 40 and sorted(_rows(store)) == sorted(f"r{i}" for i in range(40))
    assert _lines(aside) == 0
    with sqlite3.connect(store) as db:
        (status, note), _ = db.execute("SELECT status, message FROM runs ORDER BY started_at").fetchall()
    assert status == "interrupted" and f"locked by process {holder.pid}" in note


def _immutable(path: Path) -> bool:
    """Make ``path`` read-only for real: chattr +i as root (root ignores modes), chmod otherwise."""
    if os.geteuid() == 0:
        return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    path.chmod(0o555 if path.is_dir() else 0o444)
    return True


def _mutable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    else:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_is_a_clear_error_before_anything_is_asked(what, tmp_path):
    task, folder = parity_task(tmp_path, 4), tmp_path / "runs"
    store = folder / "kit.sqlite"
    with OpenAIServer(answer=parity_answer) as srv:
        first = _run(task, srv.base_url, store)
        assert first.wait(timeout=180) == 0
        locked = store if what == "file" else folder
        if not _immutable(locked):
            pytest.skip("this file system cannot make a file immutable")
        try:
            run = _run(task, srv.base_url, store, "--epoch", "1")
            _, err = run.communicate(timeout=180)
        finally:
            _mutable(locked)
        assert srv.calls() == 4  # the second run asked nothing
    assert run.returncode == 2 and "Traceback" not in err and err.startswith("error: ")
    assert f"{store}: " in err
    assert ("the store is read-only" if what == "file" else "SQLite cannot open the store") in err
    assert "or pass --store a path you can write to" in err


RACE = """
import sys, time
from kit.run.store import Store
start, rounds, folder = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(rounds):
    time.sleep(max(0.0, start + 0.1 * i - time.time()))
    try:
        with Store(f"{folder}/s{i}.sqlite") as store:
            store.start_run(task="t", arm="a", identity={}, hardware=None, options=None, kit_version="0")
        print("ok", flush=True)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", flush=True)
"""


def test_two_processes_creating_one_new_store_at_once(tmp_path):
    rounds = 20
    start = time.time() + 3.0  # both processes have imported the kit by then; round i starts at start + 0.1 i
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(start), str(rounds), str(tmp_path)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for out, err in outs:
        assert out.split("\n")[:rounds] == ["ok"] * rounds, out + err
    for i in range(rounds):
        with sqlite3.connect(tmp_path / f"s{i}.sqlite") as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_three_runs_of_the_same_questions_pay_each_once(tmp_path):
    n = 50
    task, store = parity_task(tmp_path, n), tmp_path / "kit.sqlite"
    with OpenAIServer(answer=parity_answer, delay=0.05) as srv:
        runs = [_run(task, srv.base_url, store, "--concurrency", "2") for _ in range(3)]
        outs = [r.communicate(timeout=120) for r in runs]
        assert [r.returncode for r in runs] == [0, 0, 0], [err for _, err in outs]
        assert srv.calls() == n  # every question paid once, across the three runs
    summaries = [json.loads(out)[0] for out, _ in outs]
    assert sum(s["new_calls"] for s in summaries) == n
    assert all(s["new_calls"] + s["from_store"] == n for s in summaries)
    assert sum(s["new_calls"] > 0 for s in summaries) >= 2  # they did run side by side
    assert sorted(_rows(store)) == sorted(f"r{i}" for i in range(n))
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_run_cut_off_mid_call_is_taken_over_and_its_calls_in_flight_are_counted(sig, tmp_path, capsys):
    """kill -9 or Ctrl-C while 3 calls hang at the server: those 3 were sent (a provider would bill them) and
    are asked again; the run that asks them says so, and `kit runs` shows both runs without NaN."""
    from kit.cli import main

    n = 6
    task, store = parity_task(tmp_path, n), tmp_path / "kit.sqlite"
    opened = threading.Event()
    asked = []

    def answer(body):
        asked.append(1)
        if len(asked) > 1:  # the first answer comes (an arm asks alone until the endpoint answered as the API) ...
            opened.wait(120)  # ... then hang until the first run is cut off (on a loaded machine many seconds later)
        return parity_answer(body)

    def claims() -> list[tuple[str, int]]:
        for attempt in range(50):  # a lock held for a moment by a run's write is waited out, not read as "none"
            try:
                with sqlite3.connect(store, timeout=5) as db:
                    return db.execute("SELECT run_id, pid FROM claims").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc) or not store.exists():  # the run has not made the store yet
                    return []
                if attempt == 49:
                    raise
                time.sleep(0.1)
        return []

    with OpenAIServer(answer=answer) as srv:
        first = _run(task, srv.base_url, store, "--concurrency", "3")
        _until(lambda: len(claims()) == 3 and srv.calls() == 4)
        assert {pid for _, pid in claims()} == {first.pid}
        first.send_signal(sig)
        first.wait(timeout=60)
        assert len(claims()) == 3  # Ctrl-C too leaves the claims of the calls in flight: they may be paid
        opened.set()
        began = time.monotonic()
        again = _run(task, srv.base_url, store, "--concurrency", "3")
        out, err = again.communicate(timeout=180)
        assert again.returncode == 0, err
        assert time.monotonic() - began < 120  # far inside the claims' 15 minutes: a dead process's claim is void
        summary = json.loads(out)[0]
        assert summary["new_calls"] == n - 1 and srv.calls() == 1 + 3 + (n - 1)  # the 3 in flight bought twice ...
        assert summary["maybe_paid_twice"] == 3  # ... and the run says so
        assert "3 calls may be paid twice: in flight when an earlier run was cut off" in err
    assert claims() == [] and sorted(_rows(store)) == sorted(f"r{i}" for i in range(n))
    with sqlite3.connect(store) as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY started_at")]
    assert statuses == ["running" if sig == signal.SIGKILL else "interrupted", "finished"]

    capsys.readouterr()
    assert main(["runs", "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "interrupted" in text and "3 calls may be paid twice" in text
    assert main(["runs", "--store", str(store), "--json"]) == 0
    killed, resumed = json.loads(capsys.readouterr().out)
    assert killed["status"] == "interrupted" and resumed["new_calls"] == n - 1
    assert killed["from_store"] is None if sig == signal.SIGKILL else killed["from_store"] == 0  # unknown vs counted


def test_a_store_under_a_file_is_a_clear_error(tmp_path, capsys):
    from kit.cli import main

    (tmp_path / "notes.txt").write_text("not a folder", encoding="utf-8")
    task = parity_task(tmp_path, 4)
    code = main(["run", "--task", str(task), "--arm", "openai:fake", "--base-url", "http://127.0.0.1:9/v1",
                 "--store", str(tmp_path / "notes.txt" / "s.sqlite")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"error: {tmp_path / 'notes.txt' / 's.sqlite'}: cannot create the store: {tmp_path / 'notes.txt'} "
                   f"is a file, not a folder. Fix: pass --store a path inside a folder, e.g. --store "
                   f"{tmp_path / 's.sqlite'}, or move {tmp_path / 'notes.txt'} away\n")
