"""Tasks: one YAML file in ``datasets/`` next to its data (CSV or JSONL).

>>> task = load_task("snips-intents")          # doctest: +SKIP
>>> len(task.test), task.type.labels[:2]        # doctest: +SKIP
(347, ('add_to_playlist', 'book_restaurant'))
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kit.errors import TaskError
from kit.paths import datasets_dir
from kit.records import read_records
from kit.tasktypes import FIELD_TYPES, TASK_TYPES, Classification, Extraction, Field

REQUIRED_KEYS = ("name", "type", "data", "instruction")


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    gold: Any


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    data_path: Path
    type: Classification | Extraction
    instruction: str
    system: str | None
    shots: int
    items: tuple[Item, ...]
    train: tuple[Item, ...]
    test: tuple[Item, ...]
    split_seed: int
    description: str = ""

    @property
    def kind(self) -> str:
        return next(k for k, cls in TASK_TYPES.items() if isinstance(self.type, cls))

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.type.metrics

    def item(self, item_id: str) -> Item:
        return self._by_id()[item_id]

    def _by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    def shot_items(self) -> tuple[Item, ...]:
        """The k-shot examples: drawn once, seeded, from the train split (never from the test split)."""
        if self.shots <= 0 or not self.train:
            return ()
        rng = np.random.default_rng(self.split_seed + 1)
        pick = rng.choice(len(self.train), size=min(self.shots, len(self.train)), replace=False)
        return tuple(self.train[i] for i in sorted(pick))


def task_files(folder: Path | None = None) -> list[Path]:
    return sorted((folder or datasets_dir()).glob("*.yaml"))


def load_task(name_or_path: str | Path, *, folder: Path | None = None) -> Task:
    """Load and validate a task by name (``snips-intents``) or by the path of its YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        candidates = {p.stem: p for p in task_files(folder)}
        candidates.update({_peek_name(p): p for p in task_files(folder)})
        if str(name_or_path) not in candidates:
            near = difflib.get_close_matches(str(name_or_path), list(candidates), n=3)
            raise TaskError(
                f"no task named '{name_or_path}'",
                where=str(folder or datasets_dir()),
                fix=(f"did you mean {', '.join(near)}? " if near else "")
                + "run `kit tasks` to list tasks, or pass the path of a task YAML",
            )
        path = candidates[str(name_or_path)]
    if not path.is_file():
        raise TaskError("task file not found", where=str(path), fix="check the path")
    spec = _read_yaml(path)
    return _build(spec, path)


