"""The kit's llama.cpp arm against raw llama-cpp-python on the same prompts, side by side in one run.

Prints items/s and tokens/s for both and their ratio (goal: kit >= 0.97x raw), and the kit's items/s
with and without reuse of the shared k-shot prompt prefix from the KV cache (goal: >= 1.5x).

    .venv/bin/python bench/bench_llama.py --items 60 --extract-items 6

The raw side is what a user would write by hand: ``create_chat_completion`` with the same messages,
temperature 0, a grammar that allows exactly the labels (classification) or the task's JSON schema
(extraction). The kit side is the whole kit path: runner, store writes, parsing and scoring inputs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from llama_cpp import Llama, LlamaGrammar

from kit.arms import get_arm
from kit.models import resolve_model
from kit.tasks.prompts import build_request
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

MODEL = "smollm2-135m-instruct"


def raw_side(task, items, *, n_ctx: int, max_tokens: int) -> tuple[float, int, list]:
    llm = Llama(model_path=str(resolve_model(MODEL).path), n_ctx=n_ctx, seed=0, verbose=False)
    req0 = build_request(task, items[0], max_tokens=max_tokens)
    if req0.choices:
        grammar = LlamaGrammar.from_string("root ::= " + " | ".join(json.dumps(c) for c in req0.choices), verbose=False)
    else:
        grammar = LlamaGrammar.from_json_schema(json.dumps(req0.json_schema), verbose=False)
    tokens, answers = 0, []
    start = time.perf_counter()
    for item in items:
        req = build_request(task, item, max_tokens=max_tokens)
        out = llm.create_chat_completion(messages=list(req.messages), temperature=0.0, seed=0,
                                         max_tokens=max_tokens, grammar=grammar)
        tokens += out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
        answers.append(out["choices"][0]["message"]["content"])
    seconds = time.perf_counter() - start
    llm.close()
    return seconds, tokens, answers


def kit_side(task, items, *, n_ctx: int, max_tokens: int, prefix_cache: bool = True) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite") as store, \
            get_arm(f"llama_cpp:{MODEL}", n_ctx=n_ctx, prefix_cache=prefix_cache) as arm:
        start = time.perf_counter()
        run_arm(task, arm, store=store, items=items, max_tokens=max_tokens)
        seconds = time.perf_counter() - start
        frame = store.responses(task=task.name)
    return seconds, int((frame["prompt_tokens"] + frame["completion_tokens"]).sum())


def compare(task_name: str, n: int, *, max_tokens: int, n_ctx: int) -> None:
    task = load_task(task_name)
    items = list(task.test[:n])
    kit_side(task, items[:2], n_ctx=n_ctx, max_tokens=max_tokens)  # warm the page cache and the model file
    raw_s, raw_tok, _ = raw_side(task, items, n_ctx=n_ctx, max_tokens=max_tokens)
    kit_s, kit_tok = kit_side(task, items, n_ctx=n_ctx, max_tokens=max_tokens)
    print(f"\n{task_name}: {n} items, {task.shots}-shot prompts")
    print(f"  raw llama-cpp-python  {n / raw_s:7.2f} items/s  {raw_tok / raw_s:8.0f} tokens/s")
    print(f"  kit llama_cpp arm     {n / kit_s:7.2f} items/s  {kit_tok / kit_s:8.0f} tokens/s")
    print(f"  ratio kit/raw (items/s): {raw_s / kit_s:.2f}x   (goal >= 0.97x)")


def prefix_reuse(n: int, *, n_ctx: int) -> None:
    task = load_task("snips-intents")
    items = list(task.test[:n])
    cold_s, _ = kit_side(task, items, n_ctx=n_ctx, max_tokens=16, prefix_cache=False)
    warm_s, _ = kit_side(task, items, n_ctx=n_ctx, max_tokens=16, prefix_cache=True)
    print(f"\nshared 5-shot prefix, {n} items: without reuse {n / cold_s:.2f} items/s, "
          f"with reuse {n / warm_s:.2f} items/s")
    print(f"  ratio with/without: {cold_s / warm_s:.2f}x   (goal >= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60, help="SNIPS items per side")
    parser.add_argument("--extract-items", type=int, default=6, help="HHS extraction items per side (0 to skip)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()
    compare("snips-intents", args.items, max_tokens=16, n_ctx=args.n_ctx)
    if args.extract_items:
        compare("hhs-breach-triage", args.extract_items, max_tokens=96, n_ctx=args.n_ctx)
    prefix_reuse(args.items, n_ctx=args.n_ctx)


if __name__ == "__main__":
    main()
