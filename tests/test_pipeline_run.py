"""The report pipeline's notebook loop with notebooks of the test's own: a kernel that dies, and live progress.

Real kernels (papermill → nbclient → jupyter_client), real signals, a real progress file written by
``kit.progress.Progress`` inside the kernel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import ROOT
from kit.errors import ReportError
from kit.progress import PROGRESS_FILE, Progress, ProgressFollower, progress_line
from kit.report.render import run_pipeline


def write_notebook(folder: Path, name: str, *cells: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_code_cell(code) for code in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / name)
    return folder / name


def test_kit_report_names_notebook_cell_and_sigill_when_the_kernel_dies(tmp_path):
    notebooks = tmp_path / "notebooks"
    write_notebook(notebooks, "boom.ipynb", "x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGILL)",
                   "y = 2")
    done = subprocess.run([sys.executable, "-m", "kit.cli", "report", "--notebooks", str(notebooks),
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    saved = tmp_path / "run" / "boom.ipynb"
    assert error.startswith(f"error: {saved}: notebook boom.ipynb: its kernel died with SIGILL")
    assert "in cell 2 (`import os, signal`)" in error and "kit doctor" in error and "LLAMA=portable" in error
    assert "Traceback" not in done.stderr and "DeadKernelError" not in done.stderr
    assert "[check] llama.cpp answered in" in done.stderr  # the probe ran before the notebook
    cells = nbformat.read(saved, as_version=4).cells
    assert cells[0].execution_count == 1 and cells[2].execution_count is None  # saved up to the death


def test_a_kernel_killed_like_the_oom_killer_does_names_memory(tmp_path):
    write_notebook(tmp_path / "nb", "oom.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(ReportError) as err:
        run_pipeline(notebooks=("oom.ipynb",), notebooks_folder=tmp_path / "nb", run_dir=tmp_path / "run",
                     check_llama=False)
    text = str(err.value)
    assert "its kernel died with SIGKILL (Killed) in cell 1" in text and "out-of-memory killer" in text
    assert err.value.where == str(tmp_path / "run" / "oom.ipynb")


def test_live_progress_of_a_notebook_reaches_the_terminal(tmp_path):
    write_notebook(tmp_path / "nb", "work.ipynb", """
import time
from kit.progress import Progress
with Progress("SmolLM2 · mini", total=12, show=False) as bar:
    for _ in range(12):
        time.sleep(0.25)
        bar.advance()
with Progress("LoRA smollm2 · mini", total=3, stage="finetune", unit="step", show=False) as bar:
    for step in range(3):
        time.sleep(0.2)
        bar.advance(detail=f"loss {1 / (step + 1):.4f}")
""")
    lines: list[str] = []
    run_pipeline(notebooks=("work.ipynb",), notebooks_folder=tmp_path / "nb", run_dir=tmp_path / "run",
                 check_llama=False, on_progress=lines.append)
    assert lines[0] == "[1/1] work.ipynb …" and lines[-1].startswith("[1/1] work.ipynb done in")
    items = [line for line in lines if "SmolLM2 · mini" in line]
    assert re.fullmatch(r"    SmolLM2 · mini: 12/12 items · done in \d+ s \(\d+\.\d\d items/s\)", items[-1])
    running = items[:-1]
    # a line caught between the last item and the bar's close reads 12/12 with nothing left to estimate
    assert running and all(re.search(r": \d+/12 items · \d+\.\d\d items/s · ETA \d+ s$", line) or
                           re.search(r": 12/12 items · \d+\.\d\d items/s$", line) for line in running)
    assert len(running) <= 5  # 3 s of work: one line a second at most (plus the first)
    steps = [line for line in lines if "LoRA smollm2 · mini" in line]
    assert steps[-1].startswith("    LoRA smollm2 · mini: 3/3 steps · loss 0.3333 · done in")
    assert os.environ.get(PROGRESS_FILE) is None  # set for the kernel only
    assert (tmp_path / "run" / "progress.jsonl").is_file()


def test_progress_follower_turns_a_real_progress_file_into_lines(tmp_path, monkeypatch):
    sink = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE, str(sink))
    with Progress("arm · task", total=50, show=False) as bar:
        for _ in range(50):
            bar.advance()
    with Progress("LoRA base · task", total=2, stage="finetune", unit="step", show=False) as bar:
        bar.advance(detail="loss 2.0000")
    events = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [e["event"] for e in events].count("advance") == 51 and events[-1]["event"] == "end"

    lines: list[str] = []
    follower = ProgressFollower(sink, lines.append, min_interval=60)
    follower.poll()
    assert len(lines) == 4  # per piece: its first update, then (all within the minute) only its final line
    assert lines[0].startswith("arm · task: 1/50 items · ") and "ETA" in lines[0]
    assert lines[1].startswith("arm · task: 50/50 items · done in 0 s (")
    assert lines[2].startswith("LoRA base · task: 1/2 steps · loss 2.0000 · ")
    assert lines[3].startswith("LoRA base · task: 1/2 steps · loss 2.0000 · stopped after 0 s")
    assert lines == [progress_line(events[i]) for i in (1, 51, 53, 54)]

    with sink.open("a") as out:  # a line still being written is read once it is complete
        out.write(json.dumps({**events[1], "done": 7})[:20])
    follower.poll()
    assert len(lines) == 4
    with sink.open("a") as out:
        out.write(json.dumps({**events[1], "done": 7})[20:] + "\n")
    follower.poll()
    assert len(lines) == 4  # within a minute of that piece's last line: held back
    ProgressFollower(sink, lines.append, min_interval=0).poll()
    assert lines[-1].startswith("arm · task: 7/50 items")


def test_a_failed_run_in_a_reused_folder_shows_none_of_the_earlier_runs_results(tmp_path):
    """A run folder says where its run stands, and a failed run never sits beside an earlier run's verdict."""
    from kit.pipeline.folder import FAILED_MARKER, RunFolder, State

    run = tmp_path / "run"
    verdict = run / "summary.json"
    write_notebook(tmp_path / "nb", "a.ipynb", "x = 1")
    write_notebook(tmp_path / "nb", "b.ipynb", f"open({str(verdict)!r}, 'w').write('{{\"verdict\": \"Choose X\"}}')")
    write_notebook(tmp_path / "nb", "c.ipynb", "raise ValueError('the second run breaks here')")
    run_pipeline(notebooks=("a.ipynb", "b.ipynb"), notebooks_folder=tmp_path / "nb", run_dir=run, check_llama=False)
    first = RunFolder(run).status()
    assert first.state is State.DONE and first.done == ("a.ipynb", "b.ipynb") and verdict.is_file()

    with pytest.raises(ReportError, match="c.ipynb failed in cell 1"):
        run_pipeline(notebooks=("a.ipynb", "c.ipynb"), notebooks_folder=tmp_path / "nb", run_dir=run,
                     check_llama=False)
    second = RunFolder(run).status()
    assert second.state is State.FAILED and second.notebook == "c.ipynb" and second.done == ("a.ipynb",)
    assert "ValueError" in second.error and second.words().startswith("failed at c.ipynb")
    assert "failed at c.ipynb" in (run / FAILED_MARKER).read_text()
    assert not verdict.exists() and not (run / "b.ipynb").exists()  # the earlier run's results are gone
    assert (run / "a.ipynb").is_file() and (run / "c.ipynb").is_file()


