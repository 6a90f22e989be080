"""``kit doctor`` as a user runs it: a real process, real llama.cpp, the real stand-in server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

SECRET = "sk-test-must-never-be-printed-123"


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit.cli", "doctor", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300)


def test_doctor_passes_on_this_machine_and_names_keys_without_values():
    done = doctor("--json", OPENAI_API_KEY=SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["check"]: row for row in json.loads(done.stdout)}
    for name in ("llama.cpp answers", "llama.cpp build", "stand-in server", "chromium", "disk · KIT_HOME",
                 "disk · HF cache", "API keys"):
        assert rows[name]["ok"] in {"ok", "warn"}, rows[name]
    assert rows["llama.cpp answers"]["ok"] == "ok" and "answered in" in rows["llama.cpp answers"]["detail"]
    assert rows["stand-in server"]["ok"] == "ok" and "http://127.0.0.1:" in rows["stand-in server"]["detail"]
    assert "OPENAI_API_KEY" in rows["API keys"]["detail"].split(";")[0]  # listed under "set"
    assert SECRET not in done.stdout + done.stderr


def test_doctor_fails_and_names_the_fix_when_llama_cpp_cannot_load(tmp_path):
    """A real way for the library not to load: llama-cpp-python pointed at a folder without it."""
    done = doctor("--no-standin", "--json", LLAMA_CPP_LIB_PATH=str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    row = next(row for row in json.loads(done.stdout) if row["check"] == "llama.cpp answers")
    assert row["ok"] == "fail" and "Shared library with base name 'llama' not found" in row["detail"]
    assert row["fix"].startswith("LLAMA_CPP_LIB_PATH points llama-cpp-python at another library: unset it")
    table = doctor("--no-standin", LLAMA_CPP_LIB_PATH=str(tmp_path))
    assert table.returncode == 1 and "llama.cpp answers  fail" in table.stdout and "fix: LLAMA_CPP_LIB_PATH" in table.stdout
    assert table.stdout.rstrip().endswith("1 check(s) failed: llama.cpp answers")
