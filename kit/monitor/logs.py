"""The deployed router's logs as tables, cut into windows.

The router (:mod:`kit.export.router`) writes one JSON line per answer: ``requests.jsonl`` (what the routing
answered) and ``shadow.jsonl`` (the reference's answer on the shadowed share). They are read here as they are —
the same files ``replay:`` reads — joined on the item id, with the gold labels of a labelled sample when there
is one (a CSV or JSONL of ``item_id`` and ``label``). Windows are calendar months of the ``time`` column, or
fixed numbers of items in the log's order.

>>> frame = read_log(Path("deploy/requests.jsonl"), shadow=Path("deploy/shadow.jsonl"))   # doctest: +SKIP
>>> windowed(frame, Windows(every=200))[Col.WINDOW].unique()                            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.records import read_records

LOG_COLUMNS = (Col.ITEM_ID, Col.TASK, Col.TIME, Col.TEXT, Col.OUTPUT, Col.ERROR, Col.LATENCY_S, Col.CONFIDENCE,
               Col.OPTION, Col.ROUTE)


def _frame(path: Path, kind: str) -> pd.DataFrame:
    rows = [row for _, row in read_records(path, error=ConfigError, kind=kind)]
    frame = pd.DataFrame(rows)
    for col in LOG_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    if frame.empty:
        return frame
    frame[Col.ITEM_ID] = frame[Col.ITEM_ID].astype(str)
    if frame[Col.ITEM_ID].duplicated().any():
        dup = frame.loc[frame[Col.ITEM_ID].duplicated(), Col.ITEM_ID].iloc[0]
        raise ConfigError(f"item id {dup!r} is logged twice", where=str(path),
                          fix="give every request its own id (the router draws one when the client sends none)")
    return frame


def read_log(path: Path, *, shadow: Path | None = None, labels: Path | None = None) -> pd.DataFrame:
    """The answers logged at ``path``, one row per item, with the reference's answer (``shadow_output``) where
    it was shadowed and the ``gold`` label where a labelled sample has one."""
    frame = _frame(Path(path), "router log")
    if frame.empty:
        raise ConfigError("the router log has no answers", where=str(path), fix="route some requests first")
    frame[Col.SHADOW_OUTPUT] = None
    if shadow is not None and Path(shadow).is_file():
        side = _frame(Path(shadow), "shadow log")
        if not side.empty:
            ok = side[side[Col.ERROR].isna()].set_index(Col.ITEM_ID)[Col.OUTPUT]
            frame[Col.SHADOW_OUTPUT] = frame[Col.ITEM_ID].map(ok)
    frame[Col.GOLD] = None
    if labels is not None:
        rows = [row for _, row in read_records(Path(labels), error=ConfigError, kind="labels file")]
        gold = {str(r.get(Col.ITEM_ID, r.get(Col.ID))): r.get(Col.LABEL) for r in rows}
        frame[Col.GOLD] = frame[Col.ITEM_ID].map(gold)
    frame[Col.LATENCY_S] = pd.to_numeric(frame[Col.LATENCY_S], errors="coerce")
    return frame


@dataclass(frozen=True)
class Windows:
    """How the log is cut: by calendar month of ``time`` (``by_month=True``), or every ``every`` items."""

    by_month: bool = False
    every: int | None = None

    def __post_init__(self) -> None:
        if self.by_month == (self.every is not None):
            raise ConfigError("choose one way to cut windows", where="kit.monitor.Windows",
                              fix="--windows month, or --every N (items per window)")
        if self.every is not None and self.every < 2:
            raise ConfigError(f"every={self.every} items is too few per window", where="kit.monitor.Windows",
                              fix="give at least 2 (hundreds to settle questions)")

    def describe(self) -> str:
        return "calendar months" if self.by_month else f"every {self.every} items"


def windowed(frame: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    """``frame`` with a ``window`` column (``2026-03``, or ``1``, ``2``… for item counts), in time order."""
    out = frame.reset_index(drop=True).copy()
    if windows.by_month:
        stamps = pd.to_datetime(out[Col.TIME], errors="coerce", utc=True)
        if stamps.isna().any():
            bad = out.loc[stamps.isna(), Col.ITEM_ID].iloc[0]
            raise ConfigError(f"item {bad!r} has no readable time", where="kit monitor",
                              fix="log an ISO time per request (the router does), or cut windows with --every N")
        out = out.assign(_at=stamps).sort_values("_at", kind="stable")
        out[Col.WINDOW] = out["_at"].dt.strftime("%Y-%m")
        return out.drop(columns="_at").reset_index(drop=True)
    out[Col.WINDOW] = [str(i // windows.every + 1) for i in range(len(out))]
    return out
