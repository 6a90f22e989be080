"""Prompt selection, a helper of the answer stage: each option at its best prompt, chosen on the dev split.

An option with more than one prompt variant (``prompts:`` in the experiment) answers the task's dev items with
every variant — through the runner and the store, so each answer is kept and paid once — and each variant is
scored with the task's type. The best dev quality wins; ties (within ``TIE``) go to the shorter prompt: fewer
prompt tokens per dev item as the arm measured them (prompt characters where it reports none), then the
variant listed first. Only the chosen variant answers the test split, so the test figure is the result and no
test item took part in the choice. The dev answers are filed apart (``kind="dev"``) and counted: calls, seconds
and USD.

Selection is skipped — the first variant listed answers the test split, and the table says why — for a task
without gold answers, a free-text task (its scores need a judge), or a task too small for a dev split
(:data:`kit.tasks.loading.DEV_MIN`).

>>> pick = select_prompt(task, option, arm, store=store, max_tokens=256)     # doctest: +SKIP
>>> pick.chosen.name, pick.table[["variant", "dev_quality", "chosen"]]        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kit.arms.base import Arm
from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Option
from kit.pipeline.pricing import answers_usd
from kit.run.runner import Withhold, run_arm
from kit.run.store import Store
from kit.stats.intervals import mean_ci
from kit.tasks import Task
from kit.tasks.loading import DEV_MIN
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, build_request
from kit.tasks.scoring import score_responses

DEV_KIND = "dev"  # the store's kind for answers to dev items (never read as an option's test answers)
TIE = 1e-9  # dev qualities this close are a tie: the shorter prompt wins


@dataclass(frozen=True)
class Selection:
    """The variant that answers the test split, the rows of the prompts table (none with one variant), and the
    chosen variant's answers to the dev items (item id -> cache key; none when nothing was selected)."""

    chosen: PromptVariant
    table: pd.DataFrame
    dev_keys: dict[str, str] = field(default_factory=dict)


def skip_reason(task: Task) -> str | None:
    """Why prompt variants cannot be compared on ``task``'s dev split (None: they can)."""
    if not task.labelled:
        return "the task has no gold answers to score the variants on"
    if task.type.judged:
        return "free-text answers are scored by a judge, not on the dev split"
    if not task.dev:
        return f"the task has too few non-test items for a dev split (fewer than {DEV_MIN})"
    return None


def select_prompt(task: Task, option: Option, arm: Arm, *, store: Store, max_tokens: int,
                  withhold: Withhold | None = None, progress: bool = False) -> Selection:
    """The variant of ``option``'s prompts that answers ``task``'s test split: the best on the dev split."""
    variants = option.prompts or (DEFAULT_PROMPT,)
    if len(variants) == 1:
        return Selection(variants[0], pd.DataFrame())
    base = {Col.TASK: task.name, Col.OPTION: option.name}
    reason = skip_reason(task)
    if reason is not None:
        note = f"not selected: {reason}; the first variant answers the test items"
        rows = [{**base, Col.VARIANT: v.name, Col.PROMPT: v.describe(), Col.DEV_ITEMS: 0, Col.DEV_QUALITY: math.nan,
                 Col.DEV_CI_LOW: math.nan, Col.DEV_CI_HIGH: math.nan, Col.PROMPT_TOKENS: math.nan,
                 Col.CHOSEN: i == 0, Col.SELECTION_CALLS: 0, Col.SELECTION_SECONDS: 0.0, Col.SELECTION_USD: 0.0,
                 Col.NOTE: note} for i, v in enumerate(variants)]
        return Selection(variants[0], pd.DataFrame(rows))
    rows, keys = [], []
    for v in variants:
        summary = run_arm(task, arm, store=store, items=task.dev, variant=v, kind=DEV_KIND, max_tokens=max_tokens,
                          withhold=withhold, progress=progress, label=f"{option.name} · prompt {v.name} (dev)")
        keys.append(summary.keys)
        answers = store.rows(summary.keys.values()).assign(**{Col.OPTION: option.name})
        scores = score_responses(task, answers)
        quality, low, high = mean_ci(scores[Col.SCORE].to_numpy(dtype=float))
        tokens = pd.to_numeric(answers.get(Col.PROMPT_TOKENS), errors="coerce")
        seconds = float(pd.to_numeric(answers.get(Col.LATENCY_S), errors="coerce").fillna(0.0).sum())
        rows.append({**base, Col.VARIANT: v.name, Col.PROMPT: v.describe(), Col.DEV_ITEMS: len(task.dev),
                     Col.DEV_QUALITY: quality, Col.DEV_CI_LOW: low, Col.DEV_CI_HIGH: high,
                     Col.PROMPT_TOKENS: float(tokens.mean()) if tokens.notna().any() else math.nan,
                     Col.SELECTION_CALLS: len(answers), Col.SELECTION_SECONDS: seconds,
                     Col.SELECTION_USD: _usd(option, answers), Col.NOTE: ""})
    best = choose(rows, [_chars(task, v) for v in variants]
                  if not all(math.isfinite(r[Col.PROMPT_TOKENS]) for r in rows) else None)
    for i, row in enumerate(rows):
        row[Col.CHOSEN] = i == best
    return Selection(variants[best], pd.DataFrame(rows), dev_keys=keys[best])


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
