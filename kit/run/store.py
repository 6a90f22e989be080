"""The response store: SQLite in WAL mode, one row per answered prompt, numbered migrations — and what keeps
it whole when several processes share it.

Every response is written the moment it completes. A response whose task, item, model identity,
parameters, prompt and epoch match a stored one (without error) is served from the store instead of
calling the model again.

Several processes may use one store at once (``kit run`` in two terminals, a notebook beside the CLI):

- **No answer bought twice by two runs; a call cut off is counted.** Before a question is sent its cache
  key is *claimed* (a row in ``claims`` with the run, pid and host), in the same transaction that checks
  it is not answered yet. A second run skips a claimed question and comes back to it: by then it is
  answered (served from the store), or its claim is void. A claim is honoured while its run is
  ``running``, its process lives (on this host: a SIGKILLed run's claims are taken over at once) and for
  at most ``claim_ttl_s`` (15 minutes) — so no claim blocks forever. A run stopped with calls in flight
  (Ctrl-C, SIGKILL, a crash) cannot store their answers, though the provider may bill them: their claims
  stay, and the run that asks those questions again counts them (:attr:`Claims.taken_over`) as calls
  that may have been paid twice.
- **Nothing paid lost.** A write that finds the store locked by another process waits a moment
  (:data:`QUICK_WAIT_S`), then the row goes to a side file beside the store (``PATH.unwritten.jsonl``;
  a file in the temporary folder if that one cannot be written; memory as the last resort). Every
  later write transaction, of any process, first moves the side file's rows into the store. A run
  waits for the lock at most ``wait_s`` (:data:`DEFAULT_WAIT_S`) in all, then stops with an error that
  names the process holding the lock and where the unwritten answers are kept.
- **Safe creation.** Migrations run in one ``BEGIN IMMEDIATE`` transaction that re-reads the schema
  version, so two processes creating one new store at once do not collide.
- **The OS side** (file locks, who holds the store's lock, whether a run's process lives) is in
  :mod:`kit.run.locks`.
- **Clear errors.** A read-only store (``chmod``, ``chattr +i``, a read-only folder), a ``--store`` whose
  folder is a file, a damaged file or a full disk is a :class:`~kit.errors.StoreError` with the fix —
  raised when the store is opened, before anything is asked.

>>> with Store(":memory:") as store:
...     store.schema_version()
6
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError, StoreError
from kit.run.locks import LockHolder, alive, exclusive, exclusive_lines, lock_holders, unix_time

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
    # a question being asked right now, by which run and process (claimed_at: Unix time)
    """
    CREATE TABLE IF NOT EXISTS claims (
        cache_key TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
        claimed_at REAL NOT NULL
    );
    """,
    # the labelling loop (kit.labels): the seeded random sample of a task's test items drawn for labelling
    # (position 1 is presented first), and every label given, with who, when and how; an undone label keeps
    # its row with undone_at set, and a skip is a row whose label is NULL
    """
    CREATE TABLE IF NOT EXISTS label_sample (
        task TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL, seed INTEGER NOT NULL,
        PRIMARY KEY (task, position), UNIQUE (task, item_id)
    );
    CREATE TABLE IF NOT EXISTS labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task TEXT NOT NULL, item_id TEXT NOT NULL, label TEXT, who TEXT NOT NULL, at TEXT NOT NULL,
        source TEXT NOT NULL, undone_at TEXT
    );
    CREATE INDEX IF NOT EXISTS labels_task_item ON labels(task, item_id);
    """,
    # labelling designs (kit.labels.design): drawn_after is the last label row id when an item was drawn — a
    # label enters a design only when given after its item was drawn, never from the disagreements queue; a
    # stratified design keeps every test item's stratum (from the stored answers when it was drawn) and its
    # rank in the stratum's seeded permutation, and every draw with its inclusion probability at the draw
    """
    ALTER TABLE label_sample ADD COLUMN drawn_after INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS label_designs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, kind TEXT NOT NULL, seed INTEGER NOT NULL,
        at TEXT NOT NULL, arms TEXT NOT NULL, population INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS label_design_items (
        design INTEGER NOT NULL REFERENCES label_designs(id), item_id TEXT NOT NULL, stratum TEXT NOT NULL,
        rank INTEGER NOT NULL, PRIMARY KEY (design, item_id)
    );
    CREATE TABLE IF NOT EXISTS label_design_draws (
        design INTEGER NOT NULL REFERENCES label_designs(id), position INTEGER NOT NULL, item_id TEXT NOT NULL,
        stratum TEXT NOT NULL, inclusion REAL NOT NULL, drawn_after INTEGER NOT NULL,
        PRIMARY KEY (design, position), UNIQUE (design, item_id)
    );
    """,
)

KINDS = (Col.ANSWER, Col.JUDGE, "sweep")

RESPONSE_COLUMNS = (
    Col.RUN_ID, Col.TASK, Col.ITEM_ID, Col.ARM, Col.MODEL_IDENTITY, Col.PARAMS, Col.PROMPT_HASH, Col.EPOCH, Col.OUTPUT, Col.ANSWER,
    Col.PARSE_ERROR, Col.PROMPT_TOKENS, Col.COMPLETION_TOKENS, Col.LATENCY_S, Col.TTFT_S, Col.CONFIDENCE, Col.ERROR,
    Col.CREATED_AT, Col.EXTRA, Col.KIND, Col.LOAD,
)
RUN_END_COLUMNS = ("finished_at", Col.STATUS, Col.N_ITEMS, "new_calls", "cached", "errors", "message")

IN_FLIGHT = "in_flight"  # in a kept-aside run's end: the cache keys whose claims stay (calls in flight)
DEFAULT_WAIT_S = 60.0  # how long a run waits, in all, for another process's write lock
CLAIM_TTL_S = 900.0  # how long a live run's claim on a question is honoured
QUICK_WAIT_S = 0.05  # how long one write waits for the lock before its row is kept aside


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


class StoreBusy(StoreError):
    """Another process holds the store's write lock right now: a quick attempt gave up (try again later)."""


