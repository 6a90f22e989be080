"""The report pipeline: papermill runs the notebooks in order, nbconvert renders the last one to HTML.

Each notebook is executed into the run's folder (``runs/report-<stamp>/``) with the parameters it
declares in its ``parameters`` cell, taken from a parameter file and overrides. A failing notebook is
saved with its outputs before the error is raised; the error names the notebook and the cell — also when
the kernel itself died (SIGILL, SIGSEGV, the OOM killer's SIGKILL), with the signal and the likely fix.
Before the first notebook a llama.cpp probe runs; while notebooks run, their live progress goes to
``on_progress``.

>>> html = run_pipeline(experiment="notebooks/params/default.yaml")   # doctest: +SKIP
>>> html.name                                                           # doctest: +SKIP
'decision-report-20261123T120000.html'
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable

import yaml

from kit.errors import KitError, ReportError, SetupError
from kit.models.llama_build import setup_command
from kit.models.llama_probe import signal_name
from kit.paths import project_root, reports_dir, runs_dir
from kit.pipeline.folder import RunFolder
from kit.progress import PROGRESS_FILE, ProgressFollower

NOTEBOOKS: tuple[str, ...] = (
    "01_prepare.ipynb",
    "02_finetune.ipynb",
    "03_answers.ipynb",
    "04_quality.ipynb",
    "05_costs.ipynb",
    "06_report.ipynb",
)
REPORT_NOTEBOOK = NOTEBOOKS[-1]


def notebooks_dir() -> Path:
    """The pipeline's notebooks: the project's own ``notebooks/`` when it holds them, else the kit's — so a project
    folder with only its ``datasets/``, logs and experiment files runs ``kit report`` as it is."""
    own = project_root() / "notebooks"
    if (own / NOTEBOOKS[0]).is_file():
        return own
    return Path(__file__).resolve().parents[2] / "notebooks"


def default_experiment_file() -> Path:
    return notebooks_dir() / "params" / "default.yaml"


def declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def _check_every_key_is_read(params: dict[str, Any]) -> None:
    """Every parameter must be declared by one of the report's notebooks: papermill drops the others silently."""
    declared = set().union(*(declared_parameters(notebooks_dir() / name) for name in NOTEBOOKS))
    unread = sorted(set(params) - declared)
    if unread:
        raise ReportError(f"no notebook reads the parameters {unread}", where=str(notebooks_dir()),
                          fix="declare them in the parameters cell of notebooks/01_prepare.ipynb (papermill cannot "
                              "read a line whose annotation has '|' or whose comment has '=')")


