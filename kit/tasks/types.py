"""The task-type contract and its registry.

A task names its type in YAML (``type: classification``). The type reads gold answers from data rows
(and says what a row lacks of one), says how answers are constrained and rendered, parses an arm's text
into an answer, scores it against the gold answer, summarises an arm's scores into the type's metrics,
gives trivial baselines, compares candidates with a reference using the tests that fit its scores, and
measures agreement beyond chance where its answers are labels. A scorer never knows which arm produced an
answer; a task never knows which arm runs it.

>>> sorted(task_types())
['classification', 'extraction', 'generation']
>>> get_task_type("clasification")
Traceback (most recent call last):
...
kit.errors.TaskError: unknown task type 'clasification'. Fix: did you mean 'classification'? Use one of ['classification', 'extraction', 'generation']
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from kit import stats
from kit.columns import Col
from kit.errors import TaskError
from kit.stats.paired_stats import ComparisonKind  # noqa: F401  (defined with the paired statistics; re-exported)

# Each module registers its type on import.
BUILTIN_MODULES: tuple[str, ...] = ("kit.tasks.classification", "kit.tasks.extraction", "kit.tasks.generation")


@dataclass(frozen=True)
class Item:
    """One data row as a task sees it: its id, its text, its gold answer (None when the task is unlabelled), its
    cluster (the task's ``cluster:`` column; None when items are independent) and when it came in (the task's
    ``columns: {time: ...}``, an ISO 8601 time in UTC; None when the task names no time column)."""

    id: str
    text: str
    gold: Any
    cluster: str | None = None
    time: str | None = None


@dataclass(frozen=True)
class Columns:
    """Which data columns hold the id, the text, (for one-label tasks) the gold label and (optionally) when each item
    came in."""

    id: str = "id"
    text: str = "text"
    label: str = "label"
    time: str | None = None


@dataclass(frozen=True)
class Constraint:
    """How an answer is constrained: one of ``choices``, a JSON object of ``json_schema``, or free text."""

    choices: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ItemScore:
    """One answer's score: ``correct`` (all right), ``score`` in [0, 1], and named ``parts`` (per field)."""

    correct: bool
    score: float
    parts: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """A trivial way of answering that every option must beat.

    ``paired``: the scores are a real answer's per item (paired tests apply); otherwise they are expected
    values (a random guess), compared through their mean.
    """

    name: str
    answer: str
    scores: tuple[ItemScore, ...]
    paired: bool = True


@dataclass(frozen=True)
class Comparison:
    """Candidates against the reference: which comparison ran and its table."""

    kind: ComparisonKind
    table: pd.DataFrame


def label_list(labels: Sequence[str]) -> str:
    """Labels as a prompt lists them (``{labels}``): comma-separated, and each one quoted (as a JSON string)
    when any label holds a comma or a double quote, so the list reads only one way. Labels without either
    are listed bare, as they always were (the prompts, and so the store's cache keys, stay the same).

    >>> label_list(["billing", "bug"])
    'billing, bug'
    >>> label_list(["yes, fully", "no"])
    '"yes, fully", "no"'
    """
    if any("," in label or '"' in label for label in labels):
        return ", ".join(json.dumps(label, ensure_ascii=False) for label in labels)
    return ", ".join(labels)


def norm_text(text: str) -> str:
    """Lower case, runs of space/underscore/hyphen as one space, outer punctuation dropped.

    >>> norm_text("  Get_Weather. ")
    'get weather'
    """
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower()).strip(" .,:;\"'`")


