"""The runner and the store together: write-through, served from the store, epochs, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from kit.progress import PROGRESS_FILE, progress_line
from kit.run.budget import Budget
from kit.run.runner import run_arm
from kit.tasks.scoring import metrics, score_responses

from conftest import EMBEDDED, ROOT


def test_second_run_is_served_from_store_and_epoch_repeats(smol_arm, snips, store):
    first = run_arm(snips, smol_arm, store=store, limit=6)
    assert (first.new_calls, first.cached, first.errors) == (6, 0, 0)
    again = run_arm(snips, smol_arm, store=store, limit=6)
    assert (again.new_calls, again.cached) == (0, 6)
    more = run_arm(snips, smol_arm, store=store, limit=8)
    assert (more.new_calls, more.cached) == (2, 6)
    repeat = run_arm(snips, smol_arm, store=store, limit=3, epoch=1)
    assert (repeat.new_calls, repeat.cached) == (3, 0)
    frame = store.responses(task=snips.name, arms=[smol_arm.spec])
    assert len(frame) == 8 + 3
    assert frame["model_identity"].str.len().eq(64).all()  # the GGUF sha256
    runs = store.runs(task=snips.name)
    assert list(runs["status"]) == ["finished"] * 4 and json.loads(runs["hardware"].iloc[0])["cpu"]
    table = metrics(snips, score_responses(snips, frame))
    assert list(table["n"]) == [8, 3]


def test_progress_says_what_came_from_the_store(smol_arm, snips, store, tmp_path, monkeypatch):
    events_file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE, str(events_file))
    run_arm(snips, smol_arm, store=store, limit=3, label="SmolLM2")
    run_arm(snips, smol_arm, store=store, limit=5, label="SmolLM2")  # 3 from the store, 2 asked
    run_arm(snips, smol_arm, store=store, limit=5, label="SmolLM2")  # nothing to ask
    ends = [json.loads(line) for line in events_file.read_text().splitlines()]
    ends = [e for e in ends if e["event"] == "end"]
    assert [(e["done"], e["total"]) for e in ends] == [(3, 3), (2, 2), (0, 0)]
    assert progress_line(ends[1]).startswith("SmolLM2 · snips-intents: 2/2 items · 3 from the store · done in")
    assert progress_line(ends[2]) == "SmolLM2 · snips-intents: nothing to ask · 5 from the store"


def test_budget_stops_before_the_cap(smol_arm, snips, store):
    summary = run_arm(snips, smol_arm, store=store, limit=10, budget=Budget(max_calls=4))
    assert summary.new_calls == 4 and "--max-calls 4" in summary.stopped
    assert len(store.responses(task=snips.name)) == 4
    assert store.runs()["status"].iloc[-1] == "stopped"


def _kit(*args: str) -> list[str]:
    return [sys.executable, "-m", "kit.cli", *args]


def test_resume_after_sigkill_keeps_every_earlier_answer(tmp_path):
    db = tmp_path / "kit.sqlite"
    cmd = _kit("run", "--task", "snips-intents", "--arm", EMBEDDED, "--limit", "30", "--store", str(db), "--json")
    env = {**os.environ, "KIT_PROJECT": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    done_before = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    done_before = con.execute("SELECT count(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                done_before = 0
        if done_before >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as con:
        before = con.execute("SELECT item_id, output, created_at, attempts FROM responses ORDER BY item_id").fetchall()
    assert 8 <= len(before) < 30, "killed half way"

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(out.stdout)[0]
    assert summary["new_calls"] == 30 - len(before)
    assert summary["from_store"] == len(before)
    with sqlite3.connect(db) as con:
        after = dict((r[0], r[1:]) for r in con.execute("SELECT item_id, output, created_at, attempts FROM responses"))
        statuses = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY started_at")]
    assert len(after) == 30
    for item_id, output, created, attempts in before:
        assert after[item_id] == (output, created, attempts)  # intact, not recomputed
    assert statuses == ["running", "finished"]  # the killed run never got to say so


def test_a_run_an_error_ends_records_the_error_as_its_note(task_dir, tmp_path, capsys, monkeypatch):
    from kit.cli import main
    from servers import OpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown-1234567890")
    db = str(tmp_path / "kit.sqlite")
    with OpenAIServer(plan=lambda body, seen: ("status", 401, {}), echo_auth=True) as srv:
        code = main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url", srv.base_url,
                     "--store", db, "--concurrency", "2"])
        assert code == 2 and 1 <= srv.calls() <= 2  # no new call after the first refusal
    capsys.readouterr()
    assert main(["runs", "--store", db, "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["status"] == "interrupted" and run["new_calls"] == 0
    assert run["note"].startswith(f"openai:fake at {srv.base_url}: the endpoint refused the API key from "
                                  "OPENAI_API_KEY (HTTP 401). Fix: check the key in OPENAI_API_KEY")
    assert "sk-never" not in run["note"]
