"""The decision report end to end: the default experiment's first run and cached re-run, and a 5-option
experiment, timed in one run.

Goals (2 cores, after install): the default first run under 5 minutes, a re-run served from the store under
60 seconds. Each run gets its own store and run folder under a temporary directory; the LoRA adapter is trained
on the first run unless one with the same data, base and settings is already cached in runs/adapters (the
script says which). The 5-option experiment adds a second local model (Gemma 3 270M in process) and recorded
outputs to the default three options. A yardstick of the machine's speed is printed before and after the runs
(shared cloud machines vary from day to day: compare figures only with their yardstick).

    .venv/bin/python bench/bench_report.py [--experiment notebooks/params/default.yaml] [--skip-five]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from kit.report.render import default_experiment_file, run_pipeline
from kit.pipeline.folder import Doc, RunFolder


def timed(experiment: Path, overrides: dict[str, Any], run_dir: Path, out: Path) -> float:
    start = time.perf_counter()
    run_pipeline(experiment=experiment, overrides=overrides, run_dir=run_dir, out_dir=out,
                 on_progress=lambda msg: print("   ", msg, file=sys.stderr, flush=True))
    return time.perf_counter() - start


def five_options(experiment: Path, root: Path) -> dict[str, Any]:
    """The default experiment's options plus Gemma 3 270M in process and a replay of recorded outputs."""
    from kit.tasks import load_task

    options = yaml.safe_load(experiment.read_text())["options"]
    logs = root / "vendor.jsonl"
    test = load_task("snips-intents").test
    logs.write_text("".join(json.dumps({"item_id": i.id, "output": i.gold, "latency_s": 0.7, "prompt_tokens": 380,
                                        "completion_tokens": 3}) + "\n" for i in test))
    return {"options": [*options,
                        {"name": "Gemma 270M", "arm": "llama_cpp:gemma-3-270m", "machine": "cpu-box"},
                        {"name": "Vendor logs", "arm": f"replay:{logs}", "runs": "third-party",
                         "price": {"input_per_m": 0.15, "output_per_m": 0.6}}]}


def yardstick() -> str:
    """How fast this machine is right now, to compare figures taken on other days or machines: a fixed pure-Python
    loop (10 million additions) and a fixed float32 matrix product (1500^3, 10 times), best of three each."""
    import numpy as np

    def loop() -> float:
        start, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        return time.perf_counter() - start

    def matmul() -> float:
        x = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
        start = time.perf_counter()
        for _ in range(10):
            x @ x
        return time.perf_counter() - start

    py, mm = min(loop() for _ in range(3)), min(matmul() for _ in range(3))
    return f"machine yardstick: Python loop {py:.2f} s, float32 matmul {10 * 2 * 1500 ** 3 / mm / 1e9:.0f} GFLOP/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=default_experiment_file())
    parser.add_argument("--skip-five", action="store_true", help="only the default experiment")
    args = parser.parse_args()
    print(yardstick(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = {"store": str(root / "kit.sqlite")}
        first = timed(args.experiment, store, root / "first", root)
        tuned = RunFolder(root / "first").doc(Doc.FINETUNES, default={})
        reused = all(d["reused"] for by_task in tuned.values() for d in by_task.values())
        again = timed(args.experiment, store, root / "again", root)
        calls = sum(r.new_calls for r in RunFolder(root / "again").runs())
        print(f"default report, first run: {first:6.1f} s  (goal < 300 s: {first / 300:.2f} of the budget)"
              f"  adapter {'reused from cache' if reused else 'trained in this run'}")
        print(f"default report, re-run:    {again:6.1f} s  (goal < 60 s: {again / 60:.2f} of the budget)"
              f"  new model calls in the re-run: {calls}")
        print(f"speed-up of the cached re-run: {first / again:.1f}x")
        if not args.skip_five:
            five = timed(args.experiment, {**store, **five_options(args.experiment, root)}, root / "five", root)
            runs = RunFolder(root / "five").runs()
            new = sum(r.new_calls for r in runs)
            print(f"5-option experiment (default store warm for 3 options): {five:6.1f} s, {len(runs)} option-task "
                  f"runs, {new} new model calls")
    print(yardstick() + " (after the runs)")


if __name__ == "__main__":
    main()