def run_pipeline(*, experiment: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None, notebooks: tuple[str, ...] = NOTEBOOKS,
                 on_progress: Callable[[str], None] | None = None, kernel_name: str | None = None,
                 out_dir: str | Path | None = None, notebooks_folder: str | Path | None = None,
                 check_llama: bool = True) -> Path:
    """Check the experiment, execute the notebooks in order and render the report; return the HTML file's path.

    ``experiment`` is a YAML file (default ``notebooks/params/default.yaml``); ``overrides`` replace its
    top-level keys. The experiment is checked before any notebook starts, so a wrong option name, price or
    machine fails in a second with the file and the fix. ``notebooks_folder`` holds the notebooks (default
    ``notebooks/``). ``check_llama`` runs the llama.cpp probe first, so a build that cannot run here fails in
    seconds rather than after a fine-tune. While a notebook runs, ``on_progress`` also gets its live progress
    (items done, rate, ETA; a fine-tune's steps and loss). A notebook whose kernel dies ends the run with a
    ReportError naming the cell, the signal and the likely fix.
    """
    from kit.experiment import Experiment, read_experiment_file

    experiment_file = Path(experiment) if experiment else default_experiment_file()
    params = read_experiment_file(experiment_file, overrides=overrides)
    Experiment.from_mapping(params, source=str(experiment_file))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = Path(run_dir) if run_dir else runs_dir() / f"report-{stamp}"
    out = Path(out_dir or reports_dir()) / f"decision-report-{stamp}.html"
    check_writable(folder, what="the run folder", fix="choose another --run-dir, or make this one writable")
    if REPORT_NOTEBOOK in notebooks:
        check_writable(out.parent, what="the reports folder",
                       fix="make it writable (chattr -i, chmod u+w) or run from a folder where reports/ can be written")
    say = on_progress or (lambda _msg: None)
    source_dir = Path(notebooks_folder) if notebooks_folder else notebooks_dir()
    declared = {}
    for name in notebooks:
        source = source_dir / name
        if not source.is_file():
            raise ReportError("notebook not found", where=str(source), fix="restore it from the repository")
        declared[name] = declared_parameters(source)
    if notebooks_folder is None:
        _check_every_key_is_read(params)
    run = RunFolder(folder)
    # a run that starts after the first stage continues this folder's run (its experiment and earlier stages)
    resume = notebooks_folder is None and notebooks[0] != NOTEBOOKS[0] and run.has_experiment()
    run.begin(pid=os.getpid(), notebooks=notebooks, resume=resume)
    params = {**params, "run_dir": str(folder.resolve()), "experiment_file": str(experiment_file)}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    current: str | None = None
    progress_file = folder / "progress.jsonl"
    follower = ProgressFollower(progress_file, lambda line: say(f"    {line}")).start()
    try:
        if check_llama:
            _check_llama(say)
        for number, name in enumerate(notebooks, start=1):
            current = name
            run.running(name)
            start = time.perf_counter()
            say(f"[{number}/{len(notebooks)}] {name} …")
            _execute(source_dir / name, folder / name, {k: v for k, v in params.items() if k in declared[name]},
                     cwd=Path.cwd(), kernel_name=kernel_name, env={PROGRESS_FILE: str(progress_file.resolve())},
                     log=folder / f"{Path(name).stem}.kernel.log")
            follower.poll()  # this notebook's last progress lines before its "done"
            run.finished(name)
            say(f"[{number}/{len(notebooks)}] {name} done in {time.perf_counter() - start:.1f} s")
        current = None
        if REPORT_NOTEBOOK in notebooks:
            render_html(folder / REPORT_NOTEBOOK, out)
    except KitError as exc:
        run.fail(current, exc.problem)
        raise
    except BaseException as exc:  # Ctrl-C, or a bug: the folder still says it did not finish
        run.fail(current, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise
    finally:
        follower.stop()
    run.done(report=str(out) if REPORT_NOTEBOOK in notebooks else None)
    return out if REPORT_NOTEBOOK in notebooks else folder


def check_writable(folder: Path, *, what: str, fix: str) -> None:
    """Create ``folder`` if needed and write a file in it, so a folder that cannot be written fails before any
    notebook runs, not after all of them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"{what} cannot be written: {exc.strerror or exc}", where=str(folder), fix=fix) from None


def _check_llama(say: Callable[[str], None]) -> None:
    """The llama.cpp probe (one tiny inference in a child process) before any notebook runs."""
    from kit.models.doctor import PROBE_MODEL, llama_probe

    say("[check] llama.cpp …")
    result = llama_probe()
    if not result.ok:
        raise SetupError(f"llama.cpp cannot run on this machine: {result.problem}",
                         where=f"the llama.cpp probe ({PROBE_MODEL} in a child process)", fix=result.fix)
    say(f"[check] llama.cpp answered in {result.seconds:.1f} s")


def _execute(source: Path, target: Path, parameters: dict[str, Any], *, cwd: Path, kernel_name: str | None,
             env: dict[str, str], log: Path) -> None:
    """Run one notebook with papermill into ``target``; a failing cell or a dead kernel becomes a ReportError."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    with _KernelWatch(env, log) as watch:
        try:
            papermill.execute_notebook(
                str(source), str(target), parameters=parameters, cwd=str(cwd), progress_bar=False,
                kernel_name=kernel_name, kernel_manager_class=watch.manager_class(),
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not the kernel's TCP transport notice
            )
        except PapermillExecutionError as exc:
            raise ReportError(
                f"notebook {target.name} failed in cell {exc.cell_index + 1} ({exc.ename}: {exc.evalue})",
                where=str(target),
                fix="open the saved notebook (it keeps the outputs up to the failure) and correct the cause",
            ) from None
        except DeadKernelError:
            raise kernel_death_error(target, watch.returncode(), log) from None
        except RuntimeError as exc:  # jupyter_client: "Kernel died before replying to kernel_info" at start-up
            if "died" not in str(exc):
                raise
            raise kernel_death_error(target, watch.returncode(), log) from None


class _KernelWatch:
    """Starts each notebook's kernel with ``env`` added and its stdout/stderr in ``log``, and keeps its process, so
    that a kernel that dies can be told apart — SIGILL, SIGSEGV, SIGKILL — by its exit status.

    papermill hands ``kernel_manager_class`` to nbclient's NotebookClient, which creates the kernel manager from
    it; jupyter_client's LocalProvisioner keeps the kernel's ``subprocess.Popen`` as ``provisioner.process``
    (and drops it at cleanup, so the watch keeps its own reference).
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log_path = log
        self.log_file: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _KernelWatch:
        self.log_file = self.log_path.open("ab")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.log_file is not None:
            self.log_file.close()
            if self.log_path.stat().st_size == 0:  # keep only a log with something in it
                self.log_path.unlink()

    def manager_class(self) -> type:
        from jupyter_client.manager import AsyncKernelManager

        watch = self

        class WatchedKernelManager(AsyncKernelManager):  # type: ignore[misc]
            async def start_kernel(self, **kw: Any) -> None:
                kw["env"] = {**os.environ, **kw.get("env", {}), **watch.env}
                kw["stdout"] = kw["stderr"] = watch.log_file
                await super().start_kernel(**kw)
                watch.process = getattr(self.provisioner, "process", None)

        return WatchedKernelManager

    def returncode(self) -> int | None:
        """The kernel's exit status (negative: killed by that signal); None while it runs or when unknown."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


SIGILL_FIX = ("code in that cell executed an instruction this CPU or its OS does not run — most often llama.cpp built "
              "for another machine or with AMX: run `kit doctor`, and rebuild llama.cpp with "
              + setup_command("portable"))
OOM_FIX = ("the kernel was killed, most often by the out-of-memory killer (`dmesg | grep -i 'killed process'` shows "
           "it): give it more memory, or ask for less — a smaller model or n_ctx, fewer items, fewer fine-tuning steps")
NATIVE_CRASH_FIX = ("a native library crashed in that cell (llama.cpp or torch): run `kit doctor`; if its llama.cpp "
                    "check fails, rebuild llama.cpp with " + setup_command("portable"))


def kernel_death_error(saved: Path, returncode: int | None, log: Path | None = None) -> ReportError:
    """The error for a notebook whose kernel died: the saved notebook, the cell it was running, the signal's name
    and the likely fix.

    >>> str(kernel_death_error(Path("runs/r/03_run_arms.ipynb"), -4)).split(". Fix")[0]
    'runs/r/03_run_arms.ipynb: notebook 03_run_arms.ipynb: its kernel died with SIGILL (Illegal instruction)'
    """
    name = signal_name(returncode)
    if name:
        how = f"with {name} ({signal.strsignal(signal.Signals[name]) if name.startswith('SIG') else name})"
    elif returncode is not None:
        how = f"with exit status {returncode}"
    else:
        how = "(its exit status is unknown)"
    cell = _running_cell(saved)
    where_cell = f" in cell {cell[0]} (`{cell[1]}`)" if cell else ""
    if name == "SIGILL":
        fix = SIGILL_FIX
    elif name == "SIGKILL":
        fix = OOM_FIX
    elif name:
        fix = NATIVE_CRASH_FIX
    else:
        fix = "run `kit doctor` to check llama.cpp and the machine"
    if log is not None and log.is_file() and log.stat().st_size:
        fix += f"; the kernel's own output is in {log}"
    return ReportError(f"notebook {saved.name}: its kernel died {how}{where_cell}", where=str(saved),
                       fix=fix + "; the saved notebook keeps the outputs up to that cell")


def _running_cell(saved: Path) -> tuple[int, str] | None:
    """The cell a dead kernel was running: the last one papermill started (1-based, as nbclient counts them
    in its errors), and its first line of code."""
    try:
        cells = json.loads(saved.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    started = [i for i, cell in enumerate(cells)
               if (cell.get("metadata", {}).get("papermill") or {}).get("start_time")]
    if not started:
        return None
    source = cells[started[-1]].get("source", "")
    lines = [line.strip() for line in ("".join(source) if isinstance(source, list) else source).splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    return started[-1] + 1, first[:80]


def render_html(notebook: Path, out: Path) -> Path:
    """One self-contained HTML file: code hidden, images embedded, no scripts, nothing from the network."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_strip_scripts(body), encoding="utf-8")
    return out


def _strip_scripts(html: str) -> str:
    """Drop every <script> the template adds (loaders for widgets, MathJax, Mermaid): the report needs
    none, and a page without scripts cannot run one. Model output is escaped text, so it is untouched."""
    import re

    return re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.DOTALL | re.IGNORECASE)
