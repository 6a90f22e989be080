"""Label files: export a task's sample (and its labels) to CSV or JSONL, label it elsewhere (a spreadsheet,
Label Studio, Argilla), and import it back.

An exported file has the columns ``id, position, text, label, who, at``: the sample's items in order (an
unlabelled one has an empty label), then the test items labelled outside the sample. An imported file needs
``id`` and ``label`` (``who`` optional; other columns are ignored); a row with an empty label is left out.
A file with any bad row is refused as a whole — every bad row named with its fix — and nothing is written;
otherwise all its labels go in at once, in one transaction. Importing the same labels again writes nothing.

>>> from kit.run.store import Store
>>> from kit.tasks import load_task
>>> from kit.labels.book import LabelBook
>>> task = load_task("snips-intents")
>>> with Store(":memory:") as store:                         # doctest: +SKIP
...     book = LabelBook(store, task)
...     _ = book.draw(50)
...     export_labels(book, Path("sample.csv"))               # label the file's `label` column, then:
...     import_labels(book, Path("sample.csv"), who="ana")
Imported(added=50, unchanged=0, blank=0, outside=0)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.columns import Col
from kit.errors import ConfigError
from kit.labels.book import Label, LabelBook, Source, check_who
from kit.records import DELIMITERS, JSON_LINES, read_records
from kit.run.store import now

EXPORT_COLUMNS = (Col.ID, Col.POSITION, Col.TEXT, Col.LABEL, Col.WHO, Col.AT)
REQUIRED_COLUMNS = (Col.ID, Col.LABEL)
SHOWN_PROBLEMS = 20  # bad rows listed in one error (the count says how many more)


@dataclass(frozen=True)
class Imported:
    """What an import did: labels ``added`` (new, or changing an item's label), ``unchanged`` (the item had
    that label already), ``blank`` rows left out (no label), and how many labelled items lie ``outside`` the
    random sample (kept, but not used by the estimates)."""

    added: int
    unchanged: int
    blank: int
    outside: int
    replaced: Mapping[str, int] = field(default_factory=dict)  # who -> their labels this import changed
    kept: int = 0  # items someone else had labelled differently, left as they were (overwrite=False)


def export_labels(book: LabelBook, path: Path) -> int:
    """Write the sample (in order, labelled or not) and the labels outside it to ``path`` (.csv or .jsonl);
    return the number of rows written."""
    rows = list(_export_rows(book))
    suffix = _suffix(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            if suffix in JSON_LINES:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            else:
                writer = csv.DictWriter(f, fieldnames=[str(c) for c in EXPORT_COLUMNS], delimiter=DELIMITERS[suffix])
                writer.writeheader()
                writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    except OSError as exc:
        raise ConfigError(f"cannot write the label file: {exc.strerror}", where=str(path),
                          fix="export to a path in a folder you can write to") from None
    return len(rows)


def _export_rows(book: LabelBook) -> Iterator[dict[str, Any]]:
    sample, current, usable = book.sample(), book.current(), book.design_labels()
    order = sample.order if sample is not None else ()
    outside = [i for i, row in current.items() if i not in set(order) and not row.skipped
               and book.item_problem(i) is None]
    for position, item_id in [*enumerate(order, start=1), *((None, i) for i in outside)]:
        row = usable.get(item_id) if position is not None else current.get(item_id)
        given = row if row is not None and not row.skipped else None
        yield {Col.ID: item_id, Col.POSITION: position, Col.TEXT: book.item(item_id).text,
               Col.LABEL: given.label if given else None, Col.WHO: given.who if given else None,
               Col.AT: given.at if given else None}


def import_labels(book: LabelBook, path: Path, *, who: str, source: Source = Source.IMPORT,
                  overwrite: bool = True) -> Imported:
    """Check every row of ``path`` (.csv or .jsonl), then store its labels in one transaction — or, when
    any row is wrong, raise one :class:`~kit.errors.ConfigError` naming every bad row and write nothing.
    ``who`` labels the rows without a ``who`` of their own. Labels of other people that the file changes are
    counted in ``replaced`` (read in the same transaction, so a concurrent import is seen); with
    ``overwrite=False`` they are kept instead."""
    _suffix(path)
    who = check_who(who)
    records = read_records(path, error=ConfigError, kind="label file")
    if not records:
        raise ConfigError("the label file has no rows (nothing below its header)", where=str(path),
                          fix="add one row per labelled item under the header, e.g. snips-0001,PlayMusic")
    seen = {str(key) for _, record in records for key in record}
    missing = [str(c) for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise ConfigError(f"the label file has no {' and no '.join(repr(c) for c in missing)} column "
                          f"(it has {sorted(seen) or 'none'})", where=str(path),
                          fix="name the columns id and label (who is optional), e.g. a header line id,label")
    problems: list[str] = []
    chosen: dict[str, tuple[int, str, str]] = {}  # item id -> (line, label, who)
    blank = 0
    at = now()
    for line, record in records:
        item_id, label = _text(record.get(Col.ID)), record.get(Col.LABEL)
        if label is None or _text(label) == "":
            blank += 1
            continue
        if not isinstance(label, (str, int, float)) or isinstance(label, bool):
            problems.append(f"line {line}: the label {json.dumps(label)} is not a plain label — write one of "
                            f"{', '.join(book.labels)}")
            continue
        label = _text(label)
        wrong = [p for p in (book.item_problem(item_id), book.label_problem(label)) if p]
        if wrong:
            problems.append(f"line {line}: " + "; ".join(wrong))
            continue
        if item_id in chosen and chosen[item_id][1] != label:
            first, other, _ = chosen[item_id]
            problems.append(f"line {line}: '{item_id}' is labelled '{label}' here but '{other}' on line {first} — "
                            "keep one of the two rows")
            continue
        chosen.setdefault(item_id, (line, label, _text(record.get(Col.WHO)) or who))
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        listed = "\n  ".join(problems[:SHOWN_PROBLEMS]) + (f"\n  … and {more} more" if more > 0 else "")
        raise ConfigError(f"{len(problems)} rows of the label file cannot be imported, so nothing was written:\n  "
                          f"{listed}\n", where=str(path),
                          fix="correct those rows (or empty their label to leave them out) and import the file again")
    rows = [Label(task=book.task.name, item_id=item_id, label=label, who=row_who, at=at, source=source)
            for item_id, (_, label, row_who) in chosen.items()]
    done = book.write_counted(rows, overwrite=overwrite)
    sample = book.sample()
    in_sample = set(sample.order) if sample is not None else set()
    return Imported(added=done.added, unchanged=done.unchanged, blank=blank,
                    outside=sum(1 for row in rows if row.item_id not in in_sample), replaced=done.replaced,
                    kept=done.kept)


def _text(value: Any) -> str:
    """A cell as text: a number read from JSON as its digits, None as empty, surrounding spaces dropped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (*JSON_LINES, *DELIMITERS):
        raise ConfigError(f"unknown label file type '{path.suffix}'", where=str(path),
                          fix="use a .csv (or .tsv) or a .jsonl file")
    return suffix
