"""The response store: SQLite in WAL mode, one row per answered prompt, numbered migrations.

Every response is written the moment it completes. A response whose task, item, model identity,
parameters, prompt and epoch match a stored one (without error) is served from the store instead of
calling the model again.

>>> with Store(":memory:") as store:
...     store.schema_version()
3
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from kit.errors import StoreError

# Append only: a schema change is a new entry. user_version records how many have been applied.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, task TEXT NOT NULL, arm TEXT NOT NULL, identity TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL, hardware TEXT, kit_version TEXT,
        options TEXT, n_items INTEGER, new_calls INTEGER, cached INTEGER, errors INTEGER, message TEXT
    );
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cache_key TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        task TEXT NOT NULL, item_id TEXT NOT NULL, arm TEXT NOT NULL,
        model_identity TEXT NOT NULL, params TEXT NOT NULL, prompt_hash TEXT NOT NULL, epoch INTEGER NOT NULL,
        output TEXT, answer TEXT, parse_error INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL, ttft_s REAL, confidence REAL,
        error TEXT, created_at TEXT NOT NULL
    );
    CREATE INDEX responses_task_arm ON responses(task, arm, item_id, epoch);
    """,
    """
    ALTER TABLE responses ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE responses ADD COLUMN extra TEXT;
    """,
    # pid and host let a run killed without warning be shown as interrupted; kind says what a call was
    # for (an option's answer, a judge's grade, a load-sweep measurement), load the sweep level.
    """
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE responses ADD COLUMN kind TEXT NOT NULL DEFAULT 'answer';
    ALTER TABLE responses ADD COLUMN load INTEGER;
    CREATE INDEX responses_task_prompt ON responses(task, prompt_hash);
    """,
)

KINDS = ("answer", "judge", "sweep")