@dataclass(frozen=True)
class Claims:
    """What :meth:`Store.claim` found for each cache key asked about.

    ``mine``: claimed for this run now — ask them. ``answered``: answered without error by now (by another
    run, meanwhile) — serve them from the store. ``held``: key -> who is asking it (another live run) —
    come back to them later. ``taken_over``: key -> the run that had claimed it and ended without its answer
    (killed, interrupted mid-call, or its claim expired): part of ``mine``, and its earlier call may have
    been paid — asking it again may pay it twice.
    """

    mine: tuple[str, ...]
    answered: tuple[str, ...]
    held: dict[str, str]
    taken_over: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unwritten:
    """A write the store could not take yet, kept aside: a response row (``table="responses"``, the values
    keyed by column, ``cache_key`` included) or a run's end (``table="runs"``, with ``run_id``)."""

    table: str
    values: dict[str, Any]

    def line(self) -> str:
        return json.dumps({"table": self.table, "values": self.values}, ensure_ascii=False, default=str) + "\n"

    @classmethod
    def parse(cls, line: str) -> "Unwritten | None":
        """The entry a side-file line holds; None for a line cut short by a crash."""
        try:
            data = json.loads(line)
            return cls(table=str(data["table"]), values=dict(data["values"]))
        except (ValueError, KeyError, TypeError):
            return None


