"""Benchmark: runs that stop when the verdict is settled — false positives under the null, items saved on real answers.

Run: ``python bench/bench_sequential.py`` (``--runs N``, ``--seed N``, ``--store PATH --run DIR``).

(a) **Null simulation.** A candidate and a reference answer paired right/wrong items; rounds of 40 items up to
400. Two nulls: equal true accuracy (a false positive is "better"), and a candidate exactly at the margin
(2 points worse: a false positive is "passes", non-inferior). Per case, the share of runs in which the
sequential rule (the kit's confidence sequence, :mod:`kit.stats.sequential`) ever concludes the false thing,
beside the naive rule — the fixed-sample test the kit runs on a fixed run (Tango's bound), checked after every
round and stopped at the first success — and that same test at one fixed look of 400 items. A third case with a
real 10-point gain gives the items a sequential run needs.

(b) **Stored answers of the default experiment.** A report run's folder and its store (copied to a temporary
folder; the original is never written): the snips-intents answers of API, SmolLM2 and SmolLM2 + LoRA on the
first 100 test items, replayed in rounds of 40 through the kit's own stopping rule
(:func:`kit.pipeline.looks.round_looks`); at the stop, the quality, costs and verdict stages run on the
items answered so far and the recommendation is compared with the fixed run's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.columns import Col  # noqa: E402
from kit.stats.paired import tango_bound  # noqa: E402
from kit.stats.sequential import sequence_path  # noqa: E402

ALPHA, MARGIN, ROUND, MAX_ITEMS = 0.05, 0.02, 40, 400
# (name, p10 = only the candidate right, p01 = only the reference right, the false conclusion)
CASES = [("equal accuracy", 0.08, 0.08, "better"), ("at the margin (-2 points)", 0.07, 0.09, "passes"),
         ("10 points better", 0.15, 0.05, None)]


def simulate(p10: float, p01: float, false: str | None, *, runs: int, rng: np.random.Generator) -> dict[str, float]:
    """One case: false-positive rates of the sequential and naive rules, items at the sequential stop."""
    looks = np.arange(ROUND, MAX_ITEMS + 1, ROUND)
    threshold = 0.0 if false == "better" else -MARGIN
    seq_fp = naive_fp = fixed_fp = 0
    stops = []
    for _ in range(runs):
        d = rng.choice([1.0, -1.0, 0.0], size=MAX_ITEMS, p=[p10, p01, 1 - p10 - p01])
        path = sequence_path(d, alpha=ALPHA, planned_n=MAX_ITEMS, looks=looks)
        low, high = path[Col.CS_LOW].to_numpy(), path[Col.CS_HIGH].to_numpy()
        # the stage's stop: non-inferiority settled (passes or fails); "better" read at every look up to the stop
        settled = np.flatnonzero((low > -MARGIN) | (high < -MARGIN))
        stop = int(settled[0]) if settled.size else len(looks) - 1
        stops.append(int(looks[stop]))
        seq_fp += bool((low[:stop + 1] > threshold).any())
        hit = False
        for n in looks:  # the naive rule: Tango's one-sided bound after every round, stop at the first success
            x, y = int((d[:n] == 1).sum()), int((d[:n] == -1).sum())
            if tango_bound(x, y, int(n), 1 - ALPHA, upper=False) > threshold:
                hit = True
                break
        naive_fp += hit
        x, y = int((d == 1).sum()), int((d == -1).sum())
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
    print(f"(a) null simulation: {args.runs} runs per case, rounds of {ROUND} up to {MAX_ITEMS} items, alpha "
          f"{ALPHA}, margin {MARGIN}")
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
