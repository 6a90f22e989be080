"""Benchmark: label until settled (kit.stats.settle) on a simulated labeller — does the loop stop with the
all-labels verdict, how many labels does it use, and how often does it say "non-inferior" under a null.

Run: ``python bench/bench_label_settle.py`` (``--runs 400 --seed 0``; about a minute on 2 shared cores).

Synthetic tasks of ``N = 200`` items with two options on right/wrong items, agreement 70–98 %, margin 5 points,
alpha 0.05. The design labels the items where the options disagree, in random order (without replacement); gold
is revealed one item at a time and :func:`kit.stats.settle.looks` is asked after every label; the loop stops at
the first settled verdict (or when every disagreement is labelled, at most 200 labels).

(a) **Stops with the all-labels verdict.** Per run a task is drawn: agreement uniform in [0.70, 0.98] (a fifth of the
disagreements both wrong, differently), a true difference uniform in [-12, +6] points (within what the
disagreements allow), and 200 items drawn from it. The *all-labels verdict* is the kit's
fixed-sample test with every item labelled (Tango's one-sided bound at alpha over the 200 pairs: non-inferior,
inferior, or inconclusive). Among runs where it is settled, the share where the loop stops with the same
verdict; the labels the loop used (median, and as a share of the disagreements).

(b) **False "non-inferior" at the margin**, two nulls:
* on these items: the all-labels difference on the 200 items is exactly -5 points (the question the loop
  answers), at agreements 75, 85 and 93 %; 400 labelling orders each;
* on the traffic the items were drawn from: the population difference is -5 points and each run draws its own
  200 items — the loop (which answers for these 200 items) against the fixed all-labels test (which adds the
  items' sampling error).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.stats.paired import tango_bound  # noqa: E402
from kit.stats.settle import PairedQuestion, first_settled, look  # noqa: E402

N, MARGIN, ALPHA, CAP = 200, 0.05, 0.05, 200


def task(agreement: float, difference: float, rng: np.random.Generator, *, both_wrong: float = 0.2):
    """200 items drawn from a population with this agreement and accuracy difference: counts of items only the
    candidate gets right (d10), only the reference (d01), both wrong with different answers (d00)."""
    disagree = 1.0 - agreement
    decisive = disagree * (1 - both_wrong)
    p10, p01 = (decisive + difference) / 2, (decisive - difference) / 2
    if p01 < 0 or p10 < 0:
        raise ValueError(f"a difference of {difference:g} needs more than {decisive:g} decisive disagreements")
    counts = rng.multinomial(N, [p10, p01, disagree - p10 - p01, 1 - disagree])
    return int(counts[0]), int(counts[1]), int(counts[2])


def all_labels_verdict(d10: int, d01: int) -> str:
    if tango_bound(d10, d01, N, 1 - ALPHA, upper=False) > -MARGIN:
        return "non-inferior"
    if tango_bound(d10, d01, N, 1 - ALPHA, upper=True) < -MARGIN:
        return "inferior"
    return "inconclusive"


def loop(d10: int, d01: int, d00: int, rng: np.random.Generator, *, traffic: bool) -> tuple[str, int]:
    """The labelling loop on one task: (its verdict, the labels it used)."""
    q = PairedQuestion(disagreements=d10 + d01 + d00, items=N, margin=MARGIN, alpha=ALPHA, traffic=traffic)
    labels = rng.permutation(np.r_[np.ones(d10), -np.ones(d01), np.zeros(d00)])[:CAP]
    n = first_settled(q, labels)
    return (look(q, labels[:n]).verdict.value, n) if n is not None else ("open", labels.size)


def part_a(runs: int, rng: np.random.Generator) -> None:
    tasks = []
    while len(tasks) < runs:
        agreement = rng.uniform(0.70, 0.98)
        decisive = 0.8 * (1 - agreement)  # a fifth of the disagreements: both wrong, differently
        difference = rng.uniform(max(-0.12, -decisive), min(0.06, decisive))
        d10, d01, d00 = task(agreement, difference, rng)
        tasks.append((agreement, d10, d01, d00, all_labels_verdict(d10, d01)))
    for traffic in (True, False):
        target = "the traffic (traffic=True, the default)" if traffic else "these 200 items (traffic=False)"
        rows = [(a, truth, *loop(d10, d01, d00, rng, traffic=traffic), d10 + d01 + d00)
                for a, d10, d01, d00, truth in tasks]
        settled = [r for r in rows if r[1] != "inconclusive"]
        same = sum(r[1] == r[2] for r in settled)
        print(f"\n(a) loop for {target}: {runs} tasks; all-labels verdict settled on {len(settled)}: the loop "
              f"stops with it on **{same} of {len(settled)} ({100 * same / max(len(settled), 1):.1f}%)**")
        print("| agreement | tasks with a settled all-labels verdict | loop = all-labels | median labels used | "
              "median disagreements | labels / disagreements (median) |")
        print("|---|---|---|---|---|---|")
        for lo, hi in ((0.70, 0.80), (0.80, 0.90), (0.90, 0.98)):
            sub = [r for r in settled if lo <= r[0] < hi]
            if sub:
                print(f"| {100 * lo:.0f}–{100 * hi:.0f}% | {len(sub)} | "
                      f"{100 * np.mean([r[1] == r[2] for r in sub]):.1f}% | {np.median([r[3] for r in sub]):.0f} | "
                      f"{np.median([r[4] for r in sub]):.0f} | {np.median([r[3] / max(r[4], 1) for r in sub]):.2f} |")
        wrong = [r for r in settled if r[2] not in ("open", r[1])]
        opened = [r for r in settled if r[2] == "open"]
        print(f"loop with the opposite verdict: {len(wrong)}; still open with every disagreement labelled: "
              f"{len(opened)}")
        inc = [r for r in rows if r[1] == "inconclusive"]
        if inc:
            said = {v: sum(r[2] == v for r in inc) for v in ("non-inferior", "inferior", "open")}
            print(f"all-labels inconclusive on {len(inc)} tasks; there the loop said {said}")


def part_b(runs: int, rng: np.random.Generator) -> None:
    print(f"\n(b) false 'non-inferior' at the margin (difference -{100 * MARGIN:g} points), {runs} runs each")
    print("| null | agreement | disagreements | loop for the traffic (default) | loop for these items | fixed "
          "all-labels test | median labels at the stop (traffic / items) |")
    print("|---|---|---|---|---|---|---|")
    for agreement in (0.75, 0.85, 0.93):  # the null on these 200 items: exactly -5 points
        dis = round((1 - agreement) * N)
        gap = round(MARGIN * N)
        d00 = dis // 5
        if (dis - d00 - gap) % 2:
            d00 += 1
        d10, d01 = (dis - d00 - gap) // 2, (dis - d00 + gap) // 2
        res = {t: [loop(d10, d01, d00, rng, traffic=t) for _ in range(runs)] for t in (True, False)}
        fixed = all_labels_verdict(d10, d01) == "non-inferior"
        print(f"| these 200 items: all-labels difference exactly -5 points | {100 * agreement:.0f}% | {dis} "
              f"({d10} / {d01} / {d00}) | **{100 * np.mean([v == 'non-inferior' for v, _ in res[True]]):.1f}%** | "
              f"**{100 * np.mean([v == 'non-inferior' for v, _ in res[False]]):.1f}%** | "
              f"{'non-inferior' if fixed else 'not non-inferior'} (one task) | "
              f"{np.median([n for _, n in res[True]]):.0f} / {np.median([n for _, n in res[False]]):.0f} |")
    for agreement in (0.75, 0.85, 0.93):  # the null on the traffic: each run draws its own 200 items
        ni = {True: 0, False: 0}
        fixed, used = 0, {True: [], False: []}
        for _ in range(runs):
            d10, d01, d00 = task(agreement, -MARGIN, rng)
            for t in (True, False):
                verdict, n = loop(d10, d01, d00, rng, traffic=t)
                ni[t] += verdict == "non-inferior"
                used[t].append(n)
            fixed += all_labels_verdict(d10, d01) == "non-inferior"
        print(f"| the traffic: population difference -5 points, 200 items drawn per run | {100 * agreement:.0f}% | "
              f"~{round((1 - agreement) * N)} | **{100 * ni[True] / runs:.1f}%** | {100 * ni[False] / runs:.1f}% | "
              f"{100 * fixed / runs:.1f}% | {np.median(used[True]):.0f} / {np.median(used[False]):.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    part_a(args.runs, rng)
    print(f"({time.perf_counter() - start:.0f} s)")
    start = time.perf_counter()
    part_b(args.runs, rng)
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
