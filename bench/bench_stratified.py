"""Benchmark: the stratified labelling design (kit.labels.design, kit.stats.stratified) — coverage of its
design-weighted 95% intervals at 40 labels, and the labels it saves against uniformly random labels.

Run: ``python bench/bench_stratified.py`` (``--resamples N``, ``--labels N``, ``--seed N``, ``--store PATH``,
``--quick``).

**Coverage.** A population is a task's test items with gold labels and two options' answers (a reference and a
candidate). Each resample draws the stratified design the kit draws — strata "all agree" / "reference | candidate"
from the answers, :func:`kit.stats.stratified.allocate` for ``--labels`` labels, a simple random sample in each
stratum — and computes, exactly as ``kit.tasks.ppi_compare`` does for a stratified design, the design-weighted 95%
intervals of (a) the paired difference candidate - reference (0 known where they agree), (b) the candidate's
accuracy (PPI++ within strata, proxy: agrees with the reference) and (c) the floor, candidate - always answering
the most frequent gold label (proxy: agrees with the reference - that label equals the reference's answer). The
target is each quantity with every item labelled (the all-labels value). Goal: >= 94% of resamples cover it.

Populations: (1) real stored answers, when a store holds two options' answers on a labelled built-in task
(``--store``, default runs/kit.sqlite; read from a copy); (2) synthetic settings from two built-in tasks' gold
labels (snips-intents, nace-activities: their real label sets and label frequencies) with agreement 70-98% and
the candidate 3 points below, level with, or 3 points above a reference right on 85%.

**Labels saved.** At agreement 85% and a true difference 0, the labels needed for 80% power to show
non-inferiority at a 5-point margin (one-sided 5%), with each replication drawing a fresh set of N items from the
traffic (so the items' own sampling error counts) and then the labels: uniformly random labels analysed as the kit
does (PPI++ with the reference's answers as the proxy, :func:`kit.stats.ppi_mean_difference`) against the
stratified design (:func:`kit.stats.stratified_mean`). Goal: stratified <= 1/4 of random.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.columns import Col  # noqa: E402
from kit.stats import ppi_mean_difference  # noqa: E402
from kit.stats.stratified import allocate, stratified_mean  # noqa: E402
from kit.tasks import load_task  # noqa: E402

GOAL_COVERAGE = 0.94
GOAL_RATIO = 0.25
AGREE, SPLIT = "all agree", "reference | candidate"


@dataclass(frozen=True)
class Population:
    """Per item: gold, the reference's and the candidate's answers (label indices)."""

    name: str
    gold: np.ndarray
    ref: np.ndarray
    cand: np.ndarray

    @property
    def agree(self) -> np.ndarray:
        return self.ref == self.cand

    def truths(self) -> dict[str, float]:
        base = np.bincount(self.gold).argmax()
        right_c, right_r = (self.cand == self.gold), (self.ref == self.gold)
        return {"difference": float(np.mean(right_c) - np.mean(right_r)), "accuracy": float(np.mean(right_c)),
                "floor": float(np.mean(right_c) - np.mean(self.gold == base))}


def synthetic(name: str, gold: np.ndarray, k: int, *, ref_acc: float, agreement: float, delta: float,
              rng: np.random.Generator) -> Population:
    """The reference right on ``ref_acc``; the candidate agreeing with it on ``agreement`` of the items and off by
    ``delta`` in accuracy (as near as the agreement allows): on the items where they differ, the candidate is right
    on a share q = 0.8 of those the reference got wrong and wrong on those it got right."""
    n = gold.size
    ref_right = rng.random(n) < ref_acc
    ref = np.where(ref_right, gold, (gold + rng.integers(1, k, n)) % k)
    n_split = int(round((1 - agreement) * n))
    q = 0.8
    x = float(np.clip((q - delta / max(1 - agreement, 1e-9)) / (1 + q), 0, 1))  # share of splits where ref is right
    right_ids, wrong_ids = rng.permutation(np.flatnonzero(ref_right)), rng.permutation(np.flatnonzero(~ref_right))
    n_right = min(int(round(x * n_split)), right_ids.size)
    n_wrong = min(n_split - n_right, wrong_ids.size)
    cand = ref.copy()
    for i in right_ids[:n_right]:  # the reference right: the candidate gives another label
        cand[i] = (gold[i] + rng.integers(1, k)) % k
    for i in wrong_ids[:n_wrong]:  # the reference wrong: the candidate right (q), else a third label
        if rng.random() < q or k < 3:
            cand[i] = gold[i]
        else:
            cand[i] = next(c for c in rng.permutation(k) if c != gold[i] and c != ref[i])
    return Population(name=name, gold=gold, ref=ref, cand=cand)


def stratified_draw(pop: Population, labels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    strata = np.where(pop.agree, AGREE, SPLIT)
    sizes = {h: int((strata == h).sum()) for h in (AGREE, SPLIT) if (strata == h).any()}
    n_h = allocate(sizes, {AGREE: 0.0, SPLIT: 1.0}, total=labels)
    labelled = np.zeros(strata.size, bool)
    for h, n in n_h.items():
        labelled[rng.choice(np.flatnonzero(strata == h), n, replace=False)] = True
    return strata, labelled


def estimates(pop: Population, strata: np.ndarray, labelled: np.ndarray, *, alpha: float = 0.05) -> dict[str, tuple]:
    """The three design-weighted intervals, as kit.tasks.ppi_compare computes them for a stratified design."""
    right_c = (pop.cand == pop.gold).astype(float)
    right_r = (pop.ref == pop.gold).astype(float)
    agree = pop.agree.astype(float)
    # the floor's label: the most frequent among the labels, each weighed by 1 / its inclusion probability
    incl = {h: labelled[strata == h].sum() / (strata == h).sum() for h in set(strata)}
    weights = np.array([1 / incl[h] for h in strata[labelled]])
    base = int(np.argmax(np.bincount(pop.gold[labelled], weights=weights, minlength=pop.gold.max() + 1)))
    right_b = (pop.gold == base).astype(float)
    agree_b = (pop.ref == base).astype(float)
    out = {}
    diff = (-1.0, 0.0, 1.0)
    for name, y, proxy, known, support in (
            ("difference", right_c - right_r, agree - 1, pop.agree & ~labelled, diff),
            ("accuracy", right_c, agree, None, (0.0, 1.0)), ("floor", right_c - right_b, agree - agree_b, None, diff)):
        values = np.where(labelled, y, np.nan)
        if known is not None:
            values[known] = 0.0
        r = stratified_mean(values, strata=strata, labelled=labelled, known=known, proxy=proxy, alpha=alpha,
                            support=support, labels_only=False).iloc[0]
        out[name] = (float(r[Col.CI_LOW]), float(r[Col.CI_HIGH]), float(r[Col.EFFECTIVE_LABELS]))
    truth_floor = float(np.mean(right_c) - np.mean(right_b))
    out["floor_truth"] = (truth_floor,)
    return out


def coverage(pop: Population, *, labels: int, resamples: int, rng: np.random.Generator) -> dict[str, float]:
    truth = pop.truths()
    hits = {k: 0 for k in ("difference", "accuracy", "floor")}
    eff = []
    for _ in range(resamples):
        strata, labelled = stratified_draw(pop, labels, rng)
        est = estimates(pop, strata, labelled)
        target = {**truth, "floor": est["floor_truth"][0]}  # the floor against the label the design chose
        for k in hits:
            hits[k] += est[k][0] <= target[k] <= est[k][1]
        eff.append(est["difference"][2])
    return {**{k: v / resamples for k, v in hits.items()}, "effective": float(np.median(eff))}


def real_populations(stores: list[Path]) -> list[Population]:
    """Two options' stored answers on a labelled built-in task (the first arm in name order is the reference)."""
    from kit.run.store import Store

    out = []
    for path in stores:
        if not path.is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "kit.sqlite"
            shutil.copy(path, copy)
            with Store(copy) as store:
                for name in ("snips-intents", "nace-activities", "fine-food-reviews"):
                    task = load_task(name)
                    arms = store.arms(task=name)
                    if len(arms) < 2:
                        continue
                    labels = list(task.type.labels)
                    frame = store.responses(task=name, epoch=0, item_ids=[i.id for i in task.test])
                    table = frame.pivot(index=Col.ITEM_ID, columns=Col.ARM, values=Col.ANSWER)[arms[:2]].dropna()
                    gold = {i.id: i.gold for i in task.test}
                    code = {label: n for n, label in enumerate(labels)}
                    ids = [i for i in table.index if gold.get(i) in code]
                    out.append(Population(name=f"{name}: {arms[1]} vs {arms[0]} (stored)",
                                          gold=np.array([code[gold[i]] for i in ids]),
                                          ref=np.array([code.get(str(a), -1) for a in table.loc[ids, arms[0]]]),
                                          cand=np.array([code.get(str(a), -2) for a in table.loc[ids, arms[1]]])))
    return out


