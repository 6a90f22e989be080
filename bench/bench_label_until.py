"""Benchmark: label until settled over several disagreement strata (kit.labels.until.combined) — its false
"non-inferior" rate under a null at the margin, and the labels it uses when the candidate is as good.

Run: ``python bench/bench_label_until.py`` (``--runs 400 --seed 0``; about a minute on 2 shared cores).

With three options the candidate's disagreements with the reference fall in two strata of the stratified design
(the third option sides with the candidate, or with the reference). Each stratum is labelled in its own random
order, the design interleaving them in proportion (as ``kit.labels.design`` presents them); after every label
:func:`kit.labels.until.combined` is asked (each stratum's settle rule at alpha / 2, intervals summed); the loop
stops at the first settled verdict. N = 200 items, margin 5 points, alpha 0.05.

* null on these items: the all-labels paired difference on the 200 items is exactly -5 points (stratum A: 18
  items, 5 candidate-only right, 9 reference-only right; stratum B: 12 items, 2 and 8): 400 labelling orders;
* null on the traffic: the population difference is -5 points, each run draws its own 200 items;
* as good (difference 0 in the population): how often the loop settles "non-inferior", and the labels it used,
  against the disagreements there were; beside it, the same items as one stratum (the rule at alpha, as with two
  options): what the Bonferroni split costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.labels.until import combined  # noqa: E402
from kit.stats.settle import Verdict  # noqa: E402

N, MARGIN, ALPHA = 200, 0.05, 0.05


def run(strata: list[list[float]], rng: np.random.Generator, *, traffic: bool) -> tuple[Verdict, int]:
    """One labelling loop: each stratum's values in a random order, interleaved by rank / size."""
    orders = [list(rng.permutation(np.asarray(s, float))) for s in strata]
    steps = sorted((k / len(s), h) for h, s in enumerate(orders) for k in range(len(s)))
    given = [0] * len(orders)
    for _, h in steps:
        given[h] += 1
        now = combined([(len(s), s[:g]) for s, g in zip(orders, given)], items=N, margin=MARGIN, alpha=ALPHA,
                       traffic=traffic)
        if now.settled:
            return now.verdict, now.labels
    return now.verdict, now.labels


def items_strata(counts: tuple[int, int, int, int, int, int]) -> list[list[float]]:
    """(A: +1, -1, 0 counts, B: +1, -1, 0 counts) -> the two strata's per-item differences."""
    a1, a2, a0, b1, b2, b0 = counts
    return [[1.0] * a1 + [-1.0] * a2 + [0.0] * a0, [1.0] * b1 + [-1.0] * b2 + [0.0] * b0]


def population(difference: float) -> list[float]:
    """Shares of the six disagreement kinds with 15% disagreement (9% in A, 6% in B), a fifth both wrong."""
    a, b = 0.09, 0.06
    da, db = difference * a / (a + b), difference * b / (a + b)
    return [(0.8 * a + da) / 2, (0.8 * a - da) / 2, 0.2 * a, (0.8 * b + db) / 2, (0.8 * b - db) / 2, 0.2 * b]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()

    fixed = items_strata((5, 9, 4, 2, 8, 2))
    assert sum(map(sum, fixed)) / N == -MARGIN
    for traffic in (False, True):
        false_ni = sum(run(fixed, rng, traffic=traffic)[0] is Verdict.NON_INFERIOR for _ in range(args.runs))
        print(f"null on these items, traffic={traffic}: false non-inferior {false_ni}/{args.runs} "
              f"= {100 * false_ni / args.runs:.1f}%")

    for name, diff in (("null on the traffic (-5 points)", -MARGIN), ("as good (0 points)", 0.0)):
        shares = population(diff)
        verdicts, labels, disagreements, kept = [], [], [], []
        for _ in range(args.runs):
            counts = rng.multinomial(N, [*shares, 1 - sum(shares)])[:6]
            strata = items_strata(tuple(int(c) for c in counts))
            if min(map(len, strata)) == 0:
                strata = [s for s in strata if s]
            kept.append(strata)
            v, n = run(strata, rng, traffic=True)
            verdicts.append(v)
            labels.append(n)
            disagreements.append(sum(map(len, strata)))
        ni = sum(v is Verdict.NON_INFERIOR for v in verdicts)
        one = sum(run([[x for s in strata for x in s]], rng, traffic=True)[0] is Verdict.NON_INFERIOR
                  for strata in kept)
        print(f"{name}: the same disagreements as ONE stratum (the rule at alpha, what two options get): "
              f"non-inferior {one}/{args.runs} = {100 * one / args.runs:.1f}%")
        print(f"{name}: non-inferior {ni}/{args.runs} = {100 * ni / args.runs:.1f}%; labels used median "
              f"{np.median(labels):.0f} of median {np.median(disagreements):.0f} disagreements (random labels "
              f"would draw from all {N} items)")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
