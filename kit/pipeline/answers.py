"""Stage 3 of a report run: every option answers the same test items of every task it applies to.

Each answer goes to the store the moment it arrives; the run folder records which questions each option was
asked (the store's cache keys), so later stages read exactly those answers. The stand-in server is started
for the stage when an option is the stand-in, and each model is loaded once per experiment (a fine-tune once
per task: its adapter differs).

>>> answer_stage(RunFolder("runs/report-x"))                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd

from kit.columns import Col
from kit.experiment import STANDIN_MODEL, Experiment, Option
from kit.pipeline.prepare import load_tasks
from kit.pipeline.folder import Doc, RunFolder, RunRecord, Table
from kit.arms.standin import StandinServer, standin_arm_options
from kit.run.store import Store
from kit.tasks import Task


@contextlib.contextmanager
def _standin(exp: Experiment) -> Iterator[StandinServer | None]:
    """The stand-in server for the duration of the stage (None when no option is the stand-in)."""
    if not any(o.standin for o in exp.options):
        yield None
        return
    with StandinServer(STANDIN_MODEL) as server:
        yield server


def arm_for(option: Option, *, task: str, folder: RunFolder,
            standin: StandinServer | None) -> tuple[str, dict[str, Any]]:
    """The arm spec and options that answer ``task`` for ``option``. The stand-in's arm is identified by what
    answers (model sha256, server version), not by its port, and stops at once if its server dies."""
    if option.standin:
        return f"openai:{STANDIN_MODEL}", {**standin_arm_options(server=standin), **option.arm_options}
    if option.finetune is not None:
        trained = folder.doc(Doc.FINETUNES)[option.name][task]
        return trained["arm_spec"], {"lora_sha256": trained["adapter_sha256"], **option.arm_options}
    return str(option.arm), dict(option.arm_options)


def answer_stage(folder: RunFolder, *, progress: bool = True) -> pd.DataFrame:
    """Every option through every task it applies to; returns one row per (task, option)."""
    from kit.arms import get_arm
    from kit.paths import default_store
    from kit.privacy import withhold_pii
    from kit.pipeline.selection import select_prompt
    from kit.run.runner import run_arm

    exp = folder.experiment()
    tasks = load_tasks(exp)
    records: list[RunRecord] = []
    sweeps: dict[str, list[pd.DataFrame]] = {}
    prompt_tables: dict[str, list[pd.DataFrame]] = {}
    with Store(exp.store or default_store()) as store, _standin(exp) as server:
        if exp.sequential is not None:  # rounds that stop when the verdict is settled (kit.pipeline.sequential)
            from kit.pipeline.sequential import answer_in_rounds
            records, prompt_tables = answer_in_rounds(folder, tasks, store=store, standin=server, progress=progress)
        for option in exp.options if exp.sequential is None else ():
            names = [t for t in exp.tasks if option.applies_to(t)]
            arm = None
            try:
                for name in names:
                    spec, arm_options = arm_for(option, task=name, folder=folder, standin=server)
                    if arm is None or arm.spec != spec:
                        if arm is not None:
                            arm.close()
                        arm = get_arm(spec, **arm_options)
                    task = tasks[name]
                    # a third-party option (and the stand-in, which plays one) obeys the privacy rule
                    hook = withhold_pii(task=task) if exp.privacy_required and not option.self_hosted else None
                    # the option's prompt: its best variant on the dev split; only that one answers the test items
                    pick = select_prompt(task, option, arm, store=store, withhold=hook, progress=progress,
                                         max_tokens=task.type.max_tokens or exp.max_tokens)
                    if not pick.table.empty:
                        prompt_tables.setdefault(name, []).append(pick.table)
                    summary = run_arm(task, arm, store=store, limit=exp.tasks[name], withhold=hook,
                                      progress=progress, max_tokens=task.type.max_tokens or exp.max_tokens,
                                      label=option.name, variant=pick.chosen)
                    records.append(RunRecord(task=name, option=option.name, arm=spec, run_id=summary.run_id,
                                             items=summary.items, new_calls=summary.new_calls,
                                             from_store=summary.cached, errors=summary.errors,
                                             withheld=summary.withheld, describe=arm.describe(), keys=summary.keys,
                                             stopped=summary.stopped, prompt=pick.chosen.name,
                                             dev_keys=pick.dev_keys))
                    if exp.sweep is not None and option.self_hosted and arm.load_kind is not None \
                            and exp.sweep.covers(name):
                        sweeps.setdefault(name, []).append(load_sweep(exp, option, task, arm, store=store,
                                                                      progress=progress))
            finally:
                if arm is not None:
                    arm.close()
        folder.save_runs(records)
        for name in tasks:
            folder.save_table(Table.PROMPTS, pd.concat(prompt_tables.get(name) or [pd.DataFrame()], ignore_index=True),
                              task=name)
        folder.save_doc(Doc.STORE, {"path": str(exp.store or default_store())})
        for name, tables in sweeps.items():
            folder.save_table(Table.THROUGHPUT, pd.concat(tables, ignore_index=True), task=name)
        for name, task in tasks.items():
            if task.type.judge_modes:
                judge_stage(folder, task, store=store, standin=server, progress=progress)
    return runs_table(records)


def load_sweep(exp: Experiment, option: Option, task: Task, arm: Any, *, store: Store,
               progress: bool = True) -> pd.DataFrame:
    """A self-hosted option's throughput at rising load on ``task`` (``sweep:`` in the experiment: levels,
    items, max_seconds): one row per level, every figure from the store. The arm is left at load 1."""
    from kit.experiment import SweepSpec
    from kit.run.sweep import sweep

    spec = exp.sweep or SweepSpec()
    result = sweep(task, arm, store=store, levels=spec.levels, items=spec.items,
                   latency_target_s=exp.latency_target_s, max_seconds=spec.max_seconds,
                   max_tokens=task.type.max_tokens or exp.max_tokens, progress=progress, label=option.name)
    arm.set_load(1)
    return result.table().assign(stopped=result.stopped)


def judge_option(exp: Experiment) -> Option:
    """The option whose arm judges free text: ``judge:`` names one, else the reference judges."""
    return exp.option(exp.judge) if exp.judge else exp.reference


def judge_stage(folder: RunFolder, task: Task, *, store: Store, standin: StandinServer | None,
                progress: bool = True) -> None:
    """Have the judge grade every option's free-text answers (each call through the store, cached), and record
    its verdicts, its consistency between the two orders, and whether it grades its own answers."""
    from kit.arms import get_arm
    from kit.judge import judge_task

    exp = folder.experiment()
    judge = judge_option(exp)
    answers = {r.option: store.rows(r.keys.values()) for r in folder.runs(task=task.name)}
    spec, arm_options = arm_for(judge, task=task.name, folder=folder, standin=standin)
    with get_arm(spec, **arm_options) as arm:
        result = judge_task(task, store, answers, arm, reference=exp.reference_name, progress=progress,
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
