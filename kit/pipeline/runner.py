"""The stages of a report run as a declared graph, and the drivers that walk it.

Each stage declares the run-folder artefacts it reads and writes (:class:`kit.pipeline.folder.Stage`, enforced
by the folder it works through). :data:`STAGES` lists them; :func:`flow_order` checks the graph — every artefact
a stage reads is written by exactly one stage before it — and gives the order the report's notebooks run in.
No stage imports another; the drivers here do:

* the answers of a fixed run: :func:`kit.pipeline.answers.answer_stage`, once;
* the answers of a ``sequential:`` run: :func:`kit.pipeline.sequential.answer_in_rounds`, round by round, which
  calls the answer stage's loop and the quality stage's look after every round.

======== ================= ======================================================================================
stage    notebook          reads → writes
======== ================= ======================================================================================
prepare  01_prepare        (the experiment) → experiment, hardware, models, splits
finetune 02_finetune       experiment → finetunes
answers  03_answers        experiment, finetunes → runs, store, prompts, throughput, verdicts, judge, judging
                           (sequential: + sequential_looks, sequential)
quality  04_quality        experiment, runs, store, verdicts, sequential_looks → scores, metrics, compare, floor,
                           pairs, latency, errors, agreement, disagreements, dev_scores, labels
costs    05_costs          experiment, runs, hardware, finetunes, scores, throughput, dev_scores → costs,
                           break_even, cost_curve, pii, pii_items, cascade, cascade_routes, cascades, goodput
verdict  06_report         experiment, runs, metrics, compare, costs, latency, errors, floor, pairs, pii, goodput,
                           cascades, judging, judge → decision, ranking, summary
======== ================= ======================================================================================

>>> [s.name for s in flow_order()]
['prepare', 'finetune', 'answers', 'quality', 'costs', 'verdict']
"""

from __future__ import annotations

import pandas as pd

from kit.decision import Decision
from kit.errors import KitError
from kit.experiment import Experiment
from kit.pipeline import answers, costs, prepare, quality, sequential, verdict
from kit.pipeline.folder import Artefact, Doc, RunFolder, Stage, Table

STAGES: tuple[Stage, ...] = (prepare.PREPARE, prepare.FINETUNE, answers.STAGE, quality.STAGE, costs.STAGE,
                             verdict.STAGE)


def flow_order(stages: tuple[Stage, ...] = STAGES) -> tuple[Stage, ...]:
    """The stages in the order their declarations allow (each after every stage whose artefacts it reads; ties
    keep the listed order); a KitError when an artefact is read but written by none, written by two stages, or
    the reads go round in a circle.

    >>> s = Stage("a", "a.ipynb", reads=frozenset({Doc.RUNS}), writes=frozenset())
    >>> flow_order((s,))
    Traceback (most recent call last):
    kit.errors.KitError: ...: stage a reads runs, which no stage writes. Fix: ...
    """
    writer: dict[Artefact, Stage] = {}
    for s in stages:
        for kind in s.writes:
            if kind in writer:
                raise KitError(f"{_name(kind)} is written by stages {writer[kind].name} and {s.name}",
                               where="kit.pipeline.runner", fix="one stage writes each artefact: move one write")
            writer[kind] = s
    needs: dict[str, set[str]] = {}
    for s in stages:
        for kind in s.reads:
            if kind not in writer:
                raise KitError(f"stage {s.name} reads {_name(kind)}, which no stage writes", where="kit.pipeline.runner",
                               fix="declare the stage that writes it, or drop the read")
        needs[s.name] = {writer[k].name for k in s.reads} - {s.name}
    order: list[Stage] = []
    while len(order) < len(stages):
        ready = [s for s in stages if s not in order and needs[s.name] <= {o.name for o in order}]
        if not ready:
            left = [s.name for s in stages if s not in order]
            raise KitError(f"the stages {left} read each other's artefacts in a circle", where="kit.pipeline.runner",
                           fix="break the circle: a stage reads only what earlier stages write")
        order.append(ready[0])
    return tuple(order)


def _name(kind: Artefact) -> str:
    return kind.file if isinstance(kind, Table) else kind.value


def notebooks() -> tuple[str, ...]:
    """The report's notebooks, in the graph's order."""
    return tuple(s.notebook for s in flow_order())


def answer(folder: RunFolder, *, progress: bool = True) -> pd.DataFrame:
    """The answer stage through the experiment's driver: a fixed run once, a ``sequential:`` run in rounds."""
    if folder.experiment().sequential is not None:
        return sequential.answer_in_rounds(folder, progress=progress)
    return answers.answer_stage(folder, progress=progress)


def run_all(exp: Experiment, folder: RunFolder, *, pull: bool = True, progress: bool = False) -> dict[str, Decision]:
    """Every stage in the graph's order, in one process (what ``kit report`` does notebook by notebook);
    returns the verdict per task.

    >>> run_all(Experiment.load("notebooks/params/default.yaml"), RunFolder("runs/x"))   # doctest: +SKIP
    """
    steps = {"prepare": lambda: prepare.prepare_stage(exp, folder, pull=pull),
             "finetune": lambda: prepare.finetune_stage(folder, progress=progress),
             "answers": lambda: answer(folder, progress=progress),
             "quality": lambda: quality.quality_stage(folder), "costs": lambda: costs.costs_stage(folder),
             "verdict": lambda: verdict.verdict_stage(folder)}
    out = None
    for stage in flow_order():
        out = steps[stage.name]()
    return out
