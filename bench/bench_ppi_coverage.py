"""Benchmark: coverage and width of the PPI++ 95% interval for a candidate's accuracy from 40 gold labels.

Run: ``python bench/bench_ppi_coverage.py`` (``--labels N``, ``--resamples N``, ``--seed N``). On the built-in
intent task (``snips-intents``, 693 items) it hides gold and builds, per setting, a synthetic candidate
(right on a share ``accuracy`` of the items, else a random wrong intent) and a synthetic reference — the
proxy — right on a share ``agree`` of the items (else a random wrong intent). Y = the candidate equals gold;
Yhat = the candidate equals the reference's answer. Each resample labels ``--labels`` random items and runs
:func:`kit.stats.ppi_mean` with the rest as unlabelled; the target is the accuracy on all 693 items (what every
label would give). Printed per setting: the coverage of the PPI++ interval (goal >= 94%), of classic PPI and
of the labels-only Wald and Wilson intervals, the mean width ratio PPI++ / labels-only Wald (goal <= 0.8
when the reference agrees with gold on >= 70%), the mean lambda and the mean effective labels.
The answers are synthetic, not the stand-in's: the point is the interval's calibration, not a model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.columns import Col  # noqa: E402
from kit.stats import ppi_mean, wilson_interval  # noqa: E402
from kit.tasks import load_task  # noqa: E402

GOAL_COVERAGE = 0.94
GOAL_RATIO = 0.80
SETTINGS = [(0.60, 0.70), (0.80, 0.70), (0.60, 0.85), (0.80, 0.85), (0.80, 0.95), (0.60, 0.50)]


def _answers(gold: np.ndarray, n_labels: int, share_right: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic answers (label indices): gold on a random share of the items, else a random wrong label."""
    wrong = (gold + rng.integers(1, n_labels, gold.size)) % n_labels
    right = rng.permutation(gold.size) < round(share_right * gold.size)
    return np.where(right, gold, wrong)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=40)
    ap.add_argument("--resamples", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    task = load_task("snips-intents")
    names = sorted({item.gold for item in task.items})
    gold = np.array([names.index(item.gold) for item in task.items])
    rng = np.random.default_rng(args.seed)
    print(f"{task.name}: {gold.size} items, {len(names)} intents; {args.labels} labels, {args.resamples} resamples")
    print("candidate acc | reference agrees with gold | Y~Yhat agree | PPI++ cov | PPI cov | Wald cov | Wilson cov"
          " | width PPI++/Wald | lambda | effective labels")
    t0 = time.perf_counter()
    failures = 0
    for accuracy, agree in SETTINGS:
        cand = _answers(gold, len(names), accuracy, rng)
        ref = _answers(gold, len(names), agree, rng)
        y_all, yhat_all = (cand == gold).astype(float), (cand == ref).astype(float)
        truth = y_all.mean()
        hits = {"ppi++": 0, "ppi": 0, "wald": 0, "wilson": 0}
        ratio, lam, effective = [], [], []
        for _ in range(args.resamples):
            labelled = np.zeros(gold.size, dtype=bool)
            labelled[rng.choice(gold.size, args.labels, replace=False)] = True
            y, yhat, yhat_u = y_all[labelled], yhat_all[labelled], yhat_all[~labelled]
            tuned = ppi_mean(y, yhat, yhat_u).iloc[0]
            classic = ppi_mean(y, yhat, yhat_u, power_tuned=False).iloc[0]
            lo, hi = wilson_interval(y.sum(), y.size)
            hits["ppi++"] += tuned[Col.CI_LOW] <= truth <= tuned[Col.CI_HIGH]
            hits["ppi"] += classic[Col.CI_LOW] <= truth <= classic[Col.CI_HIGH]
            hits["wald"] += tuned[Col.LABELS_ONLY_CI_LOW] <= truth <= tuned[Col.LABELS_ONLY_CI_HIGH]
            hits["wilson"] += lo <= truth <= hi
            ratio.append(tuned[Col.WIDTH_RATIO])
            lam.append(tuned[Col.LAMBDA])
            effective.append(tuned[Col.EFFECTIVE_LABELS])
        cov = {k: v / args.resamples for k, v in hits.items()}
        mean_ratio = float(np.mean([r for r in ratio if np.isfinite(r)]))
        ok = cov["ppi++"] >= GOAL_COVERAGE and (agree < 0.70 or mean_ratio <= GOAL_RATIO)
        failures += not ok
        print(f"{accuracy:13.0%} | {agree:26.0%} | {np.mean(y_all == yhat_all):12.1%} | {cov['ppi++']:9.1%} | "
              f"{cov['ppi']:7.1%} | {cov['wald']:8.1%} | {cov['wilson']:10.1%} | {mean_ratio:16.2f} | "
              f"{np.mean(lam):6.2f} | {np.median(effective):8.0f} (median){'' if ok else '  <- misses a goal'}")
    print(f"{time.perf_counter() - t0:.1f} s; goals: coverage >= {GOAL_COVERAGE:.0%}, width ratio <= {GOAL_RATIO} "
          "where the reference agrees with gold on >= 70%")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
