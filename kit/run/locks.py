"""The operating system's side of a shared store: file locks, who holds them, and whether a process lives.

The store (:mod:`kit.run.store`) asks these questions; they read Linux's ``/proc`` and use ``flock`` and
answer "unknown" (an empty list, ``None``, "alive") where the system cannot tell, so nothing here ever
makes the store refuse work on another platform.

>>> alive(os.getpid(), since=None)
True
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

__all__ = ["LockHolder", "alive", "command_line", "exclusive", "exclusive_lines", "lock_holders", "process_start",
           "unix_time"]

WAL_WRITE_LOCK_BYTE = 120  # SQLite's WAL write lock: byte 120 of the -shm file


@dataclass(frozen=True)
class LockHolder:
    """A process of this host that holds a write lock on the store's files."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"process {self.pid} ({self.command})" if self.command else f"process {self.pid}"


@contextmanager
def exclusive(path: Path, mode: str) -> Iterator[IO[str]]:
    """``path`` opened in ``mode`` under an exclusive ``flock`` (released when the file is closed).

    >>> with exclusive(Path(tmp) / "side.jsonl", "a") as f:   # doctest: +SKIP
    ...     f.write("line\\n")
    """
    with open(path, mode, encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield f


def exclusive_lines(path: Path) -> tuple[IO[str], list[str]] | None:
    """``path`` opened for reading and writing under an exclusive ``flock``, and its lines — the caller keeps
    the lock until it closes the file. None when the file is empty or cannot be opened."""
    try:
        if path.stat().st_size == 0:
            return None
        f = open(path, "r+", encoding="utf-8")
    except OSError:
        return None
    fcntl.flock(f, fcntl.LOCK_EX)
    return f, f.read().splitlines()


def lock_holders(path: Path) -> list[LockHolder]:
    """Processes of this host (other than this one) holding a write lock on the SQLite file ``path``: the
    WAL write lock (byte 120 of the -shm file) or a lock on the file itself (rollback-journal mode). Linux
    only (from /proc/locks); an empty list elsewhere."""
    inodes: dict[int, bool] = {}  # inode -> is the -shm file
    for candidate, shm in ((path, False), (Path(f"{path}-shm"), True)):
        try:
            inodes[candidate.stat().st_ino] = shm
        except OSError:
            continue
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 8 or parts[3] != "WRITE":
            continue
        try:
            pid, inode = int(parts[4]), int(parts[5].rsplit(":", 1)[1])
            first, last = int(parts[6]), (None if parts[7] == "EOF" else int(parts[7]))
        except ValueError:
            continue
        if inode not in inodes or pid == os.getpid() or pid in pids:
            continue
        if inodes[inode] and not (first <= WAL_WRITE_LOCK_BYTE and (last is None or last >= WAL_WRITE_LOCK_BYTE)):
            continue  # a reader's or checkpointer's lock on the -shm file, not the write lock
        pids.append(pid)
    return [LockHolder(pid=pid, command=command_line(pid)) for pid in pids]


def command_line(pid: int) -> str:
    """A process's command line, shortened (from /proc; empty where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = " ".join(f.read().replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        return ""
    return text if len(text) <= 80 else text[:79] + "…"


def unix_time(stamp: str | None) -> float | None:
    """An ISO timestamp as Unix time; None when it is missing or not a timestamp.

    >>> unix_time("1970-01-01T00:01:00+00:00")
    60.0
    """
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except (TypeError, ValueError):
        return None


def alive(pid: int, since: float | None) -> bool:
    """Whether process ``pid`` of this host still runs and is the one that was running at Unix time
    ``since`` (a pid reused by a process started later does not count, where /proc tells start times)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    began = process_start(pid)
    if began is None or since is None:
        return True
    return began <= since + 2.0  # /proc/stat's boot time has whole seconds


def process_start(pid: int) -> float | None:
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
