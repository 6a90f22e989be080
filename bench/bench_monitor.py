"""Benchmark: the monitor on simulated monthly traffic — false alarms over 12 looks, and how soon a shift is flagged.

Run: ``python bench/bench_monitor.py`` (``--streams 200 --shifted 100 --window 150 --seed 0``;
``--run DIR``: a report's run folder, e.g. the default report's; default: the run folder tests/report_run.py makes
through the real stages from replayed outputs — SNIPS's real texts and labels, answers written with known rates).

The traffic is the report's own: the snips-intents test items with the answers the deployed option (what the
run folder's verdict recommends, as ``kit export`` reads it) and the reference gave in the report, their
latencies, and the items' texts. A stream is 12 monthly windows of ``--window`` requests drawn with
replacement from those items; half of the requests are shadowed (the reference's answer is logged beside).
The monitor (:func:`kit.monitor.watch`) runs on every stream with the expectations the export wrote
(agreement at decision − margin, latency share under 5%, drift against the first window).

(a) **False alarms.** 200 unshifted streams: the share in which *any* of the 12 monthly looks advises anything
but "still holds" — the family-wise false-alarm rate, to stay at or below alpha — beside the same monitor
with every look at the full alpha (no spending across windows: what reading a fixed-level test monthly does).

(b) **Detection.** Streams whose 7th month is shifted, two ways: (i) a label's share tripled (the items of one
intent drawn three times as often); (ii) a new phrasing (each request wrapped as "hey assistant, could you
please … thanks"; the recorded answers are kept, so only the inputs move). For months of 50, 100, 200 and 400
requests (``--sizes``), the share of streams whose shifted month the monitor flags when it reads that month —
once, at its end, as it is meant to be read — and the smallest size at which it flags 90% of them. Each of the
first 12 windows gets the same level and drift is tested against the first month, so the shifted month is read
beside the first month alone (its look has the 7th look's level; the months between change nothing in it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kit.columns import Col  # noqa: E402
from kit.export import routing_of  # noqa: E402
from kit.monitor import Advice, Windows, watch  # noqa: E402
from kit.monitor.watch import question_values, spent  # noqa: E402
from kit.pipeline.folder import RunFolder, Table  # noqa: E402
from kit.pipeline.quality import task_of  # noqa: E402
from kit.stats.sequential import Settled, confidence_sequence, settle  # noqa: E402

TASK, MONTHS, SHIFT_MONTH, SHADOW = "snips-intents", 12, 7, 0.5


def pool(folder: RunFolder) -> tuple[dict, pd.DataFrame]:
    """The exported route of the task and one row per test item: text, gold, deployed and reference answers."""
    route = routing_of(folder).to_json()["tasks"][TASK]
    scores = folder.table(Table.SCORES, task=TASK)
    scores = scores[scores[Col.EPOCH] == scores[Col.EPOCH].min()]
    deployed = route["option"] if route["option"] in set(scores[Col.OPTION]) else route["first"]
    mine = scores[scores[Col.OPTION] == deployed].set_index(Col.ITEM_ID)
    ref = scores[scores[Col.OPTION] == route["fallback"]].set_index(Col.ITEM_ID)
    common = mine.index.intersection(ref.index)
    task = task_of(folder, TASK)
    items = pd.DataFrame({Col.ITEM_ID: common, Col.TEXT: [task.item(i).text for i in common],
                          Col.GOLD: [task.item(i).gold for i in common],
                          Col.OUTPUT: mine.loc[common, Col.ANSWER].astype(str).to_numpy(),
                          Col.SHADOW_OUTPUT: ref.loc[common, Col.ANSWER].astype(str).to_numpy(),
                          Col.LATENCY_S: pd.to_numeric(mine.loc[common, Col.LATENCY_S]).to_numpy()})
    return route, items


def month(items: pd.DataFrame, m: int, n: int, rng: np.random.Generator, *, weights: np.ndarray | None = None,
          reword: bool = False) -> pd.DataFrame:
    pick = items.iloc[rng.choice(len(items), n, replace=True, p=weights)].reset_index(drop=True)
    out = pick.assign(**{Col.ITEM_ID: [f"m{m}-{j}" for j in range(n)], Col.TASK: TASK,
                         Col.TIME: f"2026-{m:02d}-15T12:00:00+00:00", Col.ERROR: None, Col.GOLD: None})
    out[Col.SHADOW_OUTPUT] = out[Col.SHADOW_OUTPUT].where(rng.random(n) < SHADOW, None)
    if reword:
        out[Col.TEXT] = [f"hey assistant, could you please {t.lower()} thanks" for t in out[Col.TEXT]]
    return out


def tripled(items: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Weights that triple the share of the most common intent among the items (its share s becomes 3s)."""
    counts = items[Col.GOLD].value_counts()
    label, s = counts.index[0], counts.iloc[0] / len(items)
    w = np.where(items[Col.GOLD] == label, 3 * s / counts.iloc[0], (1 - 3 * s) / (len(items) - counts.iloc[0]))
    return w / w.sum(), f"{label} from {s:.0%} to {3 * s:.0%}"


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    return (float(beta.ppf(0.025, k, n - k + 1)) if k else 0.0,
            float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0)


