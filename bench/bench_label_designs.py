"""Benchmark: labels needed under random labels and under a stratified design that labels the disagreements.

Run: ``python bench/bench_label_designs.py`` (``--reps N``, ``--seed N``). Per setting (agreement of the two
options, test items ``N``; margin 5 points, one-sided alpha 0.05, 80% power, a true difference of 0), it prints
the labels the kit plans (``kit plan``: :func:`kit.stats.label_designs.random_labels`, Nam 1997, and
:func:`kit.stats.label_designs.stratified_labels`, Cochran 1977 with the finite-population correction), their
ratio, and the power each planned count is measured to have in ``--reps`` simulated evaluations:

- the traffic: an item is a disagreement with probability ``d = 1 - agreement``; on a disagreement exactly one
  option is right (the candidate with probability ``(1 + difference / d) / 2``); ``N`` items are drawn;
- random labels: the planned ``n`` items drawn without replacement from the ``N`` and labelled; Tango's paired
  score test at the margin (kit.stats.paired.tango_z), rejected at ``z > z_{1 - alpha}``;
- stratified: the planned ``n`` of the ``N_D`` disagreement items drawn without replacement and labelled; the
  design-weighted difference ``(N_D / N) * mean`` with its variance (labelling error with the finite-population
  correction plus the items' own sampling error, both estimated from the sample); one-sided Wald test.

It also measures the false "non-inferior" rate of both at a true difference of -5 points (at the margin).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.stats._data import z_of  # noqa: E402
from kit.stats.label_designs import random_labels, stratified_labels  # noqa: E402
from kit.stats.paired import tango_z  # noqa: E402

MARGIN, ALPHA, POWER = 0.05, 0.05, 0.80
SETTINGS = [(0.85, 1_000), (0.85, 5_000), (0.70, 2_000), (0.95, 5_000)]


def _traffic(n_items: int, d: float, difference: float, reps: int, rng: np.random.Generator):
    """Per simulated evaluation: the disagreement items and, among them, those the candidate alone gets right."""
    n_dis = rng.binomial(n_items, d, reps)
    plus = rng.binomial(n_dis, (1 + difference / d) / 2)
    return n_dis, plus


def stratified_power(n: int, *, n_items: int, d: float, difference: float, reps: int,
                     rng: np.random.Generator) -> float:
    """Share of simulated evaluations in which the stratified design's test shows non-inferiority."""
    n_dis, plus = _traffic(n_items, d, difference, reps, rng)
    take = np.minimum(n, n_dis)
    k = rng.hypergeometric(plus, n_dis - plus, np.maximum(take, 1))  # labelled items the candidate alone got right
    ybar = (2 * k - take) / take
    s2 = take / np.maximum(take - 1, 1) * (1 - ybar ** 2)
    share = n_dis / n_items
    est = share * ybar
    var = share ** 2 * s2 * (1 / take - 1 / n_dis) + (share * 1.0 - est ** 2) / n_items  # E[D^2] = share here
    return float(np.mean(est - z_of(1 - ALPHA) * np.sqrt(np.maximum(var, 0)) > -MARGIN))


def random_power(n: int, *, n_items: int, d: float, difference: float, reps: int, rng: np.random.Generator) -> float:
    """Share of simulated evaluations in which Tango's test on ``n`` random labels shows non-inferiority."""
    n_dis, plus = _traffic(n_items, d, difference, reps, rng)
    z = z_of(1 - ALPHA)
    hits = 0
    for nd, p in zip(n_dis, plus):
        x, y, _ = rng.multivariate_hypergeometric([int(p), int(nd - p), int(n_items - nd)], min(n, n_items))
        hits += tango_z(float(x), float(y), min(n, n_items), -MARGIN) > z
    return hits / len(n_dis)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print("| agreement | test items | random labels (Nam) | stratified labels (Cochran) | stratified / random | "
          "power: random | power: stratified | false non-inferior at -5 pts: random | stratified |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for agreement, n_items in SETTINGS:
        d = 1 - agreement
        rand = random_labels(agreement=agreement, margin=MARGIN, alpha=ALPHA, power=POWER, population=n_items)
        strat = stratified_labels(disagreement=d, n_items=n_items, margin=MARGIN, alpha=ALPHA, power=POWER)
        nr, ns = int(rand.labels), int(strat.labels)
        common = dict(n_items=n_items, d=d, reps=args.reps, rng=rng)
        row = [f"{100 * agreement:.0f}%", f"{n_items:,}", f"{nr:,}", f"{ns:,} of ~{strat.population:,}",
               f"{ns / nr:.3f} (1/{nr / ns:.1f})",
               f"{100 * random_power(nr, difference=0.0, **common):.1f}%",
               f"{100 * stratified_power(ns, difference=0.0, **common):.1f}%",
               f"{100 * random_power(nr, difference=-MARGIN, **common):.1f}%",
               f"{100 * stratified_power(ns, difference=-MARGIN, **common):.1f}%"]
        print("| " + " | ".join(row) + " |")
    print(f"\n{args.reps} simulated evaluations per cell, seed {args.seed}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