def task_gold(name: str) -> tuple[np.ndarray, int]:
    task = load_task(name)
    labels = list(task.type.labels)
    return np.array([labels.index(i.gold) for i in task.test if i.gold in labels]), len(labels)


def power(design: str, *, n: int, items: int, p: np.ndarray, k: int, reps: int, margin: float,
          rng: np.random.Generator) -> float:
    """The share of replications (fresh items from the traffic, then labels) whose one-sided 95% lower bound of
    the difference is above -margin."""
    wins = 0
    for _ in range(reps):
        gold = rng.choice(k, size=items, p=p)
        pop = synthetic("power", gold, k, ref_acc=0.85, agreement=0.85, delta=0.0, rng=rng)
        right_c, right_r = (pop.cand == gold).astype(float), (pop.ref == gold).astype(float)
        if design == "stratified":
            strata, labelled = stratified_draw(pop, n, rng)
            y = np.where(labelled, right_c - right_r, np.nan)
            known = pop.agree & ~labelled
            y[known] = 0.0
            low = stratified_mean(y, strata=strata, labelled=labelled, known=known, alpha=0.10,
                                  support=(-1.0, 0.0, 1.0), labels_only=False).iloc[0][Col.CI_LOW]
        else:
            labelled = np.zeros(items, bool)
            labelled[rng.choice(items, n, replace=False)] = True
            agree = pop.agree.astype(float)
            ones = np.ones(items)
            low = ppi_mean_difference(right_c[labelled], right_r[labelled], agree[labelled], ones[labelled],
                                      agree[~labelled], ones[~labelled], alpha=0.10).iloc[0][Col.CI_LOW]
        wins += low > -margin
    return wins / reps


