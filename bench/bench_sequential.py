"""Benchmark: runs that stop when the verdict is settled — error rates at every n, items saved on real answers.

Run: ``python bench/bench_sequential.py`` (``--runs N``, ``--seed N``, ``--store PATH --run DIR``).

(a) **Error rates at every n, monitored after every item.** The kit's betting confidence sequence
(:mod:`kit.stats.sequential`) beside the asymptotic sequence it replaced (Waudby-Smith et al., AoS 2024, as the
kit had it: two-sided at alpha, one pseudo-item of variance), both tuned for 400 items, looked at after every item:

* *shares against a 5 % limit* (p95 within a latency target): true shares of 0.5–10 % slow items; the share of
  runs that have concluded "within the limit" (upper bound below 5 %) by n = 10, 20, 40, 100, 400. At a true share
  of 5 % or more that is a false conclusion (must stay <= alpha); below 5 % it is power;
* *paired differences at the margin*: right/wrong pairs with the candidate exactly ``margin`` worse; the share of
  runs that have concluded "non-inferior" (lower bound above -margin) by each n.

(a2) **Rounds of 40 up to 400 items**, non-inferiority at a 2-point margin: the sequential rule beside the naive
rule — the fixed-sample test a fixed run uses (Tango's bound) checked after every round, stopping at the first
success — and that test once at 400 items. A third case with a real 10-point gain gives the items a sequential
run needs.

(b) **Stored answers of the default experiment.** A report run's folder and its store (copied to a temporary
folder; the original is never written): the snips-intents answers of API, SmolLM2 and SmolLM2 + LoRA on the
first 100 test items, replayed in rounds of 40 through the kit's own stopping rule
(:func:`kit.pipeline.looks.round_looks`); at the stop, the quality, costs and verdict stages run on the
items answered so far and the recommendation is compared with the fixed run's.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.columns import Col  # noqa: E402
from kit.stats.paired import tango_bound  # noqa: E402
from kit.stats.sequential import bounds_path  # noqa: E402

ALPHA, MARGIN, ROUND, MAX_ITEMS = 0.05, 0.02, 40, 400
LOOKS = (10, 20, 40, 100, 400)
SHARES, LIMIT = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.10), 0.05
# paired right/wrong at the margin: (name, p10 = only the candidate right, p01 = only the reference right, margin)
AT_MARGIN = [("86% agreement, 5-point margin", 0.045, 0.095, 0.05), ("84% agreement, 2-point margin", 0.07, 0.09,
                                                                        0.02)]
# (name, p10, p01, the false conclusion) for the rounds table
CASES = [("equal accuracy", 0.08, 0.08, "better"), ("at the margin (-2 points)", 0.07, 0.09, "passes"),
         ("10 points better", 0.15, 0.05, None)]


def asymptotic_path(x: np.ndarray, *, lo: float, hi: float, planned_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The asymptotic sequence the kit used before (Waudby-Smith, Arnold, Wu, Howard & Ramdas, AoS 2024, Thm 2.2,
    rho tuned for ``planned_n``, the sd shrunk by one pseudo-item), for comparison only: runs x items."""
    t = np.arange(1, x.shape[1] + 1, dtype=float)
    a = -2.0 * math.log(ALPHA)
    r2 = (a + math.log(a + 1.0)) / planned_n
    bound = np.sqrt(2.0 * (t * r2 + 1.0) / (t * t * r2) * np.log(np.sqrt(t * r2 + 1.0) / ALPHA))
    mean = np.cumsum(x, axis=1) / t
    ss = np.maximum(np.cumsum(x * x, axis=1) - t * mean * mean, 0.0)
    half = np.sqrt((ss + ((hi - lo) / 2.0) ** 2) / (t + 1.0)) * bound
    return np.maximum(lo, mean - half), np.minimum(hi, mean + half)


