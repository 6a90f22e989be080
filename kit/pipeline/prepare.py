"""Stages 1 and 2 of a report run: check the experiment against this machine, then train its fine-tunes.

Everything that can fail without calling a model fails here, before anything long starts: tasks that do not
load, fine-tunes on tasks without a train split, models that cannot be found or pulled.

>>> folder = RunFolder("runs/report-x")                                    # doctest: +SKIP
>>> prepare_stage(Experiment.load("notebooks/params/default.yaml"), folder)  # doctest: +SKIP
"""

from __future__ import annotations

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError, KitError, TaskError
from kit.experiment import Experiment
from kit.finetune import finetune
from kit.models import resolve_model
from kit.models.convert import WeightType, converted, weights_words
from kit.models.gguf import read_gguf_info
from kit.models.hardware import fingerprint
from kit.pipeline.arming import models_of
from kit.pipeline.folder import Doc, RunFolder, Stage, Table
from kit.pipeline.provenance import provenance_of, save_provenance
from kit.tasks.prompts import DEFAULT_PROMPT
from kit.pipeline.scores import load_tasks
from kit.tasks import Task
from kit.tasks.prompts import check_variant

PREPARE = Stage("prepare", "01_prepare.ipynb", reads=frozenset(),
                writes=frozenset({Doc.EXPERIMENT, Doc.PROVENANCE, Doc.HARDWARE, Table.MODELS, Doc.SPLITS}))
FINETUNE = Stage("finetune", "02_finetune.ipynb", reads=frozenset({Doc.EXPERIMENT}),
                 writes=frozenset({Doc.FINETUNES}))


def check_finetunes(exp: Experiment, tasks: dict[str, Task]) -> None:
    """A fine-tune needs every task it applies to: in the experiment, labelled, with a train split."""
    for o in exp.options:
        if o.finetune is None:
            continue
        where = f"{exp.source}: option {o.name!r}"
        for name in o.finetune.tasks or ():
            if name not in tasks:
                raise ConfigError(f"finetune.tasks names {name!r}, which is not a task of the experiment",
                                  where=where, fix=f"use some of {list(tasks)}")
        for name in (o.finetune.tasks or tuple(tasks)):
            task = tasks[name]
            if not task.labelled or not task.train:
                raise ConfigError(f"task {name!r} has no labelled train split to fine-tune on", where=where,
                                  fix="give the task labels and a train split (split: {test_fraction: 0.5}), or "
                                      "list the tasks to fine-tune under finetune.tasks")


def check_prompts(exp: Experiment, tasks: dict[str, Task]) -> None:
    """Every option's prompt variants can be built for every task it answers (letters need a label set)."""
    for o in exp.options:
        for name in (t for t in tasks if o.applies_to(t)):
            for variant in o.prompts:
                try:
                    check_variant(tasks[name], variant, where=f"{exp.source}: option {o.name!r}")
                except TaskError as exc:
                    raise ConfigError(f"task {name!r}: {exc.problem}", where=exc.where, fix=exc.fix) from None


def split_ids(tasks: dict[str, Task]) -> dict[str, dict[str, list[str]]]:
    """Each task's train, dev and test ids (the run folder's record of them); a KitError if any two share an
    id — no test item may be used for choices, shots or training."""
    out = {}
    for name, task in tasks.items():
        ids = {"train": [i.id for i in task.train], "dev": [i.id for i in task.dev], "test": [i.id for i in task.test]}
        train, dev, test = (set(v) for v in ids.values())
        shared = (train & dev) | (train & test) | (dev & test)
        if shared:
            raise KitError(f"task {name!r}: the splits share items {sorted(shared)[:5]}", where=str(task.path),
                           fix="report this as a bug: train, dev and test must be disjoint")
        out[name] = ids
    return out


def prepare_stage(exp: Experiment, folder: RunFolder, *, pull: bool = True) -> pd.DataFrame:
    """Check the experiment, resolve ``arm: auto``, pull hub models, and record the experiment as it will run,
    the run record (revision, versions: :mod:`kit.pipeline.provenance`), the machine's fingerprint and the models
    with their sha256. Returns the models table."""
    folder = folder.scoped(PREPARE)
    exp = exp.resolved()
    tasks = load_tasks(exp)
    check_finetunes(exp, tasks)
    check_prompts(exp, tasks)
    used: dict[tuple[str, WeightType], list[str]] = {}  # a model and the weights it runs as (kit.models.convert)
    for o in exp.options:
        for model in models_of(o):
            used.setdefault((model, o.weights), []).append(o.name)
    rows = []
    for (model, weights), names in used.items():
        source = resolve_model(model, pull=pull)
        mf = converted(source, weights)  # made here, once, so the answer stage finds it
        info = read_gguf_info(mf.path)
        rows.append({Col.MODEL: mf.id, "used by": ", ".join(names),
                     Col.QUANTISATION: weights_words(mf, source) or info.quant,
                     Col.ARCHITECTURE: info.architecture, Col.PARAMETERS: info.parameter_count,
                     Col.CONTEXT_LENGTH: info.context_length, Col.SIZE_MB: round(mf.size / 1e6, 1),
                     Col.SHA256: mf.sha256})
    table = pd.DataFrame(rows, columns=[Col.MODEL, "used by", Col.QUANTISATION, Col.ARCHITECTURE, Col.PARAMETERS,
                                        Col.CONTEXT_LENGTH, Col.SIZE_MB, Col.SHA256])
    folder.save_experiment(exp)
    save_provenance(folder, provenance_of(exp))
    folder.save_doc(Doc.HARDWARE, fingerprint())
    folder.save_table(Table.MODELS, table)
    folder.save_doc(Doc.SPLITS, split_ids(tasks))
    return table


def finetune_stage(folder: RunFolder, *, progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) every fine-tune option's adapter, one per task it applies to, on that task's train split.

    The manifests go into the run folder; the answer stage runs each adapter as a ``lora:`` arm.
    """
    folder = folder.scoped(FINETUNE)
    exp = folder.experiment()
    tasks = load_tasks(exp)
    trained: dict[str, dict[str, dict]] = {}
    rows = []
    for o in exp.options:
        if o.finetune is None:
            continue
        for name in (o.finetune.tasks or tuple(tasks)):
            result = finetune(tasks[name], base=o.finetune.base, max_steps=o.finetune.steps, rank=o.finetune.rank,
                              precision=o.finetune.precision, progress=progress,
                              prompt=o.prompts[0] if o.prompts else DEFAULT_PROMPT)
            data = {**result.to_dict(), "arm_spec": result.arm_spec}
            data.pop("train_item_ids", None)
            trained.setdefault(o.name, {})[name] = data
            rows.append({Col.OPTION: o.name, Col.TASK: name, "base": result.base, "steps": result.steps,
                         "train items": result.n_train_items, "final loss": result.final_loss,
                         "training seconds": result.train_seconds, "device": result.device,
                         "reused": result.reused, "adapter sha256": result.adapter_sha256})
    folder.save_doc(Doc.FINETUNES, trained)
    return pd.DataFrame(rows)
