"""Paired statistics registered once and reported by every comparison they apply to.

A paired statistic is computed from the paired per-item values of one candidate and the reference
(:class:`PairedValues`). :func:`register` records it once — its name, its function, the comparison kinds it
applies to (:class:`ComparisonKind`), the columns it adds and how the report shows them, and optionally a
``sway`` rule that may change a candidate's conclusion. Every comparison ends in
:func:`kit.stats.conclusions.finish_comparison`, which computes each registered statistic that applies to its
kind, Holm-adjusts the statistic's p-value columns with the comparison's own, folds ``sway`` into both the
unadjusted and the adjusted conclusion, and appends the statistic's words to the statement; the report's
comparison table shows the registered columns (:func:`display`). With nothing registered every table is the
built-in one. A statistic shipped as its own package needs no change to the kit: its ``pyproject.toml``
declares ``[project.entry-points."kit.paired_statistics"] wins = "my_package:WINS"`` (a :class:`PairedStatistic`
named ``wins``), found in every process — the report's notebooks included.

What each kind passes as the paired values:

- paired accuracy (labelled): right/wrong of the candidate and of the reference on the items both answered;
- paired scores (free text): the two arms' per-item scores in [0, 1];
- agreement (unlabelled): 1 where the candidate agrees with the reference, the reference's own value 1;
- prediction-powered (partly labelled): right/wrong of both on the gold-labelled items only (unweighted: a
  statistic that must respect a stratified design's inclusion weights needs its own estimator).

>>> wins = PairedStatistic("wins", lambda v: {"wins": float(((v.candidate == 1) & (v.reference == 0)).mean())},
...                        kinds=frozenset({ComparisonKind.PAIRED_ACCURACY}), columns={"wins": "wins"})
>>> with registered(wins):
...     [s.name for s in for_kind(ComparisonKind.PAIRED_ACCURACY)]
['wins']
>>> for_kind(ComparisonKind.PAIRED_ACCURACY)
()
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from kit.errors import ConfigError
from kit.plugins import load_entry_point


class ComparisonKind(StrEnum):
    """Which comparison a task's quality goes through; only agreement is not about correctness."""

    PAIRED_ACCURACY = "paired accuracy"   # right or wrong against gold answers
    PAIRED_SCORES = "paired scores"       # scores in [0, 1] (free text)
    AGREEMENT = "agreement"               # no gold answers: agreement with the reference's answers
    PREDICTION_POWERED = "prediction-powered accuracy"  # gold on a random sample, the reference's answers as proxy

    @property
    def correctness(self) -> bool:
        return self is not ComparisonKind.AGREEMENT


@dataclass(frozen=True)
class PairedValues:
    """One candidate's and the reference's per-item values on the same items (see the module's list per kind),
    with the items' clusters when the task declares ``cluster:`` and the comparison's ``alpha``."""

    kind: ComparisonKind
    candidate: np.ndarray
    reference: np.ndarray
    clusters: np.ndarray | None = None
    alpha: float = 0.05


C = TypeVar("C")
Sway = Callable[[Mapping[str, Any], C], C]


@dataclass(frozen=True)
class PairedStatistic:
    """A paired statistic: ``compute`` maps :class:`PairedValues` to its columns' values; ``columns`` maps each
    column it adds to the report's header (in display order); ``formats`` maps a column to a
    :mod:`kit.format` formatter; ``p_columns`` are the columns Holm-adjusted across candidates with the
    comparison's own p-values (``<p>_adj``); ``sway(values, conclusion)`` returns the conclusion after the
    statistic has its say (``values``: the row's columns, the p-columns adjusted in the adjusted pass);
    ``words(row)`` is appended to the statement."""

    name: str
    compute: Callable[[PairedValues], Mapping[str, Any]]
    kinds: frozenset[ComparisonKind]
    columns: Mapping[str, str]
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    p_columns: tuple[str, ...] = ()
    sway: Sway[Any] | None = None
    words: Callable[[Mapping[str, Any]], str] | None = None

    def measure(self, values: PairedValues) -> dict[str, Any]:
        """The statistic's columns for one candidate; an error names the statistic."""
        out = dict(self.compute(values))
        lacking = [c for c in (*self.columns, *self.p_columns) if c not in out]
        if lacking:
            raise ConfigError(f"paired statistic '{self.name}' gave no {lacking}", where="kit.stats.paired_stats",
                              fix="return every column the statistic declares")
        return out


