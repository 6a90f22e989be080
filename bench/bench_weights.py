"""Converted weights (the llama.cpp arms' ``weights`` option): speed and answers of each type, side by side.

    .venv/bin/python bench/bench_weights.py --items 100

For the embedded SmolLM2 (the file as shipped: Q4_1) and its copies converted once by llama.cpp's own quantizer
(``q8_0``, ``bf16``, ``f32``; :mod:`kit.models.convert`), in one process, one after another on the same items:

- raw llama.cpp speed: prompt evaluation (tokens/s over a 300-token prompt, best of 3) and decoding (tokens/s,
  one token at a time);
- the default report's costliest answers: SNIPS test items with 3 similar shots (no shared prefix), through the
  kit's runner and a fresh store: seconds, items/s and accuracy, and the items whose score differs from the
  native file's (discordant pairs, with the exact McNemar p-value);
- how far each type's label probabilities stray from those of the exact weights (``f32`` holds Q4_1's values
  exactly): the largest and mean absolute difference over the first ``--probs`` items.

Ratios are against the native file, measured in the same run. ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from kit.arms import get_arm
from kit.models.convert import WeightType
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task
from kit.tasks.prompts import PromptVariant, build_request
from kit.tasks.scoring import score_responses

MODEL = "smollm2-135m-instruct"
SIMILAR = PromptVariant(name="3 similar", shots=3, shot_choice="similar")


def raw_speed(arm) -> tuple[float, float]:
    """Prompt tokens/s (300 tokens, best of 3) and decoding tokens/s (30 tokens one at a time) of the arm's llama."""
    llm = arm.llm
    tokens = [int(t) for t in np.random.default_rng(0).integers(100, 40000, 300)]
    best = np.inf
    for _ in range(3):
        llm.reset()
        began = time.perf_counter()
        llm.eval(tokens)
        best = min(best, time.perf_counter() - began)
    llm.reset()
    llm.eval(tokens[:50])
    began = time.perf_counter()
    for token in tokens[50:80]:
        llm.eval([token])
    return len(tokens) / best, 30 / (time.perf_counter() - began)


def answers(task, arm, items) -> tuple[float, dict[str, float]]:
    """Seconds for the items with 3 similar shots (the kit's runner, a fresh store) and each item's score."""
    store = Store(Path(tempfile.mkdtemp()) / "bench.sqlite")
    began = time.perf_counter()
    summary = run_arm(task, arm, store=store, items=items, variant=SIMILAR, max_tokens=32, label=str(arm.spec))
    seconds = time.perf_counter() - began
    scores = score_responses(task, store.rows(summary.keys.values()).assign(option="local"))
    return seconds, dict(zip(scores["item_id"], scores["score"].astype(float)))


def label_probs(task, arm, items) -> dict[str, dict[str, float]]:
    """Each item's label probabilities (3 similar shots), asked of the arm directly."""
    return {item.id: dict(arm.complete(build_request(task, item, variant=SIMILAR)).extra["label_probs"])
            for item in items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="SNIPS test items answered by each type")
    parser.add_argument("--probs", type=int, default=30, help="items whose label probabilities are compared")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    task = load_task("snips-intents")
    items = task.test[:args.items]
    out: dict[str, dict] = {}
    for weights in WeightType:
        with get_arm(f"llama_cpp:{MODEL}", n_ctx=4096, weights=weights.value) as arm:
            prompt_tps, decode_tps = raw_speed(arm)
            seconds, scores = answers(task, arm, items)
            probs = label_probs(task, arm, items[:args.probs])
            out[weights.value] = {"quant": arm.model.quant, "size_mb": arm.model.size / 1e6, "prompt_tok_s": prompt_tps,
                                  "decode_tok_s": decode_tps, "seconds": seconds, "items_per_s": len(items) / seconds,
                                  "accuracy": float(np.mean(list(scores.values()))), "scores": scores, "probs": probs}
        print(f"{weights.value:>6}: {out[weights.value]['quant']}, {out[weights.value]['size_mb']:.0f} MB, "
              f"prompt {prompt_tps:.0f} tok/s, decode {decode_tps:.0f} tok/s, {len(items)} items in {seconds:.1f} s",
              flush=True)
    native, exact = out["native"], out["f32"]
    print(f"\nSNIPS, {len(items)} test items, 3 similar shots (ratios against the native file, this run):")
    print(f"{'weights':>8} {'MB':>6} {'prompt':>8} {'decode':>8} {'items/s':>8} {'x native':>9} {'accuracy':>9} "
          f"{'discordant':>11} {'McNemar p':>10} {'max |dp|':>9} {'mean |dp|':>10}")
    for name, f in out.items():
        ids = list(native["scores"])
        diff = [(native["scores"][i], f["scores"][i]) for i in ids if native["scores"][i] != f["scores"][i]]
        n_disc = len(diff)
        wins = sum(1 for a, b in diff if b > a)
        p = binomtest(wins, n_disc).pvalue if n_disc else 1.0  # exact McNemar: the discordant pairs' sign test
        asked = list(exact["probs"])
        gaps = [abs(f["probs"][i][k] - exact["probs"][i][k]) for i in asked for k in exact["probs"][i]]
        item_max = [max(abs(f["probs"][i][k] - exact["probs"][i][k]) for k in exact["probs"][i]) for i in asked]
        f.update({"discordant": n_disc, "mcnemar_p": p, "max_dp_vs_f32": max(item_max), "mean_dp_vs_f32":
                  float(np.mean(gaps)), "speedup": f["items_per_s"] / native["items_per_s"]})
        print(f"{name:>8} {f['size_mb']:>6.0f} {f['prompt_tok_s']:>8.0f} {f['decode_tok_s']:>8.0f} "
              f"{f['items_per_s']:>8.2f} {f['speedup']:>9.2f} {f['accuracy']:>9.3f} {n_disc:>11d} {p:>10.2f} "
              f"{f['max_dp_vs_f32']:>9.3f} {f['mean_dp_vs_f32']:>10.4f}")
    if args.json:
        args.json.write_text(json.dumps({k: {m: v for m, v in f.items() if m not in ("scores", "probs")}
                                         for k, f in out.items()}, indent=1))


if __name__ == "__main__":
    main()
