"""Stage 3 of a report run: every option answers the same test items of every task it applies to.

Each answer goes to the store the moment it arrives; the run folder records which questions each option was
asked (the store's cache keys), so later stages read exactly those answers. The stand-in server is started
for the stage when an option is the stand-in, and each model is loaded once per experiment (a fine-tune once
per task: its adapter differs).

:class:`Answering` is the one answer loop: an option answers some items of a task at its chosen prompt
(:mod:`kit.pipeline.selection`), under the privacy rule, through the runner and the store. A fixed run
(:func:`answer_stage`) asks it once for the experiment's items; the rounds driver of a sequential run
(:mod:`kit.pipeline.sequential`) asks it round by round. Either way :func:`finish` records what was asked.

>>> answer_stage(RunFolder("runs/report-x"))                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from kit.arms import get_arm
from kit.arms.base import Arm
from kit.arms.standin import StandinServer
from kit.columns import Col
from kit.experiment import Experiment, Option, SweepSpec
from kit.judge import judge_task
from kit.paths import default_store
from kit.pipeline.arming import arm_for, standin_for, withhold_for
from kit.pipeline.folder import Doc, RunFolder, RunRecord, Stage, Table
from kit.pipeline.scores import load_tasks
from kit.pipeline.selection import Selection, select_prompt
from kit.run.runner import RunSummary, run_arm
from kit.run.store import Store
from kit.run.sweep import sweep
from kit.tasks import Item, Task

STAGE = Stage("answers", "03_answers.ipynb",
              reads=frozenset({Doc.EXPERIMENT, Doc.FINETUNES}),
              writes=frozenset({Doc.RUNS, Doc.STORE, Table.PROMPTS, Table.THROUGHPUT, Table.VERDICTS, Table.JUDGE,
                                Doc.JUDGING,
                                Table.SEQUENTIAL, Doc.SEQUENTIAL}))  # the last two: the rounds driver's looks


class Answering:
    """The answer loop of one run: which arm answers each option (opened once, kept while the option answers),
    each option's prompt on each task (chosen on the dev split once), and what each option answered so far.

    >>> with answering(folder, exp) as a:                               # doctest: +SKIP
    ...     a.answer(task, exp.option("SmolLM2"), items=task.test[:20])
    """

    def __init__(self, exp: Experiment, *, finetunes: Mapping[str, Any], store: Store,
                 standin: StandinServer | None, progress: bool = True) -> None:
        self.exp, self.store, self.progress = exp, store, progress
        self._finetunes, self._standin = finetunes, standin
        self._arms: dict[str, tuple[str, Arm]] = {}  # option -> (spec, the open arm)
        self._picks: dict[tuple[str, str], Selection] = {}
        self._runs: dict[tuple[str, str], list[RunSummary]] = {}
        self._what: dict[tuple[str, str], tuple[str, str]] = {}  # (task, option) -> (spec, describe)

    def arm(self, option: Option, task: str) -> Arm:
        """The open arm that answers ``task`` for ``option`` (a fine-tune's adapter differs per task: the arm of
        another task is closed first)."""
        spec, options = arm_for(option, task=task, finetunes=self._finetunes, standin=self._standin)
        held = self._arms.get(option.name)
        if held is None or held[0] != spec:
            self.release(option)
            self._arms[option.name] = (spec, get_arm(spec, **options))
        return self._arms[option.name][1]

    def fresh_arm(self, option: Option, task: str) -> Arm:
        """A new arm for ``option`` on ``task``, not held by the loop (the judge's: the caller closes it)."""
        spec, options = arm_for(option, task=task, finetunes=self._finetunes, standin=self._standin)
        return get_arm(spec, **options)

    def release(self, option: Option | None = None) -> None:
        """Close ``option``'s arm (every arm with None)."""
        for name in [option.name] if option is not None else list(self._arms):
            held = self._arms.pop(name, None)
            if held is not None:
                held[1].close()

    def max_tokens(self, task: Task) -> int:
        return task.type.max_tokens or self.exp.max_tokens

    def prompt(self, task: Task, option: Option) -> Selection:
        """``option``'s prompt on ``task``: its best variant on the dev split (chosen on the first call)."""
        key = (task.name, option.name)
        if key not in self._picks:
            self._picks[key] = select_prompt(task, option, self.arm(option, task.name), store=self.store,
                                             withhold=withhold_for(self.exp, option, task), progress=self.progress,
                                             max_tokens=self.max_tokens(task),
                                             dev_items=self.exp.dev_limit(task.name))
        return self._picks[key]

    def answer(self, task: Task, option: Option, *, items: Sequence[Item] | None = None, limit: int | None = None,
               label: str | None = None) -> RunSummary:
        """``option`` answers ``items`` of ``task`` (else its first ``limit`` test items) at its chosen prompt; a
        third-party option obeys the privacy rule."""
        pick = self.prompt(task, option)
        arm = self.arm(option, task.name)
        summary = run_arm(task, arm, store=self.store, items=items, limit=limit,
                          withhold=withhold_for(self.exp, option, task), progress=self.progress,
                          max_tokens=self.max_tokens(task), label=label or option.name, variant=pick.chosen)
        self._runs.setdefault((task.name, option.name), []).append(summary)
        self._what[(task.name, option.name)] = (self._arms[option.name][0], arm.describe())
        return summary

    def rows(self, task: Task, options: Sequence[Option]) -> pd.DataFrame:
        """The stored answers of ``options`` on ``task`` so far (``arm``: the option's name)."""
        return pd.concat([self.store.rows([k for r in self._runs.get((task.name, o.name), []) for k in r.keys.values()])
                          .assign(**{Col.OPTION: o.name}) for o in options], ignore_index=True)

    def records(self) -> list[RunRecord]:
        """One record per (task, option), in the order they first answered."""
        out = []
        for (task, option), runs in self._runs.items():
            spec, describe = self._what[(task, option)]
            pick = self._picks[(task, option)]
            keys = {k: v for r in runs for k, v in r.keys.items()}
            out.append(RunRecord(task=task, option=option, arm=spec, run_id=", ".join(r.run_id for r in runs),
                                 items=sum(r.items for r in runs), new_calls=sum(r.new_calls for r in runs),
                                 from_store=sum(r.cached for r in runs), errors=sum(r.errors for r in runs),
                                 withheld=sum(r.withheld for r in runs), describe=describe, keys=keys,
                                 stopped=next((r.stopped for r in runs if r.stopped), None), prompt=pick.chosen.name,
                                 dev_keys=pick.dev_keys))
        return out

    def prompt_tables(self) -> dict[str, list[pd.DataFrame]]:
        out: dict[str, list[pd.DataFrame]] = {}
        for (task, _), pick in self._picks.items():
            if not pick.table.empty:
                out.setdefault(task, []).append(pick.table)
        return out


@contextlib.contextmanager
def answering(folder: RunFolder, exp: Experiment, *, progress: bool = True) -> Iterator[Answering]:
    """The answer loop with the store and the stand-in server open; every arm is closed at the end."""
    finetunes = folder.doc(Doc.FINETUNES) if any(o.finetune is not None for o in exp.options) else {}
    with Store(exp.store or default_store()) as store, standin_for(exp) as server:
        loop = Answering(exp, finetunes=finetunes, store=store, standin=server, progress=progress)
        try:
            yield loop
        finally:
            loop.release()


def answer_stage(folder: RunFolder, *, progress: bool = True) -> pd.DataFrame:
    """A fixed run: every option through every task it applies to, on the experiment's items; returns one row per
    (task, option). (A sequential run answers in rounds instead: :mod:`kit.pipeline.sequential`.)"""
    folder = folder.scoped(STAGE)
    exp = folder.experiment()
    tasks = load_tasks(exp)
    sweeps: dict[str, list[pd.DataFrame]] = {}
    with answering(folder, exp, progress=progress) as loop:
        for option in exp.options:
            for name in (t for t in exp.tasks if option.applies_to(t)):
                loop.answer(tasks[name], option, limit=exp.tasks[name])
                if exp.sweep is not None and option.self_hosted and exp.sweep.covers(name) \
                        and loop.arm(option, name).load_kind is not None:
                    sweeps.setdefault(name, []).append(load_sweep(exp, option, tasks[name], loop.arm(option, name),
                                                                  store=loop.store, progress=progress))
            loop.release(option)
        return finish(folder, loop, tasks, sweeps=sweeps)


def finish(folder: RunFolder, loop: Answering, tasks: Mapping[str, Task], *,
           sweeps: Mapping[str, list[pd.DataFrame]] | None = None) -> pd.DataFrame:
    """Record what the loop asked (runs, the prompts tables, where the store is, the load sweeps), then have the
    judge grade every free-text task; returns the runs table."""
    exp = loop.exp
    records = loop.records()
    folder.save_runs(records)
    prompts = loop.prompt_tables()
    for name in tasks:
        folder.save_table(Table.PROMPTS, pd.concat(prompts.get(name) or [pd.DataFrame()], ignore_index=True), task=name)
    folder.save_doc(Doc.STORE, {"path": str(exp.store or default_store())})
    for name, tables in (sweeps or {}).items():
        folder.save_table(Table.THROUGHPUT, pd.concat(tables, ignore_index=True), task=name)
    for task in tasks.values():
        if task.type.judge_modes:
            judge_stage(folder, task, exp=exp, loop=loop)
    return runs_table(records)


def load_sweep(exp: Experiment, option: Option, task: Task, arm: Any, *, store: Store,
               progress: bool = True) -> pd.DataFrame:
    """A self-hosted option's throughput at rising load on ``task`` (``sweep:`` in the experiment: levels,
    items, max_seconds): one row per level, every figure from the store. The arm is left at load 1."""
    spec = exp.sweep or SweepSpec()
    result = sweep(task, arm, store=store, levels=spec.levels, items=spec.items,
                   latency_target_s=exp.latency_target_s, max_seconds=spec.max_seconds,
                   max_tokens=task.type.max_tokens or exp.max_tokens, progress=progress, label=option.name)
    arm.set_load(1)
    return result.table().assign(stopped=result.stopped)


def judge_option(exp: Experiment) -> Option:
    """The option whose arm judges free text: ``judge:`` names one, else the reference judges."""
    return exp.option(exp.judge) if exp.judge else exp.reference


def judge_stage(folder: RunFolder, task: Task, *, exp: Experiment, loop: Answering) -> None:
    """Have the judge grade every option's free-text answers (each call through the store, cached), and record
    its verdicts, its consistency between the two orders, and whether it grades its own answers."""
    judge = judge_option(exp)
    answers = {r.option: loop.store.rows(r.keys.values()) for r in folder.runs(task=task.name)}
    with loop.fresh_arm(judge, task.name) as arm:
        result = judge_task(task, loop.store, answers, arm, reference=exp.reference_name, progress=loop.progress,
                            label=f"judge {judge.name}")
    folder.save_table(Table.VERDICTS, result.verdicts, task=task.name)
    folder.save_table(Table.JUDGE, result.consistency(), task=task.name)
    folder.save_doc(Doc.JUDGING, {Col.JUDGE: judge.name, "new_calls": result.new_calls, "cached": result.cached,
                                Col.JUDGE_ERRORS: result.judge_errors, "stopped": result.stopped,
                                "self_preference": result.self_preference.to_dict("records")}, task=task.name)


def runs_table(records: list[RunRecord]) -> pd.DataFrame:
    """What each option did on each task: items, new calls, answers served from the store, errors, withheld."""
    return pd.DataFrame([{Col.TASK: r.task, Col.OPTION: r.option, "items": r.items, "new calls": r.new_calls,
                          "from store": r.from_store, "errors": r.errors, "withheld": r.withheld,
                          "stopped": r.stopped or ""} for r in records])