class TaskType(ABC):
    """What every task type implements. Subclasses are frozen dataclasses registered by ``kind``."""

    kind: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]  # the names summarise() returns, the first one is the headline
    max_tokens: ClassVar[int | None] = None  # the answer length the type needs (None: the run's default)
    judged: ClassVar[bool] = False  # True: quality is a score in [0, 1] (free text), not right/wrong
    judge_modes: ClassVar[tuple[str, ...]] = ()  # what a model judge is asked ("rubric", "pairwise"); none by default

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]], columns: Columns,
                  where: str) -> TaskType:
        """Build the type from the task YAML (``spec``) and the data rows; TaskError names the fix."""

    @abstractmethod
    def gold_columns(self, columns: Columns) -> tuple[str, ...]:
        """The data columns gold answers are read from. A task is labelled when any row has one of them;
        none in any row: the task is unlabelled (the reference option's answers become the bar)."""

    @abstractmethod
    def missing_gold(self, row: Mapping[str, Any], columns: Columns) -> str | None:
        """What the row lacks of its gold answer, in words ("empty label in column 'team'"); None when whole."""

    @abstractmethod
    def gold(self, row: Mapping[str, Any], columns: Columns, where: str) -> Any:
        """The gold answer of a row that lacks none (:meth:`missing_gold`); TaskError when it is malformed."""

    def prompt_vars(self) -> dict[str, str]:
        """Placeholders the instruction may use besides ``{text}`` (``{labels}``, ``{fields}``)."""
        return {}

    def constraint(self) -> Constraint:
        return Constraint()

    @abstractmethod
    def render(self, answer: Any) -> str:
        """An answer as the text an arm would give (k-shot turns, fine-tuning targets)."""

    @abstractmethod
    def parse(self, text: str) -> Any:
        """The answer an arm's text holds, or None when it holds none."""

    @abstractmethod
    def score(self, answer: Any, gold: Any) -> ItemScore:
        """Score one answer (None: no answer) against the gold answer."""

    def stratum(self, gold: Any) -> Any:
        """The group an item falls in for a stratified split (None: no stratification)."""
        return None

    def summarise(self, rows: pd.DataFrame) -> dict[str, float]:
        """The type's metrics for one arm's scored rows (columns answer, gold, correct, score, part_*)."""
        return {self.metrics[0]: float(rows[Col.SCORE].mean())}

    def baselines(self, train: Sequence[Item], test: Sequence[Item]) -> list[Baseline]:
        """Trivial answers every option must beat, scored on the test items. None by default."""
        return []

    def comparison_kind(self, *, labelled: bool) -> ComparisonKind:
        """The comparison :meth:`compare` runs: paired accuracy with gold answers, else agreement."""
        return ComparisonKind.PAIRED_ACCURACY if labelled else ComparisonKind.AGREEMENT

    def compare(self, scores: pd.DataFrame, *, reference: str, labelled: bool = True, margin: float = 0.02,
                alpha: float = 0.05, agreement_target: float = 0.95, n_resamples: int = 10_000,
                seed: int = 0) -> Comparison:
        """Every candidate in ``scores`` against ``reference``, Holm-adjusted across candidates.

        By default answers are right or wrong: with gold answers, paired accuracy
        (:func:`kit.stats.compare_arms`: McNemar, Tango's non-inferiority test at ``margin``); without
        (``labelled=False``, scores taken against the reference's answers), agreement with the reference
        against ``agreement_target`` (:func:`kit.stats.compare_agreement`). A type whose quality is a
        score in [0, 1] overrides this.

        >>> task.type.compare(scores, reference="api", labelled=task.labelled).kind   # doctest: +SKIP
        'paired accuracy'
        """
        if not labelled:
            return Comparison(ComparisonKind.AGREEMENT, stats.compare_agreement(
                scores, reference=reference, target=agreement_target, alpha=alpha))
        return Comparison(ComparisonKind.PAIRED_ACCURACY, stats.compare_arms(
            scores, reference=reference, margin=margin, alpha=alpha, n_resamples=n_resamples, seed=seed))

    def agreement(self, scores: pd.DataFrame, *, reference: str) -> pd.DataFrame:
        """Each candidate's agreement with the reference's answers beyond chance (Cohen's kappa), one row per
        candidate; empty for a type whose answers are not one label each (the default)."""
        return pd.DataFrame()


_REGISTRY: dict[str, type[TaskType]] = {}


def register_task_type(cls: type[TaskType]) -> type[TaskType]:
    """Make ``type: <cls.kind>`` in a task file build ``cls``. Usable as a class decorator."""
    _REGISTRY[cls.kind] = cls
    return cls


def task_types() -> dict[str, type[TaskType]]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def get_task_type(kind: str) -> type[TaskType]:
    known = task_types()
    if kind not in known:
        near = difflib.get_close_matches(kind, list(known), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise TaskError(f"unknown task type '{kind}'", fix=f"{hint}Use one of {sorted(known)}")
    return known[kind]
