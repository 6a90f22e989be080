"""The default decision report end to end: a first run and a cached re-run, timed side by side.

Goals (2 cores, after install): the default run under 5 minutes, a re-run served from the store under
60 seconds. Each run gets its own store and run folder under a temporary directory; the LoRA adapter
is trained on the first run unless one with the same data, base and settings is already cached in
runs/adapters (the script says which).

    .venv/bin/python bench/bench_report.py [--params notebooks/params/default.yaml]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from kit.report.render import run_pipeline


def timed(params: str | None, store: Path, run_dir: Path, out: Path) -> float:
    start = time.perf_counter()
    run_pipeline(params_file=params, overrides={"store": str(store)}, run_dir=run_dir, out_dir=out,
                 on_progress=lambda msg: print("   ", msg, file=sys.stderr, flush=True))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="parameter file (default notebooks/params/default.yaml)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first = timed(args.params, root / "kit.sqlite", root / "first", root)
        tuned = json.loads((root / "first" / "finetune.json").read_text())
        again = timed(args.params, root / "kit.sqlite", root / "again", root)
        runs = json.loads((root / "again" / "runs.json").read_text())
    calls = sum(r["new_calls"] for r in runs)
    print(f"default report, first run: {first:6.1f} s  (goal < 300 s: {first / 300:.2f} of the budget)"
          f"  adapter {'reused from cache' if tuned.get('reused') else 'trained in this run'}")
    print(f"default report, re-run:    {again:6.1f} s  (goal < 60 s: {again / 60:.2f} of the budget)"
          f"  new model calls in the re-run: {calls}")
    print(f"speed-up of the cached re-run: {first / again:.1f}x")


if __name__ == "__main__":
    main()
