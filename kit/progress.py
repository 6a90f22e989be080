"""Progress of long work (answering items, training steps, judging, load sweeps), shown where it is watched.

A :class:`Progress` draws a bar (tqdm: a terminal line, or a widget in a notebook) and, when the
environment variable ``KIT_PROGRESS_FILE`` names a file, appends one JSON line per update to it — that is
how ``kit report`` shows, in its terminal, what a notebook's kernel is doing.

>>> with Progress("SmolLM2 · snips-intents", total=3, show=False) as bar:
...     bar.advance()
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

PROGRESS_FILE = "KIT_PROGRESS_FILE"


class Progress:
    """One piece of long work: ``total`` steps of ``unit``; ``stage`` says what kind of work it is."""

    def __init__(self, label: str, total: int, *, stage: str = "run", unit: str = "item", show: bool = True) -> None:
        from tqdm.auto import tqdm

        self.label, self.total, self.stage, self.unit = label, int(total), stage, unit
        self.done = 0
        self.detail = ""
        self._start = time.monotonic()
        self._bar = tqdm(total=self.total, desc=label, unit=unit, disable=not show, leave=True)
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
