"""Loading tasks: one YAML file in ``datasets/`` next to its data (CSV or JSONL), validated item by item.

Every problem is a TaskError that names the file (and row) and the fix; a broken task file never stops
other tasks from listing. A task is labelled when any row carries a gold answer's column; then every
row must carry its gold answer — a row without one is an error naming the row, unless the task file
declares ``labels_missing: skip`` (such rows are left out, and counted). A task is read without gold
answers only when no row has them, or when asked to (``ignore_labels``) — never guessed from one row.

The items are split three ways: ``test`` (the verdict; ``split: {test_fraction, seed, stratify}``), ``dev``
(the kit's choices, such as each option's prompt; ``dev_fraction``, see DEV_FRACTION) and ``train`` (k-shot
examples and fine-tunes). The three are disjoint; the test split does not depend on the dev split.

>>> task = load_task("snips-intents")          # doctest: +SKIP
>>> len(task.test), task.type.labels[:2]        # doctest: +SKIP
(347, ('add_to_playlist', 'book_restaurant'))
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from kit.columns import Col
from kit.errors import TaskError
from kit.paths import datasets_dir
from kit.records import read_records
from kit.tasks.types import Columns, Item, TaskType, get_task_type

REQUIRED_KEYS = ("name", "type", "data", "instruction")
KNOWN_KEYS = frozenset({*REQUIRED_KEYS, "description", "system", "columns", "labels", "fields", "shots", "split",
                        "references", "rubric", "judge", "metric", "max_tokens", "labels_missing",
                        "cluster"})
SPLIT_SEED = "seed"  # the `split:` key that seeds the shuffle
LABELS_MISSING = ("error", "skip")  # a labelled task's row without its gold answer: stop, or leave the row out
# The dev split (every choice the kit makes, e.g. a prompt per option) is carved from the non-test items, after
# the task's own k-shot examples are set aside: DEV_FRACTION of them by default (``split: {dev_fraction: F}``),
# at most DEV_MAX; fewer than DEV_MIN is no dev split at all (choices that need one are skipped, with a note).
DEV_FRACTION, DEV_MAX, DEV_MIN = 0.2, 100, 10


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    data_path: Path
    type: TaskType
    instruction: str
    system: str | None
    shots: int
    items: tuple[Item, ...]
    train: tuple[Item, ...]
    test: tuple[Item, ...]
    split_seed: int
    dev: tuple[Item, ...] = ()  # for choices (prompt selection); disjoint from train and test
    shots_drawn: tuple[Item, ...] = ()  # the task's k-shot examples, drawn from the train split
    description: str = ""
    labelled: bool = True  # False: no gold answers; the reference option's answers are the bar
    spec: Mapping[str, Any] | None = None  # the YAML as read, for types that need more keys
    skipped: tuple[str, ...] = ()  # ids of rows left out for lacking their gold answer (labels_missing: skip)

    @property
    def kind(self) -> str:
        return self.type.kind

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.type.metrics

    def item(self, item_id: str) -> Item:
        return self._by_id()[item_id]

    def _by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    def shot_items(self) -> tuple[Item, ...]:
        """The k-shot examples: drawn once, seeded, from the train split (never from the dev or test split)."""
        if self.shots <= 0 or not self.train or not self.labelled:
            return ()
        return self.shots_drawn


def task_files(folder: Path | None = None) -> list[Path]:
    return sorted((folder or datasets_dir()).glob("*.yaml"))


def load_task(name_or_path: str | Path, *, folder: Path | None = None, ignore_labels: bool = False) -> Task:
    """Load and validate a task by name (``snips-intents``) or by the path of its YAML file.

    ``ignore_labels`` loads a labelled task as if it had no gold answers (the reference's answers become
    the bar), to try the unlabelled workflow on real data.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        candidates = {p.stem: p for p in task_files(folder)}
        candidates.update({_peek_name(p): p for p in task_files(folder)})
        if str(name_or_path) not in candidates:
            near = difflib.get_close_matches(str(name_or_path), list(candidates), n=3)
            raise TaskError(f"no task named '{name_or_path}'", where=str(folder or datasets_dir()),
                            fix=(f"did you mean {', '.join(near)}? " if near else "")
                            + "run `kit tasks` to list tasks, or pass the path of a task YAML")
        path = candidates[str(name_or_path)]
    if not path.is_file():
        raise TaskError("task file not found", where=str(path), fix="check the path")
    return _build(_read_yaml(path), path, ignore_labels=ignore_labels)


