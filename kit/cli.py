"""The ``kit`` command line. Library errors (KitError) become one clear message and exit status 2.

Subcommands live with the code they drive: each module in ``COMMAND_MODULES`` has a
``register_cli(subparsers)`` that adds its commands.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

import pandas as pd

from kit.errors import ConfigError, KitError

COMMAND_MODULES: tuple[str, ...] = ("kit.cli", "kit.models", "kit.serve", "kit.stats", "kit.finetune", "kit.cost", "kit.privacy", "kit.report")


def print_table(rows: list[dict[str, Any]] | pd.DataFrame, *, as_json: bool = False) -> None:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if as_json:
        print(json.dumps(json.loads(frame.to_json(orient="records")), indent=2))
    elif frame.empty:
        print("(nothing to show)")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to a dict, values read as JSON when they parse (numbers, true/false)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option '{pair}' is not KEY=VALUE", fix="write e.g. -o n_ctx=2048")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def cmd_tasks(args: argparse.Namespace) -> None:
    from kit.tasks import list_tasks

    print_table(list_tasks(), as_json=args.json)


def arm_options(args: argparse.Namespace) -> dict[str, Any]:
    """Arm options from the named flags that were given, plus every ``-o KEY=VALUE``."""
    named = {k: getattr(args, k) for k in ("n_ctx", "n_threads", "n_gpu_layers", "concurrency", "base_url",
                                           "api_key_env") if getattr(args, k, None) is not None}
    return {**named, **parse_options(args.option or [])}


def cmd_run(args: argparse.Namespace) -> None:
    from kit.arms import get_arm
    from kit.budget import make_budget
    from kit.paths import default_store
    from kit.privacy import privacy_hook
    from kit.runner import run_arm
    from kit.scoring import metrics, score_responses
    from kit.store import Store
    from kit.tasks import load_task

    task = load_task(args.task)
    options = arm_options(args)
    options.update({k: getattr(args, k) for k in ("rpm", "tpm") if getattr(args, k, None) is not None})
    chosen = task.test[: args.limit] if args.limit else task.test
    with Store(args.store or default_store()) as store, get_arm(args.arm, **options) as arm:
        budget = make_budget(arm, max_calls=args.max_calls, max_cost=args.max_cost)
        print(f"{arm.describe()} · task {task.name} · store {store.path}", file=sys.stderr)
        if hasattr(arm, "coverage_note"):
            print(arm.coverage_note(task, items=chosen), file=sys.stderr)
        withhold = privacy_hook(arm, privacy_required=args.privacy_required, region=args.region, task=task)
        summary = run_arm(task, arm, store=store, limit=args.limit, epoch=args.epoch, budget=budget,
                          withhold=withhold, progress=True)
        ids = [i.id for i in chosen]
        scores = score_responses(task, store.responses(task=task.name, arms=[arm.spec], epoch=args.epoch,
                                                       item_ids=ids))
    table = metrics(task, scores)
    row = {"task": task.name, "arm": arm.spec, "items": summary.items, "new_calls": summary.new_calls,
           "from_store": summary.cached, "errors": summary.errors, "withheld": summary.withheld}
    if not table.empty:
        row.update({m: table.iloc[0][m] for m in task.metrics})
    print_table([row], as_json=args.json)
    if summary.stopped:
        print(f"note: {summary.stopped}", file=sys.stderr)


def cmd_results(args: argparse.Namespace) -> None:
    from kit.paths import default_store
    from kit.scoring import metrics, score_responses
    from kit.store import Store
    from kit.tasks import load_task

    task = load_task(args.task)
    with Store(args.store or default_store()) as store:
        scores = score_responses(task, store.responses(task=task.name, epoch=args.epoch))
    table = metrics(task, scores)
    print_table(table, as_json=args.json)


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list tasks with their item counts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("run", help="run a task's test items through one arm")
    p.add_argument("--task", required=True, help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--arm", required=True, help="arm spec, e.g. llama_cpp:smollm2-135m-instruct")
    p.add_argument("--limit", type=int, help="only the first N test items")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--epoch", type=int, default=0, help="repeat a run deliberately under a new epoch number")
    p.add_argument("--n-ctx", dest="n_ctx", type=int, help="llama.cpp context size")
    p.add_argument("--threads", dest="n_threads", type=int, help="llama.cpp CPU threads")
    p.add_argument("--n-gpu-layers", dest="n_gpu_layers", type=int, help="layers offloaded to the GPU (-1 = all)")
    p.add_argument("--concurrency", type=int, help="requests in flight at once (API arms)")
    p.add_argument("--base-url", dest="base_url", help="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server)")
    p.add_argument("--api-key-env", dest="api_key_env", help="environment variable that holds the API key")
    p.add_argument("--max-calls", type=int, help="stop before making more than N new calls")
    p.add_argument("--privacy-required", action="store_true",
                   help="never send items with personal data to a hosted arm (they are withheld and recorded)")
    p.add_argument("--region", default="US", help="phone-number region for the personal-data scan (default US)")
    p.add_argument("--max-cost", type=float, metavar="USD",
                   help="stop before the estimated spend (prices x measured tokens) would pass USD")
    p.add_argument("--rpm", type=float, help="at most this many requests per minute (API arms)")
    p.add_argument("--tpm", type=float, help="at most this many tokens per minute (API arms)")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="any other arm option")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("results", help="per-arm metrics of a task from the store")
    p.add_argument("--task", required=True)
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--json", action="store_true", help="a JSON list, one object per arm")
    p.set_defaults(func=cmd_results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: answers so far are kept in the store; run again to continue", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
