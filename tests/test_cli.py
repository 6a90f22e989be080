"""The command line as users meet it: tasks, run, results --json, and clear errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import EMBEDDED, ROOT


def kit(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIT_PROJECT": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_tasks_lists_counts():
    out = kit("tasks", "--json")
    rows = {r["task"]: r for r in json.loads(out.stdout)}
    assert rows["snips-intents"]["items"] == 693 and rows["hhs-breach-triage"]["items"] == 209


def test_run_then_results_json(tmp_path):
    db = str(tmp_path / "s.sqlite")
    run = kit("run", "--task", "snips-intents", "--arm", EMBEDDED, "--limit", "5", "--store", db, "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)[0]
    assert summary["items"] == 5 and summary["new_calls"] == 5 and summary["errors"] == 0
    assert 0 <= summary["accuracy"] <= 1 and "macro_f1" in summary
    assert "smollm2-135m-instruct" in run.stderr  # what ran, said on stderr
    results = json.loads(kit("results", "--task", "snips-intents", "--store", db, "--json").stdout)
    assert [r["arm"] for r in results] == [EMBEDDED]
    assert results[0]["n"] == 5 and results[0]["errors"] == 0
    assert results[0]["accuracy"] == summary["accuracy"]


def test_errors_are_one_clear_line(tmp_path):
    bad = kit("run", "--task", "snipz-intents", "--arm", EMBEDDED, "--store", str(tmp_path / "s.sqlite"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "did you mean snips-intents" in bad.stderr
    assert "Traceback" not in bad.stderr
    arm = kit("run", "--task", "snips-intents", "--arm", "llama:x", "--store", str(tmp_path / "s.sqlite"))
    assert arm.returncode == 2 and "unknown arm backend 'llama'" in arm.stderr and "Traceback" not in arm.stderr
