"""Quality per task, whatever its type: the one entry point the report calls for the standard comparison table.

The task's type chooses the comparison (:meth:`kit.tasks.types.TaskType.compare`):

- labelled label and field tasks: right/wrong and field scores against gold answers
  (:func:`kit.stats.compare_arms`: McNemar, Tango's non-inferiority test);
- free-text tasks: [0, 1] scores — chrF, ROUGE-L, a judge's grade or preference
  (:func:`kit.stats.compare_scores`: bootstrap, Wilcoxon, t-test non-inferiority, win/tie/loss);
- unlabelled label and field tasks: agreement with the reference option's answers against a target
  (:func:`kit.stats.compare_agreement`), with the disagreements listed for a human to read first.

Every table has the standard columns (arm, reference, n_items, metric, candidate_value, ..., qualifies,
better, n_needed, statement), Holm-adjusted across candidates. For a task that declares ``cluster:``, the
clusters travel in the scores' ``cluster`` column (:func:`kit.tasks.scoring.score_task`): every comparison
then uses cluster-robust intervals and tests and adds ``n_clusters`` (:mod:`kit.stats.clusters`).

>>> table = compare_options(task, scores, reference="openai:gpt-4o-mini", margin=0.02)   # doctest: +SKIP
>>> table[["option", "conclusion_adjusted", "qualifies"]]                                   # doctest: +SKIP
"""

from __future__ import annotations

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.tasks import Task


def compare_options(task: Task, scores: pd.DataFrame, *, reference: str, margin: float = 0.02, alpha: float = 0.05,
                    agreement_target: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """The standard comparison table for one task: every candidate against ``reference``.

    ``scores`` is the per-item table the task's scoring produced: :func:`kit.tasks.scoring.score_responses`
    (labelled label/field tasks), :func:`~kit.tasks.scoring.score_generation` (free text) or
    :func:`~kit.tasks.scoring.score_unlabelled` (no gold labels). ``margin`` is in the metric's units
    (accuracy points, or score units for free text); ``agreement_target`` is the bar for unlabelled tasks.
    A ``kind`` column says which comparison ran: "paired accuracy", "paired scores" or "agreement".

    >>> compare_options(load_task("snips-intents", ignore_labels=True), score_unlabelled(...),
    ...                 reference="replay:api.jsonl", agreement_target=0.9)     # doctest: +SKIP
    """
    if not task.labelled and Col.GAP not in scores.columns:
        raise ConfigError(f"task '{task.name}' has no gold labels, and the scores were not taken against the "
                          "reference", where="kit.tasks.compare.compare_options",
                          fix="score with kit.tasks.scoring.score_unlabelled(task, rows, reference=...)")
    comparison = task.type.compare(scores, reference=reference, labelled=task.labelled, margin=margin, alpha=alpha,
                                   agreement_target=agreement_target, n_resamples=n_resamples, seed=seed)
    out = comparison.table
    out.insert(0, Col.TASK, task.name)
    out.insert(1, Col.KIND, comparison.kind)
    return out


def disagreements(task: Task, scores: pd.DataFrame, *, reference: str) -> pd.DataFrame:
    """Items where a candidate's answer differs from the reference's, for a human to read first.

    One row per (candidate, item) that disagrees, candidates in table order, items by id: arm, item_id,
    text, answer, reference_answer, error. Items without a reference answer (gaps) are listed at the end
    with the reason in ``reference_answer``.

    >>> disagreements(task, score_unlabelled(task, rows, reference=api), reference=api).head()   # doctest: +SKIP
    """
    if Col.GAP not in scores.columns:
        raise ConfigError("the scores were not taken against the reference", where="kit.tasks.compare.disagreements",
                          fix="score with kit.tasks.scoring.score_unlabelled(task, rows, reference=...)")
    texts = {i.id: i.text for i in task.items}
    cand = scores[scores[Col.OPTION] != reference]
    differ = cand[cand[Col.GAP].isna() & ~cand[Col.CORRECT].astype(bool)]
    gaps = cand[cand[Col.GAP].notna()].drop_duplicates(Col.ITEM_ID)
    rows = [{Col.OPTION: r[Col.OPTION], Col.ITEM_ID: r[Col.ITEM_ID], Col.TEXT: texts.get(r[Col.ITEM_ID], ""), Col.ANSWER: r[Col.ANSWER],
             Col.REFERENCE_ANSWER: r[Col.GOLD], Col.ERROR: r.get(Col.ERROR)} for _, r in differ.iterrows()]
    rows += [{Col.OPTION: "(every option)", Col.ITEM_ID: r[Col.ITEM_ID], Col.TEXT: texts.get(r[Col.ITEM_ID], ""), Col.ANSWER: None,
              Col.REFERENCE_ANSWER: f"(none: {r[Col.GAP]})", Col.ERROR: None} for _, r in gaps.iterrows()]
    return pd.DataFrame(rows, columns=[Col.OPTION, Col.ITEM_ID, Col.TEXT, Col.ANSWER, Col.REFERENCE_ANSWER, Col.ERROR])
