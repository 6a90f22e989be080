"""Successive halving against exhaustive prompt selection: the same pick, for how many of the dev answers?

    .venv/bin/python bench/bench_halving.py --threads 1 --store runs/bench_halving.sqlite --json halving.json

For each task (``--tasks``; by default SNIPS intents, NACE sectors, fine-food reviews) the local option
``llama_cpp:smollm2-135m-instruct`` (in process) answers every dev item with every prompt variant through the
runner and a store (``kind="dev"``, as selection files them; a re-run with the same ``--store`` is served from
it). From those real answers:

* **exhaustive selection** picks, as :mod:`kit.pipeline.selection` does, the best mean dev score, a tie going
  to fewer prompt tokens per item, then to the variant listed first;
* **successive halving** (:func:`kit.stats.successive_halving`, budget ``--budget`` of the exhaustive answers)
  runs once per seed (``--seeds``) on the dev items in a seeded order, asking through the runner and the same
  store (served from it: what it asks is counted, not re-bought), with prompt characters as its tie-break
  (known before any answer);
* for two variant sets per task ("options"): every variant tried (``all``, 5–6 of them) and the proposed
  default for local options (``default``: the task's own, 0-shot, 3 similar, 5 balanced shots).

Printed: each variant's dev score and seconds per dev item (wall clock of the first run, when the store was
empty); per task × option × seed whether halving picked exhaustive's variant, its share of exhaustive's dev
calls, and the dev score it gave up when it did not; then the issue's check (same pick in >= 90% of the seeded
cases at <= 50% of the calls) and the model seconds each selection costs per task (the calls each one asks,
priced at each variant's measured seconds per item).

Then two resampling checks of the rule itself (no model calls; ``--sim-only`` runs a grid of the second alone:
4 or 6 variants whose mean scores step down from 0.8 by 0.03–0.2, on 40, 68 or 100 items): on each task's real score matrix, items drawn
with replacement (``--boot`` times) — how often halving agrees with exhaustive selection on the same draw; and
a simulation with known truth (Bernoulli variants whose mean scores are spread like the real ones) — how often
each picks the truly best variant, and the mean score given up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kit.arms import get_arm
from kit.columns import Col
from kit.pipeline.selection import dev_sample
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.stats.halving import BUDGET, rank, successive_halving
from kit.tasks import Item, load_task
from kit.tasks.prompts import PromptVariant, build_request
from kit.tasks.scoring import score_responses

MODEL = "llama_cpp:smollm2-135m-instruct"
DEFAULT_TASKS = ("snips-intents", "nace-activities", "fine-food-reviews")
DEV_KIND = "dev"  # as prompt selection files its answers
DEFAULT_SET = ("task's own", "0-shot", "3 similar", "5 balanced")  # the proposed default variants for local options


def variants_for(task) -> list[PromptVariant]:
    """The variants tried (bench_prompts' set): the task's own prompt first, then the other forms."""
    out = [{"name": "task's own"}, {"name": "0-shot", "shots": 0}]
    if task.shots != 5:
        out.append({"name": "5 random", "shots": 5})
    out += [{"name": "5 balanced", "shots": 5, "shot_choice": "balanced"},
            {"name": "3 similar", "shots": 3, "shot_choice": "similar"}]
    if task.type.constraint().choices:
        out.append({"name": "letters", "label_style": "letters"})
    return [PromptVariant(**v) for v in out]


@dataclass
class Answered:
    """A task's dev answers: one score per variant and item (dev order), prompt tokens and seconds per item."""

    task: object
    variants: list[PromptVariant]
    scores: np.ndarray
    tokens: np.ndarray
    seconds_per_item: np.ndarray  # the model's seconds per answer, as the runner measured them when asked
    chars: np.ndarray
    wall_per_item: np.ndarray  # this pass's wall clock per item (the answering's when the store was empty)


def score_items(task, arm, store, variant: PromptVariant, items: Sequence[Item], max_tokens: int) -> pd.DataFrame:
    """Ask (or read from the store) ``variant``'s answers to ``items``; their scores, indexed by item id."""
    summary = run_arm(task, arm, store=store, items=items, variant=variant, kind=DEV_KIND, max_tokens=max_tokens)
    answers = store.rows([summary.keys[i.id] for i in items]).assign(**{Col.OPTION: "local"})
    scores = score_responses(task, answers).set_index(Col.ITEM_ID)[[Col.SCORE]]
    return scores.join(answers.set_index(Col.ITEM_ID)[[Col.PROMPT_TOKENS, Col.LATENCY_S]])


def answer_all(name: str, arm, store, *, dev: int | None, leave_out: Sequence[str] = ()) -> Answered:
    task = load_task(name)
    items = dev_sample(task, dev).dev  # as `dev_items: N` samples them (all: the whole dev split)
    variants = [v for v in variants_for(task) if v.name not in leave_out]
    max_tokens = task.type.max_tokens or 32
    scores, tokens, seconds, chars, wall = [], [], [], [], []
    for v in variants:
        start = time.perf_counter()
        table = score_items(task, arm, store, v, items, max_tokens)
        wall.append((time.perf_counter() - start) / len(items))
        scores.append([float(table.loc[i.id, Col.SCORE]) for i in items])
        tokens.append(float(pd.to_numeric(table[Col.PROMPT_TOKENS], errors="coerce").mean()))
        seconds.append(float(pd.to_numeric(table[Col.LATENCY_S], errors="coerce").mean()))
        chars.append(float(np.mean([sum(len(m["content"]) for m in build_request(task, i, variant=v).messages)
                                    for i in items])))
    return Answered(replace(task, dev=tuple(items)), variants, np.array(scores), np.array(tokens), np.array(seconds),
                    np.array(chars), np.array(wall))


def exhaustive(scores: np.ndarray, tokens: Sequence[float]) -> int:
    """Exhaustive selection's pick: the best mean, a tie to fewer prompt tokens, then the first listed."""
    return rank(scores.mean(axis=1).tolist(), list(range(len(scores))), tiebreak=list(tokens))[0]


def halving_case(a: Answered, arm, store, subset: list[int], seed: int, budget: float) -> dict:
    """One seeded halving run through the runner and the store on the dev items in a seeded order."""
    task = a.task
    order = [task.dev[j] for j in np.random.default_rng(seed).permutation(len(task.dev))]
    max_tokens = task.type.max_tokens or 32
    asked = []

    def score(v: int, items: range) -> list[float]:
        chosen = order[items.start:items.stop]
        asked.append((subset[v], len(chosen)))
        table = score_items(task, arm, store, a.variants[subset[v]], chosen, max_tokens)
        return [float(table.loc[i.id, Col.SCORE]) for i in chosen]

    pick = successive_halving(len(subset), len(order), score, budget=budget, tiebreak=a.chars[subset].tolist())
    full = exhaustive(a.scores[subset], a.tokens[subset])
    means = a.scores[subset].mean(axis=1)
    return {"seed": seed, "halving": subset[pick.best], "exhaustive": subset[full], "same": pick.best == full,
            "calls": pick.calls, "exhaustive_calls": pick.exhaustive_calls, "share": pick.share,
            "given_up": float(means[full] - means[pick.best]), "round_ends": list(pick.round_ends),
            "halving_s": float(sum(a.seconds_per_item[v] * n for v, n in asked)),
            "exhaustive_s": float(a.seconds_per_item[subset].sum() * len(order))}


def matrix_halving(scores: np.ndarray, tiebreak: Sequence[float], budget: float) -> int:
    return successive_halving(len(scores), scores.shape[1], lambda v, items: scores[v, items.start:items.stop],
                              budget=budget, tiebreak=tiebreak).best


def bootstrap_agreement(a: Answered, subset: list[int], *, reps: int, budget: float, seed: int = 0) -> float:
    """How often halving and exhaustive selection pick the same variant on items drawn with replacement."""
    rng = np.random.default_rng(seed)
    scores = a.scores[subset]
    same = 0
    for _ in range(reps):
        draw = scores[:, rng.integers(0, scores.shape[1], scores.shape[1])]
        same += matrix_halving(draw, a.chars[subset].tolist(), budget) == exhaustive(draw, a.tokens[subset])
    return same / reps


def simulate(means: np.ndarray, n_items: int, *, reps: int, budget: float, seed: int = 1) -> dict:
    """Known truth: variants right on each item with probabilities ``means`` (items shared: a common item
    difficulty makes the variants' answers correlated, as on real items). Picks of the true best and the mean
    score given up, for exhaustive selection and halving on the same items."""
    rng = np.random.default_rng(seed)
    best = int(np.argmax(means))
    logits = np.log(means / (1 - means))
    hits = {"exhaustive": 0, "halving": 0, "agree": 0}
    lost = {"exhaustive": 0.0, "halving": 0.0}
    ties = np.arange(len(means), dtype=float)
    for _ in range(reps):
        difficulty = rng.normal(0, 1.0, n_items)  # shared by the variants: paired items
        p = 1 / (1 + np.exp(-(logits[:, None] - difficulty[None, :])))
        scores = (rng.random(p.shape) < p).astype(float)
        picks = {"exhaustive": exhaustive(scores, ties), "halving": matrix_halving(scores, ties.tolist(), budget)}
        for k, v in picks.items():
            hits[k] += v == best
            lost[k] += means[best] - means[v]
        hits["agree"] += picks["exhaustive"] == picks["halving"]
    return {"true_best_exhaustive": hits["exhaustive"] / reps, "true_best_halving": hits["halving"] / reps,
            "agree": hits["agree"] / reps, "given_up_exhaustive": lost["exhaustive"] / reps,
            "given_up_halving": lost["halving"] / reps}


def simulation_table(*, reps: int, budget: float) -> pd.DataFrame:
    """The rule alone, with known truth: K variants whose mean scores step down from 0.8 by ``gap``."""
    rows = []
    for k in (4, 6):
        for gap in (0.03, 0.05, 0.1, 0.2):
            means = np.clip(0.8 - gap * np.arange(k), 0.02, 0.98)
            for n in (40, 68, 100):
                rows.append({"variants": k, "gap": gap, "dev_items": n,
                             **simulate(means, n, reps=reps, budget=budget)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names or task files")
    parser.add_argument("--dev", type=int, default=None, help="dev items per task, a seeded sample as `dev_items:` "
                                                              "draws it (default: the whole dev split)")
    parser.add_argument("--seeds", type=int, default=10, help="seeded dev orders per task and option")
    parser.add_argument("--budget", type=float, default=BUDGET, help="halving's share of exhaustive's dev answers")
    parser.add_argument("--boot", type=int, default=2000, help="resamples of the real score matrices")
    parser.add_argument("--sim", type=int, default=2000, help="simulated selections per setting")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--store", type=Path, default=None, help="a store for the answers (a re-run reads them)")
    parser.add_argument("--dev-for", default="", help="dev items for some tasks, as TASK:N pairs separated by "
                                                         "commas (overrides --dev for those)")
    parser.add_argument("--leave-out", default="",
                        help="variants not tried, as TASK:VARIANT pairs separated by commas (e.g. for time)")
    parser.add_argument("--sim-only", action="store_true", help="only the simulation with known truth (no model)")
    args = parser.parse_args()
    if args.sim_only:
        table = simulation_table(reps=args.sim, budget=args.budget)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.json:
            args.json.write_text(json.dumps(table.to_dict("records"), indent=1))
        return
    options = {"n_ctx": 4096, **({"n_threads": args.threads, "n_threads_batch": args.threads} if args.threads else {})}
    start = time.perf_counter()
    cases, tasks_out = [], []
    with tempfile.TemporaryDirectory() as tmp, Store(args.store or Path(tmp) / "kit.sqlite") as store, \
            get_arm(MODEL, **options) as arm:
        for name in args.tasks.split(","):
            left = [pair.split(":", 1)[1] for pair in args.leave_out.split(",") if pair.split(":", 1)[0] == name]
            dev = {k: int(v) for k, v in (p.split(":") for p in args.dev_for.split(",") if p)}.get(name, args.dev)
            a = answer_all(name.strip(), arm, store, dev=dev, leave_out=left)
            names = [v.name for v in a.variants]
            print(f"\n{a.task.name}: {len(a.task.dev)} dev items, {len(names)} variants")
            table = pd.DataFrame({"variant": names, "prompt": [v.describe() for v in a.variants],
                                  "dev_score": a.scores.mean(axis=1), "prompt_tokens": a.tokens,
                                  "prompt_chars": a.chars, "s_per_item": a.seconds_per_item,
                                  "wall_per_item": a.wall_per_item})
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            sets = {"all": list(range(len(names))), "default": [names.index(n) for n in DEFAULT_SET if n in names]}
            if sorted(sets["default"]) == sets["all"]:  # variants left out: the two sets are one
                del sets["default"]
            task_row = {"task": a.task.name, "dev_items": len(a.task.dev), "variants": table.to_dict("records")}
            for option, subset in sets.items():
                for seed in range(args.seeds):
                    case = halving_case(a, arm, store, subset, seed, args.budget)
                    cases.append({"task": a.task.name, "option": option, **case,
                                  "halving_variant": names[case["halving"]],
                                  "exhaustive_variant": names[case["exhaustive"]]})
                boot = bootstrap_agreement(a, subset, reps=args.boot, budget=args.budget)
                sim = simulate(np.clip(a.scores[subset].mean(axis=1), 0.02, 0.98), len(a.task.dev), reps=args.sim,
                               budget=args.budget)
                task_row[option] = {"bootstrap_agreement": boot, **sim}
                print(f"  {option} ({len(subset)} variants): exhaustive picks "
                      f"'{names[subset[exhaustive(a.scores[subset], a.tokens[subset])]]}'; resampled items: halving agrees "
                      f"{boot:.1%}; simulated truth: true best picked by exhaustive {sim['true_best_exhaustive']:.1%},"
                      f" by halving {sim['true_best_halving']:.1%} (score given up {sim['given_up_exhaustive']:.3f} vs"
                      f" {sim['given_up_halving']:.3f})")
            tasks_out.append(task_row)
    frame = pd.DataFrame(cases)
    print("\n" + frame[["task", "option", "seed", "exhaustive_variant", "halving_variant", "same", "calls",
                        "exhaustive_calls", "share", "given_up"]].to_string(index=False,
                                                                           float_format=lambda v: f"{v:.3f}"))
    frame["no_loss"] = frame["given_up"] <= 1e-9  # the same pick, or one with the same dev score (a tie)
    summary = frame.groupby(["task", "option"]).agg(same=("same", "sum"), no_loss=("no_loss", "sum"),
                                                    cases=("same", "size"),
                                                    share=("share", "mean"), given_up=("given_up", "mean"),
                                                    halving_s=("halving_s", "mean"),
                                                    exhaustive_s=("exhaustive_s", "mean")).reset_index()
    print("\n" + summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    same, total, share = int(frame["same"].sum()), len(frame), float(frame["share"].max())
    print(f"\nsame pick as exhaustive selection in {same} of {total} seeded cases ({same / total:.0%}; goal >= 90%), "
          f"at most {share:.0%} of its dev calls (goal <= 50%): "
          f"{'MET' if same >= 0.9 * total and share <= 0.5 else 'NOT MET'}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"cases": cases, "tasks": tasks_out, "summary": summary.to_dict("records"),
                                         "same": same, "total": total, "max_share": share}, indent=1, default=str))


if __name__ == "__main__":
    main()