def _peek_name(path: Path) -> str:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        return str(spec.get("name", path.stem)) if isinstance(spec, dict) else path.stem
    except (yaml.YAMLError, UnicodeDecodeError):
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
    unknown = sorted(set(map(str, spec)) - KNOWN_KEYS)
    if unknown:
        near = {k: difflib.get_close_matches(k, sorted(KNOWN_KEYS), n=1) for k in unknown}
        hint = "; ".join(f"'{k}' → '{v[0]}'?" for k, v in near.items() if v)
        raise TaskError(f"unknown keys {unknown}", where=str(path),
                        fix=(hint + " " if hint else "") + f"known keys: {', '.join(sorted(KNOWN_KEYS))}")
    return spec


def _columns(spec: dict[str, Any], where: str) -> Columns:
    given = spec.get("columns") or {}
    if not isinstance(given, Mapping):
        raise TaskError(f"`columns:` must map roles to column names, got {given!r}", where=where,
                        fix="write e.g. columns: {id: ticket_id, text: body, label: team}")
    known = {f.name for f in fields(Columns)}
    unknown = sorted(set(map(str, given)) - known)
    if unknown:
        raise TaskError(f"`columns:` has unknown roles {unknown}", where=where, fix=f"use {sorted(known)}")
    return Columns(**{str(k): str(v) for k, v in given.items()})


def _int(spec: dict[str, Any], key: str, default: int, where: str, *, low: int = 0) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TaskError(f"`{key}:` must be a whole number of at least {low}, got {value!r}", where=where,
                        fix=f"write e.g. {key}: {default}")
    return value


def _split_options(spec: dict[str, Any], where: str) -> tuple[float, int, bool, float]:
    split = spec.get("split") or {}
    if not isinstance(split, Mapping):
        raise TaskError(f"`split:` must be a mapping, got {split!r}", where=where,
                        fix="write e.g. split: {test_fraction: 0.5, seed: 13, stratify: true}")
    unknown = sorted(set(map(str, split)) - {"test_fraction", SPLIT_SEED, "stratify", "dev_fraction"})
    if unknown:
        raise TaskError(f"`split:` has unknown keys {unknown}", where=where,
                        fix="use test_fraction, dev_fraction, seed and stratify")
    fraction = split.get("test_fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise TaskError(f"split.test_fraction must be a number in (0, 1], got {fraction!r}", where=where,
                        fix="write e.g. test_fraction: 0.5")
    dev = split.get("dev_fraction", DEV_FRACTION)
    if isinstance(dev, bool) or not isinstance(dev, (int, float)) or not 0 <= dev < 1:
        raise TaskError(f"split.dev_fraction must be a number in [0, 1), got {dev!r}", where=where,
                        fix=f"write e.g. dev_fraction: {DEV_FRACTION} (the share of the non-test items kept for "
                            "choices such as the prompt; 0: no dev split)")
    seed = _int(split, SPLIT_SEED, 13, where)
    return float(fraction), seed, bool(split.get("stratify", False)), float(dev)


