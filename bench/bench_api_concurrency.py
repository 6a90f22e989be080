"""Throughput of the OpenAI-compatible arm at concurrency 8 versus 1 (goal: at least 6x).

A loopback server (tests/servers.py, in its own process as a remote API would be) answers every chat
completion after a fixed 200 ms, streamed.
Items go through the real path: kit.run.runner.run_arm -> the openai arm (AsyncOpenAI, streaming) -> the
SQLite store. Prints items per second at each concurrency and their ratio; exits 1 below the goal.

    python bench/bench_api_concurrency.py [--items 48] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from kit.arms import get_arm
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

GOAL = 6.0


@contextlib.contextmanager
def server(delay: float):
    """The fake OpenAI server in a child process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "servers.py"), "openai", "--delay", str(delay)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def make_task(folder: Path, n: int):
    rows = [{"id": f"b{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(n)]
    (folder / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "bench.yaml").write_text(
        "name: bench-api\ntype: classification\ndata: bench.jsonl\nlabels: ['yes', 'no']\n"
        "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 0.999, seed: 1}\n")
    return load_task(folder / "bench.yaml")


def throughput(task, url: str, concurrency: int, n: int, folder: Path) -> tuple[float, float]:
    """Items per second and seconds for ``n`` fresh items at ``concurrency`` (a new store each time)."""
    with Store(folder / f"bench-{concurrency}.sqlite") as store:
        arm = get_arm("openai:bench", base_url=url, concurrency=concurrency)
        started = time.perf_counter()
        summary = run_arm(task, arm, store=store, items=task.test[:n])
        seconds = time.perf_counter() - started
        assert summary.new_calls == n and summary.errors == 0, summary
    return n / seconds, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48, help="items per measurement (default 48)")
    parser.add_argument("--delay", type=float, default=0.2, help="server delay per answer, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server(args.delay) as url:
        folder = Path(tmp)
        task = make_task(folder, args.items + 8)
        (folder / "warm").mkdir()
        throughput(task, url, 8, 8, folder / "warm")  # imports and first connections, not timed
        one, t1 = throughput(task, url, 1, args.items, folder)
        eight, t8 = throughput(task, url, 8, args.items, folder)
    ratio = eight / one
    print(f"server delay {args.delay * 1000:.0f} ms, {args.items} items each")
    print(f"concurrency 1: {one:6.2f} items/s ({t1:.2f} s)")
    print(f"concurrency 8: {eight:6.2f} items/s ({t8:.2f} s)")
    print(f"ratio 8 vs 1: {ratio:.2f}x (goal >= {GOAL:.0f}x) {'OK' if ratio >= GOAL else 'MISSED'}")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