class Store:
    """A SQLite response store. Use as a context manager, or call :meth:`close`.

    ``wait_s`` bounds how long a run waits for another process's write lock (``kit run --store-wait``);
    ``claim_ttl_s`` how long a live run's claim on a question is honoured.
    """

    def __init__(self, path: str | Path, *, wait_s: float = DEFAULT_WAIT_S, claim_ttl_s: float = CLAIM_TTL_S) -> None:
        for name, value in (("wait_s", wait_s), ("claim_ttl_s", claim_ttl_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"{name}={value!r} is not a number of seconds", where=str(path),
                                  fix="give 0 or more seconds, e.g. --store-wait 60")
        self.path = str(path)
        self.wait_s, self.claim_ttl_s = float(wait_s), float(claim_ttl_s)
        self._aside: list[Unwritten] = []  # what neither the store nor a side file could take
        self._host = socket.gethostname()
        if self.path != ":memory:":
            self._prepare_folder()
        try:
            # one connection, used by one thread at a time (the runner may write from its event-loop thread)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=self.wait_s, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            self.db.row_factory = sqlite3.Row
            self._enter_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._check_writable()
        except sqlite3.Error as exc:
            self.db.close()
            raise self._error(exc, waited_s=self.wait_s) from None
        except BaseException:
            self.db.close()
            raise
        self._land_quietly()

    def _prepare_folder(self) -> None:
        """Create the store's folder, or say clearly why it cannot be."""
        target = Path(self.path)
        if target.is_dir():
            raise StoreError("this is a folder, not a store file", where=self.path,
                             fix=f"pass --store a file path, e.g. --store {target / 'kit.sqlite'}")
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
            raise StoreError(f"cannot create the store: {blocker} is a file, not a folder", where=self.path,
                             fix=f"pass --store a path inside a folder, e.g. --store {blocker.parent / target.name}, "
                                 f"or move {blocker} away") from None
        except OSError as exc:
            raise StoreError(f"cannot create the store's folder {folder}: {exc.strerror}", where=self.path,
                             fix="pass --store a path in a folder you can write to") from None

    def _enter_wal(self) -> None:
        """Switch to WAL. On a new store another process may be switching it too: SQLite then says busy at
        once (no busy handler for this), so try again until ``wait_s``."""
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        if self._checked_version() == len(MIGRATIONS):
            return
        # one transaction that takes the write lock first: a second process creating the same store waits
        # here, then finds the schema applied
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self._checked_version()
            for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, sql.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _checked_version(self) -> int:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(f"store schema {version} is newer than this kit ({len(MIGRATIONS)})",
                             where=self.path, fix="upgrade the kit (pip install -U -e .)")
        return version

    def _check_writable(self) -> None:
        """Refuse a read-only store now, before anything is asked (a store busy with another writer is writable)."""
        if self.path == ":memory:":
            return
        try:
            with self._lock_timeout(QUICK_WAIT_S):
                self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            finally:
                self.db.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transactions, and what is kept aside ----------------------------------------------------------------
    @contextmanager
    def _lock_timeout(self, seconds: float) -> Iterator[None]:
        self.db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(self.wait_s * 1000)}")

    @contextmanager
    def _transaction(self, *, wait: bool) -> Iterator[None]:
        """One write transaction that first lands whatever was kept aside. ``wait``: up to ``wait_s`` for
        the lock; else :data:`QUICK_WAIT_S`. Raises sqlite3.OperationalError (busy) when the lock is not had."""
        with self._lock_timeout(self.wait_s if wait else QUICK_WAIT_S):
            self.db.execute("BEGIN IMMEDIATE")
        files: list[IO[str]] = []
        try:
            files = self._land_aside()
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            for f in files:
                f.close()  # unlocks
            raise
        self._aside.clear()
        for f in files:
            f.truncate(0)
            f.close()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, for writers beside the runner (the labels): it waits up to ``wait_s`` for
        another process's write lock, and all of it is written or — on any error inside — none of it.

        >>> with Store(":memory:") as s, s.writing() as db:
        ...     db.execute("SELECT count(*) FROM labels").fetchone()[0]
        0
        """
        began = time.monotonic()
        try:
            with self._transaction(wait=True):
                yield self.db
        except sqlite3.Error as exc:
            raise self._error(exc, waited_s=time.monotonic() - began) from None

    def side_files(self) -> list[Path]:
        """Where rows the store could not take are kept: beside the store, else in the temporary folder."""
        if self.path == ":memory:":
            return []
        digest = hashlib.sha256(os.path.abspath(self.path).encode()).hexdigest()[:16]
        return [Path(self.path + ".unwritten.jsonl"), Path(tempfile.gettempdir()) / f"kit-unwritten-{digest}.jsonl"]

    def _land_aside(self) -> list[IO[str]]:
        """Inside a write transaction: apply the kept-aside entries; return the side files read (locked),
        to be emptied once the transaction commits."""
        files: list[IO[str]] = []
        for entry in self._aside:
            self._apply(entry)
        for path in self.side_files():
            opened = exclusive_lines(path)
            if opened is None:
                continue
            f, lines = opened
            files.append(f)
            for line in lines:
                entry = Unwritten.parse(line)
                if entry is not None:
                    self._apply(entry)
        return files

    def _keep_aside(self, entry: Unwritten) -> Path | None:
        """Append ``entry`` to the first side file that takes it (synced to disk); memory as the last resort."""
        for path in self.side_files():
            try:
                with exclusive(path, "a") as f:
                    f.write(entry.line())
                    f.flush()
                    os.fsync(f.fileno())
                return path
            except OSError:
                continue
        self._aside.append(entry)
        return None

    def unwritten(self) -> int:
        """How many entries wait to be written (in the side files, any process's, and in this one's memory)."""
        count = len(self._aside)
        for path in self.side_files():
            try:
                with open(path, encoding="utf-8") as f:
                    count += sum(1 for line in f if line.strip())
            except OSError:
                continue
        return count

    def _where_kept(self) -> str:
        kept = [str(p) for p in self.side_files() if p.exists() and p.stat().st_size]
        if self._aside:
            kept.append("this process's memory (lost when it ends: the files above could not be written)")
        return " and ".join(kept) or "nowhere (nothing is waiting)"

    def _land_quietly(self) -> None:
        """Move rows kept aside by earlier runs into the store, if the lock is free now (else later)."""
        if self.unwritten():
            try:
                self.flush()
            except StoreError:
                pass

    def flush(self) -> None:
        """Write whatever was kept aside now. Raises :class:`StoreBusy` while another process holds the lock.

        >>> store.flush(); store.unwritten()   # doctest: +SKIP
        0
        """
        try:
            with self._transaction(wait=False):
                pass
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _apply(self, entry: Unwritten) -> None:
        values = dict(entry.values)
        if entry.table == "runs":  # a run's end: the claims it still holds go with it, but those of calls in flight
            run_id = values.pop(Col.RUN_ID)
            keep = list(values.pop(IN_FLIGHT, None) or ())
            sets = ", ".join(f"{c}=?" for c in values)
            self.db.execute(f"UPDATE runs SET {sets} WHERE run_id=?", (*values.values(), run_id))
            self.db.execute(f"DELETE FROM claims WHERE run_id=? AND cache_key NOT IN ({','.join('?' * len(keep))})",
                            (run_id, *keep))
            return
        cols = ", ".join(values)
        updates = ", ".join(f"{c}=excluded.{c}" for c in values if c != "cache_key")
        # a retried error is replaced and its attempt counted
        self.db.execute(
            f"INSERT INTO responses({cols}) VALUES ({','.join('?' * len(values))})"
            f" ON CONFLICT(cache_key) DO UPDATE SET {updates}, attempts = attempts + 1",
            tuple(values.values()),
        )
        self.db.execute("DELETE FROM claims WHERE cache_key=? AND run_id=?", (values[Col.CACHE_KEY], values[Col.RUN_ID]))

    # errors ------------------------------------------------------------------------------------------------
    def lock_holders(self) -> list[LockHolder]:
        """The processes of this host holding a write lock on the store (from Linux's /proc/locks)."""
        if self.path == ":memory:":
            return []
        return lock_holders(Path(self.path))

    def busy_error(self, *, waited_s: float) -> StoreBusy:
        """The error that ends a wait for the lock: who holds it, how long this waited, where the answers
        not yet written are kept, and what to do."""
        holders = self.lock_holders()
        who = ", ".join(map(str, holders)) or "another process (not one of this host's that /proc shows)"
        kept = self.unwritten()
        problem = (f"the store is locked by {who}: this run waited {round(waited_s, 1):g} s for its write lock "
                   f"(the bound is {self.wait_s:g} s)")
        stop = f"stop it (kill {holders[0].pid})" if holders else "stop it"
        fix = f"let that process finish or {stop}, then run the same command again"
        if kept:
            fix += (f"; {_kept_words(kept)} kept in {self._where_kept()} and land in the store first, without "
                    "being paid again")
        fix += "; or wait longer with --store-wait SECONDS"
        return StoreBusy(problem, where=self.path, fix=fix)

    def _error(self, exc: sqlite3.Error, *, waited_s: float = 0.0) -> StoreError:
        """A clear StoreError for what SQLite said."""
        name = str(getattr(exc, "sqlite_errorname", ""))
        kept = self.unwritten() if hasattr(self, "db") else 0
        keep = (f"; {_kept_words(kept)} kept in {self._where_kept()} and land in the store first on the next run, "
                "without being paid again" if kept else "")
        if _is_busy(exc):
            return self.busy_error(waited_s=waited_s)
        if name.startswith("SQLITE_READONLY"):
            return StoreError("the store is read-only (its file, or the folder it is in, cannot be written)",
                              where=self.path, fix="make both writable (chmod u+w; chattr -i if it is immutable), "
                              f"or pass --store a path you can write to{keep}")
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreError("SQLite cannot open the store, or create its -wal and -shm files beside it (is the "
                              "file or its folder read-only, e.g. chmod or chattr +i?)", where=self.path,
                              fix="make the folder and the file writable, or pass --store a path you can write "
                                  f"to{keep}")
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or name.startswith("SQLITE_CORRUPT"):
            return StoreError(f"cannot open the store: {exc}", where=self.path,
                              fix="pass another --store PATH, or move the damaged file away")
        if name.startswith("SQLITE_FULL"):
            return StoreError("the disk is full", where=self.path, fix=f"free some space, then run again{keep}")
        return StoreError(f"the store failed: {exc}", where=self.path,
                          fix=f"check the file and its folder (permissions, disk), then run again{keep}")

    # runs ------------------------------------------------------------------------------------------
    def start_run(self, *, task: str, arm: str, identity: dict[str, Any], hardware: dict[str, Any] | None,
                  options: dict[str, Any] | None, kit_version: str, n_items: int | None = None) -> str:
        """Record a run as ``running``, with this process's pid and host (so a killed run can be told apart).

        Waits up to ``wait_s`` for another process's write lock; then raises :class:`StoreBusy` (nothing
        has been asked yet).
        """
        run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        began = time.monotonic()
        try:
            with self._transaction(wait=True):
                self.db.execute(
                    "INSERT INTO runs(run_id, task, arm, identity, started_at, status, hardware, kit_version,"
                    " options, n_items, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, task, arm, _dumps(identity), now(), "running", _dumps(hardware), kit_version,
                     _dumps(options), n_items, os.getpid(), self._host),
                )
        except sqlite3.Error as exc:
            raise self._error(exc, waited_s=time.monotonic() - began) from None
        return run_id

    def finish_run(self, run_id: str, *, status: str, n_items: int, new_calls: int, cached: int, errors: int,
                   message: str | None = None, in_flight: Iterable[str] = ()) -> bool:
        """Record how a run ended and drop the claims it still holds on questions it did not get to — but
        not on ``in_flight`` (cache keys sent and not answered: their calls may have been paid, and the run
        that asks them again says so); True when written now. Never raises: a store that cannot take it now
        (locked, read-only) gets it kept aside, and it lands with a later write (of any process)."""
        entry = Unwritten("runs", {Col.RUN_ID: run_id, "finished_at": now(), Col.STATUS: status, Col.N_ITEMS: n_items,
                                   "new_calls": new_calls, "cached": cached, "errors": errors, "message": message,
                                   IN_FLIGHT: sorted(in_flight)})
        try:
            with self._transaction(wait=False):
                self._apply(entry)
            return True
        except sqlite3.Error:
            self._keep_aside(entry)
            return False

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
        Their claims stay (no longer honoured): the run that asks those questions again learns that their
        calls may have been paid. Skipped (nothing marked) while another process holds the write lock.

        Runs of other hosts are left alone: their processes cannot be seen from here.
        """
        rows = self.db.execute("SELECT run_id, pid, started_at FROM runs WHERE status='running' AND host=?",
                               (self._host,)).fetchall()
        gone = [r[Col.RUN_ID] for r in rows if r["pid"] is not None
                and not alive(int(r["pid"]), unix_time(r["started_at"]))]
        if not gone:
            return []
        try:
            with self._transaction(wait=False):
                for run_id in gone:
                    self.db.execute(
                        "UPDATE runs SET status='interrupted', message=?,"
                        " new_calls=(SELECT count(*) FROM responses WHERE run_id=runs.run_id),"
                        " errors=(SELECT count(*) FROM responses WHERE run_id=runs.run_id AND error IS NOT NULL)"
                        " WHERE run_id=? AND status='running'",
                        ("its process ended without finishing the run (killed?); run it again to continue", run_id))
        except sqlite3.Error:
            return []
        return gone

    # claims ----------------------------------------------------------------------------------------
    def claim(self, keys: Iterable[str], *, run_id: str) -> Claims:
        """Claim for ``run_id`` the questions (cache keys) not answered yet and not being asked by another
        live run — in one transaction, so two runs never both get one. Raises :class:`StoreBusy` at once
        while another process holds the write lock (the caller waits and tries again).

        >>> claims = store.claim(["k1", "k2"], run_id=run_id)   # doctest: +SKIP
        >>> claims.mine, claims.held                             # doctest: +SKIP
        (('k1',), {'k2': 'run 20250101T000000-ab12cd34 (pid 4242 on this-host)'})

        A claim is the record, made before the question is sent, that it is being asked: a run that ends
        with calls in flight (Ctrl-C, SIGKILL) leaves their claims behind, and the run that asks them again
        finds them in ``taken_over`` — those calls may have been paid twice.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return Claims(mine=(), answered=(), held={})
        mine: list[str] = []
        held: dict[str, str] = {}
        taken: dict[str, str] = {}
        answered: set[str] = set()
        try:
            with self._transaction(wait=False):
                taken_at = time.time()
                marks = ",".join("?" * len(keys))
                answered = {r[0] for r in self.db.execute(
                    f"SELECT cache_key FROM responses WHERE error IS NULL AND cache_key IN ({marks})", keys)}
                current = {r[Col.CACHE_KEY]: r for r in self.db.execute(
                    "SELECT c.cache_key, c.run_id, c.pid, c.host, c.claimed_at, r.status FROM claims c"
                    f" LEFT JOIN runs r ON r.run_id = c.run_id WHERE c.cache_key IN ({marks})", keys)}
                for key in keys:
                    if key in answered:
                        continue
                    other = current.get(key)
                    if other is not None and other[Col.RUN_ID] != run_id and self._honoured(other, taken_at):
                        held[key] = f"run {other[Col.RUN_ID]} (pid {other['pid']} on {other['host']})"
                        continue
                    if other is not None and other[Col.RUN_ID] != run_id:
                        taken[key] = str(other[Col.RUN_ID])
                    self.db.execute(
                        "INSERT INTO claims(cache_key, run_id, pid, host, claimed_at) VALUES (?,?,?,?,?)"
                        " ON CONFLICT(cache_key) DO UPDATE SET run_id=excluded.run_id, pid=excluded.pid,"
                        " host=excluded.host, claimed_at=excluded.claimed_at",
                        (key, run_id, os.getpid(), self._host, taken_at))
                    mine.append(key)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return Claims(mine=tuple(mine), answered=tuple(k for k in keys if k in answered), held=held, taken_over=taken)

    def _honoured(self, claim: sqlite3.Row, at: float) -> bool:
        """Whether another run's claim still stands: its run is running, its process lives (as far as this
        host can tell) and it is younger than ``claim_ttl_s``."""
        if claim[Col.STATUS] != "running" or at - float(claim["claimed_at"]) >= self.claim_ttl_s:
            return False
        return claim["host"] != self._host or alive(int(claim["pid"]), float(claim["claimed_at"]))

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
            found.update({row[Col.CACHE_KEY]: dict(row) for row in rows})
        return found

    def write(self, key: str, row: dict[str, Any]) -> bool:
        """Insert one response now (a retried error is replaced and its attempt counted) and drop its claim.

        Returns True when it is in the store, False when another process holds the lock: then the row is
        kept aside (:meth:`side_files`) and lands with a later write. Any other failure (a read-only store,
        a full disk) keeps the row aside too, then raises a :class:`StoreError` that says where it is kept.
        """
        values = {Col.CACHE_KEY: key, **{c: row.get(c) for c in RESPONSE_COLUMNS}}
        values[Col.ANSWER] = _dumps(values[Col.ANSWER])
        values[Col.PARAMS] = _dumps(values[Col.PARAMS])
        values[Col.MODEL_IDENTITY] = str(values[Col.MODEL_IDENTITY])
        values[Col.EXTRA] = _dumps(values[Col.EXTRA]) if values[Col.EXTRA] else None
        values[Col.CREATED_AT] = values[Col.CREATED_AT] or now()
        values[Col.KIND] = values[Col.KIND] or "answer"
        values[Col.PARSE_ERROR] = bool(values[Col.PARSE_ERROR])
        entry = Unwritten("responses", values)
        try:
            with self._transaction(wait=False):
                self._apply(entry)
            return True
        except sqlite3.Error as exc:
            self._keep_aside(entry)
            if _is_busy(exc):
                return False
            raise self._error(exc) from None

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
            frame = frame[frame[Col.ITEM_ID].isin(set(item_ids))]
        if prompt_hashes is not None:
            frame = frame[frame[Col.PROMPT_HASH] == frame[Col.ITEM_ID].map(prompt_hashes)]
        frame = frame.drop_duplicates([Col.ARM, Col.ITEM_ID, Col.EPOCH], keep="last").reset_index(drop=True)
        return _decoded(frame)

    def arms(self, *, task: str) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT arm FROM responses WHERE task=? ORDER BY arm", (task,)).fetchall()
        return [r[0] for r in rows]


def _kept_words(count: int) -> str:
    """What waits to be written, in words.

    >>> _kept_words(3)
    'the 3 rows not yet written (paid answers, and how runs ended) are'
    """
    if count == 1:
        return "the 1 row not yet written (a paid answer, or how a run ended) is"
    return f"the {count} rows not yet written (paid answers, and how runs ended) are"


def _is_busy(exc: BaseException) -> bool:
    name = str(getattr(exc, "sqlite_errorname", ""))
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc)


def _decoded(frame: pd.DataFrame) -> pd.DataFrame:
    # a list, not .map: pandas 3 would turn the None of a missing answer back into NaN
    frame[Col.ANSWER] = pd.Series([_loads(v) for v in frame[Col.ANSWER].astype(object)], index=frame.index, dtype=object)
    frame[Col.PARSE_ERROR] = frame[Col.PARSE_ERROR].astype(bool)
    for column in (Col.OUTPUT, Col.ERROR, Col.EXTRA, Col.ANSWER):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _loads(value: str | float | None) -> Any:
    # pandas 3 reads a TEXT column holding NULLs as its string dtype, with NaN (a float) for NULL
    return None if value is None or isinstance(value, float) else json.loads(value)
