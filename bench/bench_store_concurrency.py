"""Calls paid when several `kit run`s ask the same questions of one store at the same time.

Three (by default) `kit run` processes of the same arm, task and items start together against one SQLite store
and one loopback OpenAI-style server (tests/servers.py) that counts the requests it answers. Each question is
claimed in the store before it is asked, so the goal is one paid call per item — not one per item and run.
It prints, per server delay: the calls the server received, the rows in the store, each run's new calls and
the wall time.

    python bench/bench_store_concurrency.py --items 200 --runs 3 --delays 0 0.05 0.2
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import OpenAIServer, parity_answer, parity_task  # noqa: E402  (the tests' loopback server)


def measure(folder: Path, items: int, runs: int, delay: float, concurrency: int) -> dict[str, object]:
    task, store = parity_task(folder, items), folder / "kit.sqlite"
    env = {**os.environ, "KIT_PROJECT": str(ROOT), "PYTHONPATH": str(ROOT)}
    with OpenAIServer(answer=parity_answer, delay=delay) as srv:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "kit.cli", "run", "--task", str(task), "--arm", "openai:fake",
                                   "--base-url", srv.base_url, "--store", str(store), "--json",
                                   "--concurrency", str(concurrency)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(runs)]
        outs = [p.communicate(timeout=600) for p in procs]
        seconds = time.perf_counter() - started
        calls = srv.calls()
    failed = [err.strip().splitlines()[-1] for p, (_, err) in zip(procs, outs) if p.returncode]
    if failed:
        raise SystemExit(f"a run failed: {failed}")
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT count(DISTINCT item_id) FROM responses").fetchone()[0]
    new = [json.loads(out)[0]["new_calls"] for out, _ in outs]
    return {"delay_s": delay, "items": items, "runs": runs, "paid_calls": calls, "rows": rows, "new_calls": new,
            "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per run")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.05, 0.2],
                        help="the server's delay per answer, seconds")
    args = parser.parse_args()
    worst = 0.0
    for delay in args.delays:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(Path(tmp), args.items, args.runs, delay, args.concurrency)
        worst = max(worst, r["paid_calls"] / args.items)
        print(f"delay {delay:g} s: {r['paid_calls']} calls paid for {args.items} items by {args.runs} runs "
              f"({r['rows']} rows; new calls per run {r['new_calls']}; {r['seconds']} s)")
    print(f"paid calls per item, worst: {worst:.2f} (goal 1.00)")
    return 0 if worst == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
