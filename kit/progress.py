"""Progress of long work (answering items, training steps, judging, load sweeps), shown where it is watched.

A :class:`Progress` draws a bar (tqdm: a terminal line, or a widget in a notebook) and, when the
environment variable ``KIT_PROGRESS_FILE`` names a file, appends one JSON line per update to it — that is
how ``kit report`` shows, in its terminal, what a notebook's kernel is doing: a :class:`ProgressFollower`
tails that file and turns it into compact lines (:func:`progress_line`), at most one a second per piece of
work and a final one when it ends.

>>> with Progress("SmolLM2 · snips-intents", total=3, show=False) as bar:
...     bar.advance()
>>> progress_line({"event": "advance", "label": "SmolLM2 · snips-intents", "unit": "item", "done": 40,
...                "total": 100, "rate": 3.2, "eta_s": 18.7, "elapsed_s": 12.5, "detail": ""})
'SmolLM2 · snips-intents: 40/100 items · 3.20 items/s · ETA 19 s'
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

PROGRESS_FILE = "KIT_PROGRESS_FILE"


class Progress:
    """One piece of long work: ``total`` steps of ``unit``; ``stage`` says what kind of work it is."""

    def __init__(self, label: str, total: int, *, stage: str = "run", unit: str = "item", show: bool = True,
                 detail: str = "") -> None:
        from tqdm.auto import tqdm

        self.label, self.total, self.stage, self.unit = label, int(total), stage, unit
        self.done = 0
        self.detail = detail
        self._start = time.monotonic()
        self._bar = tqdm(total=self.total, desc=label, unit=unit, disable=not show, leave=True, postfix=detail or None)
        self._sink = os.environ.get(PROGRESS_FILE) or None
        self._emit("start")

    def advance(self, n: int = 1, *, detail: str = "") -> None:
        """``n`` more steps done; ``detail`` is a short note such as ``loss 1.234``."""
        self.done += n
        if detail:
            self.detail = detail
            self._bar.set_postfix_str(detail, refresh=False)
        self._bar.update(n)
        self._emit("advance")

    def close(self) -> None:
        self._bar.close()
        self._emit("end")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> dict[str, Any]:
        """Where the work stands: done, total, rate per second and the estimated seconds left."""
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 and self.done else None
        left = (self.total - self.done) / rate if rate else None
        return {"stage": self.stage, "label": self.label, "unit": self.unit, "done": self.done, "total": self.total,
                "rate": rate, "eta_s": left, "elapsed_s": elapsed, "detail": self.detail}

    def _emit(self, event: str) -> None:
        if not self._sink:
            return
        try:
            with open(self._sink, "a", encoding="utf-8") as out:
                out.write(json.dumps({"event": event, **self.snapshot()}) + "\n")
        except OSError:
            self._sink = None  # a watcher that went away never stops the work


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``1 h 05 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(event: dict[str, Any]) -> str:
    """One line for one JSON event of a :class:`Progress`: done/total, the detail (a fine-tune's loss), the rate and
    the ETA while it runs; the time taken when it ends (``event: end``), or where it stopped short.

    >>> progress_line({"event": "end", "label": "LoRA smollm2 · snips-intents", "unit": "step", "done": 30,
    ...                "total": 30, "rate": 0.25, "eta_s": 0.0, "elapsed_s": 120.0, "detail": "loss 0.4120"})
    'LoRA smollm2 · snips-intents: 30/30 steps · loss 0.4120 · done in 2 min 00 s (0.25 steps/s)'
    >>> progress_line({"event": "end", "label": "API · snips-intents", "done": 0, "total": 0,
    ...                "detail": "100 from the store"})
    'API · snips-intents: nothing to ask · 100 from the store'
    """
    unit = str(event.get("unit") or "item")
    done, total = int(event.get("done") or 0), int(event.get("total") or 0)
    if event.get("event") == "end" and total == 0:
        detail = f" · {event['detail']}" if event.get("detail") else ""
        return f"{event.get('label', '?')}: nothing to ask{detail}"
    parts = [f"{event.get('label', '?')}: {done}/{total} {unit}s"]
    if event.get("detail"):
        parts.append(str(event["detail"]))
    rate = event.get("rate")
    speed = f"{rate:.2f} {unit}s/s" if rate else ""
    if event.get("event") == "end":
        took = _duration(float(event.get("elapsed_s") or 0))
        verb = "done in" if done >= total else "stopped after"
        parts.append(f"{verb} {took}" + (f" ({speed})" if speed else ""))
    else:
        if speed:
            parts.append(speed)
        if event.get("eta_s") is not None and done < total:
            parts.append(f"ETA {_duration(float(event['eta_s']))}")
    return " · ".join(parts)


class ProgressFollower:
    """Tail a progress file written by :class:`Progress` (in a notebook's kernel) and hand compact lines to ``emit``:
    per piece of work (stage and label) at most one line every ``min_interval`` seconds while it runs, and always
    its final line. :meth:`poll` reads what is new; :meth:`start`/:meth:`stop` poll from a thread.

    >>> follower = ProgressFollower("runs/report-x/progress.jsonl", print)    # doctest: +SKIP
    >>> follower.start(); ...; follower.stop()                                 # doctest: +SKIP
    """

    def __init__(self, path: str | Path, emit: Callable[[str], None], *, min_interval: float = 1.0,
                 poll_every: float = 0.25) -> None:
        self.path = Path(path)
        self.emit = emit
        self.min_interval = min_interval
        self.poll_every = poll_every
        self._offset = 0
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Read the complete lines added since the last poll and emit what is due."""
        with self._lock:
            try:
                with self.path.open("rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except OSError:
                return
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
            self._offset += end
            for raw in data[:end].splitlines():
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self._handle(event)

    def _handle(self, event: dict[str, Any]) -> None:
        piece = (str(event.get("stage")), str(event.get("label")))
        kind = event.get("event")
        now = time.monotonic()
        if kind == "start":
            self._last.pop(piece, None)
            return
        if kind == "advance" and now - self._last.get(piece, -float("inf")) < self.min_interval:
            return
        self._last[piece] = now
        self.emit(progress_line(event))

    def start(self) -> ProgressFollower:
        def loop() -> None:
            while not self._stop.wait(self.poll_every):
                self.poll()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="kit-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and emit what is left in the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.poll()
