"""The kit's llama.cpp arm with all layers on the GPU (n_gpu_layers=-1) against the CPU (n_gpu_layers=0).

Runs the SNIPS task's first N test items, then a few HHS extraction items (where generation dominates),
through ``get_arm("llama_cpp:<model>", n_gpu_layers=L)`` and ``kit.run.runner.run_arm`` with a temporary
store, for L = 0 and L = -1, and prints items/s, tokens/s (prompt + completion tokens per second) and
the GPU/CPU ratio, plus how many answers the two agree on.

    python bench/bench_gpu.py --model smollm2-135m-instruct --items 200 --extract-items 8

On a machine without GPU offload (no GPU, or llama-cpp-python built without CUDA/Metal) it prints the
CPU figures, says why the GPU side was skipped (``kit.models.hardware``), and exits 0. ``--json PATH`` also
writes every figure and the machine's fingerprint to PATH.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kit.arms import get_arm
from kit.errors import KitError
from kit.models.hardware import check_gpu_offload, cpu_info, gpus, llama_cpp_info
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

LAYERS = (0, -1)


def one_pass(task_name: str, n: int, *, model: str, n_gpu_layers: int, n_ctx: int, max_tokens: int,
             n_threads: int | None) -> dict[str, Any]:
    """Load the arm, warm it on two items (own store), then time ``n`` items into a fresh store."""
    task = load_task(task_name)
    items = list(task.test[:n])
    options: dict[str, Any] = {"n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers}
    if n_threads:
        options["n_threads"] = n_threads
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with get_arm(f"llama_cpp:{model}", **options) as arm:
            load_s = time.perf_counter() - t0
            with Store(Path(tmp) / "warm.sqlite") as warm:
                run_arm(task, arm, store=warm, items=items[:2], max_tokens=max_tokens)
            with Store(Path(tmp) / "bench.sqlite") as store:
                start = time.perf_counter()
                summary = run_arm(task, arm, store=store, items=items, max_tokens=max_tokens)
                seconds = time.perf_counter() - start
                frame = store.responses(task=task.name)
    prompt = int(frame["prompt_tokens"].fillna(0).sum())
    completion = int(frame["completion_tokens"].fillna(0).sum())
    answers = {row.item_id: json.dumps(row.answer, sort_keys=True) for row in frame.itertuples()}
    return {
        "task": task_name, "n_gpu_layers": n_gpu_layers, "items": len(items), "errors": summary.errors,
        "load_s": round(load_s, 3), "seconds": round(seconds, 3), "items_per_s": len(items) / seconds,
        "prompt_tokens": prompt, "completion_tokens": completion, "tokens_per_s": (prompt + completion) / seconds,
        "completion_tokens_per_s": completion / seconds, "answers": answers,
    }


def gpu_status() -> tuple[bool, str]:
    """Whether GPU offload can be used here, and a line saying what was found."""
    found = gpus()
    info = llama_cpp_info()
    names = ", ".join(g["name"] for g in found) or "no NVIDIA GPU (nvidia-smi)"
    line = (f"GPU: {names}; llama-cpp-python {info.get('version')} "
            f"supports_gpu_offload={info.get('supports_gpu_offload')}")
    try:
        check_gpu_offload(-1)
    except KitError as exc:
        return False, f"{line}\nGPU offload unavailable: {exc}"
    return True, line


def report(task_name: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{task_name}: {rows[0]['items']} items")
    print(f"  {'n_gpu_layers':>12}  {'load s':>7}  {'items/s':>8}  {'tokens/s':>9}  {'compl. tok/s':>12}  errors")
    for r in rows:
        print(f"  {r['n_gpu_layers']:>12}  {r['load_s']:7.2f}  {r['items_per_s']:8.2f}  {r['tokens_per_s']:9.0f}  "
              f"{r['completion_tokens_per_s']:12.1f}  {r['errors']}")
    if len(rows) == 2:
        cpu, gpu = rows
        same = sum(cpu["answers"].get(k) == v for k, v in gpu["answers"].items())
        print(f"  ratio GPU/CPU: {gpu['items_per_s'] / cpu['items_per_s']:.2f}x items/s, "
              f"{gpu['tokens_per_s'] / cpu['tokens_per_s']:.2f}x tokens/s; "
              f"answers equal on {same}/{len(gpu['answers'])} items")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog id or path to a .gguf")
    parser.add_argument("--items", type=int, default=100, help="SNIPS items per side")
    parser.add_argument("--extract-items", type=int, default=6, help="HHS extraction items per side (0 to skip)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (llama.cpp's default if unset)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['usable_cores']} usable cores)")
    usable, line = gpu_status()
    print(line)
    layers = LAYERS if usable else (0,)
    out: dict[str, Any] = {"model": args.model, "cpu": cpu, "gpus": gpus(), "llama_cpp": llama_cpp_info(),
                           "gpu_offload": usable, "runs": []}
    jobs = [("snips-intents", args.items, 16)]
    if args.extract_items:
        jobs.append(("hhs-breach-triage", args.extract_items, 96))
    for task_name, n, max_tokens in jobs:
        rows = [one_pass(task_name, n, model=args.model, n_gpu_layers=layer, n_ctx=args.n_ctx,
                         max_tokens=max_tokens, n_threads=args.threads) for layer in layers]
        report(task_name, rows)
        out["runs"].extend({k: v for k, v in r.items() if k != "answers"} for r in rows)
    if not usable:
        print("\nGPU side skipped: GPU offload is unavailable here (CPU figures above).")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