GROUP = "kit.paired_statistics"  # the entry-point group of statistics shipped in their own packages
_REGISTRY: dict[str, PairedStatistic] = {}
_FROM_PACKAGES: list[PairedStatistic] | None = None


def _installed() -> list[PairedStatistic]:
    """The statistics installed packages declare in the ``kit.paired_statistics`` entry-point group (loaded once)."""
    global _FROM_PACKAGES
    if _FROM_PACKAGES is None:
        _FROM_PACKAGES = [load_entry_point(point, record=PairedStatistic, what="paired statistic", group=GROUP,
                                           error=ConfigError)
                          for point in importlib.metadata.entry_points(group=GROUP)]
    return _FROM_PACKAGES


def _all() -> list[PairedStatistic]:
    """Installed packages' statistics, then this process's :func:`register` ones (a name once: the process's wins)."""
    return [s for s in _installed() if s.name not in _REGISTRY] + list(_REGISTRY.values())


def register(statistic: PairedStatistic) -> PairedStatistic:
    """Add ``statistic`` to every comparison of its kinds (a name once only).

    >>> register(PairedStatistic("n", lambda v: {"n": v.candidate.size}, kinds=frozenset(ComparisonKind),
    ...                          columns={"n": "n"})).name
    'n'
    >>> unregister("n")
    """
    if statistic.name in _REGISTRY:
        raise ConfigError(f"paired statistic '{statistic.name}' is registered already", where="kit.stats.register",
                          fix="give the statistic another name, or unregister the old one first")
    _REGISTRY[statistic.name] = statistic
    return statistic


def unregister(name: str) -> None:
    """Remove a registered statistic (no error when it is not registered)."""
    _REGISTRY.pop(name, None)


@contextmanager
def registered(statistic: PairedStatistic) -> Iterator[PairedStatistic]:
    """``statistic`` registered for the block only."""
    register(statistic)
    try:
        yield statistic
    finally:
        unregister(statistic.name)


def for_kind(kind: ComparisonKind | None) -> tuple[PairedStatistic, ...]:
    """The registered statistics that apply to ``kind``, in registration order."""
    return () if kind is None else tuple(s for s in _all() if kind in s.kinds)


def measure_all(statistics: Sequence[PairedStatistic], rows: Sequence[Mapping[str, object]],
                paired: Sequence[PairedValues]) -> list[dict[str, object]]:
    """``rows`` with each statistic's columns added (``paired``: one entry per row, in the rows' order)."""
    if statistics and len(paired) != len(rows):
        raise ConfigError(f"{len(rows)} comparison rows but {len(paired)} paired values",
                          where="kit.stats.finish_comparison", fix="pass one PairedValues per candidate row")
    out = [dict(r) for r in rows]
    for row, values in zip(out, paired):
        for s in statistics:
            row.update(s.measure(values))
    return out


def display(columns: Sequence[str]) -> tuple[dict[str, str], dict[str, Callable[[Any], str]]]:
    """The headers and formatters of the registered columns present in ``columns`` (a compare table's), for
    the report."""
    heads: dict[str, str] = {}
    formats: dict[str, Callable[[Any], str]] = {}
    for s in _all():
        heads.update({c: h for c, h in s.columns.items() if c in columns})
        formats.update({c: f for c, f in s.formats.items() if c in columns})
    return heads, formats
