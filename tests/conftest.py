"""Shared fixtures: the embedded model loaded once, temporary stores and task folders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = "llama_cpp:smollm2-135m-instruct"


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker per core) each worker keeps to its own share of the
    cores, and so do the servers and notebook kernels it starts: llama.cpp's and torch's threads, sized on the
    cores a process may use (kit.models.hardware.cpu_threads), then never spin against the other worker's."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    mine = cores[int(worker.removeprefix("gw")) % count::count] if len(cores) >= count else cores
    os.sched_setaffinity(0, mine)


@pytest.fixture(scope="session")
def smol_arm():
    from kit.arms import get_arm

    arm = get_arm(EMBEDDED, n_ctx=2048)
    yield arm
    arm.close()


@pytest.fixture(scope="session")
def snips():
    from kit.tasks import load_task

    return load_task("snips-intents", folder=ROOT / "datasets")


@pytest.fixture(scope="session")
def hhs():
    from kit.tasks import load_task

    return load_task("hhs-breach-triage", folder=ROOT / "datasets")


@pytest.fixture
def store(tmp_path):
    from kit.run.store import Store

    with Store(tmp_path / "kit.sqlite") as s:
        yield s


@pytest.fixture
def task_dir(tmp_path):
    """A folder with a small valid classification task the test can then break."""
    rows = [{"id": f"r{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(12)]
    (tmp_path / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "mini.yaml").write_text(
        "name: mini\ntype: classification\ndata: mini.jsonl\nlabels: ['yes', 'no']\n"
        "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 0.5, seed: 1}\n",
        encoding="utf-8",
    )
    return tmp_path


def copy_task(name: str, dest: Path) -> Path:
    src = ROOT / "datasets"
    for path in src.glob(f"{name}.yaml"):
        shutil.copy(path, dest)
    return dest
