"""How fast labels come: the labelling loop's own pace, read from who labelled what and when.

Each row of a task's label book carries who gave it and when (UTC). The time a label takes is the gap between
one labeller's consecutive rows (a skip is work too: the item was read); a gap longer than ``max_gap_s`` is a
break, not a label, and is left out. The pace is the median of the gaps kept — robust to the odd long look.

>>> from kit.labels.book import Label, Source
>>> rows = [Label("t", str(i), "a", "ana", f"2026-01-01T10:00:{s:02d}+00:00", Source.CLI)
...         for i, s in enumerate((0, 20, 50, 59))]
>>> labelling_pace(rows)
Pace(seconds_per_label=20.0, n_gaps=3, labellers=1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kit.labels.book import Label

MAX_GAP_S = 600.0  # ten minutes between two labels: a break, not the time one label took


@dataclass(frozen=True)
class Pace:
    """Median seconds per label, over ``n_gaps`` gaps between consecutive rows of ``labellers`` people."""

    seconds_per_label: float
    n_gaps: int
    labellers: int


def labelling_pace(history: Sequence[Label], *, max_gap_s: float = MAX_GAP_S) -> Pace | None:
    """The median gap between a labeller's consecutive rows of ``history`` (a :meth:`LabelBook.history`), breaks
    over ``max_gap_s`` left out; None when no gap is left (fewer than two rows by one person)."""
    by_who: dict[str, list[datetime]] = {}
    for row in history:
        by_who.setdefault(row.who, []).append(datetime.fromisoformat(row.at))
    gaps = []
    for times in by_who.values():
        times.sort()
        gaps += [g for a, b in zip(times, times[1:]) if 0 < (g := (b - a).total_seconds()) <= max_gap_s]
    if not gaps:
        return None
    gaps.sort()
    mid = len(gaps) // 2
    median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
    return Pace(seconds_per_label=float(median), n_gaps=len(gaps), labellers=sum(len(t) > 1 for t in by_who.values()))
