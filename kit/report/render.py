"""The report pipeline: papermill runs the notebooks in order, nbconvert renders the last one to HTML.

Each notebook is executed into the run's folder (``runs/report-<stamp>/``) with the parameters it
declares in its ``parameters`` cell, taken from a parameter file and overrides. A failing notebook is
saved with its outputs before the error is raised; the error names the notebook and the cell.

>>> html = run_pipeline(experiment="notebooks/params/default.yaml")   # doctest: +SKIP
>>> html.name                                                           # doctest: +SKIP
'decision-report-20261123T120000.html'
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from kit.errors import ReportError
from kit.paths import project_root, reports_dir, runs_dir

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
    return project_root() / "notebooks"


def default_experiment_file() -> Path:
    return notebooks_dir() / "params" / "default.yaml"


def declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def run_pipeline(*, experiment: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None, notebooks: tuple[str, ...] = NOTEBOOKS,
                 on_progress: Callable[[str], None] | None = None, kernel_name: str | None = None,
                 out_dir: str | Path | None = None) -> Path:
    """Check the experiment, execute the notebooks in order and render the report; return the HTML file's path.

    ``experiment`` is a YAML file (default ``notebooks/params/default.yaml``); ``overrides`` replace its
    top-level keys. The experiment is checked before any notebook starts, so a wrong option name, price or
    machine fails in a second with the file and the fix.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from kit.report.experiment import Experiment, read_experiment_file

    source = Path(experiment) if experiment else default_experiment_file()
    params = read_experiment_file(source, overrides=overrides)
    Experiment.from_mapping(params, source=str(source))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = Path(run_dir) if run_dir else runs_dir() / f"report-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    params = {**params, "run_dir": str(folder.resolve()), "experiment_file": str(source)}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    say = on_progress or (lambda _msg: None)
    declared = {}
    for name in dict.fromkeys((*NOTEBOOKS, *notebooks)):
        path = notebooks_dir() / name
        if not path.is_file():
            raise ReportError("notebook not found", where=str(path), fix="restore it from the repository")
        declared[name] = declared_parameters(path)
    unread = sorted(set(params) - set().union(*declared.values()))
    if unread:  # papermill would drop them without a word
        raise ReportError(f"no notebook reads the parameters {unread}", where=str(notebooks_dir()),
                          fix="declare them in the parameters cell of notebooks/01_prepare.ipynb (papermill cannot "
                              "read a line whose annotation has '|' or whose comment has '=')")
    for number, name in enumerate(notebooks, start=1):
        path = notebooks_dir() / name
        wanted = declared[name]
        start = time.perf_counter()
        say(f"[{number}/{len(notebooks)}] {name} …")
        try:
            papermill.execute_notebook(
                str(path), str(folder / name), parameters={k: v for k, v in params.items() if k in wanted},
                cwd=str(notebooks_dir()), progress_bar=False, kernel_name=kernel_name,
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not the kernel's TCP transport notice
            )
        except PapermillExecutionError as exc:
            raise ReportError(
                f"notebook {name} failed in cell {exc.cell_index + 1} ({exc.ename}: {exc.evalue})",
                where=str(folder / name),
                fix="open the saved notebook (it keeps the outputs up to the failure) and correct the cause",
            ) from None
        say(f"[{number}/{len(notebooks)}] {name} done in {time.perf_counter() - start:.1f} s")
    if REPORT_NOTEBOOK not in notebooks:
        return folder
    out = Path(out_dir or reports_dir()) / f"decision-report-{stamp}.html"
    render_html(folder / REPORT_NOTEBOOK, out)
    return out


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