def _build(spec: dict[str, Any], path: Path, *, ignore_labels: bool = False) -> Task:
    where = str(path)
    columns = _columns(spec, where)
    shots = _int(spec, "shots", 0, where)
    fraction, seed, stratify, dev_fraction = _split_options(spec, where)
    data_path = (path.parent / str(spec["data"])).resolve()
    if not data_path.is_file():
        raise TaskError("data file not found", where=str(data_path), fix="put the file there or correct `data:`")
    rows = read_records(data_path, error=TaskError, kind="data file")
    if not rows:
        raise TaskError("no rows", where=str(data_path), fix="add data rows")
    for col in (columns.id, columns.text):
        if col not in rows[0][1]:
            raise TaskError(f"column '{col}' missing (has {sorted(rows[0][1])})", where=str(data_path),
                            fix="rename the column or map it under `columns:` in the task YAML")
    ttype = get_task_type(str(spec["type"])).from_spec(spec, rows, columns, where)
    gold_columns = ttype.gold_columns(columns)
    labelled = not ignore_labels and any(c in row for _, row in rows for c in gold_columns)
    items, skipped = _make_items(rows, ttype, columns, data_path, labelled=labelled,
                                 skip_missing=_skip_missing(spec, where))
    items = _with_clusters(items, spec, rows, columns, data_path, where=where)
    items = _with_times(items, rows, columns, data_path)
    if not items:
        raise TaskError(f"every row lacks its gold answer ({len(skipped)} left out by `labels_missing: skip`)",
                        where=str(data_path), fix="fill in the gold answers, or run the task without them "
                                                  "(`ignore_labels: true` in the experiment)")
    instruction = spec["instruction"]
    if not isinstance(instruction, str) or "{text}" not in instruction:
        raise TaskError("instruction has no {text} placeholder", where=where, fix="put {text} where the item goes")
    check_placeholders(instruction, ttype, what="`instruction:`", where=where)
    if spec.get("system") is not None:
        check_placeholders(str(spec["system"]), ttype, what="`system:`", where=where, allowed=frozenset())
    kept = _labelled_split(spec, path) if ignore_labels and stratify else None
    if kept is not None:  # labels ignored, not lost: the same stratified test items as the labelled task
        by_id = {i.id: i for i in items}
        drawn, (test, dev) = (), (tuple(by_id[i] for i in ids if i in by_id) for ids in kept)
        train = tuple(i for i in items if i.id not in {*kept[0], *kept[1]})
    else:
        pool, test = _split(items, fraction, seed, stratify and labelled, ttype)
        if labelled and shots > len(pool):
            raise TaskError(f"`shots: {shots}` asks for more k-shot examples than the {len(pool)} non-test items "
                            "they are drawn from", where=where,
                            fix=f"write shots: {min(len(pool), 8)} (at most {len(pool)}), or lower "
                                "split.test_fraction")
        drawn = _draw_shots(pool, shots, seed) if labelled else ()
        train, dev = _carve_dev(pool, drawn, dev_fraction, seed, stratify and labelled, ttype)
    _check_clusters(items, test, spec, where=where)
    return Task(name=str(spec["name"]), path=path, data_path=data_path, type=ttype, instruction=instruction,
                system=spec.get("system"), shots=shots, items=tuple(items), train=train, test=test, split_seed=seed,
                dev=dev, shots_drawn=drawn, description=str(spec.get("description", "")), labelled=labelled,
                spec=spec, skipped=skipped)


