"""The run folder of a report: every artefact one stage leaves for the next, with its name and its type.

A report run has one folder (``runs/report-<stamp>/``). :class:`RunFolder` is the only code that knows the
artefacts' file names: stages save and load typed records and tables through it, per run or per task.
The responses themselves stay in the store; the folder records which questions were asked (cache keys).

Each stage declares the artefacts it reads and writes (a :class:`Stage`); the stage works through
``folder.scoped(STAGE)``, a view of the folder that refuses to read or write anything the declaration leaves
out, so the declared graph (:mod:`kit.pipeline.runner`) is the graph that runs.

>>> import tempfile
>>> folder = RunFolder(tempfile.mkdtemp())
>>> folder.save_table(Table.PII_ITEMS, pd.DataFrame({"item_id": ["a"], "has_pii": [False], "kinds": [""]}), task="t")
>>> folder.table(Table.PII_ITEMS, task="t")["item_id"].tolist()
['a']
>>> folder.save_table(Table.PII_ITEMS, pd.DataFrame({"item_id": ["a"]}), task="t")
Traceback (most recent call last):
kit.errors.KitError: ...: the pii_items table lacks its columns ['has_pii', 'kinds']. Fix: ...
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError, KitError
from kit.experiment import Experiment
from kit.paths import runs_dir
from kit.util import atomic_write_json, atomic_write_text


class Table(Enum):
    """Per-task (or per-run) tables, each with the columns its readers rely on: its schema, declared once and
    checked when a stage writes the table (a table with no rows is written as it is)."""

    MODELS = "models", (Col.MODEL, Col.QUANTISATION, Col.ARCHITECTURE, Col.PARAMETERS, Col.CONTEXT_LENGTH,
                        Col.SIZE_MB, Col.SHA256)  # per run: the GGUF models, their quantisation and sha256
    SCORES = "scores", (Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.ANSWER, Col.GOLD, Col.CORRECT, Col.SCORE, Col.ERROR,
                        Col.CONFIDENCE, Col.LATENCY_S, Col.PROMPT_TOKENS, Col.COMPLETION_TOKENS, Col.WARMUP)
    METRICS = "metrics", (Col.OPTION, Col.KIND, Col.N_ITEMS, Col.MEAN_SCORE, Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH,
                          Col.STATEMENT)  # per option and trivial baseline: the type's metrics with intervals
    COMPARE = "compare", (Col.TASK, Col.KIND, Col.OPTION, Col.REFERENCE, Col.N_ITEMS, Col.METRIC, Col.CANDIDATE_VALUE,
                          Col.DIFFERENCE, Col.DIFF_CI_LOW, Col.DIFF_CI_HIGH, Col.LOWER_BOUND, Col.CONCLUSION,
                          Col.CONCLUSION_ADJUSTED, Col.QUALIFIES, Col.BETTER, Col.N_NEEDED,
                          Col.STATEMENT)  # per candidate against the reference: the quality bar
    FLOOR = "floor", (Col.OPTION, Col.BASELINE, Col.ANSWER, Col.N, Col.CANDIDATE_MEAN, Col.BASELINE_MEAN, Col.P_VALUE,
                      Col.PASSES, Col.STATEMENT)  # per option against the trivial baselines
    PAIRS = "pairs", (Col.A, Col.B, Col.N, Col.DIFFERENCE, Col.P_VALUE, Col.P_HOLM,
                      Col.STATEMENT)  # every pair of options: paired difference and its test
    AGREEMENT = "agreement", (Col.OPTION, Col.N, Col.AGREEMENT, Col.KAPPA, Col.KAPPA_CI_LOW, Col.KAPPA_CI_HIGH,
                              Col.STATEMENT)  # per candidate: agreement with the reference's answers (kappa)
    LATENCY = "latency", (Col.OPTION, Col.N, Col.N_WARMUP, Col.WARMUP_S, Col.P50_S, Col.P95_S, Col.P95_CI_LOW,
                          Col.P95_CI_HIGH, Col.P99_S, Col.STATEMENT)  # per option: steady-state p50/p95/p99
    ERRORS = "errors", (Col.OPTION, Col.N_ITEMS, Col.N_ERRORS, Col.N_PARSE_ERRORS, Col.FAILED_RATE,
                        Col.STATEMENT)  # per option: failed calls and unparseable answers
    COSTS = "costs", (Col.OPTION, Col.MONTHLY_COST, Col.BASIS, Col.WHERE, Col.COST_LOW,
                      Col.COST_HIGH)  # per option: monthly cost at the volume, with its band
    BREAK_EVEN = "break_even", (Col.OPTION_A, Col.OPTION_B, Col.BREAK_EVEN_VOLUME,
                                Col.STATEMENT)  # per pair of options: the volume where costs cross
    COST_CURVE = "cost_curve", (Col.VOLUME, Col.OPTION, Col.MONTHLY_COST, Col.COST_LOW,
                                Col.COST_HIGH)  # cost against volume for plotting
    PII = "pii", (Col.KIND, Col.N_ITEMS, Col.N_FLAGGED, Col.SHARE, Col.CI_LOW, Col.CI_HIGH,
                  Col.STATEMENT)  # share of items with personal data, per kind
    PII_ITEMS = "pii_items", (Col.ITEM_ID, Col.HAS_PII, Col.KINDS)  # which items were flagged
    CASCADE = "cascade", (Col.CANDIDATE, Col.TAU, Col.POLICY, Col.SHARE_LOCAL, Col.ACCURACY, Col.CONCLUSION,
                          Col.IN_SEQUENCE, Col.MONTHLY_COST, Col.P95_LATENCY_S,
                          Col.STATEMENT)  # per self-hosted candidate and threshold: the simulated cascade
    THROUGHPUT = "throughput", (Col.OPTION, Col.LOAD_KIND, Col.LOAD, Col.ITEMS_PER_S, Col.P95_LATENCY_S,
                                Col.STATUS)  # per self-hosted option and load level (load sweep)
    RANKING = "ranking", (Col.RANK, Col.OPTION, Col.STATUS, Col.QUALITY, Col.VS_REFERENCE, Col.MONTHLY_COST,
                          Col.P95_S, Col.WHY)  # the options in the decision's order, with why
    VERDICTS = "verdicts", (Col.MODE, Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.VALUE)  # free text: the judge's verdicts
    JUDGE = "judge", (Col.OPTION, Col.ORDERS_AGREE, Col.STATEMENT)  # free text: how often the two orders agreed
    DISAGREEMENTS = "disagreements", (Col.OPTION, Col.ITEM_ID, Col.ANSWER,
                                      Col.REFERENCE_ANSWER)  # unlabelled: items where a candidate differs
    # -- answers on the dev items (prompt choice; cascade thresholds are fitted there): the scores' columns
    DEV_SCORES = "dev_scores", SCORES[1]
    # per cascade and test item: the τ that routed it, never fitted on it
    CASCADE_ROUTES = "cascade_routes", (Col.CANDIDATE, Col.ITEM_ID, Col.FOLD, Col.TAU, Col.ESCALATED)
    # runs that stop when the verdict is settled (kit.pipeline.sequential): per round, option and open question
    SEQUENTIAL = "sequential_looks", (Col.TASK, Col.ROUND, Col.N_ITEMS, Col.OPTION, Col.QUESTION, Col.ESTIMATE,
                                      Col.CS_LOW, Col.CS_HIGH, Col.STATUS)
    # per task: each option's prompt variants on the dev split, and the one chosen for the test split
    PROMPTS = "prompts", (Col.TASK, Col.OPTION, Col.VARIANT, Col.PROMPT, Col.DEV_ITEMS, Col.DEV_QUALITY,
                          Col.DEV_CI_LOW, Col.DEV_CI_HIGH, Col.PROMPT_TOKENS, Col.CHOSEN, Col.SELECTION_CALLS,
                          Col.SELECTION_SECONDS, Col.SELECTION_USD, Col.NOTE)

    def __init__(self, file: str, columns: tuple[Col, ...]) -> None:
        self.file = file
        self.columns = columns


class Doc(str, Enum):
    """Per-task or per-run records (JSON)."""

    DECISION = "decision"        # per task: the verdict
    CASCADES = "cascades"        # per task: the chosen threshold of each cascade
    FINETUNES = "finetunes"      # per run: what was trained, per option and task
    HARDWARE = "hardware"        # per run: the machine's fingerprint
    SUMMARY = "summary"          # per run: the verdicts of every task in one record
    STORE = "store"              # per run: where the answers are (the store's path)
    GOODPUT = "goodput"          # per task: each swept option's chosen load level and the decoding ceiling
    JUDGING = "judging"          # per task (free text): who judged, calls, errors, self-preference
    LABELS = "labels"            # per task (partly labelled): a snapshot of the random sample's labels
    #                              {order, gold, outside, population, seed}: kit.tasks.ppi_compare.SampledLabels
    SEQUENTIAL = "sequential"    # per task (sequential runs): where the rounds stopped, why, spent vs the fixed plan
    SPLITS = "splits"            # per run: each task's train, dev and test ids (disjoint, checked when written)
    EXPERIMENT = "experiment"    # per run: the experiment as it runs (``auto`` resolved)
    RUNS = "runs"                # per run: what each option answered on each task (RunRecord: the store's keys)
    PROVENANCE = "provenance"    # per run: the versioned run record (kit.pipeline.provenance.Provenance)


Artefact = Table | Doc


@dataclass(frozen=True)
class Stage:
    """A stage of a report run: its name, its notebook, and the run-folder artefacts it reads and writes.

    >>> s = Stage("costs", "05_costs.ipynb", reads=frozenset({Doc.EXPERIMENT}), writes=frozenset({Table.COSTS}))
    >>> s.touches(Table.COSTS), s.touches(Table.SCORES)
    (True, False)
    """

    name: str
    notebook: str
    reads: frozenset[Artefact]
    writes: frozenset[Artefact]

    def touches(self, kind: Artefact) -> bool:
        return kind in self.reads or kind in self.writes


class State(str, Enum):
    """Where a report run stands. INTERRUPTED is never written: a reader finds a run recorded as running whose
    process is gone (``kill -9``, a reboot, a closed terminal)."""

    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"
    INTERRUPTED = "interrupted"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (signal 0 checks without sending anything).

    >>> process_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


@dataclass(frozen=True)
class RunStatus:
    """A run folder's status (``status.json``): running, failed at a notebook (with the error), or done.

    ``notebook`` is the notebook running or failed; ``done`` the notebooks finished; ``pid`` the process of
    ``kit report``; ``report`` the rendered HTML once done.
    """

    state: State
    started: str
    pid: int
    notebook: str | None = None
    done: tuple[str, ...] = ()
    error: str | None = None
    finished: str | None = None
    report: str | None = None

    def words(self) -> str:
        if self.state is State.RUNNING:
            return f"running {self.notebook or ''} (process {self.pid}, since {self.started})".replace("  ", " ")
        if self.state is State.FAILED:
            return f"failed at {self.notebook}: {self.error}"
        if self.state is State.INTERRUPTED:
            return (f"interrupted at {self.notebook or 'its start'}: process {self.pid} is gone (killed, or the "
                    f"machine restarted; started {self.started}) — run it again, answers already stored are reused")
        return f"done at {self.finished}" + (f": {self.report}" if self.report else "")


FAILED_MARKER = "FAILED.txt"


@dataclass(frozen=True)
class RunRecord:
    """One option answering one task: which arm, the store's run id, counts, and the questions asked."""

    task: str
    option: str
    arm: str
    run_id: str
    items: int
    new_calls: int
    from_store: int
    errors: int
    withheld: int
    describe: str
    keys: dict[str, str] = field(default_factory=dict)  # item id -> cache key in the store
    stopped: str | None = None  # why the run stopped early (a spending cap, a dead endpoint)
    prompt: str = "default"  # the prompt variant that answered the test items (chosen on the dev split)
    dev_keys: dict[str, str] = field(default_factory=dict)  # its answers to the dev items, when it was chosen there


