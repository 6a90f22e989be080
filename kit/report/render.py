"""The report pipeline: papermill runs the notebooks in order, nbconvert renders the last one to HTML.

Each notebook is executed into the run's folder (``runs/report-<stamp>/``) with the parameters it
declares in its ``parameters`` cell, taken from a parameter file and overrides. A failing notebook is
saved with its outputs before the error is raised; the error names the notebook and the cell.

>>> html = run_pipeline(params_file="notebooks/params/default.yaml")   # doctest: +SKIP
>>> html.name                                                           # doctest: +SKIP
'decision-report-20261123T120000.html'
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from kit.errors import ConfigError, ReportError
from kit.paths import project_root, reports_dir, runs_dir

NOTEBOOKS: tuple[str, ...] = (
    "01_models.ipynb",
    "02_finetune.ipynb",
    "03_run_arms.ipynb",
    "04_compare.ipynb",
    "05_economics.ipynb",
    "06_report.ipynb",
)
REPORT_NOTEBOOK = NOTEBOOKS[-1]


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def default_params_file() -> Path:
    return notebooks_dir() / "params" / "default.yaml"


def load_params(params_file: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters from a YAML file (default: ``notebooks/params/default.yaml``) with overrides on top."""
    path = Path(params_file) if params_file else default_params_file()
    if not path.is_file():
        raise ConfigError("parameter file not found", where=str(path),
                          fix="pass --params with an existing YAML file, e.g. notebooks/params/default.yaml")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", where=str(path), fix="correct the YAML syntax") from None
    if not isinstance(params, dict):
        raise ConfigError("a parameter file must be a YAML mapping", where=str(path), fix="write KEY: VALUE lines")
    return {**params, **(overrides or {})}


def declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def run_pipeline(*, params_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None, notebooks: tuple[str, ...] = NOTEBOOKS,
                 on_progress: Callable[[str], None] | None = None, kernel_name: str | None = None,
                 out_dir: str | Path | None = None) -> Path:
    """Execute the notebooks in order and render the report; return the HTML file's path."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = load_params(params_file, overrides=overrides)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = Path(run_dir) if run_dir else runs_dir() / f"report-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    params = {**params, "run_dir": str(folder.resolve())}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True), encoding="utf-8")
    say = on_progress or (lambda _msg: None)
    for number, name in enumerate(notebooks, start=1):
        source = notebooks_dir() / name
        if not source.is_file():
            raise ReportError("notebook not found", where=str(source), fix="restore it from the repository")
        wanted = declared_parameters(source)
        start = time.perf_counter()
        say(f"[{number}/{len(notebooks)}] {name} …")
        try:
            papermill.execute_notebook(
                str(source), str(folder / name), parameters={k: v for k, v in params.items() if k in wanted},
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