def by_n(concluded: np.ndarray) -> list[float]:
    """The share of runs that have concluded by each n of LOOKS (concluded: runs x items, at each item)."""
    ever = np.logical_or.accumulate(concluded, axis=1)
    return [float(ever[:, n - 1].mean()) for n in LOOKS]


def shares_table(runs: int, rng: np.random.Generator) -> None:
    print(f"shares against a {100 * LIMIT:g}% limit: runs concluding 'within the limit' by n (betting / "
          f"asymptotic), {runs} runs, looked at after every item")
    print("| true share slow | " + " | ".join(f"n = {n}" for n in LOOKS) + " |")
    print("|---|" + "---|" * len(LOOKS))
    for p in SHARES:
        start = time.perf_counter()
        x = (rng.random((runs, MAX_ITEMS)) < p).astype(float)
        _, high = bounds_path(x, alpha=ALPHA, planned_n=MAX_ITEMS, lo=0, hi=1)
        _, old_high = asymptotic_path(x, lo=0, hi=1, planned_n=MAX_ITEMS)
        new, old = by_n(high < LIMIT), by_n(old_high < LIMIT)
        tag = "**false**" if p >= LIMIT else "power"
        print(f"| {100 * p:g}% ({tag}) | " + " | ".join(
            f"{100 * a:.1f}% / {100 * b:.1f}%" for a, b in zip(new, old))
              + f" |  ({time.perf_counter() - start:.0f} s)")


def margin_table(runs: int, rng: np.random.Generator) -> None:
    print(f"\npaired differences at the margin: runs concluding 'non-inferior' by n (betting / asymptotic), {runs} "
          "runs, looked at after every item")
    print("| case | " + " | ".join(f"n = {n}" for n in LOOKS) + " |")
    print("|---|" + "---|" * len(LOOKS))
    for name, p10, p01, margin in AT_MARGIN:
        start = time.perf_counter()
        d = rng.choice([1.0, -1.0, 0.0], size=(runs, MAX_ITEMS), p=[p10, p01, 1 - p10 - p01])
        low, _ = bounds_path(d, alpha=ALPHA, planned_n=MAX_ITEMS)
        old_low, _ = asymptotic_path(d, lo=-1, hi=1, planned_n=MAX_ITEMS)
        new, old = by_n(low > -margin), by_n(old_low > -margin)
        print(f"| {name} (p10 {p10:g}, p01 {p01:g}) | " + " | ".join(
            f"{100 * a:.1f}% / {100 * b:.1f}%" for a, b in zip(new, old))
              + f" |  ({time.perf_counter() - start:.0f} s)")


def simulate(p10: float, p01: float, false: str | None, *, runs: int, rng: np.random.Generator) -> dict[str, float]:
    """One case in rounds: false-positive rates of the sequential and naive rules, items at the sequential stop."""
    looks = np.arange(ROUND, MAX_ITEMS + 1, ROUND)
    threshold = 0.0 if false == "better" else -MARGIN
    d = rng.choice([1.0, -1.0, 0.0], size=(runs, MAX_ITEMS), p=[p10, p01, 1 - p10 - p01])
    low, high = bounds_path(d, alpha=ALPHA, planned_n=MAX_ITEMS)
    low, high = low[:, looks - 1], high[:, looks - 1]
    seq_fp = naive_fp = fixed_fp = 0
    stops = []
    for r in range(runs):
        # the stage's stop: non-inferiority settled (passes or fails); "better" read at every look up to the stop
        settled = np.flatnonzero((low[r] > -MARGIN) | (high[r] < -MARGIN))
        stop = int(settled[0]) if settled.size else len(looks) - 1
        stops.append(int(looks[stop]))
        seq_fp += bool((low[r, :stop + 1] > threshold).any())
        for n in looks:  # the naive rule: Tango's one-sided bound after every round, stop at the first success
            x, y = int((d[r, :n] == 1).sum()), int((d[r, :n] == -1).sum())
            if tango_bound(x, y, int(n), 1 - ALPHA, upper=False) > threshold:
                naive_fp += 1
                break
        x, y = int((d[r] == 1).sum()), int((d[r] == -1).sum())
        fixed_fp += tango_bound(x, y, MAX_ITEMS, 1 - ALPHA, upper=False) > threshold
    return {"sequential": seq_fp / runs, "naive": naive_fp / runs, "fixed": fixed_fp / runs,
            "items_mean": float(np.mean(stops)), "items_median": float(np.median(stops))}