class RunFolder:
    """A report run's folder. Create it with a path; every stage gets the same object."""

    def __init__(self, path: str | Path, *, stage: Stage | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.stage = stage

    def scoped(self, stage: Stage) -> RunFolder:
        """This folder as ``stage`` sees it: reading or writing an artefact it does not declare is a KitError.

        >>> import tempfile
        >>> s = Stage("x", "x.ipynb", reads=frozenset(), writes=frozenset({Table.PII}))
        >>> RunFolder(tempfile.mkdtemp()).scoped(s).table(Table.SCORES, task="t")
        Traceback (most recent call last):
        kit.errors.KitError: ...: stage x reads the scores table, which it does not declare. Fix: ...
        """
        return RunFolder(self.path, stage=stage)

    def _check(self, kind: Artefact, *, write: bool) -> None:
        if self.stage is None:
            return
        allowed = kind in self.stage.writes if write else self.stage.touches(kind)
        if not allowed:
            what = f"the {kind.file} table" if isinstance(kind, Table) else f"the {kind.value} record"
            raise KitError(f"stage {self.stage.name} {'writes' if write else 'reads'} {what}, which it does not "
                           "declare", where=str(self.path),
                           fix=f"declare it in the stage's {'writes' if write else 'reads'} (kit.pipeline.runner)")

    @classmethod
    def open(cls, run_dir: str | Path | None) -> RunFolder:
        """The folder a notebook works in: ``run_dir`` (kit report passes it), else ``runs/interactive``."""
        return cls(run_dir if run_dir else runs_dir() / "interactive")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # status ----------------------------------------------------------------------------------------------------
    def begin(self, *, pid: int, notebooks: tuple[str, ...], resume: bool = False) -> RunStatus:
        """Start a run of ``notebooks`` here. A new run first removes what an earlier run left (notebooks, tables,
        records, its verdict, a failure marker), so the folder never shows another run's results as its own.
        ``resume`` continues this folder's run from a later stage instead: the earlier stages' results stay, and
        the notebooks to run again, the verdict and the failure marker go. Answers stay in the store either way."""
        done: tuple[str, ...] = ()
        if resume:
            earlier = self._recorded() if (self.path / "status.json").is_file() else None
            done = tuple(n for n in (earlier.done if earlier else ()) if n not in notebooks)
            stale = [self.path / n for n in notebooks] + [self._file(Doc.SUMMARY.value, None), self.path / FAILED_MARKER]
            for path in stale:
                path.unlink(missing_ok=True)
        else:
            for path in self.path.iterdir():
                if path.is_dir() and path.name == "tasks":
                    shutil.rmtree(path)
                elif path.is_file() and (path.suffix in (".json", ".ipynb", ".jsonl", ".yaml", ".log")
                                         or path.name == FAILED_MARKER):
                    path.unlink()
        return self._set(RunStatus(State.RUNNING, started=_now(), pid=pid, done=done))

    def running(self, notebook: str) -> RunStatus:
        return self._set(replace(self._recorded(), notebook=notebook))

    def finished(self, notebook: str) -> RunStatus:
        s = self._recorded()
        return self._set(replace(s, notebook=None, done=(*s.done, notebook)))

    def fail(self, notebook: str | None, error: str) -> RunStatus:
        """Record the failure in the status and in a marker file (``FAILED.txt``) beside the outputs."""
        atomic_write_text(self.path / FAILED_MARKER, f"This run failed at {notebook or 'its start'}:\n{error}\n")
        return self._set(replace(self._recorded(), state=State.FAILED, notebook=notebook, error=error,
                                 finished=_now()))

    def done(self, *, report: str | None = None) -> RunStatus:
        return self._set(replace(self._recorded(), state=State.DONE, notebook=None, finished=_now(), report=report))

    def status(self) -> RunStatus:
        """Where the run stands; a run recorded as running whose process (``pid``) is gone reads INTERRUPTED."""
        status = self._recorded()
        if status.state is State.RUNNING and not process_alive(status.pid):
            return replace(status, state=State.INTERRUPTED)
        return status

    def _recorded(self) -> RunStatus:
        """The status as ``status.json`` records it."""
        path = self.path / "status.json"
        if not path.is_file():
            raise self._missing("status", None)
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunStatus(**{**data, "state": State(data["state"]), "done": tuple(data["done"])})

    def _set(self, status: RunStatus) -> RunStatus:
        atomic_write_json(self.path / "status.json", {**asdict(status), "state": status.state.value})
        return status

    # file names: the only place they are built ------------------------------------------------------
    def _file(self, name: str, task: str | None) -> Path:
        return (self.path / "tasks" / task / f"{name}.json") if task else self.path / f"{name}.json"

    def _missing(self, name: str, task: str | None) -> ConfigError:
        what = f"'{name}'" + (f" for task {task}" if task else "")
        return ConfigError(f"{what} has not been computed in this run", where=str(self.path),
                           fix="run the notebooks in order (kit report does)")

    # tables ------------------------------------------------------------------------------------------
    def save_table(self, kind: Table, frame: pd.DataFrame, *, task: str | None = None) -> None:
        """Write a stage's table; one with rows must carry every column of its schema (``Table.columns``)."""
        self._check(kind, write=True)
        missing = [c.value for c in kind.columns if c not in frame.columns]
        if len(frame) and missing:
            raise KitError(f"the {kind.file} table lacks its columns {missing}", where=str(self.path),
                           fix="the stage that writes it must produce them (kit.pipeline.folder.Table declares them)")
        # "split" keeps the columns of an empty table
        atomic_write_text(self._file(kind.file, task),
                          frame.to_json(orient="split", index=False, default_handler=str))

    def table(self, kind: Table, *, task: str | None = None) -> pd.DataFrame:
        self._check(kind, write=False)
        path = self._file(kind.file, task)
        if not path.is_file():
            raise self._missing(kind.file, task)
        data = json.loads(path.read_text(encoding="utf-8"))
        return pd.DataFrame(data["data"], columns=data["columns"])

    def has(self, kind: Artefact, *, task: str | None = None) -> bool:
        self._check(kind, write=False)
        return self._file(kind.file if isinstance(kind, Table) else kind.value, task).is_file()

    # records -----------------------------------------------------------------------------------------
    def save_doc(self, kind: Doc, data: Any, *, task: str | None = None) -> None:
        self._check(kind, write=True)
        atomic_write_json(self._file(kind.value, task), data)

    def doc(self, kind: Doc, *, task: str | None = None, default: Any = None) -> Any:
        self._check(kind, write=False)
        path = self._file(kind.value, task)
        if not path.is_file():
            if default is not None:
                return default
            raise self._missing(kind.value, task)
        return json.loads(path.read_text(encoding="utf-8"))

    # the experiment ------------------------------------------------------------------------------------
    def save_experiment(self, experiment: Experiment) -> None:
        self.save_doc(Doc.EXPERIMENT, experiment.to_dict())

    def has_experiment(self) -> bool:
        return self.has(Doc.EXPERIMENT)

    def experiment(self) -> Experiment:
        return Experiment.from_dict(self.doc(Doc.EXPERIMENT))

    # what ran ------------------------------------------------------------------------------------------
    def save_runs(self, records: list[RunRecord]) -> None:
        self.save_doc(Doc.RUNS, [asdict(r) for r in records])

    def runs(self, *, task: str | None = None) -> list[RunRecord]:
        records = [RunRecord(**r) for r in self.doc(Doc.RUNS)]
        return [r for r in records if task is None or r.task == task]

    def tasks(self) -> list[str]:
        """The tasks this run answered, in the experiment's order."""
        ran = {r.task for r in self.runs()}
        return [t for t in self.experiment().tasks if t in ran]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
