"""Benchmark: paired bootstrap, 10,000 resamples over 1,000 items; goal under 1 second on 2 cores.

Run: ``python bench/bench_stats.py`` (``--repeat N``, ``--items N``, ``--resamples N``). Prints the
seconds per call (median and best of the repeats) and the ratio to the goal (below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.stats import paired_bootstrap  # noqa: E402

GOAL_S = 1.0


def _time(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a, b = rng.random(args.items) < 0.75, rng.random(args.items) < 0.72
    labels = np.array(["billing", "bug", "feature", "account", "other"])
    gold = labels[rng.integers(0, 5, args.items)]
    fa = pd.DataFrame({"gold": gold, "answer": np.where(rng.random(args.items) < 0.7, gold, "other")})
    fb = pd.DataFrame({"gold": gold, "answer": np.where(rng.random(args.items) < 0.6, gold, "other")})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"paired bootstrap, {args.resamples:,} resamples x {args.items:,} items; "
          f"{cores} cores, Python {platform.python_version()}, numpy {np.__version__}")
    cases = [
        ("accuracy, BCa", lambda: paired_bootstrap(a, b, n_resamples=args.resamples, method="bca")),
        ("accuracy, percentile", lambda: paired_bootstrap(a, b, n_resamples=args.resamples, method="percentile")),
        ("macro-F1, BCa (no goal; for reference)",
         lambda: paired_bootstrap(fa, fb, metric="macro_f1", n_resamples=args.resamples, method="bca")),
    ]
    worst = 0.0
    for name, fn in cases:
        times = _time(fn, args.repeat)
        med = statistics.median(times)
        line = f"{name:40s} median {med:.3f} s  best {min(times):.3f} s"
        if "goal" not in name:
            worst = max(worst, med)
            line += f"  ratio to the {GOAL_S:g} s goal: {med / GOAL_S:.2f}"
        print(line)
    print(f"goal {'met' if worst < GOAL_S else 'MISSED'}: slowest mean-metric case {worst:.3f} s "
          f"= {worst / GOAL_S:.2f} x the goal")
    return 0 if worst < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
