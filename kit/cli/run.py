"""``kit tasks``, ``kit run``, ``kit results`` and ``kit runs``: tasks through arms into the store, what they
scored, and how each run went."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kit.cli.common import amount, parse_options, print_table, whole
from kit.run.store import DEFAULT_WAIT_S


def cmd_tasks(args: argparse.Namespace) -> None:
    from kit.tasks import list_tasks

    print_table(list_tasks(), as_json=args.json)


def arm_options(args: argparse.Namespace) -> dict[str, Any]:
    """Arm options from the named flags that were given, plus every ``-o KEY=VALUE``."""
    named = {k: getattr(args, k) for k in ("n_ctx", "n_threads", "n_gpu_layers", "batch", "concurrency", "base_url",
                                           "api_key_env") if getattr(args, k, None) is not None}
    return {**named, **parse_options(args.option or [])}


def cmd_run(args: argparse.Namespace) -> None:
    from kit.arms import get_arm
    from kit.run.budget import make_budget
    from kit.paths import default_store
    from kit.privacy import privacy_hook
    from kit.run.runner import repaid_note, run_arm
    from kit.tasks.scoring import metrics, score_responses
    from kit.run.store import Store
    from kit.tasks import load_task

    task = load_task(args.task)
    options = arm_options(args)
    options.update({k: getattr(args, k) for k in ("rpm", "tpm") if getattr(args, k, None) is not None})
    chosen = task.test[: args.limit] if args.limit else task.test
    with Store(args.store or default_store(), wait_s=args.store_wait) as store, \
            get_arm(args.arm, **options) as arm:
        budget = make_budget(arm, max_calls=args.max_calls, max_cost=args.max_cost)
        print(f"{arm.describe()} · task {task.name} · store {store.path}", file=sys.stderr)
        if hasattr(arm, "coverage_note"):
            print(arm.coverage_note(task, items=chosen), file=sys.stderr)
        withhold = privacy_hook(arm, privacy_required=args.privacy_required, region=args.region, task=task)
        summary = run_arm(task, arm, store=store, limit=args.limit, epoch=args.epoch, budget=budget,
                          withhold=withhold, progress=True)
        # exactly the questions this run asked: never rows answered with another prompt or model
        scores = score_responses(task, store.rows(summary.keys.values()))
    table = metrics(task, scores)
    row = {"task": task.name, "arm": arm.spec, "items": summary.items, "new_calls": summary.new_calls,
           "from_store": summary.cached, "errors": summary.errors, "withheld": summary.withheld}
    if args.json or summary.maybe_paid_twice:
        row["maybe_paid_twice"] = summary.maybe_paid_twice
    if not table.empty:
        row.update({m: table.iloc[0][m] for m in task.metrics})
    print_table([row], as_json=args.json)
    if summary.stopped:
        print(f"note: {summary.stopped}", file=sys.stderr)
    if summary.maybe_paid_twice:
        print(f"note: {repaid_note(summary.maybe_paid_twice)} (see `kit runs`)", file=sys.stderr)


def cmd_results(args: argparse.Namespace) -> None:
    from kit.columns import Col
    from kit.paths import default_store
    from kit.tasks.scoring import metrics, score_responses
    from kit.run.store import Store
    from kit.tasks import load_task
    from kit.tasks.prompts import build_request, prompt_hash

    task = load_task(args.task)
    # only answers to the prompts the task builds today count
    hashes = {item.id: prompt_hash(build_request(task, item)) for item in task.test}
    with Store(args.store or default_store()) as store:
        scores = score_responses(task, store.responses(task=task.name, epoch=args.epoch, prompt_hashes=hashes))
    table = metrics(task, scores).rename(columns={Col.OPTION: Col.ARM})  # here every option is an arm spec
    print_table(table, as_json=args.json)


def cmd_runs(args: argparse.Namespace) -> None:
    from kit.paths import default_store
    from kit.run.store import Store

    with Store(args.store or default_store()) as store:
        runs = store.runs(task=args.task)  # a 'running' run whose process is gone is marked interrupted here
    runs = runs.tail(args.last) if args.last else runs
    rows = [{"run_id": r["run_id"], "task": r["task"], "arm": r["arm"], "status": r["status"],
             "started": str(r["started_at"])[:19].replace("T", " "), "items": _count(r["n_items"]),
             "new_calls": _count(r["new_calls"]), "from_store": _count(r["cached"]), "errors": _count(r["errors"]),
             "note": r["message"] if isinstance(r["message"], str) else ""} for r in runs.to_dict("records")]
    if not args.json:
        for row in rows:
            row["note"] = row["note"] if len(row["note"]) <= 70 else row["note"][:69] + "…"
            for key in COUNTS:  # a count the run never recorded (still running, killed) is unknown, not NaN
                row[key] = UNKNOWN if row[key] is None else row[key]
    print_table(rows, as_json=args.json)


COUNTS = ("items", "new_calls", "from_store", "errors")
UNKNOWN = "—"


def _count(value: Any) -> int | None:
    return None if value is None or value != value else int(value)  # NULL comes back as None or NaN


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list tasks with their item counts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("run", help="run a task's test items through one arm")
    p.add_argument("--task", required=True, help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--arm", required=True, help="arm spec, e.g. llama_cpp:smollm2-135m-instruct")
    p.add_argument("--limit", type=whole(1, meaning="a number of items"), help="only the first N test items")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--store-wait", dest="store_wait", type=amount(meaning="seconds"), default=DEFAULT_WAIT_S,
                   metavar="SECONDS", help="how long to wait, in all, while another process holds the store's "
                   f"write lock (default {DEFAULT_WAIT_S:g})")
    p.add_argument("--epoch", type=whole(0, meaning="an epoch number"), default=0,
                   help="repeat a run deliberately under a new epoch number")
    p.add_argument("--n-ctx", dest="n_ctx", type=whole(1, meaning="tokens"), help="llama.cpp context size")
    p.add_argument("--threads", dest="n_threads", type=whole(1, meaning="threads"), help="llama.cpp CPU threads")
    p.add_argument("--n-gpu-layers", dest="n_gpu_layers", type=whole(-1, meaning="layers; -1 = all"),
                   help="layers offloaded to the GPU (-1 = all)")
    p.add_argument("--batch", type=whole(1, meaning="items decoded together"),
                   help="llama.cpp: decode N items together (each holds n_ctx / N of the context; default 1)")
    p.add_argument("--concurrency", type=whole(1, meaning="requests in flight"),
                   help="requests in flight at once (API arms)")
    p.add_argument("--base-url", dest="base_url", help="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server)")
    p.add_argument("--api-key-env", dest="api_key_env", help="environment variable that holds the API key")
    p.add_argument("--max-calls", type=whole(0, meaning="new calls"), help="stop before making more than N new calls")
    p.add_argument("--privacy-required", action="store_true",
                   help="never send items with personal data to a hosted arm (they are withheld and recorded)")
    p.add_argument("--region", default="US", help="phone-number region for the personal-data scan (default US)")
    p.add_argument("--max-cost", type=amount(meaning="US dollars"), metavar="USD",
                   help="stop before the estimated spend (prices x measured tokens) would pass USD")
    p.add_argument("--rpm", type=amount(meaning="requests per minute"),
                   help="at most this many requests per minute (API arms)")
    p.add_argument("--tpm", type=amount(meaning="tokens per minute"), help="at most this many tokens per minute (API arms)")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="any other arm option")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("results", help="per-arm metrics of a task from the store")
    p.add_argument("--task", required=True)
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--epoch", type=whole(0, meaning="an epoch number"), default=0)
    p.add_argument("--json", action="store_true", help="a JSON list, one object per arm")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("runs", help="the runs in the store: status (finished, stopped, interrupted), items, calls")
    p.add_argument("--task", help="only this task's runs")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--last", type=whole(1, meaning="a number of runs"), help="only the latest N runs")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per run, notes in full")
    p.set_defaults(func=cmd_runs)
