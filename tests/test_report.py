"""The report pipeline end to end on a 4-option experiment and a small slice: real papermill, nbconvert,
llama.cpp (one local model under two names, one of them hostile), the stand-in server, a replay file, and the
rendered HTML opened in headless Chromium (Debian's `chromium`).

One report run (and its re-run from the store) is shared by every test that reads it: it is the suite's most
expensive fixture, so it asks for no more than the checks need."""

from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from conftest import ROOT
from kit.errors import ReportError
from kit.report.render import NOTEBOOKS, run_pipeline
from kit.pipeline.folder import Doc, RunFolder, Table

PLANTED = '<script>document.body.insertAdjacentHTML("beforeend", "<div id=pwned>ran</div>")</script>'
XSS_NAME = "<img src=x onerror=this.id=7>"  # an option name that would run a handler if it reached the page raw
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOOPS_AND_DEFINITIONS = {"FunctionDef", "AsyncFunctionDef", "ClassDef", "Lambda", "For", "While", "ListComp",
                         "DictComp", "SetComp", "GeneratorExp"}


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Debian's chromium is needed for the report test: `make test` installs it (apt-get install chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def slice_experiment(tmp: Path) -> dict:
    """Four options: the stand-in as reference, SmolLM2 under two names (one hostile), recorded outputs.

    The hostile-named option is SmolLM2 again (another n_ctx, the same identity), so its answers and its load
    sweep come from the store and cost no second model's answers: what it checks is how its name is shown."""
    logs = tmp / "vendor_logs.jsonl"
    labels = ["get_weather", "play_music", "book_restaurant"]
    from kit.tasks import load_task

    test = load_task("snips-intents").test[:6]
    logs.write_text("".join(json.dumps({"item_id": item.id, "output": labels[i % 3], "latency_s": 0.9,
                                        "prompt_tokens": 400, "completion_tokens": 3}) + "\n"
                            for i, item in enumerate(test)))
    return {
        "tasks": {"snips-intents": 6, "hhs-breach-triage": 2},
        "options": [
            {"name": "API", "arm": "auto", "price": {"model": "gpt-4o-mini"}},
            {"name": "SmolLM2", "arm": "llama_cpp:smollm2-135m-instruct", "machine": "cpu-box"},
            {"name": XSS_NAME, "arm": "llama_cpp:smollm2-135m-instruct", "machine": "cpu-box",
             "options": {"n_ctx": 2048}},
            {"name": "Vendor logs", "arm": f"replay:{logs}", "runs": "third-party",
             "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
        ],
        "store": str(tmp / "kit.sqlite"), "monthly_volume": 50000,
        "sweep": {"tasks": ["snips-intents"], "levels": [1, 2], "items": 4},  # the throughput section, kept short
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    params = slice_experiment(tmp)
    first = run_pipeline(overrides=params, run_dir=tmp / "run", out_dir=tmp / "reports")
    # a model answered with a script: plant it in the store as SmolLM2's output on every item (so the examples
    # show it whichever items they pick), then run the stages again (every answer is served from the store,
    # the planted ones too) and render again
    with sqlite3.connect(tmp / "kit.sqlite") as db:
        db.execute("UPDATE responses SET output=? WHERE task='snips-intents' AND arm LIKE 'llama_cpp:smol%'",
                   (PLANTED,))
    html = run_pipeline(overrides=params, run_dir=tmp / "run", out_dir=tmp / "reports", notebooks=NOTEBOOKS[2:])
    return {"tmp": tmp, "first": first, "html": html, "run": tmp / "run"}


def test_every_notebook_is_saved_executed_and_report_is_one_file(report):
    for name in NOTEBOOKS:
        nb = nbformat.read(report["run"] / name, as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
    html = report["html"].read_text(encoding="utf-8")
    assert report["html"].parent == report["tmp"] / "reports"
    assert html.count("data:image/png;base64,") >= 3, "plots are embedded"
    assert "<script" not in html.lower(), "the report runs no script"
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing is fetched from the network"
    assert "input_area" not in html  # code cells hidden


def test_four_options_each_named_in_every_table(report):
    folder = RunFolder(report["run"])
    runs = folder.runs()
    assert {r.option for r in runs} == {"API", "SmolLM2", XSS_NAME, "Vendor logs"}
    summary = folder.doc(Doc.SUMMARY)
    assert set(summary) == {"snips-intents", "hhs-breach-triage"}
    ranking = folder.table(Table.RANKING, task="snips-intents")
    assert set(ranking["option"]) >= {"API", "SmolLM2", XSS_NAME, "Vendor logs"}
    # the replay file answers only snips items: the extraction task counts its missing items, never guesses
    hhs = {r.option: r for r in folder.runs(task="hhs-breach-triage")}
    assert hhs["Vendor logs"].errors == 2


def test_report_in_headless_chromium(report):
    tmp, html = report["tmp"], report["html"]
    shot = tmp / "report.png"
    run = chromium("--window-size=1280,5000", f"--screenshot={shot}", html.as_uri(), tmp=tmp)
    assert shot.is_file() and shot.stat().st_size > 50_000, run.stderr[-2000:]
    dom = chromium("--dump-dom", "--virtual-time-budget=3000", html.as_uri(), tmp=tmp).stdout
    assert "Decision report" in dom and "Every option on every task" in dom and "Reproducibility manifest" in dom
    assert "stand-in" in dom and dom.count("<img") >= 3
    for task, d in RunFolder(report["run"]).doc(Doc.SUMMARY).items():
        assert (d["recommended"] or "no option recommended") in dom.replace("&amp;", "&")
    # the planted script is shown as text and never ran
    assert "&lt;script&gt;document.body.insertAdjacentHTML" in dom
    assert 'id="pwned"' not in dom and "<div id=pwned>" not in dom
    # the hostile option name is text everywhere: no image element with its handler, and the handler never ran
    assert "&lt;img src=x onerror=this.id=7&gt;" in dom
    assert 'onerror="this.id=7"' not in dom and 'id="7"' not in dom


def test_manifest_records_models_runs_and_parameters(report):
    html = report["html"].read_text(encoding="utf-8")
    folder = RunFolder(report["run"])
    for m in folder.table(Table.MODELS).to_dict("records"):
        assert m["sha256"] in html
    assert all(r.run_id in html for r in folder.runs())
    assert "parameter monthly_volume" in html and "git commit" in html


def test_rerun_is_served_from_the_store(report):
    runs = RunFolder(report["run"]).runs()
    # every answer comes from the store; only the items the replay file lacks are asked again (an error is
    # never cached), and they cost no model call
    assert all(r.new_calls == r.errors and r.from_store == r.items - r.errors for r in runs), runs
    assert sum(r.new_calls for r in runs if r.option != "Vendor logs") == 0


def test_failing_notebook_is_saved_and_named(tmp_path):
    """A task that does not exist fails in the first notebook, which is saved with the error."""
    params = {"tasks": {"no-such-task": 3}, "sweep": None, "store": str(tmp_path / "s.sqlite")}
    with pytest.raises(ReportError) as err:
        run_pipeline(overrides=params, run_dir=tmp_path / "run", out_dir=tmp_path, notebooks=NOTEBOOKS[:1])
    text = str(err.value)
    assert "01_prepare.ipynb" in text and "cell" in text and "no task named 'no-such-task'" in text
    saved = nbformat.read(tmp_path / "run" / "01_prepare.ipynb", as_version=4)
    errors = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "TaskError"


def test_a_bad_experiment_fails_before_any_notebook(tmp_path):
    with pytest.raises(Exception) as err:
        run_pipeline(overrides={"reference": "Nobody"}, run_dir=tmp_path / "run", out_dir=tmp_path)
    assert "the reference 'Nobody' is not one of the options" in str(err.value)
    assert not (tmp_path / "run" / "01_prepare.ipynb").exists()


def test_notebooks_are_committed_clean_and_thin():
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        for cell in code:
            assert not cell.get("outputs") and cell.get("execution_count") is None, name
            nodes = {type(n).__name__ for n in ast.walk(ast.parse(cell.source))}
            assert not nodes & LOOPS_AND_DEFINITIONS, (name, nodes & LOOPS_AND_DEFINITIONS)
            if "parameters" not in cell.metadata.get("tags", []):
                assert len(cell.source.splitlines()) <= 12, name


def test_notebook_defaults_match_the_default_experiment():
    """JupyterLab runs the notebooks with their own defaults: they must be the default experiment, and the first
    notebook must declare every key of it (papermill drops an undeclared parameter without a word)."""
    defaults = yaml.safe_load((ROOT / "notebooks" / "params" / "default.yaml").read_text())
    declared = papermill.inspect_notebook(str(ROOT / "notebooks" / NOTEBOOKS[0]))
    assert set(defaults) <= set(declared)
    for name in NOTEBOOKS:
        for param, info in papermill.inspect_notebook(str(ROOT / "notebooks" / name)).items():
            if param in ("run_dir", "experiment_file"):
                continue
            assert ast.literal_eval(info["default"]) == defaults[param], (name, param)
            assert info["help"], f"{name}: parameter {param} has no comment"


def test_free_text_slice_is_judged_scored_and_rendered(tmp_path):
    """The judged free-text experiment on two items: the stand-in answers and judges (rubric and both orders),
    chrF scores against the references, the comparison is on scores, and the report renders the judge."""
    html = run_pipeline(experiment=ROOT / "notebooks" / "params" / "freetext.yaml",
                        overrides={"tasks": {"aclsum-outcomes": 2}, "store": str(tmp_path / "kit.sqlite"),
                                   "max_tokens": 64},  # short answers: the judging is what this test reads
                        run_dir=tmp_path / "run", out_dir=tmp_path)
    folder = RunFolder(tmp_path / "run")
    verdicts = folder.table(Table.VERDICTS, task="aclsum-outcomes")
    assert set(verdicts["mode"]) == {"rubric", "pairwise"} and len(verdicts) == 2 * 2 + 2
    compare = folder.table(Table.COMPARE, task="aclsum-outcomes")
    assert set(compare["kind"]) == {"paired scores"} and compare["metric"].iloc[0].startswith("chrF")
    scores = folder.table(Table.SCORES, task="aclsum-outcomes")
    assert scores["part_chrf"].between(0, 1).all()
    text = html.read_text(encoding="utf-8")
    assert "Free text: the judge" in text and "orders agree" in text
