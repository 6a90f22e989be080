"""``kit sweep``: a self-hosted option at increasing load — the throughput curve and the level worth paying for."""

from __future__ import annotations

import argparse
import sys

from kit.cli.common import print_table
from kit.cli.run import arm_options
from kit.errors import ConfigError

COLUMNS = ["load", "items_per_s", "tokens_per_s", "completion_tokens_per_s", "p50_latency_s", "p95_latency_s",
           "p50_ttft_s", "p95_ttft_s", "p50_itl_s", "p95_itl_s", "p50_tpot_s", "p95_tpot_s", "n_ok", "errors",
           "refused", "new_calls", "cached", "status", "note"]
SHOWN = {"completion_tokens_per_s": "output_tokens_per_s"}  # the name GuideLLM's users look for


def parse_levels(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` -> (1, 2, 4, 8)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--levels {text!r} is not a list of whole numbers", fix="write e.g. --levels 1,2,4,8,16") \
            from None


def cmd_sweep(args: argparse.Namespace) -> None:
    from kit.arms import get_arm
    from kit.paths import default_store
    from kit.run.store import Store
    from kit.run.sweep import DEFAULT_LEVELS, sweep
    from kit.tasks import load_task

    task = load_task(args.task)
    levels = parse_levels(args.levels) if args.levels else DEFAULT_LEVELS
    with Store(args.store or default_store()) as store, get_arm(args.arm, **arm_options(args)) as arm:
        print(f"{arm.describe()} · task {task.name} · load sweep ({arm.load_kind or 'no load to vary'}) · "
              f"store {store.path}", file=sys.stderr)
        result = sweep(task, arm, store=store, levels=levels, items=args.items, latency_target_s=args.latency_target,
                       max_seconds=args.max_seconds, max_tokens=args.max_tokens, progress=True,
                       every_level=args.every_level)
    table = result.table()
    print_table(table[COLUMNS].rename(columns={"load": result.load_kind, **SHOWN}), as_json=args.json)
    choice = result.goodput()
    print(f"stopped: {result.stopped}", file=sys.stderr)
    print(f"chosen: {choice.statement}")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="throughput and latency of a self-hosted option at increasing load")
    p.add_argument("--task", required=True, help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--arm", required=True,
                   help="llama_cpp:MODEL / lora:... (batch sizes) or openai:MODEL --base-url URL (requests in flight)")
    p.add_argument("--levels", help="load levels, e.g. 1,2,4,8,16 (default 1,2,4,...,64 until throughput stops rising)")
    p.add_argument("--every-level", dest="every_level", action="store_true",
                   help="measure every level: do not stop when throughput gains fall under 5%% or p95 passes "
                        "--latency-target (a failing level, a full context or --max-seconds still stop it)")
    p.add_argument("--items", type=int, default=32, help="items per level (the first N test items; default 32)")
    p.add_argument("--latency-target", dest="latency_target", type=float, metavar="S",
                   help="p95 latency target in seconds: the sweep stops past it, the chosen level stays under it")
    p.add_argument("--max-seconds", dest="max_seconds", type=float, default=600.0,
                   help="start no new level after this many seconds (default 600)")
    p.add_argument("--max-tokens", dest="max_tokens", type=int, default=256, help="answer tokens per item (default 256)")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--n-ctx", dest="n_ctx", type=int, help="llama.cpp context size (held by all sequences of a batch)")
    p.add_argument("--threads", dest="n_threads", type=int, help="llama.cpp CPU threads")
    p.add_argument("--n-gpu-layers", dest="n_gpu_layers", type=int, help="layers offloaded to the GPU (-1 = all)")
    p.add_argument("--base-url", dest="base_url", help="OpenAI-compatible endpoint you run (vLLM, llama-server, Ollama)")
    p.add_argument("--api-key-env", dest="api_key_env", help="environment variable that holds the API key")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="any other arm option")
    p.add_argument("--json", action="store_true", help="print the curve as JSON")
    p.set_defaults(func=cmd_sweep)
