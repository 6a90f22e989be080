"""Benchmark: a cascade's figures with τ chosen on the items it is scored on (in-sample) against cross-fitted.

Run: ``python bench/bench_cascade_fit.py [RUN_FOLDER ...]`` (``--seeds N``, ``--n N``).

1. Synthetic: ``--seeds`` draws of ``--n`` test items (easy items: the local model right and, with informative
   confidences, confident; hard ones: often wrong; the API right on most), with informative confidences and
   with random ones. On each draw τ is chosen on all items (:func:`kit.cascade.choose_threshold`: the in-sample
   choice, and the τ cross-fitting deploys); its quality and share local are reported in-sample and out of fold
   (:func:`kit.cascade.fit_cascade`, 5 folds) and measured on 20,000 fresh items of the same kind (the truth).
   Printed: the mean of each, and how often the τ is truly within the margin and cross-fitting recommends it.
2. For each run folder given: per task and self-hosted candidate with confidences, the cascade's quality and
   share kept local in-sample and cross-fitted, from the folder's stored scores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.cascade import choose_threshold, fit_cascade, sweep_cascade  # noqa: E402
from kit.columns import Col  # noqa: E402
from kit.economics import ApiPricing, LocalDeployment, ModelPrice  # noqa: E402

LOCAL, API = "local", "api"
SETTINGS = dict(local_arm=LOCAL, hosted_arm=API, pricing=ApiPricing("api", price=ModelPrice(1.0, 2.0)),
                deployment=LocalDeployment(price_per_hour=3.6), volume=1_000_000)
SETTINGS_MARGIN = 0.02  # sweep_cascade's default margin


def draw(n: int, rng: np.random.Generator, prefix: str = "i", *, informative: bool = True) -> pd.DataFrame:
    """Easy items (70%): the local model right on 97%, the API on 98%; hard ones: 45% and 90%. With informative
    confidences the easy items are the confident ones; without, confidence is noise."""
    easy = rng.random(n) < 0.7
    conf = np.where(easy, rng.uniform(0.8, 1.0, n), rng.uniform(0.2, 0.8, n))
    if not informative:
        conf = rng.permutation(conf)
    local_ok = np.where(easy, rng.random(n) < 0.97, rng.random(n) < 0.45)
    api_ok = np.where(easy, rng.random(n) < 0.98, rng.random(n) < 0.90)
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    common = {Col.ITEM_ID: ids, Col.EPOCH: 0, Col.ERROR: None, Col.COMPLETION_TOKENS: 3}
    local = pd.DataFrame({**common, Col.OPTION: LOCAL, Col.SCORE: local_ok.astype(float), Col.CONFIDENCE: conf,
                          Col.LATENCY_S: rng.uniform(0.05, 0.2, n), Col.PROMPT_TOKENS: 300})
    api = pd.DataFrame({**common, Col.OPTION: API, Col.SCORE: api_ok.astype(float), Col.CONFIDENCE: np.nan,
                        Col.LATENCY_S: rng.uniform(0.8, 2.0, n), Col.PROMPT_TOKENS: rng.integers(300, 500, n)})
    return pd.concat([local, api], ignore_index=True)


def synthetic(seeds: int, n: int, *, informative: bool) -> None:
    """Per draw: the τ fitted on all items (in-sample choice = the τ cross-fitting deploys), its figures as each
    way reports them, and its truth on fresh items; then how often each way recommends a cascade."""
    fresh = draw(20_000, np.random.default_rng(10_000), prefix="f", informative=informative)
    rows = []
    for seed in range(seeds):
        scores = draw(n, np.random.default_rng(seed), informative=informative)
        ins = choose_threshold(sweep_cascade(scores, **SETTINGS))
        cf = fit_cascade(scores, **SETTINGS).choice
        if ins.tau is None:
            rows.append({"cascade": False})
            continue
        true = sweep_cascade(fresh, thresholds=[ins.tau], **SETTINGS).iloc[0]
        rows.append({"cascade": True, "in_sample": ins.accuracy, "out_of_fold": cf.accuracy,
                     "truth": true[Col.ACCURACY], "local_in": ins.share_local, "local_oof": cf.share_local,
                     "local_truth": true[Col.SHARE_LOCAL], "truly_ok": true[Col.DIFFERENCE] > -SETTINGS_MARGIN,
                     "cf_recommends": cf.tau is not None})
    frame = pd.DataFrame(rows)
    api_truth = float(fresh.loc[fresh[Col.OPTION] == API, Col.SCORE].mean())
    had = frame[frame["cascade"]]
    kind = "informative" if informative else "uninformative (random)"
    print(f"synthetic, {kind} confidences: {seeds} draws of {n} items; API-only quality on fresh items {api_truth:.1%}")
    if had.empty:
        print("  no draw had a τ passing in-sample")
        return
    print(f"  a τ passed in-sample on {len(had)}/{seeds} draws; on fresh items it is truly within the margin on "
          f"{int(had['truly_ok'].sum())}; cross-fitting recommends it on {int(had['cf_recommends'].sum())}")
    print(f"  quality of that τ: in-sample {had['in_sample'].mean():.2%} (optimism "
          f"{100 * (had['in_sample'] - had['truth']).mean():+.2f} points), out of fold {had['out_of_fold'].mean():.2%} "
          f"({100 * (had['out_of_fold'] - had['truth']).mean():+.2f}), true {had['truth'].mean():.2%}")
    print(f"  share kept local: in-sample {had['local_in'].mean():.1%}, out of fold {had['local_oof'].mean():.1%}, "
          f"true {had['local_truth'].mean():.1%}")


def run_folder(path: Path) -> None:
    from kit.pipeline.pricing import deployment_of, pricing_of
    from kit.pipeline.folder import RunFolder, Table

    folder = RunFolder(path)
    exp = folder.experiment()
    for task in folder.tasks():
        scores = folder.table(Table.SCORES, task=task)
        for o in exp.candidates:
            rows = scores[scores[Col.OPTION] == o.name]
            if not o.self_hosted or rows.empty or rows[Col.CONFIDENCE].isna().all() or exp.reference.self_hosted:
                continue
            settings = dict(local_arm=o.name, hosted_arm=exp.reference.name, pricing=pricing_of(exp.reference),
                            deployment=deployment_of(o, exp), volume=exp.monthly_volume, margin=exp.margin,
                            alpha=exp.alpha)
            ins = choose_threshold(sweep_cascade(scores, **settings))
            cf = fit_cascade(scores, **settings).choice
            print(f"{path.name} · {task} · {o.name} first, {exp.reference.name} below τ ({cf.n_tested} items)")
            print(f"  in-sample:    {ins.statement}")
            print(f"  cross-fitted: {cf.statement}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    start = time.perf_counter()
    synthetic(args.seeds, args.n, informative=True)
    synthetic(args.seeds, args.n, informative=False)
    for folder in args.folders:
        run_folder(folder)
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