def replay(store: Path, run: Path, *, task: str = "snips-intents", items: int = 100) -> dict[str, object]:
    """The stored answers of a default report run, replayed in rounds through the stopping rule; then the quality,
    costs and verdict stages on the items answered at the stop (a copy of the folder and the store)."""
    import pandas as pd

    from kit.experiment import Experiment, SequentialSpec
    from kit.pipeline import costs, quality, verdict
    from kit.pipeline.folder import Doc, RunFolder, Table
    from kit.pipeline.looks import Questions, round_looks, settled_options
    from kit.pipeline.pricing import answers_usd
    from kit.pipeline.scores import responses, scored, task_of
    from kit.pipeline.sequential import plan_for

    tmp = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    shutil.copy2(store, tmp / "kit.sqlite")
    shutil.copytree(run, tmp / "run", ignore=shutil.ignore_patterns("*.ipynb"))
    folder = RunFolder(tmp / "run")
    folder.save_doc(Doc.STORE, {"path": str(tmp / "kit.sqlite")})
    fixed_decision = folder.doc(Doc.DECISION, task=task)
    fixed_compare = folder.table(Table.COMPARE, task=task).set_index(Col.OPTION)[Col.CONCLUSION_ADJUSTED].to_dict()
    exp = folder.experiment()
    exp = Experiment.from_dict({**exp.to_dict(), "tasks": {task: items},
                                "sequential": SequentialSpec(round_items=ROUND).model_dump()})
    folder.save_experiment(exp)
    t = task_of(exp, task)
    order = [i.id for i in t.test][:items]
    scores = scored(t, responses(folder, task), reference=exp.reference_name)
    scores = scores[scores[Col.ITEM_ID].isin(order)]
    plan = plan_for(exp, t)
    names = list(dict.fromkeys(scores[Col.OPTION]))
    tables, done, stopped = [], 0, "item cap"
    for round_no in range(1, 1 + -(-plan.max_items // plan.round_items)):
        done = min(round_no * plan.round_items, plan.max_items)
        now = scores[scores[Col.ITEM_ID].isin(order[:done])]
        looks = round_looks(t, now, questions=Questions.of(exp), round_no=round_no, items=done, planned_n=plan.max_items)
        tables.append(looks)
        if all(settled_options(looks, names).values()):
            stopped = "settled"
            break
    # the stages on the items answered at the stop: the run records keep only those questions
    runs = [r for r in folder.runs(task=task)]
    kept = set(order[:done])
    from dataclasses import replace
    folder.save_runs([replace(r, keys={k: v for k, v in r.keys.items() if k in kept}, items=len(kept)) for r in runs])
    table = pd.concat(tables, ignore_index=True)
    folder.save_table(Table.SEQUENTIAL, table, task=task)
    quality.quality_stage(folder)
    costs.costs_stage(folder)
    decision = verdict.verdict_stage(folder)[task]
    compare = folder.table(Table.COMPARE, task=task).set_index(Col.OPTION)[Col.CONCLUSION_ADJUSTED].to_dict()
    last = table[table[Col.ROUND] == table[Col.ROUND].max()]
    ranking = folder.table(Table.RANKING, task=task).set_index(Col.OPTION)[Col.STATUS].to_dict()
    fixed_ranking = pd.read_json(run / "tasks" / task / "ranking.json", orient="split").set_index(Col.OPTION)[
        Col.STATUS].to_dict()
    spent = {o.name: answers_usd(o, scores[scores[Col.ITEM_ID].isin(kept) & (scores[Col.OPTION] == o.name)])
             for o in exp.options_for(task)}
    planned = {o.name: answers_usd(o, scores[scores[Col.OPTION] == o.name]) for o in exp.options_for(task)}
    shutil.rmtree(tmp)
    return {"items": done, "of": items, "rounds": int(table[Col.ROUND].max()), "stopped": stopped,
            "recommended": decision.recommended, "fixed_recommended": fixed_decision["recommended"],
            "compare": compare, "fixed_compare": fixed_compare, "ranking": ranking, "fixed_ranking": fixed_ranking,
            "spent": spent, "planned": planned,
            "looks": last[[Col.OPTION, Col.QUESTION, Col.BASELINE, Col.ESTIMATE, Col.CS_LOW, Col.CS_HIGH,
                           Col.STATUS]].round(3).to_string(index=False),
            "rounds_table": table.groupby(Col.ROUND)[Col.STATUS].value_counts().unstack(fill_value=0).to_string()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", type=Path, default=None, help="the response store (default: runs/kit.sqlite)")
    ap.add_argument("--run", type=Path, default=None, help="a default report's run folder (default: the newest)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"(a) error rates at every n: alpha {ALPHA}, tuned for {MAX_ITEMS} items")
    shares_table(args.runs, rng)
    margin_table(args.runs, rng)
    print(f"\n(a2) rounds of {ROUND} up to {MAX_ITEMS} items, margin {MARGIN}, {args.runs} runs per case")
    print("| case | false conclusion | sequential (CS) | naive: fixed test after every round | fixed test at "
          f"{MAX_ITEMS} | items at the sequential stop (mean / median) |")
    print("|---|---|---|---|---|---|")
    for name, p10, p01, false in CASES:
        start = time.perf_counter()
        r = simulate(p10, p01, false, runs=args.runs, rng=rng)
        if false is None:
            print(f"| {name} | (none: a real gain) | shown better: {100 * r['sequential']:.1f}% | "
                  f"{100 * r['naive']:.1f}% | {100 * r['fixed']:.1f}% | {r['items_mean']:.0f} / "
                  f"{r['items_median']:.0f} |  ({time.perf_counter() - start:.1f} s)")
        else:
            print(f"| {name} | {false} | **{100 * r['sequential']:.1f}%** | {100 * r['naive']:.1f}% | "
                  f"{100 * r['fixed']:.1f}% | {r['items_mean']:.0f} / {r['items_median']:.0f} |  "
                  f"({time.perf_counter() - start:.1f} s)")
    from kit.paths import default_store, runs_dir

    store = args.store or default_store()
    run = args.run or max((p for p in runs_dir().glob("report-*") if (p / "runs.json").is_file()), default=None)
    if not store.is_file() or run is None:
        print("(b) skipped: no store or report run folder (pass --store and --run)")
        return 0
    start = time.perf_counter()
    r = replay(store, run)
    print(f"\n(b) stored answers of {run.name}: stopped after {r['items']} of {r['of']} items (round {r['rounds']}, "
          f"{r['stopped']}) in {time.perf_counter() - start:.1f} s")
    print(f"recommended: {r['recommended']} (fixed run: {r['fixed_recommended']})")
    print(f"bar conclusions: {json.dumps(r['compare'])} (fixed run: {json.dumps(r['fixed_compare'])})")
    print(f"statuses: {json.dumps(r['ranking'])} (fixed run: {json.dumps(r['fixed_ranking'])})")
    print("spent (USD, as the costs stage prices answers): " + ", ".join(
        f"{k} ${r['spent'][k]:.5f} of ${r['planned'][k]:.5f}" for k in r["spent"]))
    print(r["looks"])
    print(r["rounds_table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
