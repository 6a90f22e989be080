"""The SQLite store: migrations, WAL, write-through, errors retried, latest response per item, rows kept aside
while another process holds the lock, claims, clear errors for a read-only store or an impossible path."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from kit.errors import StoreError
from kit.run.store import MIGRATIONS, Claims, Store, StoreBusy, Unwritten, cache_key


def _row(item="a", error=None, output="x", arm="t:a"):
    return {"run_id": "r1", "task": "t", "item_id": item, "arm": arm, "model_identity": "m", "params": {"p": 1},
            "prompt_hash": "h", "epoch": 0, "output": output, "answer": {"k": [1, 2]}, "parse_error": False,
            "error": error}


def test_migrations_applied_and_wal(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {r[1] for r in s.db.execute("PRAGMA table_info(responses)")}
        assert {"attempts", "extra", "cache_key", "prompt_hash", "epoch", "confidence"} <= cols
    with Store(tmp_path / "s.sqlite") as s:  # reopening applies nothing twice
        assert s.schema_version() == len(MIGRATIONS)


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this kit"):
        Store(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store.*--store PATH"):
        Store(path)


def test_write_is_visible_to_another_connection_at_once(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.write("k1", _row())
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM responses").fetchone()[0] == 1
        other.close()


def test_errors_are_not_served_and_retry_replaces(store):
    store.write("k1", _row(error="HTTP 500"))
    assert store.cached(["k1"]) == {}
    store.write("k1", _row(output="fine"))
    hit = store.cached(["k1"])["k1"]
    assert hit["output"] == "fine" and hit["attempts"] == 2


def test_responses_latest_per_item_and_answers_decoded(store):
    store.write("k1", _row(item="a", output="old"))
    store.write("k2", _row(item="a", output="new"))
    store.write("k3", _row(item="b"))
    frame = store.responses(task="t")
    assert sorted(frame["item_id"]) == ["a", "b"]
    assert frame.set_index("item_id").loc["a", "output"] == "new"
    assert frame.iloc[0]["answer"] == {"k": [1, 2]}
    assert store.arms(task="t") == ["t:a"]


def test_cache_key_depends_on_every_part():
    base = dict(task="t", item_id="a", identity={"sha256": "x", "temperature": 0}, prompt_hash="h", epoch=0)
    keys = {cache_key(**base)}
    for change in ({"item_id": "b"}, {"identity": {"sha256": "y", "temperature": 0}}, {"prompt_hash": "g"},
                   {"epoch": 1}, {"task": "u"}):
        keys.add(cache_key(**{**base, **change}))
    assert len(keys) == 6


HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@pytest.fixture
def held(tmp_path):
    """A store, and another process holding its write lock until the test ends (or calls ``release()``)."""
    path = tmp_path / "s.sqlite"
    Store(path).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"

    def release():
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=10)

    yield path, proc, release
    release()


def test_a_write_the_locked_store_cannot_take_is_kept_aside_and_lands_with_the_next(held):
    path, proc, release = held
    with Store(path, wait_s=0.2) as s:
        assert s.write("k1", _row(item="a")) is False
        assert s.unwritten() == 1 and s.cached(["k1"]) == {}
        kept = json.loads((path.parent / "s.sqlite.unwritten.jsonl").read_text())
        assert kept["table"] == "responses" and kept["values"]["cache_key"] == "k1"
        with pytest.raises(StoreBusy) as busy:
            s.flush()
        message = str(busy.value)
        assert message.startswith(f"{path}: the store is locked by process {proc.pid} (")
        assert "; the 1 row not yet written (a paid answer, or how a run ended) is kept in " in message
        assert "s.sqlite.unwritten.jsonl and land in the store first, without being paid again" in message
        release()
        assert s.write("k2", _row(item="b")) is True  # the next write lands the kept row first
        assert set(s.cached(["k1", "k2"])) == {"k1", "k2"} and s.unwritten() == 0
    assert (path.parent / "s.sqlite.unwritten.jsonl").read_text() == ""


def test_a_run_cannot_start_while_the_lock_is_held_past_the_bound(held):
    path, proc, _ = held
    with Store(path, wait_s=0.3) as s:
        began = time.monotonic()
        with pytest.raises(StoreBusy, match=f"locked by process {proc.pid}.*waited 0\\.[3-9] s.*bound is 0\\.3 s"):
            s.start_run(task="t", arm="a", identity={}, hardware=None, options=None, kit_version="0")
        assert 0.3 <= time.monotonic() - began < 3


def test_kept_rows_land_when_the_store_is_opened_again(held):
    path, _, release = held
    with Store(path, wait_s=0.2) as s:
        s.write("k1", _row())
        assert s.finish_run("r1", status="interrupted", n_items=1, new_calls=1, cached=0, errors=0) is False
        assert s.unwritten() == 2
    release()
    with Store(path) as s:
        assert s.unwritten() == 0 and list(s.cached(["k1"])) == ["k1"]


def _run(store, task="t"):
    return store.start_run(task=task, arm="a", identity={}, hardware=None, options=None, kit_version="0")


def test_a_question_is_claimed_by_one_run_at_a_time(store):
    first, second = _run(store), _run(store)
    assert store.claim(["k1", "k2"], run_id=first) == Claims(mine=("k1", "k2"), answered=(), held={})
    claims = store.claim(["k1", "k3"], run_id=second)
    assert claims.mine == ("k3",) and list(claims.held) == ["k1"]
    assert claims.held["k1"] == f"run {first} (pid {os.getpid()} on {socket.gethostname()})"
    store.write("k1", {**_row(), "run_id": first})  # answered: its claim goes with the write
    assert store.claim(["k1"], run_id=second) == Claims(mine=(), answered=("k1",), held={})
    store.finish_run(first, status="stopped", n_items=2, new_calls=1, cached=0, errors=0)
    again = store.claim(["k2"], run_id=second)
    assert again.mine == ("k2",) and again.taken_over == {}  # a run that ended holds nothing


def test_the_claims_of_calls_in_flight_outlive_a_run_cut_off_and_are_counted_when_taken_over(store):
    first, second = _run(store), _run(store)
    store.claim(["sent", "not-sent"], run_id=first)
    store.finish_run(first, status="interrupted", n_items=2, new_calls=0, cached=0, errors=0, in_flight=["sent"])
    held = store.db.execute("SELECT cache_key, run_id FROM claims").fetchall()
    assert [tuple(r) for r in held] == [("sent", first)]  # kept: its call may have been paid
    claims = store.claim(["sent", "not-sent"], run_id=second)
    assert claims.mine == ("sent", "not-sent") and claims.taken_over == {"sent": first}
    # kept aside while the store is busy, the run's end keeps the same claim when it lands
    third = _run(store)
    store.claim(["k9"], run_id=third)
    store._keep_aside(Unwritten("runs", {"run_id": third, "status": "interrupted", "in_flight": ["k9"]}))
    store.flush()
    assert store.claim(["k9"], run_id=second).taken_over == {"k9": third}


def test_a_claim_is_honoured_no_longer_than_its_time_to_live(tmp_path):
    with Store(tmp_path / "s.sqlite", claim_ttl_s=0.2) as s:
        first, second = _run(s), _run(s)
        s.claim(["k1"], run_id=first)
        assert s.claim(["k1"], run_id=second).held
        time.sleep(0.25)
        assert s.claim(["k1"], run_id=second).mine == ("k1",)


def test_a_read_only_store_is_refused_when_opened(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("this file system cannot make a file immutable")
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(StoreError, match=r"the store is read-only .*Fix: make both writable"):
            Store(path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        else:
            path.chmod(0o644)


def test_a_store_path_that_cannot_be_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match=r"notes.txt is a file, not a folder\. Fix: pass --store a path inside a"):
        Store(tmp_path / "notes.txt" / "deeper" / "s.sqlite")
    with pytest.raises(StoreError, match=r"this is a folder, not a store file\. Fix: pass --store a file path"):
        Store(tmp_path)


def test_a_write_that_fails_for_good_keeps_the_row_and_says_so(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        pages = s.db.execute("PRAGMA page_count").fetchone()[0]
        s.db.execute(f"PRAGMA max_page_count = {pages}")  # the store cannot grow: SQLite says full
        with pytest.raises(StoreError, match=r"the disk is full\. Fix: free some space, then run again; the 1 row "
                                             r"not yet written .* is kept in .*s\.sqlite\.unwritten\.jsonl"):
            s.write("k1", {**_row(), "output": "x" * 100_000})
        assert s.unwritten() == 1
    with Store(path) as s:  # space again: the kept row lands when the store is opened
        assert s.unwritten() == 0 and s.cached(["k1"])["k1"]["output"] == "x" * 100_000
