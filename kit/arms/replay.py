"""The replay arm: ``replay:PATH`` turns outputs recorded elsewhere into an arm.

The file is JSONL or CSV with an item id (``item_id`` or ``id``) and ``output``; optionally
``latency_s``, ``ttft_s``, ``prompt_tokens``, ``completion_tokens``, ``confidence``, ``error`` and
``model``. Nothing is invented: an item the file lacks is answered with
``Completion(error="not in replay file")``, and :meth:`ReplayArm.coverage` reports ids missing from
the file and ids in the file that the task does not have.

Token counts are what a hosted reference is priced on. Real logs often lack them; then they are estimated —
the prompt from the request the kit would send (the prompt the task builds), the completion from the recorded
output, at :data:`~kit.arms.base.CHARS_PER_TOKEN` characters per token (the kit has no tokenizer of hosted
models) — and the answer says so (``extra["usage"] == "estimated"``), so the cost table calls its price an
estimate. A log is never priced at $0 for want of counts.

>>> arm = get_arm("replay:exports/vendor_outputs.jsonl")                   # doctest: +SKIP
>>> arm.coverage(task)["missing"]                                          # doctest: +SKIP
['test-17']
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kit.arms.base import CHARS_PER_TOKEN, Arm, Completion, Request, estimate_text_tokens, estimate_tokens
from kit.arms.options import NoOptions, parse_options
from kit.arms.registry import Backend
from kit.errors import ArmError
from kit.records import read_records

NUMBERS = {"latency_s": float, "ttft_s": float, "prompt_tokens": int, "completion_tokens": int, "confidence": float}
NOT_IN_FILE = "not in replay file"
ESTIMATED = "estimated"  # extra["usage"] of an answer whose token counts the file lacks
TOKENS_RULE = f"file, else estimated at {CHARS_PER_TOKEN} characters per token"


class ReplayArm(Arm):
    """Recorded outputs, one per item id."""

    hosted = False
    concurrency = 8

    def __init__(self, path: str, **options: Any) -> None:
        self.spec = f"replay:{path}"
        parse_options(NoOptions, self.spec, options)  # everything comes from the file
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ArmError("no such replay file", where=str(self.path),
                           fix="give a JSONL or CSV file with columns item_id (or id) and output")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.rows = _read(self.path)
        models = sorted({r["model"] for r in self.rows.values() if r.get("model")})
        self.models = models

    def identity(self) -> dict[str, Any]:
        return {"backend": "replay", "model": ", ".join(self.models) or self.path.name, "file": self.path.name,
                "sha256": self.sha256, "tokens": TOKENS_RULE}

    def describe(self) -> str:
        who = f" of {', '.join(self.models)}" if self.models else ""
        uncounted = sum(1 for r in self.rows.values() if "prompt_tokens" not in r or "completion_tokens" not in r)
        tokens = (f"; token counts of {uncounted} rows estimated at {CHARS_PER_TOKEN} characters per token (the "
                  "file has none)" if uncounted else "")
        return f"outputs{who} recorded elsewhere, replayed from {self.path.name} ({len(self.rows)} rows{tokens})"

    def coverage(self, task: Any, *, items: Iterable[Any] | None = None) -> dict[str, Any]:
        """Which of the task's items (test split, or ``items``) the file answers; ids it lacks; foreign ids.

        >>> arm.coverage(task)   # doctest: +SKIP
        {'answered': 98, 'missing': ['t-3', 't-9'], 'foreign': ['x-1'], 'rows': 99}
        """
        wanted = [i.id for i in (items if items is not None else task.test)]
        known = {i.id for i in task.items}
        return {
            "answered": sum(i in self.rows for i in wanted),
            "missing": [i for i in wanted if i not in self.rows],
            "foreign": sorted(i for i in self.rows if i not in known),
            "rows": len(self.rows),
        }

    def coverage_note(self, task: Any, *, items: Iterable[Any] | None = None) -> str:
        """One line for people, e.g. ``replay: 98 of 100 items answered; 2 missing (t-3, t-9); 1 foreign (x-1)``."""
        cov = self.coverage(task, items=items)
        total = cov["answered"] + len(cov["missing"])
        parts = [f"replay: {cov['answered']} of {total} items answered"]
        for key in ("missing", "foreign"):
            ids = cov[key]
            if ids:
                shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
                label = "missing from the file (recorded as errors)" if key == "missing" else "in the file but not in the task (ignored)"
                parts.append(f"{len(ids)} {label}: {shown}")
        return "; ".join(parts)

    def complete(self, request: Request) -> Completion:
        row = self.rows.get(request.item_id)
        if row is None:
            return Completion(error=NOT_IN_FILE)
        extra: dict[str, Any] = {"replayed": True}
        prompt_tokens, completion_tokens = row.get("prompt_tokens"), row.get("completion_tokens")
        if row.get("error") is None and (prompt_tokens is None or completion_tokens is None):
            # a log without token counts is priced on the prompt the kit sends and the recorded answer: never $0
            estimated = [name for name, v in (("prompt", prompt_tokens), ("completion", completion_tokens)) if v is None]
            prompt_tokens = estimate_tokens(request) if prompt_tokens is None else prompt_tokens
            completion_tokens = estimate_text_tokens(row["output"]) if completion_tokens is None else completion_tokens
            extra.update(usage=ESTIMATED, estimated=estimated)
        return Completion(text=row["output"], prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=row.get("latency_s"), ttft_s=row.get("ttft_s"), confidence=row.get("confidence"),
                          error=row.get("error"), model=row.get("model"), extra=extra)

    async def acomplete(self, request: Request) -> Completion:
        return self.complete(request)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for number, rec in read_records(path, error=ArmError, kind="replay file"):
        where = f"line {number}"
        rows_id = _id(rec, where, path)
        if rows_id in seen:
            raise ArmError(f"item id '{rows_id}' appears twice ({seen[rows_id]} and {where})", where=str(path),
                           fix="keep one output per item (or split epochs into separate files)")
        seen[rows_id] = where
        rows[rows_id] = _clean(rec, where, path)
    return rows


def _id(rec: dict[str, Any], where: str, path: Path) -> str:
    value = rec.get("item_id", rec.get("id"))
    if value is None or str(value).strip() == "":
        raise ArmError(f"{where} has no item id", where=str(path), fix="give every row an 'item_id' (or 'id') column")
    if "output" not in rec:
        raise ArmError(f"{where} has no 'output'", where=str(path), fix="name the column with the model's answer 'output'")
    return str(value).strip()


def _clean(rec: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    out = rec.get("output")
    row: dict[str, Any] = {"output": "" if out is None else out if isinstance(out, str) else json.dumps(out)}
    for name, cast in NUMBERS.items():
        value = rec.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            number = cast(float(value))
        except (TypeError, ValueError):
            raise ArmError(f"{where}: {name}={value!r} is not a number", where=str(path), fix=f"write a number or leave {name} empty") from None
        if isinstance(number, float) and math.isnan(number):
            continue
        row[name] = number
    for name in ("model", "error"):
        value = rec.get(name)
        if value not in (None, ""):
            row[name] = str(value)
    return row


# recorded elsewhere: no model runs here (where the outputs came from is the experiment's `runs:`); found through
# the kit.arms entry point `replay` (pyproject.toml)
BACKEND = Backend("replay", ReplayArm, options=NoOptions)