def labels_needed(design: str, grid: list[int], **kw) -> tuple[float, list[tuple[int, float]]]:
    seen = []
    for n in grid:
        pw = power(design, n=n, **kw)
        seen.append((n, pw))
        if pw >= 0.80:
            if len(seen) == 1:
                return float(n), seen
            (n0, p0), (n1, p1) = seen[-2], seen[-1]
            return float(n0 + (0.80 - p0) * (n1 - n0) / (p1 - p0)), seen
    return float("inf"), seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--labels", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", action="append", type=Path, default=None)
    ap.add_argument("--power-reps", type=int, default=400)
    ap.add_argument("--items", type=int, action="append", default=None, help="test items for the power runs")
    ap.add_argument("--quick", action="store_true", help="fewer settings and resamples (a smoke run)")
    ap.add_argument("--tasks", nargs="+", default=["snips-intents", "nace-activities"])
    ap.add_argument("--agreements", nargs="+", type=float, default=None)
    ap.add_argument("--part", choices=["coverage", "power", "both"], default="both")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    resamples = 100 if args.quick else args.resamples
    t0 = time.perf_counter()

    pops = real_populations(args.store or [Path("runs/kit.sqlite")]) if args.part != "power" else []
    if not pops and args.part != "power":
        print("no store with two options' stored answers on a built-in labelled task: synthetic settings only")
    for name in args.tasks if args.part != "power" else ():
        gold, k = task_gold(name)
        agreements = args.agreements or ((0.70, 0.85, 0.98) if args.quick else (0.70, 0.85, 0.92, 0.98))
        for agreement in agreements:
            for delta in (-0.03, 0.0, 0.03):
                pops.append(synthetic(f"{name} ({gold.size} items, {k} labels): agreement {agreement:.0%}, "
                                      f"candidate {delta:+.0%}", gold, k, ref_acc=0.85, agreement=agreement,
                                      delta=delta, rng=rng))
    if pops:
        print(f"Coverage of the design-weighted 95% intervals at {args.labels} labels, {resamples} resamples each "
              f"(goal >= {GOAL_COVERAGE:.0%})")
        print(f"{'population':<74} {'agree':>6} {'true d':>7} {'cov d':>6} {'cov acc':>7} {'cov floor':>9} "
              f"{'eff. labels':>11}")
    worst = 1.0 if pops else float("nan")
    for pop in pops:
        c = coverage(pop, labels=args.labels, resamples=resamples, rng=rng)
        worst = min(worst, c["difference"], c["accuracy"], c["floor"])
        print(f"{pop.name:<74} {pop.agree.mean():>6.1%} {pop.truths()['difference']:>+7.3f} "
              f"{c['difference']:>6.1%} {c['accuracy']:>7.1%} {c['floor']:>9.1%} {c['effective']:>11.0f}")
    if pops:
        print(f"worst coverage: {worst:.1%} ({'meets' if worst >= GOAL_COVERAGE else 'MISSES'} the goal)")
    if args.part == "coverage":
        print(f"\n{time.perf_counter() - t0:.0f} s")
        return

    gold, k = task_gold("snips-intents")
    p = np.bincount(gold, minlength=k) / gold.size
    print("\nLabels needed for 80% power, non-inferiority at a 5-point margin (one-sided 5%), agreement 85%, true "
          f"difference 0, {args.power_reps} replications per size (fresh items from the traffic each time)")
    for items in args.items or ([2000] if args.quick else [2000, 10000]):
        kw = dict(items=items, p=p, k=k, reps=50 if args.quick else args.power_reps, margin=0.05, rng=rng)
        strat, s_seen = labels_needed("stratified", [20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200], **kw)
        rand, r_seen = labels_needed("random", [100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700], **kw)
        print(f"  {items:>6} items: random {rand:.0f} labels (power {r_seen}), stratified {strat:.0f} labels "
              f"(power {s_seen}); ratio stratified / random = {strat / rand:.2f} "
              f"({'meets' if strat / rand <= GOAL_RATIO else 'MISSES'} the goal <= {GOAL_RATIO})")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
