"""Prompt selection, a helper of the answer stage: each option at its best prompt, chosen on the dev split.

An option with more than one prompt variant (``prompts:`` in the experiment) answers the task's dev items with
every variant — through the runner and the store, so each answer is kept and paid once — and each variant is
scored with the task's type. The best dev quality wins; ties (within ``TIE``) go to the shorter prompt: fewer
prompt tokens per dev item as the arm measured them (prompt characters where it reports none), then the
variant listed first. With four variants or more the dev items are spent by **successive halving**
(:func:`kit.stats.halving.successive_halving`: every variant on a first slice, the better half on the next, …,
half the answers of asking every variant every item; bench/README.md measures how often it picks what
exhaustive selection picks); each row says how many dev items its variant answered and the round it was cut in. Only the chosen variant answers the test split, so the test figure is the result and no
test item took part in the choice. The dev answers are filed apart (``kind="dev"``) and counted: calls, seconds
and USD.

Selection is skipped — the first variant listed answers the test split, and the table says why — for a task
without gold answers, a free-text task (its scores need a judge), or a task too small for a dev split
(:data:`kit.tasks.loading.DEV_MIN`) or given no dev items by the experiment (``dev_items: 0``). ``dev_items: N``
spends a seeded sample of N dev items (:func:`dev_sample`) where the whole dev split would cost too much.

>>> pick = select_prompt(task, option, arm, store=store, max_tokens=256)     # doctest: +SKIP
>>> pick.chosen.name, pick.table[["variant", "dev_quality", "chosen"]]        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from kit.arms.base import Arm
from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Option
from kit.pipeline.pricing import answers_usd
from kit.run.runner import Withhold, run_arm
from kit.run.store import Store
from kit.stats.halving import successive_halving
from kit.stats.intervals import mean_ci
from kit.tasks import Task
from kit.tasks.loading import DEV_MIN
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, build_request
from kit.tasks.scoring import score_responses

DEV_KIND = "dev"  # the store's kind for answers to dev items (never read as an option's test answers)
TIE = 1e-9  # dev qualities this close are a tie: the shorter prompt wins
HALVING_FROM = 4  # from this many variants on, the dev items are spent by successive halving


@dataclass(frozen=True)
class Selection:
    """The variant that answers the test split, the rows of the prompts table (none with one variant), and the
    chosen variant's answers to the dev items (item id -> cache key; none when nothing was selected)."""

    chosen: PromptVariant
    table: pd.DataFrame
    dev_keys: dict[str, str] = field(default_factory=dict)


def dev_sample(task: Task, limit: int | None) -> Task:
    """``task`` with its dev split cut to ``limit`` items (None: all): a seeded random sample, in the order of
    one permutation of the dev split, so a larger limit keeps every item a smaller one drew (and its stored
    answers).

    >>> from kit.tasks import load_task
    >>> task = load_task("snips-intents")
    >>> small, large = dev_sample(task, 5).dev, dev_sample(task, 20).dev
    >>> len(small), small == large[:5], set(small) <= set(task.dev), dev_sample(task, None) is task
    (5, True, True, True)
    """
    if limit is None or limit >= len(task.dev):
        return task
    order = np.random.default_rng(task.split_seed + 5).permutation(len(task.dev))[:limit]
    return replace(task, dev=tuple(task.dev[j] for j in order))


def skip_reason(task: Task, limit: int | None = None) -> str | None:
    """Why prompt variants cannot be compared on ``task``'s dev split (None: they can); ``limit``: the dev items
    the experiment gives the task (``dev_items:``)."""
    if limit == 0:
        return "the experiment gives this task no dev items (`dev_items:`)"
    if not task.labelled:
        return "the task has no gold answers to score the variants on"
    if task.type.judged:
        return "free-text answers are scored by a judge, not on the dev split"
    if not task.dev:
        return f"the task has too few non-test items for a dev split (fewer than {DEV_MIN})"
    return None


def select_prompt(task: Task, option: Option, arm: Arm, *, store: Store, max_tokens: int,
                  withhold: Withhold | None = None, progress: bool = False,
                  dev_items: int | None = None) -> Selection:
    """The variant of ``option``'s prompts that answers ``task``'s test split: the best on the dev split (on
    ``dev_items`` of its items, a seeded sample: :func:`dev_sample`; None: all of them)."""
    variants = option.prompts or (DEFAULT_PROMPT,)
    if len(variants) == 1:
        return Selection(variants[0], pd.DataFrame())
    base = {Col.TASK: task.name, Col.OPTION: option.name}
    reason = skip_reason(task, dev_items)
    task = dev_sample(task, dev_items)
    if reason is not None:
        note = f"not selected: {reason}; the first variant answers the test items"
        rows = [{**base, Col.VARIANT: v.name, Col.PROMPT: v.describe(), Col.DEV_ITEMS: 0, Col.DEV_QUALITY: math.nan,
                 Col.DEV_CI_LOW: math.nan, Col.DEV_CI_HIGH: math.nan, Col.PROMPT_TOKENS: math.nan,
                 Col.CHOSEN: i == 0, Col.SELECTION_CALLS: 0, Col.SELECTION_SECONDS: 0.0, Col.SELECTION_USD: 0.0,
                 Col.NOTE: note} for i, v in enumerate(variants)]
        return Selection(variants[0], pd.DataFrame(rows))
    if len(variants) >= HALVING_FROM:
        return _halving(task, option, arm, variants, store=store, max_tokens=max_tokens, withhold=withhold,
                        progress=progress)
    rows, keys = [], []
    for v in variants:
        summary = run_arm(task, arm, store=store, items=task.dev, variant=v, kind=DEV_KIND, max_tokens=max_tokens,
                          withhold=withhold, progress=progress, label=f"{option.name} · prompt {v.name} (dev)")
        keys.append(summary.keys)
        rows.append(_row(task, option, v, store.rows(summary.keys.values()).assign(**{Col.OPTION: option.name})))
    best = choose(rows, [_chars(task, v) for v in variants]
                  if not all(math.isfinite(r[Col.PROMPT_TOKENS]) for r in rows) else None)
    for i, row in enumerate(rows):
        row[Col.CHOSEN] = i == best
    return Selection(variants[best], pd.DataFrame(rows), dev_keys=keys[best])


