"""Each option at its best prompt: prompt variants for the local model chosen on dev items, judged on test items.

    .venv/bin/python bench/bench_prompts.py --dev 40 --test 100 --threads 1 --store runs/bench_prompts.sqlite

For each task (``--tasks``; by default SNIPS and the task files of a topic and a binary classification), the
local option ``llama_cpp:smollm2-135m-instruct`` (in process) answers the task's dev items (the first ``--dev``)
with every prompt variant — the task's own prompt, zero-shot, 5 random, 5 balanced and 3 similar shots (their prompts share no prefix: the slowest),
3 similar shots with the instruction given once (``shot_format: compact``: a third of the tokens), and
the task's own shots with letters for labels — through the kit's selection (:func:`kit.pipeline.selection.
select_prompt`: the runner, a fresh store, the task type's scores; the best dev quality wins, a tie goes to
the shorter prompt). Then the chosen variant and the task's own prompt answer the first ``--test`` test items.

Printed per task: each variant's dev quality with its 95% interval; the chosen variant's test quality against
the default prompt's; the dev − test optimism of the chosen variant; the test interval's half-width. Then the
issue's two checks: the chosen variant is at least the default prompt on test in most tasks, and the mean
optimism is below the mean half-width. ``--json PATH`` writes the figures.

``hhs-breach-triage`` is left out by default: it is extraction (a JSON answer generated token by token, about
0.3 items/s for this model on a laptop CPU), so ~600 dev answers and 200 test answers would take most of an
hour; pass ``--tasks hhs-breach-triage`` to run it (letters do not apply to it and are left out).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from kit.arms import get_arm
from kit.experiment import Experiment
from kit.pipeline.selection import select_prompt
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.stats.intervals import mean_ci
from kit.tasks import load_task
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant
from kit.tasks.scoring import score_responses

MODEL = "llama_cpp:smollm2-135m-instruct"
DEFAULT_TASKS = ("snips-intents", "nace-activities", "fine-food-reviews")


def variants_for(task) -> list[dict]:
    """The variants tried: the task's own prompt first (a tie on dev keeps it), then the other forms."""
    out = [{"name": "task's own"}, {"name": "0-shot", "shots": 0}]
    if task.shots != 5:
        out.append({"name": "5 random", "shots": 5})
    out += [{"name": "5 balanced", "shots": 5, "shot_choice": "balanced"},
            {"name": "3 similar", "shots": 3, "shot_choice": "similar"},
            {"name": "3 similar compact", "shots": 3, "shot_choice": "similar", "shot_format": "compact"}]
    if task.type.constraint().choices:
        out.append({"name": "letters", "label_style": "letters"})
    return out


def test_quality(task, arm, store, items, variant: PromptVariant, *, max_tokens: int) -> tuple[float, float, float, float]:
    """Mean score on ``items`` with its Wilson interval, and the seconds it took."""
    start = time.perf_counter()
    summary = run_arm(task, arm, store=store, items=items, variant=variant, max_tokens=max_tokens,
                      label=f"test · {variant.name}")
    seconds = time.perf_counter() - start
    scores = score_responses(task, store.rows(summary.keys.values()).assign(option="local"))
    mean, low, high = mean_ci(scores["score"].to_numpy(dtype=float))
    return mean, low, high, seconds


def bench_task(name: str, arm, store, *, dev: int, test: int) -> dict:
    task = load_task(name)  # a task name, or the path of a task file
    task = replace(task, dev=task.dev[:dev])
    name = task.name
    max_tokens = task.type.max_tokens or 32
    exp = Experiment.from_mapping({"tasks": {name: None}, "reference": "local", "prompts": variants_for(task),
                                   "options": [{"name": "local", "arm": MODEL, "machine": {"price_per_hour": 0.2}}]},
                                  source="bench")
    option = exp.option("local")
    start = time.perf_counter()
    pick = select_prompt(task, option, arm, store=store, max_tokens=max_tokens)
    select_s = time.perf_counter() - start
    table = pick.table
    items = task.test[:test]
    chosen_q, low, high, chosen_s = test_quality(task, arm, store, items, pick.chosen, max_tokens=max_tokens)
    if pick.chosen.is_default:
        default_q, default_s = chosen_q, 0.0
    else:
        default_q, _, _, default_s = test_quality(task, arm, store, items, DEFAULT_PROMPT, max_tokens=max_tokens)
    dev_q = float(table.loc[table["chosen"], "dev_quality"].iloc[0])
    print(f"\n{name}: {len(task.train)} train, {len(task.dev)} dev (used), {len(items)} test items; "
          f"{len(table)} variants; selection {select_s:.0f} s")
    show = table[["variant", "prompt", "dev_quality", "dev_ci_low", "dev_ci_high", "prompt_tokens", "chosen"]]
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"chosen '{pick.chosen.name}': dev {dev_q:.3f}, test {chosen_q:.3f} (95% CI {low:.3f}–{high:.3f}); "
          f"default prompt on test {default_q:.3f}; optimism {dev_q - chosen_q:+.3f}; half-width "
          f"{(high - low) / 2:.3f}; test runs {chosen_s:.0f} s + {default_s:.0f} s")
    return {"task": name, "dev_items": len(task.dev), "test_items": len(items), "chosen": pick.chosen.name,
            "dev_quality": dev_q, "test_quality": chosen_q, "test_ci_low": low, "test_ci_high": high,
            "default_test_quality": default_q, "optimism": dev_q - chosen_q, "half_width": (high - low) / 2,
            "selection_s": select_s, "variants": table.drop(columns=["task", "option"]).to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                        help="comma-separated task names (or paths of task files)")
    parser.add_argument("--dev", type=int, default=40, help="dev items per task (the first of the dev split)")
    parser.add_argument("--test", type=int, default=100, help="test items per task")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--store", type=Path, default=None,
                        help="a store to keep the answers in (a re-run is served from it); default: a fresh one")
    args = parser.parse_args()
    options = {"n_ctx": 4096, **({"n_threads": args.threads, "n_threads_batch": args.threads} if args.threads else {})}
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Store(args.store or Path(tmp) / "kit.sqlite") as store, \
            get_arm(MODEL, **options) as arm:
        for name in args.tasks.split(","):
            rows.append(bench_task(name.strip(), arm, store, dev=args.dev, test=args.test))
    frame = pd.DataFrame(rows)
    print("\n" + frame[["task", "chosen", "dev_quality", "test_quality", "default_test_quality", "optimism",
                        "half_width"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    at_least = int((frame["test_quality"] >= frame["default_test_quality"] - 1e-12).sum())
    optimism, half = float(frame["optimism"].mean()), float(frame["half_width"].mean())
    print(f"chosen >= default prompt on test in {at_least} of {len(frame)} tasks "
          f"({'most' if at_least > len(frame) / 2 else 'NOT most'})")
    print(f"mean dev - test optimism {optimism:+.3f} {'<' if optimism < half else '>='} mean CI half-width {half:.3f}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"tasks": rows, "at_least_default": at_least, "mean_optimism": optimism,
                                         "mean_half_width": half}, indent=1, default=str))


if __name__ == "__main__":
    main()
