"""Typed readers of what the stages wrote, for the stages after them and for the report.

A record in the run folder is JSON; these turn it back into the typed value its writer meant: where a
sequential run's rounds stopped (:class:`Stop`), the cascades that passed (:class:`HybridResult`), the labels
a partly labelled task used (:class:`~kit.tasks.ppi_compare.SampledLabels`).

>>> hybrids_of(RunFolder("runs/report-x"), "snips-intents")[0].hybrid.name   # doctest: +SKIP
'SmolLM2 ⇢ API'
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from kit.cascade import CascadeChoice, Fit
from kit.decision import Floor, Hybrid, OptionKey
from kit.pipeline.folder import Doc, RunFolder
from kit.stats import Conclusion
from kit.tasks.ppi_compare import SampledLabels


@dataclass(frozen=True)
class Stop:
    """Where a task's rounds stopped (``Doc.SEQUENTIAL``): the last round, the items each option answered, the
    caps, why it stopped (``settled``, ``item cap``, ``cost cap``), USD spent and the fixed plan's USD per option
    (priced per answered item), which options settled, and the method."""

    round: int
    items: int
    round_items: int
    max_items: int
    fixed_items: int
    stopped: str
    spent_usd: dict[str, float]
    planned_usd: dict[str, float]
    settled: dict[str, bool]
    method: str
    alpha: float
    tested: bool  # False for a free-text task (judged after the answers: nothing to test between rounds)
    max_cost_usd: float | None = None  # the cost cap the spend is held under (None: no cap)


def stop_of(folder: RunFolder, task: str) -> Stop | None:
    """A task's :class:`Stop`, or None when the run was not sequential.

    >>> stop_of(RunFolder("runs/report-x"), "snips-intents").items            # doctest: +SKIP
    40
    """
    data = folder.doc(Doc.SEQUENTIAL, task=task, default={})
    return Stop(**data) if data else None


@dataclass(frozen=True)
class HybridResult:
    """A cascade whose threshold passed: the hybrid, the choice behind it, and how it fares against the floor."""

    hybrid: Hybrid
    choice: CascadeChoice
    floor: Floor | None


def choice_of(record: dict[str, Any]) -> CascadeChoice:
    """A cascade's choice as the cascades record keeps it (JSON), typed again."""
    choice = CascadeChoice(**{f.name: record[f.name] for f in fields(CascadeChoice) if f.name in record})
    return replace(choice, conclusion=Conclusion(choice.conclusion), fit=Fit(choice.fit),
                   fold_taus=tuple(choice.fold_taus))


def hybrids_of(folder: RunFolder, task: str) -> list[HybridResult]:
    """The cascades of ``task`` that have a threshold, as typed records (from the cascades record)."""
    out = []
    for record in folder.doc(Doc.CASCADES, task=task, default={}).values():
        choice = choice_of(record)
        if choice.tau is None:
            continue
        floor = record.get("floor")
        out.append(HybridResult(Hybrid(OptionKey(record["first"]), OptionKey(record["escalate_to"]), choice.tau),
                                choice, Floor(**floor) if floor is not None else None))
    return out


def sample_labels(folder: RunFolder, name: str) -> SampledLabels | None:
    """The run folder's snapshot of the random sample's labels on a task (``Doc.LABELS``), None without one."""
    if not folder.has(Doc.LABELS, task=name):
        return None
    return SampledLabels.from_doc(folder.doc(Doc.LABELS, task=name), where=f"{folder.path} labels of {name}")
