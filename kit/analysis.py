"""Stages 4–6 of the report: quality statistics, economics and the decision, from the run's folder.

Each stage reads the tables the previous stages wrote (see :mod:`kit.pipeline`) and writes its own.

>>> tables = quality_stage(run_dir="runs/report-…", margin=0.02)    # doctest: +SKIP
>>> tables["snips-intents"]["compare"][["arm", "conclusion"]]        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kit import stats
from kit.pipeline import load_plans, load_table, save_json, save_table, scores_for
from kit.tasks import load_task


def roles(run_dir: str | Path) -> dict[str, str]:
    """arm spec -> role (api, local, finetuned)."""
    return {p.spec: p.role for p in load_plans(run_dir)}


def reference_arm(run_dir: str | Path) -> str:
    return next(p.spec for p in load_plans(run_dir) if p.role == "api")


def run_tasks(run_dir: str | Path) -> list[str]:
    return list(dict.fromkeys(load_table(run_dir, "runs")["task"]))


def quality_stage(*, run_dir: str | Path, margin: float = 0.02, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Per task: metrics with CIs, paired comparison with the API, agreement, latency, errors."""
    out: dict[str, dict[str, Any]] = {}
    ref = reference_arm(run_dir)
    for name in run_tasks(run_dir):
        task = load_task(name)
        scores = scores_for(name, run_dir)
        save_table(run_dir, f"scores_{name}", scores.drop(columns=["answer", "gold"]))
        tables = {
            "metrics": stats.metric_table(scores),
            "compare": stats.compare_arms(scores, reference=ref, margin=margin, alpha=alpha),
            "latency": stats.latency_summary(scores),
            "errors": stats.errors_table(scores),
        }
        if task.kind == "classification":
            tables["agreement"] = _agreement_with(ref, scores, task.type.labels)
        for key, table in tables.items():
            save_table(run_dir, f"{key}_{name}", table)
        out[name] = tables
    save_json(run_dir, "quality_params", {"margin": margin, "alpha": alpha, "reference": ref})
    return out


def _agreement_with(ref: str, scores: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """Each local arm's agreement with the API's answers (Cohen's kappa): the no-gold-labels view."""
    wide = scores.pivot_table(index="item_id", columns="arm", values="answer", aggfunc="first")
    rows = []
    for arm in wide.columns:
        if arm == ref:
            continue
        table = stats.agreement(wide[arm], wide[ref], labels=list(labels))
        table.insert(0, "arm", arm)
        rows.append(table[table["level"] == "overall"])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def quality_overview(run_dir: str | Path) -> pd.DataFrame:
    """One row per task and arm: the metric with its CI and the verdict of the paired comparison."""
    role_of = roles(run_dir)
    rows = []
    for name in run_tasks(run_dir):
        metrics = load_table(run_dir, f"metrics_{name}")
        compare = load_table(run_dir, f"compare_{name}").set_index("arm")
        metric = "accuracy" if load_task(name).kind == "classification" else "mean field score"
        for rec in metrics.to_dict("records"):
            value, lo, hi = ((rec["accuracy"], rec["accuracy_ci_low"], rec["accuracy_ci_high"]) if metric == "accuracy"
                             else (rec["mean_score"], rec["score_ci_low"], rec["score_ci_high"]))
            row = {"task": name, "option": role_of.get(rec["arm"], "?"), "arm": rec["arm"], "metric": metric,
                   "value": value, "ci_low": lo, "ci_high": hi, "items": rec["n_items"],
                   "errors": rec["n_errors"] + rec["n_parse_errors"]}
            if rec["arm"] in compare.index:
                c = compare.loc[rec["arm"]]
                row.update(difference=c["difference"], diff_ci_low=c["diff_ci_low"], diff_ci_high=c["diff_ci_high"],
                           conclusion=c["conclusion_adjusted"], items_needed=c["n_needed"])
            rows.append(row)
    return pd.DataFrame(rows)