def _peek_name(path: Path) -> str:
    try:
        return str((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("name", path.stem))
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        return path.stem


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise TaskError(f"not UTF-8 (byte {exc.start})", where=str(path), fix="save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise TaskError(f"invalid YAML: {exc}", where=str(path), fix="correct the YAML syntax") from None
    if not isinstance(spec, dict):
        raise TaskError("a task file must be a YAML mapping", where=str(path), fix="see README, 'Add your own task'")
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise TaskError(f"missing keys {missing}", where=str(path), fix="see README, 'Add your own task'")
    return spec


def _build(spec: dict[str, Any], path: Path) -> Task:
    where = str(path)
    columns = {"id": "id", "text": "text", "label": "label", **(spec.get("columns") or {})}
    data_path = (path.parent / str(spec["data"])).resolve()
    if not data_path.is_file():
        raise TaskError("data file not found", where=str(data_path), fix="put the file there or correct `data:`")
    rows = read_records(data_path, error=TaskError, kind="data file")
    kind = str(spec["type"])
    if kind not in TASK_TYPES:
        raise TaskError(f"unknown task type '{kind}'", where=where, fix=f"use one of {sorted(TASK_TYPES)}")
    needed = [columns["id"], columns["text"]] + ([columns["label"]] if kind == "classification" else [])
    for col in needed:
        if rows and col not in rows[0][1]:
            raise TaskError(
                f"column '{col}' missing (has {sorted(rows[0][1])})",
                where=str(data_path),
                fix="rename the column or map it under `columns:` in the task YAML",
            )
    ttype = _make_type(kind, spec, rows, columns, where)
    items = _make_items(rows, ttype, columns, data_path)
    if "{text}" not in str(spec["instruction"]):
        raise TaskError("instruction has no {text} placeholder", where=where, fix="put {text} where the item goes")
    split = spec.get("split") or {}
    seed = int(split.get("seed", 13))
    train, test = _split(items, float(split.get("test_fraction", 0.5)), seed, bool(split.get("stratify", False)))
    return Task(
        name=str(spec["name"]),
        path=path,
        data_path=data_path,
        type=ttype,
        instruction=str(spec["instruction"]),
        system=spec.get("system"),
        shots=int(spec.get("shots", 0)),
        items=tuple(items),
        train=train,
        test=test,
        split_seed=seed,
        description=str(spec.get("description", "")),
    )


def _make_type(kind: str, spec: dict, rows: list, columns: dict, where: str) -> Classification | Extraction:
    if kind == "classification":
        labels = spec.get("labels") or sorted({str(r[columns["label"]]).strip() for _, r in rows} - {""})
        if any(isinstance(label, bool) for label in labels):
            raise TaskError("a label in `labels:` was read as true/false", where=where,
                            fix="quote labels such as 'yes', 'no', 'on', 'off' in the YAML")
        return Classification(labels=tuple(str(label) for label in labels))
    fields = []
    for name, fspec in (spec.get("fields") or {}).items():
        fspec = fspec or {}
        ftype = str(fspec.get("type", "string"))
        if ftype not in FIELD_TYPES:
            raise TaskError(f"field '{name}' has unknown type '{ftype}'", where=where, fix=f"use one of {FIELD_TYPES}")
        fields.append(
            Field(
                name=name,
                type=ftype,
                labels=tuple(str(x) for x in fspec.get("labels") or ()),
                separator=str(fspec.get("separator", ", ")),
                column=fspec.get("column"),
            )
        )
    if not fields:
        raise TaskError("an extraction task needs `fields:`", where=where, fix="declare each field and its type")
    return Extraction(fields=tuple(fields))


def _make_items(rows: list, ttype: Any, columns: dict, path: Path) -> list[Item]:
    items, seen = [], {}
    for line, row in rows:
        where = f"{path}:{line}"
        item_id = str(row.get(columns["id"], "")).strip()
        if not item_id:
            raise TaskError("empty id", where=where, fix="give every row a unique id")
        if item_id in seen:
            raise TaskError(
                f"duplicate id '{item_id}' (first at line {seen[item_id]})", where=where, fix="make ids unique"
            )
        seen[item_id] = line
        text = row.get(columns["text"])
        if text is None or not str(text).strip():
            raise TaskError(f"empty text for id '{item_id}'", where=where, fix="fill in the text or drop the row")
        gold = ttype.gold(row, label_column=columns.get("label"), where=where)
        items.append(Item(id=item_id, text=str(text), gold=gold))
    if not items:
        raise TaskError("no rows", where=str(path), fix="add data rows")
    return items


def _split(items: list[Item], test_fraction: float, seed: int, stratify: bool) -> tuple[tuple[Item, ...], ...]:
    """Seeded train/test split; the test split is returned in a seeded order so ``--limit N`` is a fair sample."""
    if not 0 < test_fraction <= 1:
        raise TaskError(f"test_fraction {test_fraction} out of range", fix="use a value in (0, 1]")
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.gold if stratify and isinstance(item.gold, str) else None, []).append(i)
    test_idx: list[int] = []
    for key in sorted(groups, key=str):
        idx = rng.permutation(groups[key])
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))].tolist())
    test_set = set(test_idx)
    order = rng.permutation(len(items))
    test = tuple(items[i] for i in order if i in test_set)
    train = tuple(items[i] for i in order if i not in test_set)
    return train, test


def list_tasks(folder: Path | None = None) -> list[dict[str, Any]]:
    """One row per task file: name, type, items, train, test (or the error that stops it loading)."""
    rows = []
    for path in task_files(folder):
        try:
            t = load_task(path)
            rows.append({"task": t.name, "type": t.kind, "items": len(t.items), "train": len(t.train),
                         "test": len(t.test), "file": path.name, "error": ""})
        except TaskError as exc:
            rows.append({"task": path.stem, "type": "?", "items": 0, "train": 0, "test": 0, "file": path.name,
                         "error": str(exc)})
    return rows