def test_a_run_whose_process_was_killed_reads_interrupted_not_running(tmp_path):
    """Issue 26, case 7: status.json records the pid of the run; after ``kill -9`` a reader whose pid is gone
    says "interrupted", never "running" forever."""
    import signal

    from kit.pipeline.folder import RunFolder, State

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = RunFolder(tmp_path / "run")
    run.begin(pid=child.pid, notebooks=("a.ipynb",))
    run.running("a.ipynb")
    assert run.status().state is State.RUNNING and json.loads((tmp_path / "run" / "status.json").read_text())[
        "pid"] == child.pid
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    status = run.status()
    assert status.state is State.INTERRUPTED and status.notebook == "a.ipynb"
    assert status.words().startswith(f"interrupted at a.ipynb: process {child.pid} is gone")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "running"  # read, not rewritten


def test_a_reports_folder_that_cannot_be_written_fails_before_any_notebook(tmp_path):
    write_notebook(tmp_path / "nb", "06_report.ipynb", "raise SystemExit('no notebook may run')")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(ReportError, match="the reports folder cannot be written") as err:
        run_pipeline(notebooks=("06_report.ipynb",), notebooks_folder=tmp_path / "nb", run_dir=tmp_path / "run",
                     out_dir=blocked / "reports", check_llama=False)
    assert err.value.where == str(blocked / "reports") and "writable" in err.value.fix
    assert not (tmp_path / "run" / "06_report.ipynb").exists()
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0:  # as `chattr +i reports`
        try:
            with pytest.raises(ReportError, match="the reports folder cannot be written"):
                run_pipeline(notebooks=("06_report.ipynb",), notebooks_folder=tmp_path / "nb",
                             run_dir=tmp_path / "run2", out_dir=locked, check_llama=False)
        finally:
            subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_a_project_folder_without_notebooks_runs_the_kits(tmp_path, monkeypatch):
    """A team's folder holds its datasets, logs and experiment files, not a copy of the kit's notebooks:
    ``kit report`` runs the kit's own (a project's own ``notebooks/`` would win)."""
    from kit.report.render import NOTEBOOKS, notebooks_dir

    (tmp_path / "datasets").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'team'\n")
    rows = [{"id": f"r{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(12)]
    (tmp_path / "datasets" / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "datasets" / "mini.yaml").write_text(
        "name: mini\ntype: classification\ndata: mini.jsonl\nlabels: ['yes', 'no']\n"
        "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 0.5, seed: 1}\n")
    monkeypatch.setenv("KIT_PROJECT", str(tmp_path))
    assert notebooks_dir() == ROOT / "notebooks"
    run_pipeline(overrides={"tasks": {"mini": 4}, "reference": "Local", "sweep": None, "store": str(tmp_path / "s.db"),
                            "options": [{"name": "Local", "arm": "llama_cpp:smollm2-135m-instruct",
                                         "machine": "cpu-box"}]},
                 run_dir=tmp_path / "run", out_dir=tmp_path, notebooks=NOTEBOOKS[:1])
    assert (tmp_path / "run" / NOTEBOOKS[0]).is_file() and (tmp_path / "run" / "splits.json").is_file()
