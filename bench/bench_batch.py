"""Batched against one-at-a-time decoding in the kit's llama.cpp arm, side by side in one run.

For each task it runs the same items through the whole kit path (``kit.run.runner.run_arm`` into a fresh
SQLite store per side), in interleaved rounds (every side on each slice of the items in turn), three ways: the ``llama_cpp`` arm at batch 1 (one item at a time, the default
path), the same arm at ``--batch N`` (N items decoded together), and the batched path at batch 1 (the
batched code with one sequence: separates what batching gains from what the batched code's sampling
saves). It prints items/s, tokens/s, completion tokens/s, the ratios to batch 1, and how many answers
are identical at batch N and 1 (plus the largest difference of a label probability). First it prints
what one token costs the CPU in a prompt and in decoding steps of 1 to 16 sequences, beside the
single-stream ceiling (memory bandwidth ÷ weight bytes): where batching can help, and where it cannot.

    .venv/bin/python bench/bench_batch.py --snips 48 --hhs 16 --batch 8

Goal (issue 14): extraction (HHS, generation under the JSON-schema grammar) at batch 8 >= 2x batch 1 on
2 CPU cores; label scoring (SNIPS) at batch 8 vs 1: report the ratio. ``--threads N`` sets llama.cpp's
threads for single tokens and for batches alike (default: llama-cpp-python's, half the cores for single
tokens and all cores for batches). Items per CPU-second (the process's CPU time) is printed beside items
per second: on a machine shared with other jobs it is the steadier figure. ``--json PATH`` writes every
figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kit.arms import get_arm
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task
from kit.tasks.prompts import build_request

MODEL = "llama_cpp:smollm2-135m-instruct"


def interleaved(task: Any, arms: dict[str, Any], items: list, *, max_tokens: int, rounds: int) -> dict[str, dict]:
    """Warm each arm on one group, then answer the items in ``rounds`` slices, every arm on each slice in turn
    (the order rotating), so that a change in the machine's load falls on all arms alike. Each arm writes
    to a fresh store of its own; figures come from its rows and its summed wall and CPU time."""
    for arm in arms.values():
        arm.complete_many([build_request(task, item, max_tokens=max_tokens) for item in items[:arm.max_batch]])
    names = list(arms)
    clock = {name: [0.0, 0.0] for name in names}
    keys: dict[str, dict[str, str]] = {name: {} for name in names}
    batch = max(arm.max_batch for arm in arms.values())
    size = -(-len(items) // rounds)
    size = -(-size // batch) * batch  # whole batches in every slice
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: Store(Path(tmp) / f"{i}.sqlite") for i, name in enumerate(names)}
        for r, begin in enumerate(range(0, len(items), size)):
            chunk = items[begin:begin + size]
            for name in names[r % len(names):] + names[:r % len(names)]:
                start, cpu = time.perf_counter(), time.process_time()
                summary = run_arm(task, arms[name], store=stores[name], items=chunk, max_tokens=max_tokens)
                clock[name][0] += time.perf_counter() - start
                clock[name][1] += time.process_time() - cpu
                keys[name].update(summary.keys)
        out = {}
        for name in names:
            rows = stores[name].rows(keys[name].values()).set_index("item_id").loc[[i.id for i in items]]
            stores[name].close()
            seconds, cpu = clock[name]
            tokens = float((rows["prompt_tokens"] + rows["completion_tokens"]).sum())
            out[name] = {"seconds": seconds, "cpu_s": cpu, "items_per_s": len(items) / seconds,
                         "items_per_cpu_s": len(items) / cpu, "tokens_per_s": tokens / seconds,
                         "completion_tokens_per_s": float(rows["completion_tokens"].sum()) / seconds,
                         "errors": int(rows["error"].notna().sum()),
                         "p95_latency_s": float(rows["latency_s"].quantile(0.95)), "outputs": rows["output"].tolist(),
                         "probs": [json.loads(e or "{}").get("label_probs") for e in rows["extra"]]}
    return out


def compare(task_name: str, n: int, *, batch: int, max_tokens: int, threads: int | None,
            rounds: int, n_gpu_layers: int = 0) -> dict[str, Any]:
    task = load_task(task_name)
    items = list(task.test[:n])
    common = {"n_threads": threads, "n_threads_batch": threads, "n_gpu_layers": n_gpu_layers}
    one = get_arm(MODEL, n_ctx=4096, **common)
    many = get_arm(MODEL, n_ctx=batch * 1024, batch=batch, **common)
    path1 = get_arm(MODEL, n_ctx=batch * 1024, batch=batch, **common)
    path1.set_load(1)  # the batched code with a single sequence
    names = ("batch 1 (one at a time)", f"batch {batch}", "batched path at batch 1")
    try:
        res = interleaved(task, dict(zip(names, (one, many, path1))), items, max_tokens=max_tokens, rounds=rounds)
    finally:
        for arm in (one, many, path1):
            arm.close()
    seq, bat = res[names[0]], res[names[1]]
    same = sum(a == b for a, b in zip(seq["outputs"], bat["outputs"]))
    diff = max((abs(p[k] - q[k]) for p, q in zip(seq["probs"], bat["probs"]) if p and q for k in p), default=None)
    print(f"\n{task_name}: {n} items in interleaved rounds of whole batches, max_tokens {max_tokens}, "
          f"threads {threads or 'default'}")
    print(f"{'':28} {'items/s':>9} {'tokens/s':>10} {'compl tok/s':>12} {'p95 s':>7} {'vs batch 1':>11} "
          f"{'items/CPU-s':>12} {'vs batch 1':>11}")
    for name in names:
        r = res[name]
        print(f"{name:28} {r['items_per_s']:9.3f} {r['tokens_per_s']:10.0f} {r['completion_tokens_per_s']:12.1f} "
              f"{r['p95_latency_s']:7.2f} {r['items_per_s'] / seq['items_per_s']:10.2f}x "
              f"{r['items_per_cpu_s']:12.3f} {r['items_per_cpu_s'] / seq['items_per_cpu_s']:10.2f}x")
    print(f"identical answers at batch {batch} and 1: {same}/{n}"
          + (f"; largest label-probability difference {diff:.4f}" if diff is not None else ""))
    strip = ("outputs", "probs")
    return {"task": task_name, "items": n, "batch": batch, "max_tokens": max_tokens, "threads": threads,
            **{name: {k: v for k, v in res[name].items() if k not in strip} for name in names},
            "ratio": bat["items_per_s"] / seq["items_per_s"], "identical": same, "max_prob_diff": diff}


def step_costs(threads: int | None, *, context: int = 64, steps: int = 6) -> dict[str, Any]:
    """CPU milliseconds per token of the model's forward pass: prompt tokens (a batch of 16 x ``context``), and
    decoding steps of 1, 2, 4, 8, 16 sequences (one token each) — raw llama.cpp calls, one KV stream per
    sequence — beside the single-stream ceiling of decoding (memory bandwidth ÷ weight bytes)."""
    import llama_cpp
    from llama_cpp import _internals

    from kit.models.ceiling import decode_ceiling

    n_seq = 16
    with get_arm(MODEL, n_ctx=512, n_threads=threads, n_threads_batch=threads) as arm:
        llm = arm.llm
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx, params.n_batch, params.n_ubatch = n_seq * 256, 512, 512
        params.n_seq_max, params.kv_unified = n_seq, False
        ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        batch = _internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
        tokens = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 40)[:context]

        def decode(entries: list[tuple[int, int, int]]) -> None:
            b = batch.batch
            for j, (seq, pos, token) in enumerate(entries):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, True
                b.seq_id[j][0] = seq
            b.n_tokens = len(entries)
            assert llama_cpp.llama_decode(ctx.ctx, b) == 0

        cpu = time.process_time()
        prompt = [(seq, pos, tokens[pos]) for seq in range(n_seq) for pos in range(context)]
        for start in range(0, len(prompt), 256):
            decode(prompt[start:start + 256])
        out: dict[str, Any] = {"prompt_ms_per_token": 1000 * (time.process_time() - cpu) / len(prompt)}
        memory = llama_cpp.llama_get_memory(ctx.ctx)
        for width in (1, 2, 4, 8, 16):
            cpu = time.process_time()
            for k in range(steps):
                decode([(seq, context + k, tokens[k]) for seq in range(width)])
            out[f"step_{width}_ms_per_token"] = 1000 * (time.process_time() - cpu) / (steps * width)
            for seq in range(n_seq):
                llama_cpp.llama_memory_seq_rm(memory, seq, context, -1)
        batch.close()
        ctx.close()
    ceiling = decode_ceiling("smollm2-135m-instruct")
    out["ceiling_tokens_per_s"] = ceiling.tokens_per_s
    print(f"\nforward-pass cost, CPU ms per token (threads {threads or 'default'}, context {context} tokens):")
    print(f"  prompt tokens (16 x {context}): {out['prompt_ms_per_token']:.1f}")
    print("  decoding step of " + ", ".join(f"{w}: {out[f'step_{w}_ms_per_token']:.1f}" for w in (1, 2, 4, 8, 16)))
    print(f"  ceiling: {ceiling.statement} (= {1000 / ceiling.tokens_per_s:.1f} ms per token)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=48, help="SNIPS items (label scoring; 0 to skip)")
    parser.add_argument("--hhs", type=int, default=16, help="HHS items (extraction; 0 to skip)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96, help="answer tokens per HHS item")
    parser.add_argument("--threads", type=int, help="llama.cpp threads for single tokens and batches")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (slices of the items)")
    parser.add_argument("--n-gpu-layers", type=int, default=0, help="layers on the GPU for every side (-1 = all)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    results: list[dict[str, Any]] = [step_costs(args.threads)] if args.n_gpu_layers == 0 else []
    if args.hhs:
        results.append(compare("hhs-breach-triage", args.hhs, batch=args.batch, max_tokens=args.max_tokens,
                               threads=args.threads, rounds=args.rounds, n_gpu_layers=args.n_gpu_layers))
    if args.snips:
        results.append(compare("snips-intents", args.snips, batch=args.batch, max_tokens=16, threads=args.threads,
                               rounds=args.rounds, n_gpu_layers=args.n_gpu_layers))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
