"""Rows from a JSONL or CSV/TSV file, each with its line number; clear errors for what cannot be read.

Task data and replay files are both read here.

>>> read_records(Path("datasets/snips_intents.jsonl"))[0][0]     # doctest: +SKIP
1
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kit.errors import KitError

JSON_LINES = (".jsonl", ".ndjson", ".json")
DELIMITERS = {".csv": ",", ".tsv": "\t"}


def read_records(path: Path, *, error: type[KitError] = KitError,
                 kind: str = "data file") -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs; ``error`` is the KitError subclass raised, ``kind`` names the file."""
    if not path.is_file():
        raise error(f"{kind} not found", where=str(path), fix="put the file there or correct its path")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"not UTF-8 at line {line} (byte {exc.start})", where=str(path),
                    fix="re-save the file as UTF-8") from None
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"invalid JSON: {exc.msg}", where=f"{path}:{n}", fix="one JSON object per line") from None
            if not isinstance(obj, dict):
                raise error("a line is not a JSON object", where=f"{path}:{n}", fix="one JSON object per line")
            rows.append((n, obj))
        return rows
    if suffix in DELIMITERS:
        # long texts (contracts, reports) are normal: lift the csv module's 131,072-character field limit
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=DELIMITERS[suffix])
        try:
            return [(reader.line_num, dict(row)) for row in reader]
        except csv.Error as exc:
            raise error(f"unreadable CSV at line {reader.line_num}: {exc}", where=str(path),
                        fix="check the quoting of that row (a field with a comma or newline needs double quotes)"
                        ) from None
    raise error(f"unknown {kind} type '{path.suffix}'", where=str(path), fix="use .jsonl or .csv")