def _labelled_split(spec: dict[str, Any], path: Path) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The test and dev ids a stratified task has when its gold answers are read, for loading it with
    ``ignore_labels``: the labels a split is stratified on are ignored for scoring, not for choosing the items, so
    both ways of running a task (and a sample drawn under either) see the same test items. None when the data has
    no usable gold answers (the task is then split as an unlabelled one)."""
    try:
        task = _build(spec, path)
    except TaskError:
        return None
    return (tuple(i.id for i in task.test), tuple(i.id for i in task.dev)) if task.labelled else None


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # `{name}`: what the kit fills in an instruction


def check_placeholders(template: str, ttype: TaskType, *, what: str, where: str,
                       allowed: frozenset[str] | None = None) -> None:
    """A TaskError naming each placeholder of ``template`` that nothing fills in — it would reach the model
    literally — with the nearest known one. ``allowed``: the names that are filled (default: ``text`` and the
    task type's, such as ``labels`` or ``fields``; an empty set for text that is sent as it is).

    >>> from kit.tasks.classification import Classification
    >>> try:
    ...     check_placeholders("One of {lables}: {text}", Classification(labels=("a", "b")), what="`instruction:`",
    ...                        where="t.yaml")
    ... except TaskError as err:
    ...     print(err.problem, "|", err.fix)
    `instruction:` has the unknown placeholder {lables} (it would be sent to the model as it is) | did you mean \
{labels}? The placeholders filled in are {labels}, {text}
    """
    known = frozenset({"text", *ttype.prompt_vars()}) if allowed is None else allowed
    unknown = sorted(set(PLACEHOLDER.findall(template)) - known)
    if not unknown:
        return
    near = {u: difflib.get_close_matches(u, sorted(known), n=1) for u in unknown}
    hint = " ".join(f"did you mean {{{n[0]}}}?" if len(unknown) == 1 else f"{{{u}}} → {{{n[0]}}}?"
                    for u, n in near.items() if n)
    filled = (f"The placeholders filled in are {', '.join('{' + k + '}' for k in sorted(known))}" if known else
              "Nothing is filled in there: placeholders are filled in the instruction only")
    names = ", ".join("{" + u + "}" for u in unknown)
    raise TaskError(f"{what} has the unknown placeholder{'s' if len(unknown) > 1 else ''} {names} (it would be "
                    "sent to the model as it is)", where=where, fix=(hint + " " if hint else "") + filled)


def _check_clusters(items: list[Item], test: tuple[Item, ...], spec: dict[str, Any], *, where: str) -> None:
    """A TaskError when ``cluster:`` leaves fewer than two clusters among all items or among the test items: a
    cluster-robust interval needs at least two, and the quality stage would fail after every answer was paid."""
    if spec.get("cluster") is None:
        return
    for part, chosen in (("items", items), ("test items", test)):
        values = sorted({str(i.cluster) for i in chosen})
        if len(values) == 1:
            raise TaskError(f"`cluster: {spec['cluster']}`: all {len(chosen)} {part} are in one cluster "
                            f"({values[0]!r}); a cluster-robust interval needs at least two clusters", where=where,
                            fix="name the column that groups related items (customer, thread, document), or drop "
                                "`cluster:` if the items are independent")


def _skip_missing(spec: dict[str, Any], where: str) -> bool:
    """Whether the task file declares ``labels_missing: skip`` (the default, ``error``, stops at such a row)."""
    value = spec.get("labels_missing", LABELS_MISSING[0])
    if value not in LABELS_MISSING:
        raise TaskError(f"`labels_missing:` must be one of {list(LABELS_MISSING)}, got {value!r}", where=where,
                        fix="write labels_missing: skip (leave rows without a gold answer out) or leave the key out")
    return value == "skip"


def _make_items(rows: list, ttype: TaskType, columns: Columns, path: Path, *, labelled: bool,
                skip_missing: bool) -> tuple[list[Item], tuple[str, ...]]:
    """The rows as items, and the ids of rows left out for lacking their gold answer (``skip_missing``)."""
    items, seen, skipped = [], {}, []
    for line, row in rows:
        where = f"{path}:{line}"
        item_id = str(row.get(columns.id, "") or "").strip()
        if not item_id:
            raise TaskError("empty id", where=where, fix="give every row a unique id")
        if item_id in seen:
            raise TaskError(f"duplicate id '{item_id}' (first at line {seen[item_id]})", where=where,
                            fix="make ids unique")
        seen[item_id] = line
        text = row.get(columns.text)
        if text is None or not str(text).strip():
            raise TaskError(f"empty text for id '{item_id}'", where=where, fix="fill in the text or drop the row")
        lacks = ttype.missing_gold(row, columns) if labelled else None
        if lacks and skip_missing:
            skipped.append(item_id)
            continue
        if lacks:
            n = sum(ttype.missing_gold(r, columns) is not None for _, r in rows)
            raise TaskError(f"id '{item_id}' has no gold answer: {lacks} ({n} of {len(rows)} rows lack one; the "
                            "others have theirs, so the task is labelled)", where=where,
                            fix="fill it in or drop the row; or declare `labels_missing: skip` in the task YAML to "
                                "leave such rows out; or run the whole task without gold answers "
                                "(`ignore_labels: true` in the experiment, load_task(..., ignore_labels=True))")
        gold = ttype.gold(row, columns, where) if labelled else None
        items.append(Item(id=item_id, text=str(text), gold=gold))
    return items, tuple(skipped)


def _with_times(items: list[Item], rows: list, columns: Columns, path: Path) -> list[Item]:
    """The items with when each came in, from the column ``columns: {time: ...}`` names (ISO 8601, normalised to
    UTC); unchanged when it names none. A missing column or an unreadable time names its row."""
    name = columns.time
    if name is None:
        return items
    present = sorted({c for _, row in rows for c in row})
    if name not in present:
        near = difflib.get_close_matches(name, present, n=1)
        raise TaskError(f"`columns: {{time: {name}}}` names no column of the data file (it has {present})",
                        where=str(path), fix=(f"did you mean '{near[0]}'? " if near else "") + "name the column "
                                                                                             "holding each item's time")
    by_id = {str(row.get(columns.id, "") or "").strip(): (line, row.get(name)) for line, row in rows}
    out = []
    for item in items:
        line, value = by_id[item.id]
        stamp = pd.to_datetime(str(value).strip(), errors="coerce", utc=True) if value is not None else pd.NaT
        if pd.isna(stamp):
            raise TaskError(f"id '{item.id}' has no readable time in column '{name}' ({value!r})", where=f"{path}:{line}",
                            fix="write an ISO 8601 time, e.g. 2026-03-01T09:30:00Z")
        out.append(replace(item, time=stamp.isoformat()))
    return out


def _with_clusters(items: list[Item], spec: dict[str, Any], rows: list, columns: Columns, path: Path, *,
                   where: str) -> list[Item]:
    """The items with their cluster from the column the task file names (``cluster: customer``); unchanged when it
    names none. An unknown column names the columns present; an empty cell names its row."""
    name = spec.get("cluster")
    if name is None:
        return items
    if not isinstance(name, str) or not name.strip():
        raise TaskError(f"`cluster:` must name a data column, got {name!r}", where=where,
                        fix="write e.g. cluster: customer_id (the column grouping related items)")
    present = sorted({c for _, row in rows for c in row})
    if name not in present:
        near = difflib.get_close_matches(name, present, n=1)
        raise TaskError(f"`cluster: {name}` names no column of the data file (it has {present})", where=str(path),
                        fix=(f"did you mean '{near[0]}'? " if near else "") + "name one of the columns present")
    by_id = {str(row.get(columns.id, "") or "").strip(): (line, row.get(name)) for line, row in rows}
    out = []
    for item in items:
        line, value = by_id[item.id]
        if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
            raise TaskError(f"id '{item.id}' has an empty cluster (column '{name}')", where=f"{path}:{line}",
                            fix=f"fill in its {name}, or drop the row")
        out.append(replace(item, cluster=str(value).strip()))
    return out


def _split(items: list[Item], test_fraction: float, seed: int, stratify: bool,
           ttype: TaskType) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """Seeded train/test split; the test split is returned in a seeded order so ``--limit N`` is a fair sample."""
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(ttype.stratum(item.gold) if stratify else None, []).append(i)
    test_idx: list[int] = []
    for key in sorted(groups, key=str):
        idx = rng.permutation(groups[key])
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))].tolist())
    test_set = set(test_idx)
    order = rng.permutation(len(items))
    test = tuple(items[i] for i in order if i in test_set)
    train = tuple(items[i] for i in order if i not in test_set)
    return train, test


def _draw_shots(pool: tuple[Item, ...], shots: int, seed: int) -> tuple[Item, ...]:
    """The task's k-shot examples: drawn once, seeded, from the non-test items (before the dev split is carved,
    so the prompts — and the store's cache keys — are those the kit always built)."""
    if shots <= 0 or not pool:
        return ()
    rng = np.random.default_rng(seed + 1)
    pick = rng.choice(len(pool), size=min(shots, len(pool)), replace=False)
    return tuple(pool[i] for i in sorted(pick))


def dev_size(n_pool: int, fraction: float) -> int:
    """How many dev items ``n_pool`` non-test items (less the k-shot examples) give: ``fraction`` of them,
    at most DEV_MAX; 0 when that is fewer than DEV_MIN.

    >>> dev_size(341, 0.2), dev_size(1000, 0.2), dev_size(40, 0.2), dev_size(341, 0.0)
    (68, 100, 0, 0)
    """
    n = min(DEV_MAX, int(round(n_pool * fraction)))
    return n if n >= DEV_MIN else 0


def apportion(sizes: list[int], total: int) -> list[int]:
    """How many of each group's ``sizes`` a stratified sample of exactly ``total`` takes: each group its share
    rounded down, then one more to the groups with the largest remainders (Hamilton's largest-remainder method;
    ties to the larger group, then the earlier one). Rounding each group's share on its own can take far more or
    fewer than ``total`` — none at all when every group is small — where this always takes ``total``.

    >>> apportion([2] * 30, 12)                     # 30 labels of 2 items: 0.4 each, 12 of them get one
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    >>> apportion([50, 30, 20], 10), apportion([7, 7, 7], 21)
    ([5, 3, 2], [7, 7, 7])
    """
    whole = sum(sizes)
    if whole == 0:
        return [0] * len(sizes)
    quotas = [size * total / whole for size in sizes]
    counts = [math.floor(q + 1e-9) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda g: (-(quotas[g] - counts[g]), -sizes[g], g))
    for g in order[: total - sum(counts)]:
        counts[g] += 1
    return [min(c, s) for c, s in zip(counts, sizes)]


def _carve_dev(pool: tuple[Item, ...], shots: tuple[Item, ...], fraction: float, seed: int, stratify: bool,
               ttype: TaskType) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """Train and dev from the non-test items: dev is a seeded sample of exactly :func:`dev_size` of those that
    are not k-shot examples (stratified like the test split, each label's count by :func:`apportion`); train is
    the rest, in their order. The test split is never touched."""
    taken = {i.id for i in shots}
    rest = [i for i in pool if i.id not in taken]
    n_dev = dev_size(len(rest), fraction)
    if n_dev == 0:
        return pool, ()
    rng = np.random.default_rng(seed + 2)
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(rest):
        groups.setdefault(ttype.stratum(item.gold) if stratify else None, []).append(i)
    keys = sorted(groups, key=str)
    shuffled = [rng.permutation(groups[key]) for key in keys]
    counts = apportion([len(groups[key]) for key in keys], n_dev)
    dev_ids = {rest[i].id for idx, n in zip(shuffled, counts) for i in idx[:n].tolist()}
    return tuple(i for i in pool if i.id not in dev_ids), tuple(i for i in pool if i.id in dev_ids)


def list_tasks(folder: Path | None = None) -> list[dict[str, Any]]:
    """One row per task file: name, type, items, train, test, rows skipped for lacking a gold answer — or the
    error that stops it loading."""
    rows = []
    for path in task_files(folder):
        try:
            t = load_task(path)
            rows.append({Col.TASK: t.name, "type": t.kind + ("" if t.labelled else " (unlabelled)"),
                         "items": len(t.items), "train": len(t.train), "dev": len(t.dev), "test": len(t.test),
                         "skipped": len(t.skipped), "file": path.name, "error": ""})
        except TaskError as exc:
            rows.append({Col.TASK: path.stem, "type": "?", "items": 0, "train": 0, "dev": 0, "test": 0, "skipped": 0,
                         "file": path.name, "error": str(exc)})
    return rows
