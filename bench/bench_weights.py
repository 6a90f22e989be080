"""Converted weights (the llama.cpp arms' ``weights`` option): speed and answers of each type, side by side.

    .venv/bin/python bench/bench_weights.py --items 100 --adapter runs/adapters/snips-intents.*.lora.gguf

For the embedded SmolLM2 (the file as shipped: Q4_1) and its copies converted once by llama.cpp's own quantizer
(``q8_0``, ``bf16``, ``f32``; :mod:`kit.models.convert`), in one process, one after another on the same items:

- raw llama.cpp speed: prompt evaluation (tokens/s over a 300-token prompt, best of 3) and decoding (tokens/s,
  one token at a time);
- the default report's costliest answers: SNIPS test items with 3 similar shots (no shared prefix), through the
  kit's runner and a fresh store: seconds, items/s and accuracy, and the items whose score differs from the
  native file's (discordant pairs, with the exact McNemar p-value); the same for the HHS extraction items
  (answers generated under a JSON grammar: decoding speed counts) and, with ``--adapter``, a LoRA adapter's
  0-shot SNIPS answers on each type's base (the default report's is in ``runs/adapters/``);
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
from kit.models.convert import WeightType, resolve_weights
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, build_request
from kit.tasks.scoring import score_responses

MODEL = "smollm2-135m-instruct"
SIMILAR = PromptVariant(name="3 similar", shots=3, shot_choice="similar")
ZERO_SHOT = PromptVariant(name="0-shot", shots=0)  # how the default report's LoRA is trained and asked


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


def answers(task, arm, items, variant: PromptVariant, *, max_tokens: int) -> tuple[float, dict[str, float]]:
    """Seconds for the items (the kit's runner, a fresh store) and each item's score."""
    store = Store(Path(tempfile.mkdtemp()) / "bench.sqlite")
    began = time.perf_counter()
    summary = run_arm(task, arm, store=store, items=items, variant=variant, max_tokens=max_tokens,
                      label=str(arm.spec))
    seconds = time.perf_counter() - began
    scores = score_responses(task, store.rows(summary.keys.values()).assign(option="local"))
    return seconds, dict(zip(scores["item_id"], scores["score"].astype(float)))


def label_probs(task, arm, items) -> dict[str, dict[str, float]]:
    """Each item's label probabilities (3 similar shots), asked of the arm directly."""
    return {item.id: dict(arm.complete(build_request(task, item, variant=SIMILAR)).extra["label_probs"])
            for item in items}


def against_native(native: dict[str, float], other: dict[str, float]) -> tuple[int, float]:
    """Items whose score differs from the native file's, and the exact McNemar p-value (sign test of the items
    that changed; scipy's binomtest)."""
    changed = [(native[i], other[i]) for i in native if native[i] != other[i]]
    better = sum(1 for a, b in changed if b > a)
    return len(changed), (binomtest(better, len(changed)).pvalue if changed else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="SNIPS test items answered by each type")
    parser.add_argument("--probs", type=int, default=30, help="items whose label probabilities are compared")
    parser.add_argument("--hhs", type=int, default=12, help="HHS test items (extraction: generated answers)")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="a SmolLM2 LoRA adapter (.lora.gguf): its 0-shot SNIPS answers on each type's base")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    snips, hhs = load_task("snips-intents"), load_task("hhs-breach-triage")
    items = snips.test[:args.items]
    print(f"weights: auto stands for {resolve_weights(WeightType.AUTO).value} on this machine")
    out: dict[str, dict] = {}
    for weights in (w for w in WeightType if w is not WeightType.AUTO):
        with get_arm(f"llama_cpp:{MODEL}", n_ctx=4096, weights=weights.value) as arm:
            prompt_tps, decode_tps = raw_speed(arm)
            seconds, scores = answers(snips, arm, items, SIMILAR, max_tokens=32)
            probs = label_probs(snips, arm, items[:args.probs])
            hhs_s, hhs_scores = answers(hhs, arm, hhs.test[:args.hhs], DEFAULT_PROMPT, max_tokens=256)
        f = out[weights.value] = {"quant": arm.model.quant, "size_mb": arm.model.size / 1e6, "prompt_tok_s": prompt_tps,
                                  "decode_tok_s": decode_tps, "seconds": seconds, "items_per_s": len(items) / seconds,
                                  "accuracy": float(np.mean(list(scores.values()))), "scores": scores, "probs": probs,
                                  "hhs_seconds": hhs_s, "hhs_quality": float(np.mean(list(hhs_scores.values()))),
                                  "hhs_scores": hhs_scores}
        if args.adapter:
            with get_arm(f"lora:{MODEL}+{args.adapter}", n_ctx=4096, weights=weights.value) as lora:
                _, lora_scores = answers(snips, lora, items, ZERO_SHOT, max_tokens=32)
            f.update({"lora_accuracy": float(np.mean(list(lora_scores.values()))), "lora_scores": lora_scores})
        print(f"{weights.value:>6}: {f['quant']}, {f['size_mb']:.0f} MB, prompt {prompt_tps:.0f} tok/s, decode "
              f"{decode_tps:.0f} tok/s, {len(items)} SNIPS items in {seconds:.1f} s, {args.hhs} HHS in {hhs_s:.1f} s",
              flush=True)
    native, exact = out["native"], out["f32"]
    print(f"\nSNIPS, {len(items)} test items, 3 similar shots; HHS {args.hhs} items; ratios and changes against the "
          "native file, this run; |dp|: label probabilities against the exact weights' (f32)")
    print(f"{'weights':>8} {'MB':>5} {'prompt':>7} {'decode':>7} {'items/s':>8} {'x native':>9} {'accuracy':>9} "
          f"{'changed':>8} {'max |dp|':>9} {'mean |dp|':>10} {'HHS s':>6} {'HHS':>6} {'changed':>8}"
          + (f" {'LoRA':>6} {'changed':>8} {'p':>5}" if args.adapter else ""))
    for name, f in out.items():
        changed, p = against_native(native["scores"], f["scores"])
        hhs_changed, _ = against_native(native["hhs_scores"], f["hhs_scores"])
        asked = list(exact["probs"])
        gaps = [abs(f["probs"][i][k] - exact["probs"][i][k]) for i in asked for k in exact["probs"][i]]
        item_max = [max(abs(f["probs"][i][k] - exact["probs"][i][k]) for k in exact["probs"][i]) for i in asked]
        f.update({"changed": changed, "mcnemar_p": p, "max_dp_vs_f32": max(item_max),
                  "mean_dp_vs_f32": float(np.mean(gaps)), "speedup": f["items_per_s"] / native["items_per_s"],
                  "hhs_changed": hhs_changed})
        line = (f"{name:>8} {f['size_mb']:>5.0f} {f['prompt_tok_s']:>7.0f} {f['decode_tok_s']:>7.0f} "
                f"{f['items_per_s']:>8.2f} {f['speedup']:>9.2f} {f['accuracy']:>9.3f} {changed:>8d} "
                f"{f['max_dp_vs_f32']:>9.3f} {f['mean_dp_vs_f32']:>10.4f} {f['hhs_seconds']:>6.1f} "
                f"{f['hhs_quality']:>6.3f} {hhs_changed:>8d}")
        if args.adapter:
            lora_changed, lora_p = against_native(native["lora_scores"], f["lora_scores"])
            f.update({"lora_changed": lora_changed, "lora_mcnemar_p": lora_p})
            line += f" {f['lora_accuracy']:>6.3f} {lora_changed:>8d} {lora_p:>5.2f}"
        print(line)
    if args.json:
        keep = ("scores", "probs", "hhs_scores", "lora_scores")
        args.json.write_text(json.dumps({k: {m: v for m, v in f.items() if m not in keep} for k, f in out.items()},
                                        indent=1))


if __name__ == "__main__":
    main()
