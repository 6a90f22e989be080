"""Benchmark: coverage of 95% intervals when items come in clusters (a task's `cluster:` column).

Run: ``python bench/bench_cluster_coverage.py`` (``--reps N``, ``--size M``, ``--seed N``). Per setting, ``G``
clusters of ``M`` items each are drawn from a super-population: each cluster has its own accuracy, drawn from a
beta distribution with mean 0.8 and intra-cluster correlation ``ICC`` (``ICC = 0``: independent items). The
reference is right with its cluster's accuracy; the candidate gives the reference's answer on 85% of the items
and otherwise is right with a second cluster-level rate (mean 0.5, same ICC), so the true paired difference is
0.85 * 0.8 + 0.15 * 0.5 - 0.8 = -0.045. Printed per setting, over ``--reps`` simulated evaluations: the coverage
of the true accuracy by the item-level Wilson interval and by the cluster-robust interval (CR1, t with G - 1
df; kit.stats.clusters), and of the true difference by the item-level two-sided Tango interval and by the
cluster-robust one — and by the union the kit reports (never narrower than the item-level one).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.stats.clusters import clustered_mean  # noqa: E402
from kit.stats.intervals import wilson_interval  # noqa: E402
from kit.stats.paired import tango_bound  # noqa: E402

P_REF, P_OTHER, SAME = 0.80, 0.50, 0.85
TRUE_DIFF = SAME * P_REF + (1 - SAME) * P_OTHER - P_REF
SETTINGS = [(g, icc) for icc in (0.0, 0.1, 0.3) for g in (10, 30, 60)]


def _rates(mean: float, icc: float, g: int, rng: np.random.Generator) -> np.ndarray:
    """Per-cluster rates: beta with the given mean and intra-cluster correlation (a point mass when ICC = 0)."""
    if icc == 0:
        return np.full(g, mean)
    a, b = mean * (1 - icc) / icc, (1 - mean) * (1 - icc) / icc
    return rng.beta(a, b, g)


def _one(g: int, m: int, icc: float, rng: np.random.Generator) -> tuple[bool, bool, bool, bool, bool, bool]:
    groups = np.repeat(np.arange(g), m)
    ref = (rng.random(g * m) < np.repeat(_rates(P_REF, icc, g, rng), m)).astype(float)
    other = (rng.random(g * m) < np.repeat(_rates(P_OTHER, icc, g, rng), m)).astype(float)
    cand = np.where(rng.random(g * m) < SAME, ref, other)
    n = g * m
    wlo, whi = wilson_interval(ref.sum(), n)
    clo, chi = clustered_mean(ref, groups).interval(0.95)
    x, y = float((cand > ref).sum()), float((cand < ref).sum())
    tlo, thi = tango_bound(x, y, n, 0.975, upper=False), tango_bound(x, y, n, 0.975, upper=True)
    dlo, dhi = clustered_mean(cand - ref, groups).interval(0.95)
    return (wlo <= P_REF <= whi, clo <= P_REF <= chi, min(wlo, clo) <= P_REF <= max(whi, chi),
            tlo <= TRUE_DIFF <= thi, dlo <= TRUE_DIFF <= dhi, min(tlo, dlo) <= TRUE_DIFF <= max(thi, dhi))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10, help="items per cluster")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{args.reps} simulated evaluations per row, {args.size} items per cluster; true accuracy {P_REF}, "
          f"true difference {TRUE_DIFF:+.3f}")
    print("| clusters | items | ICC | accuracy: Wilson (items) | clustered | kit (union) "
          "| difference: Tango (items) | clustered | kit (union) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for g, icc in SETTINGS:
        hits = np.array([_one(g, args.size, icc, rng) for _ in range(args.reps)], dtype=float).mean(axis=0)
        print(f"| {g} | {g * args.size} | {icc:g} | " + " | ".join(f"{100 * h:.1f}%" for h in hits) + " |")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
