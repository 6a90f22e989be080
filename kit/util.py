"""Two things many modules need: writing a file atomically, and running a coroutine from sync code.

>>> import tempfile
>>> atomic_write_text(Path(tempfile.mkdtemp()) / "a.json", "{}").read_text()
'{}'
>>> run_sync(asyncio.sleep(0, result=3))
3
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so that a reader (or a crash)
    never sees half a file. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """:func:`atomic_write_text` of ``data`` as JSON (keys sorted, anything else as its ``str``)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, default=str, ensure_ascii=False))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end and return its result, also from inside a running event loop (Jupyter):
    then it runs in a fresh loop on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