RESPONSE_COLUMNS = (
    "run_id", "task", "item_id", "arm", "model_identity", "params", "prompt_hash", "epoch", "output", "answer",
    "parse_error", "prompt_tokens", "completion_tokens", "latency_s", "ttft_s", "confidence", "error",
    "created_at", "extra", "kind", "load",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def cache_key(*, task: str, item_id: str, identity: dict[str, Any], prompt_hash: str, epoch: int,
              kind: str = "answer", load: int | None = None) -> str:
    """The question asked, as one hash: task, item, what answers (identity), the prompt, the epoch — and,
    for calls that are not an option's answer, what they were for and at which load level."""
    parts: list[Any] = [task, item_id, identity, prompt_hash, epoch]
    if kind != "answer" or load is not None:
        parts += [kind, load]
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Store:
    """A SQLite response store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # one connection, used by one thread at a time (the runner may write from its event-loop thread)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store: {exc}", where=self.path,
                             fix="pass another --store PATH, or move the damaged file away") from None

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(f"store schema {version} is newer than this kit ({len(MIGRATIONS)})",
                             where=self.path, fix="upgrade the kit (pip install -U -e .)")
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN")
            for statement in filter(str.strip, sql.split(";")):
                self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {number}")
            self.db.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs ------------------------------------------------------------------------------------------
    def start_run(self, *, task: str, arm: str, identity: dict[str, Any], hardware: dict[str, Any] | None,
                  options: dict[str, Any] | None, kit_version: str, n_items: int | None = None) -> str:
        """Record a run as ``running``, with this process's pid and host (so a killed run can be told apart)."""
        run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.db.execute(
            "INSERT INTO runs(run_id, task, arm, identity, started_at, status, hardware, kit_version, options,"
            " n_items, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, task, arm, _dumps(identity), now(), "running", _dumps(hardware), kit_version, _dumps(options),
             n_items, os.getpid(), socket.gethostname()),
        )
        return run_id

    def finish_run(self, run_id: str, *, status: str, n_items: int, new_calls: int, cached: int, errors: int,
                   message: str | None = None) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, n_items=?, new_calls=?, cached=?, errors=?, message=?"
            " WHERE run_id=?",
            (now(), status, n_items, new_calls, cached, errors, message, run_id),
        )

    def runs(self, *, task: str | None = None) -> pd.DataFrame:
        """Every run (of ``task``), oldest first. Runs whose process is gone are marked first (see :meth:`reap`)."""
        self.reap()
        sql, args = "SELECT * FROM runs", ()
        if task:
            sql, args = sql + " WHERE task=?", (task,)
        return pd.read_sql_query(sql + " ORDER BY started_at", self.db, params=args)

    def reap(self) -> list[str]:
        """Mark as ``interrupted`` the runs still ``running`` whose process on this host is gone (killed with
        SIGKILL, out of memory, the machine restarted), with the calls they stored; return their run ids.

        Runs of other hosts are left alone: their processes cannot be seen from here.
        """
        host = socket.gethostname()
        rows = self.db.execute("SELECT run_id, pid, started_at FROM runs WHERE status='running' AND host=?",
                               (host,)).fetchall()
        gone = [r["run_id"] for r in rows if r["pid"] is not None and not _alive(int(r["pid"]), r["started_at"])]
        for run_id in gone:
            self.db.execute(
                "UPDATE runs SET status='interrupted', message=?,"
                " new_calls=(SELECT count(*) FROM responses WHERE run_id=runs.run_id),"
                " errors=(SELECT count(*) FROM responses WHERE run_id=runs.run_id AND error IS NOT NULL)"
                " WHERE run_id=? AND status='running'",
                ("its process ended without finishing the run (killed?); run it again to continue", run_id))
        return gone

    # responses -------------------------------------------------------------------------------------
    def cached(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored responses without error for these cache keys."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT * FROM responses WHERE error IS NULL AND cache_key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found.update({row["cache_key"]: dict(row) for row in rows})
        return found

    def write(self, key: str, row: dict[str, Any]) -> None:
        """Insert one response now (a retried error is replaced and its attempt counted)."""
        values = {c: row.get(c) for c in RESPONSE_COLUMNS}
        values["answer"] = _dumps(values["answer"])
        values["params"] = _dumps(values["params"])
        values["model_identity"] = str(values["model_identity"])
        values["extra"] = _dumps(values["extra"]) if values["extra"] else None
        values["created_at"] = values["created_at"] or now()
        values["kind"] = values["kind"] or "answer"
        cols = ", ".join(values)
        updates = ", ".join(f"{c}=excluded.{c}" for c in values)
        self.db.execute(
            f"INSERT INTO responses(cache_key, {cols}) VALUES (?, {','.join('?' * len(values))})"
            f" ON CONFLICT(cache_key) DO UPDATE SET {updates}, attempts = attempts + 1",
            (key, *values.values()),
        )

    def rows(self, keys: Iterable[str]) -> pd.DataFrame:
        """The stored rows for exactly these cache keys (errors included), answers decoded from JSON.

        This is how results are read: only the questions asked now (model identity, parameters, prompt,
        epoch) are ever looked up, never "the latest row" of an arm.
        """
        keys = list(dict.fromkeys(keys))
        frames = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            frames.append(pd.read_sql_query(
                f"SELECT * FROM responses WHERE cache_key IN ({','.join('?' * len(chunk))})", self.db, params=chunk))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.read_sql_query(
            "SELECT * FROM responses WHERE 0", self.db)
        return _decoded(frame)

    def responses(self, *, task: str, arms: Iterable[str] | None = None, epoch: int | None = None,
                  item_ids: Iterable[str] | None = None,
                  prompt_hashes: dict[str, str] | None = None) -> pd.DataFrame:
        """The latest answer per (arm, item, epoch) of a task whose prompt is the one asked now.

        ``prompt_hashes`` (item id -> hash of the prompt the task builds today) keeps only rows answered
        with today's prompt, so a changed task file never shows another prompt's answers.
        """
        sql = "SELECT * FROM responses WHERE task=? AND kind='answer'"
        args: list[Any] = [task]
        if arms is not None:
            arms = list(arms)
            sql += f" AND arm IN ({','.join('?' * len(arms))})"
            args += arms
        if epoch is not None:
            sql += " AND epoch=?"
            args.append(epoch)
        frame = pd.read_sql_query(sql + " ORDER BY created_at, id", self.db, params=args)
        if item_ids is not None:
            frame = frame[frame["item_id"].isin(set(item_ids))]
        if prompt_hashes is not None:
            frame = frame[frame["prompt_hash"] == frame["item_id"].map(prompt_hashes)]
        frame = frame.drop_duplicates(["arm", "item_id", "epoch"], keep="last").reset_index(drop=True)
        return _decoded(frame)

    def arms(self, *, task: str) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT arm FROM responses WHERE task=? ORDER BY arm", (task,)).fetchall()
        return [r[0] for r in rows]


def _alive(pid: int, started_at: str) -> bool:
    """Whether process ``pid`` of this host still runs and is the one that started a run at ``started_at``
    (a pid reused by a process started later does not count, where /proc tells start times)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    began = _process_start(pid)
    if began is None:
        return True
    try:
        run_began = datetime.fromisoformat(started_at).timestamp()
    except (TypeError, ValueError):
        return True
    return began <= run_began + 2.0  # /proc/stat's boot time has whole seconds


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (Unix time), from Linux's /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    ticks = float(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks since boot
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _decoded(frame: pd.DataFrame) -> pd.DataFrame:
    # a list, not .map: pandas 3 would turn the None of a missing answer back into NaN
    frame["answer"] = pd.Series([_loads(v) for v in frame["answer"].astype(object)], index=frame.index, dtype=object)
    frame["parse_error"] = frame["parse_error"].astype(bool)
    for column in ("output", "error", "extra", "answer"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _loads(value: str | float | None) -> Any:
    # pandas 3 reads a TEXT column holding NULLs as its string dtype, with NaN (a float) for NULL
    return None if value is None or isinstance(value, float) else json.loads(value)