def naive_alarm(route: dict, frame: pd.DataFrame, report, alpha: float) -> bool:
    """The same windows read at the full alpha every month (no split across questions, no spending): the quality
    questions' sequences at level alpha, and the drift tests (the same p-values) against alpha / 2 each."""
    expect = route["expect"]
    for name, part in frame.groupby(Col.TIME, sort=True):
        for q in {k.question for k in report.looks}:
            v, threshold, lo, hi, up = question_values(q, part, expect)
            if v.size and settle(confidence_sequence(v, alpha=alpha, planned_n=len(part), lo=lo, hi=hi),
                                 threshold=threshold, higher_is_better=up) is Settled.FAILS:
                return True
    return any(t.p_value < alpha / 2 for _, t in report.drift)


def flagged(report) -> bool:
    return any(w.advice is not Advice.STILL_HOLDS for w in report.advice)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a report's run folder (default: one made through the real stages by "
                                      "tests/report_run.py in a temporary folder)")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--shifted", type=int, default=100)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--sizes", default="50,100,200,400", help="requests a month for the detection runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.run:
        folder = RunFolder(args.run)
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from report_run import build_report_run

        folder = build_report_run(Path(tempfile.mkdtemp(prefix="bench-monitor-")))
    route, items = pool(folder)
    alpha = route["expect"]["alpha"]
    rng = np.random.default_rng(args.seed)
    windows = Windows(by_month=True)
    print(f"{TASK}: deployed {route['option']} against {route['fallback']}; {len(items)} test items; agreement at "
          f"decision {route['expect']['agreement']:.3f} (threshold − {route['expect']['margin']}); "
          f"latency over {route['expect']['latency_target_s']} s: {np.mean(items[Col.LATENCY_S] > route['expect']['latency_target_s']):.1%} "
          f"of items; {MONTHS} months of {args.window} requests, {SHADOW:.0%} shadowed; alpha {alpha}")

    start = time.perf_counter()
    alarms = naive = 0
    by_advice: dict[str, int] = {}
    for s in range(args.streams):
        frame = pd.concat([month(items, m, args.window, rng) for m in range(1, MONTHS + 1)], ignore_index=True)
        report = watch(route, frame, windows, sizes=False, seed=s)
        alarms += flagged(report)
        for w in report.advice:
            if w.advice is not Advice.STILL_HOLDS:
                by_advice[str(w.advice)] = by_advice.get(str(w.advice), 0) + 1
        naive += naive_alarm(route, frame, report, alpha)
        questions = len({k.question for k in report.looks}) + 1  # and drift
    low, high = clopper_pearson(alarms, args.streams)
    print(f"\n(a) {args.streams} unshifted streams × {MONTHS} monthly looks ({time.perf_counter() - start:.0f} s)")
    print(f"  monitor (alpha spent across windows): any false alarm in {alarms}/{args.streams} = "
          f"{alarms / args.streams:.3f} (95% CI {low:.3f}–{high:.3f}); goal <= {alpha}; alarms by advice: {by_advice}")
    nl, nh = clopper_pearson(naive, args.streams)
    print(f"  every look at the full alpha per question (no spending): {naive}/{args.streams} = "
          f"{naive / args.streams:.3f} (95% CI {nl:.3f}–{nh:.3f})")
    print(f"  level of each monthly look per question: {spent(1, alpha=alpha / questions, horizon=MONTHS):.5f} "
          f"(alpha / {questions} questions × 0.9 / 12)")

    weights, what = tripled(items)
    sizes = [int(x) for x in args.sizes.split(",")]
    for name, kwargs in ((f"a label's share tripled ({what})", {"weights": weights}),
                         ("a new phrasing", {"reword": True})):
        start = time.perf_counter()
        shares = []
        for n in sizes:
            hits = 0
            for s in range(args.shifted):
                frame = pd.concat([month(items, 1, n, rng), month(items, SHIFT_MONTH, n, rng, **kwargs)],
                                  ignore_index=True)
                hits += watch(route, frame, windows, sizes=False, seed=s).advice[-1].advice is not Advice.STILL_HOLDS
            shares.append(hits / args.shifted)
        within = next((n for n, share in zip(sizes, shares) if share >= 0.9), None)
        print(f"\n(b) month {SHIFT_MONTH} shifted — {name}: {args.shifted} streams per size "
              f"({time.perf_counter() - start:.0f} s)")
        print("  share of streams whose shifted month is flagged, by requests a month: "
              + ", ".join(f"{n}: {share:.0%}" for n, share in zip(sizes, shares)))
        print(f"  flagged in >= 90% of streams within {within} items a month" if within else
              f"  not flagged in 90% of streams at up to {sizes[-1]} items a month")


if __name__ == "__main__":
    main()
