"""Load sweeps, side by side in one run: the embedded model in process (batch sizes) and the kit's loopback
stand-in server (requests in flight), with the level each would be priced at for a p95 latency target.

    .venv/bin/python bench/bench_sweep.py --items 32 --target 2

Part 1 sweeps ``llama_cpp:smollm2-135m-instruct`` on SNIPS at batch 1, 2, 4, 8, 16 (n_ctx 8192: each
sequence holds 8192 / batch cells) and prints the single-stream ceiling of decoding (memory bandwidth ÷
weight bytes). Part 2 starts the stand-in (llama-cpp-python's OpenAI-compatible server with Gemma 3 270M
on 127.0.0.1, which answers one request at a time) and sweeps it at 1, 2, 4 requests in flight. Both run
on past the target and past levels that did not raise throughput, to draw the whole curve (part 1 ends
where 8192 cells cannot hold 16 sequences); the target then only chooses the level. Each sweep is then run again on the same store, to show the
re-run is served from the store. ``--threads N`` sets llama.cpp's threads in process (single tokens and
batches alike); ``--json PATH`` writes the curves. On a GPU machine (a CUDA build of llama-cpp-python):
``--n-gpu-layers -1 --n-ctx 32768 --levels 1,2,4,8,16,32 --skip-standin``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from kit.arms import get_arm
from kit.models.ceiling import decode_ceiling
from kit.arms.standin import standin_arm_options, standin_server
from kit.run.store import Store
from kit.run.sweep import choose_goodput, sweep
from kit.tasks import load_task

SHOW = ["load", "items_per_s", "tokens_per_s", "completion_tokens_per_s", "p50_latency_s", "p95_latency_s",
        "p50_ttft_s", "p95_ttft_s", "p50_itl_s", "p50_tpot_s", "n_ok", "errors", "status", "note"]


def run_twice(task, arm, store, *, levels, items, target, label, whole_curve: bool = False) -> pd.DataFrame:
    """Sweep, then sweep again on the same store (served from it). With ``whole_curve`` the sweep runs on past
    the target and past a level that did not raise throughput; the target then only chooses the level."""
    kwargs = {"levels": levels, "items": items, "latency_target_s": target, "every_level": whole_curve,
              "label": label, "max_tokens": 32}
    start = time.perf_counter()
    result = sweep(task, arm, store=store, **kwargs)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = sweep(task, arm, store=store, **kwargs)
    rerun = time.perf_counter() - start
    table = result.table()
    print(f"\n{label} ({result.load_kind}), {items} SNIPS items per level, p95 target {target:g} s")
    print(table[SHOW].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"stopped: {result.stopped}")
    print(f"chosen: {choose_goodput(table, latency_target_s=target).statement}")
    print(f"sweep {first:.1f} s; re-run {rerun:.2f} s with {int(again.table()['new_calls'].sum())} model calls")
    return table.assign(sweep_s=first, rerun_s=rerun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="SNIPS items per level")
    parser.add_argument("--target", type=float, default=2.0, help="p95 latency target, seconds")
    parser.add_argument("--threads", type=int, help="llama.cpp threads in process")
    parser.add_argument("--standin-items", type=int, default=8, help="SNIPS items per level for the stand-in")
    parser.add_argument("--skip-standin", action="store_true")
    parser.add_argument("--n-gpu-layers", type=int, default=0, help="layers on the GPU in process (-1 = all)")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context in process, shared by a batch's sequences")
    parser.add_argument("--levels", default="1,2,4,8,16", help="batch sizes in process, comma-separated")
    parser.add_argument("--json", help="write the curves to this file")
    args = parser.parse_args()
    task = load_task("snips-intents")
    tables = []
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "sweep.sqlite") as store:
        levels = tuple(int(x) for x in args.levels.split(","))
        with get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=args.n_ctx, n_threads=args.threads,
                     n_threads_batch=args.threads, n_gpu_layers=args.n_gpu_layers) as arm:
            where = "on the GPU" if args.n_gpu_layers else "in process"
            table = run_twice(task, arm, store, levels=levels, items=args.items, target=args.target,
                              label=f"SmolLM2-135M {where}", whole_curve=True)
            tables.append(table)
            ceiling = decode_ceiling("smollm2-135m-instruct", n_gpu_layers=args.n_gpu_layers)
            print(f"ceiling: {ceiling.statement}")
        if not args.skip_standin:
            with standin_server("gemma-3-270m", n_ctx=2048) as url:
                options = {**standin_arm_options(), "base_url": url}
                with get_arm("openai:gemma-3-270m", **options) as arm:
                    tables.append(run_twice(task, arm, store, levels=(1, 2, 4), items=args.standin_items,
                                            target=args.target, label="stand-in server (Gemma 3 270M)",
                                            whole_curve=True))
    if args.json:
        Path(args.json).write_text(pd.concat(tables).to_json(orient="records", indent=1))
        print(json.dumps({"written": args.json}))


if __name__ == "__main__":
    main()