def _halving(task: Task, option: Option, arm: Arm, variants: tuple[PromptVariant, ...], *, store: Store,
             max_tokens: int, withhold: Withhold | None, progress: bool) -> Selection:
    """Selection by successive halving: each variant answers a prefix of the dev items, the better half goes on."""
    keys: list[dict[str, str]] = [{} for _ in variants]

    def score(v: int, items: range) -> list[float]:
        summary = run_arm(task, arm, store=store, items=task.dev[items.start:items.stop], variant=variants[v],
                          kind=DEV_KIND, max_tokens=max_tokens, withhold=withhold, progress=progress,
                          label=f"{option.name} · prompt {variants[v].name} (dev {items.start + 1}–{items.stop})")
        keys[v].update(summary.keys)
        order = [summary.keys[item.id] for item in task.dev[items.start:items.stop] if item.id in summary.keys]
        scored = score_responses(task, store.rows(order).assign(**{Col.OPTION: option.name}))
        by_id = dict(zip(scored[Col.ITEM_ID].astype(str), scored[Col.SCORE].astype(float)))
        return [min(1.0, max(0.0, by_id.get(item.id, 0.0))) if math.isfinite(by_id.get(item.id, 0.0)) else 0.0
                for item in task.dev[items.start:items.stop]]  # an error or a withheld item scores 0

    chars = [_chars(task, v) for v in variants]
    pick = successive_halving(len(variants), len(task.dev), score, tiebreak=chars)
    rows = []
    for v, record in zip(variants, pick.arms):
        row = _row(task, option, v, store.rows(keys[record.arm].values()).assign(
            **{Col.OPTION: option.name}))
        row[Col.CHOSEN] = record.arm == pick.best
        row[Col.NOTE] = ("chosen after every round of successive halving" if record.cut_in_round is None else
                         f"cut in round {record.cut_in_round + 1} of successive halving, after {record.items} "
                         f"of {len(task.dev)} dev items")
        rows.append(row)
    return Selection(variants[pick.best], pd.DataFrame(rows), dev_keys=keys[pick.best])


def _row(task: Task, option: Option, variant: PromptVariant, answers: pd.DataFrame) -> dict:
    """One variant's row of the prompts table from its dev answers (``chosen`` is filled in by the caller)."""
    scores = score_responses(task, answers)
    quality, low, high = mean_ci(scores[Col.SCORE].to_numpy(dtype=float))
    tokens = pd.to_numeric(answers.get(Col.PROMPT_TOKENS), errors="coerce")
    seconds = float(pd.to_numeric(answers.get(Col.LATENCY_S), errors="coerce").fillna(0.0).sum())
    return {Col.TASK: task.name, Col.OPTION: option.name, Col.VARIANT: variant.name, Col.PROMPT: variant.describe(),
            Col.DEV_ITEMS: len(answers), Col.DEV_QUALITY: quality, Col.DEV_CI_LOW: low, Col.DEV_CI_HIGH: high,
            Col.PROMPT_TOKENS: float(tokens.mean()) if tokens.notna().any() else math.nan,
            Col.SELECTION_CALLS: len(answers), Col.SELECTION_SECONDS: seconds,
            Col.SELECTION_USD: _usd(option, answers), Col.NOTE: ""}


def choose(rows: list[dict], chars: list[float] | None = None) -> int:
    """The index of the best variant: the highest dev quality; a tie (within TIE) goes to fewer prompt tokens
    per item (to fewer prompt characters, ``chars``, when given: the arm counted no tokens), then to the variant
    listed first.

    >>> choose([{"dev_quality": 0.8, "prompt_tokens": 90.0}, {"dev_quality": 0.8, "prompt_tokens": 40.0},
    ...         {"dev_quality": 0.7, "prompt_tokens": 10.0}])
    1
    >>> choose([{"dev_quality": 0.8, "prompt_tokens": math.nan}] * 2, chars=[120.0, 300.0])
    0
    """
    best = max(r[Col.DEV_QUALITY] for r in rows)
    tied = [i for i, r in enumerate(rows) if r[Col.DEV_QUALITY] >= best - TIE]
    length = chars if chars is not None else [r[Col.PROMPT_TOKENS] for r in rows]
    return min(tied, key=lambda i: (length[i], i))


def _chars(task: Task, variant: PromptVariant) -> float:
    """The mean length of the variant's prompts on the dev items, in characters."""
    return float(np.mean([sum(len(m["content"]) for m in build_request(task, i, variant=variant).messages)
                          for i in task.dev]))


def _usd(option: Option, answers: pd.DataFrame) -> float:
    """What the dev answers cost, priced as the costs stage prices answers (NaN when the price is unknown)."""
    try:
        return answers_usd(option, answers)
    except ConfigError:
        return math.nan
