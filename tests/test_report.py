"""The report pipeline end to end on a small slice: real papermill, nbconvert, llama.cpp, the stand-in
server, and the rendered HTML opened in headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import nbformat
import pytest

from kit.errors import ReportError
from kit.report.render import NOTEBOOKS, run_pipeline

from conftest import ROOT

PLANTED = '<script>document.body.insertAdjacentHTML("beforeend", "<div id=pwned>ran</div>")</script>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOOPS_AND_DEFINITIONS = {"FunctionDef", "AsyncFunctionDef", "ClassDef", "Lambda", "For", "While", "ListComp",
                         "DictComp", "SetComp", "GeneratorExp"}
SLICE = {"limit": {"snips-intents": 6, "hhs-breach-triage": 2}, "finetune": False, "monthly_volume": 50000}


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Debian's chromium is needed for the report test: `make test` installs it (apt-get install chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    params = {**SLICE, "store": str(tmp / "kit.sqlite")}
    first = run_pipeline(overrides=params, run_dir=tmp / "run", out_dir=tmp / "reports")
    # a model answered with a script: plant it in the store as the local model's output, then run the
    # arms again (everything is served from the store, the planted answer too) and render again
    with sqlite3.connect(tmp / "kit.sqlite") as db:
        item = db.execute("SELECT item_id FROM responses WHERE task='snips-intents' AND arm LIKE 'llama_cpp:%'"
                          " ORDER BY item_id LIMIT 1").fetchone()[0]
        db.execute("UPDATE responses SET output=? WHERE task='snips-intents' AND arm LIKE 'llama_cpp:%'"
                   " AND item_id=?", (PLANTED, item))
    html = run_pipeline(overrides=params, run_dir=tmp / "run", out_dir=tmp / "reports",
                        notebooks=NOTEBOOKS[2:])
    return {"tmp": tmp, "first": first, "html": html, "run": tmp / "run"}


def test_every_notebook_is_saved_executed_and_report_is_one_file(report):
    for name in NOTEBOOKS:
        nb = nbformat.read(report["run"] / name, as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
    html = report["html"].read_text(encoding="utf-8")
    assert report["html"].parent == report["tmp"] / "reports"
    assert html.count("data:image/png;base64,") >= 5, "plots are embedded"
    assert "<script" not in html.lower(), "the report runs no script"
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing is fetched from the network"
    assert "def " not in html or "input_area" not in html  # code cells hidden


def test_report_in_headless_chromium(report):
    tmp, html = report["tmp"], report["html"]
    shot = tmp / "report.png"
    run = chromium("--window-size=1280,5000", f"--screenshot={shot}", html.as_uri(), tmp=tmp)
    assert shot.is_file() and shot.stat().st_size > 50_000, run.stderr[-2000:]
    dom = chromium("--dump-dom", "--virtual-time-budget=3000", html.as_uri(), tmp=tmp).stdout
    assert "Decision report" in dom
    decisions = [json.loads(p.read_text()) for p in sorted(report["run"].glob("decision_*.json"))]
    assert len(decisions) == 2
    for d in decisions:
        assert d["recommended"] in dom
    assert "Key numbers" in dom and "Reproducibility manifest" in dom and "stand-in" in dom
    assert dom.count("<img") >= 5
    # the planted script is shown as text and never ran
    assert "&lt;script&gt;document.body.insertAdjacentHTML" in dom
    assert 'id="pwned"' not in dom and "<div id=pwned>" not in dom


def test_manifest_records_models_runs_and_parameters(report):
    html = report["html"].read_text(encoding="utf-8")
    models = json.loads((report["run"] / "models.json").read_text())
    for m in models:
        assert m["sha256"] in html
    runs = json.loads((report["run"] / "runs.json").read_text())
    assert all(r["run_id"] in html for r in runs)
    assert "parameter monthly_volume" in html and "git commit" in html


def test_rerun_is_served_from_the_store(report):
    runs = json.loads((report["run"] / "runs.json").read_text())
    assert all(r["new_calls"] == 0 and r["from_store"] == r["items"] for r in runs), runs


def test_failing_notebook_is_saved_and_named(tmp_path):
    with pytest.raises(ReportError) as err:
        run_pipeline(overrides={**SLICE, "tasks": ["no-such-task"], "store": str(tmp_path / "s.sqlite")},
                     run_dir=tmp_path / "run", out_dir=tmp_path, notebooks=NOTEBOOKS[:3])
    text = str(err.value)
    assert "03_run_arms.ipynb" in text and "cell" in text and "no task named 'no-such-task'" in text
    saved = nbformat.read(tmp_path / "run" / "03_run_arms.ipynb", as_version=4)
    errors = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "TaskError"


def test_notebooks_are_committed_clean_and_thin():
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        for cell in code:
            assert not cell.get("outputs") and cell.get("execution_count") is None, name
            nodes = {type(n).__name__ for n in ast.walk(ast.parse(cell.source))}
            assert not nodes & LOOPS_AND_DEFINITIONS, (name, nodes & LOOPS_AND_DEFINITIONS)
            assert len(cell.source.splitlines()) <= 12, name


def test_notebook_defaults_match_the_default_parameter_file():
    """JupyterLab runs the notebooks with their own defaults: they must be the report's defaults."""
    import papermill
    import yaml

    defaults = yaml.safe_load((ROOT / "notebooks" / "params" / "default.yaml").read_text())
    for name in NOTEBOOKS:
        for param, info in papermill.inspect_notebook(str(ROOT / "notebooks" / name)).items():
            if param == "run_dir":
                continue
            value = ast.literal_eval(info["default"])
            expected = defaults[param]
            assert value == expected or (value == "" and expected in ("", None)), (name, param, value, expected)
            assert info["help"], f"{name}: parameter {param} has no comment"
