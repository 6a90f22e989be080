"""The SQLite store: migrations, WAL, write-through, errors retried, latest response per item."""

from __future__ import annotations

import sqlite3

import pytest

from kit.errors import StoreError
from kit.run.store import MIGRATIONS, Store, cache_key


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
