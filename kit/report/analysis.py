"""Stages 4–6 of the report: quality statistics, economics and the decision, from the run's folder.

Each stage reads the tables the previous stages wrote (see :mod:`kit.report.stages`) and writes its own.

>>> tables = quality_stage(run_dir="runs/report-…", margin=0.02)    # doctest: +SKIP
>>> tables["snips-intents"]["compare"][["arm", "conclusion"]]        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kit import stats
from kit.report.stages import load_plans, load_table, save_json, save_table, scores_for
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


# stage 5: economics -------------------------------------------------------------------------------------
OPTION_OF_ROLE = {"api": "hosted API", "local": "local base model", "finetuned": "local fine-tuned"}


def deployment_for(role: str, *, run_dir: str | Path, price_per_hour: float, utilisation: float,
                   always_on: bool, setup_hours: float, ops_hours_per_month: float, hourly_rate: float) -> Any:
    """The LocalDeployment of a local option; the fine-tune's measured training time is its one-time cost."""
    from kit.economics import LocalDeployment
    from kit.report.stages import load_json

    trained = load_json(run_dir, "finetune", {"enabled": False})
    hours = trained["train_seconds"] / 3600 if role == "finetuned" and trained.get("enabled") else 0.0
    return LocalDeployment(price_per_hour=price_per_hour, utilisation=utilisation, always_on=always_on,
                           setup_hours=setup_hours, ops_hours_per_month=ops_hours_per_month,
                           hourly_rate=hourly_rate, finetune_gpu_hours=hours)


def economics_stage(*, run_dir: str | Path, monthly_volume: float, api_pricing_model: str,
                    local_price_per_hour: float, local_utilisation: float = 0.6, local_always_on: bool = False,
                    setup_hours: float = 8, ops_hours_per_month: float = 2, hourly_rate: float = 100,
                    privacy_required: bool = False, margin: float = 0.02, alpha: float = 0.05) -> dict[str, Any]:
    """Per task: cost at volume, break-even with its band, cost curve, PII share, and the cascade sweep."""
    from kit import cascade as routing
    from kit import economics as cost
    from kit import privacy

    plans = {p.role: p for p in load_plans(run_dir)}
    # a real API is priced as itself; the stand-in's tokens are priced as api_pricing_model
    api = plans["api"]
    pricing = cost.ApiPricing(model=api_pricing_model if api.standin else api.pricing_model or api_pricing_model)
    out: dict[str, Any] = {}
    for name in run_tasks(run_dir):
        scores = scores_for(name, run_dir)
        present = set(scores["arm"])
        deps = {role: deployment_for(role, run_dir=run_dir, price_per_hour=local_price_per_hour,
                                     utilisation=local_utilisation, always_on=local_always_on,
                                     setup_hours=setup_hours, ops_hours_per_month=ops_hours_per_month,
                                     hourly_rate=hourly_rate) for role in ("local", "finetuned")}
        options = []
        for role, plan in plans.items():
            if plan.spec not in present:
                continue
            label = OPTION_OF_ROLE[role]
            options.append(cost.api_option(label, scores, pricing=pricing, arm=plan.spec) if role == "api"
                           else cost.local_option(label, scores, deployment=deps[role], arm=plan.spec))
        accuracy = {OPTION_OF_ROLE[r]: float(scores.loc[scores["arm"] == p.spec, "score"].mean())
                    for r, p in plans.items() if p.spec in present}
        flags = privacy.scan_items([load_task(name).item(i) for i in scores["item_id"].unique()])
        local_role = "finetuned" if "finetuned" in plans and plans["finetuned"].spec in present else "local"
        sweep = routing.sweep_cascade(
            scores, local_arm=plans[local_role].spec, hosted_arm=plans["api"].spec, pricing=pricing,
            deployment=deps[local_role], volume=monthly_volume, margin=margin, alpha=alpha,
            keep_local=list(flags.loc[flags["has_pii"], "item_id"]) if privacy_required else ())
        choice = routing.choose_threshold(sweep)
        tables = {"costs": cost.cost_table(options, volume=monthly_volume, accuracy=accuracy),
                  "break_even": cost.break_even(options), "cost_curve": cost.cost_curve(options),
                  "pii": privacy.pii_share(flags), "pii_items": flags, "cascade": sweep}
        for key, table in tables.items():
            save_table(run_dir, f"{key}_{name}", table)
        save_json(run_dir, f"cascade_choice_{name}", {**choice.__dict__, "local_option": OPTION_OF_ROLE[local_role]})
        out[name] = {**tables, "choice": choice}
    save_json(run_dir, "economics_params", {"monthly_volume": monthly_volume, "api_pricing_model": api_pricing_model,
                                            "local_price_per_hour": local_price_per_hour,
                                            "local_utilisation": local_utilisation, "local_always_on": local_always_on,
                                            "setup_hours": setup_hours, "ops_hours_per_month": ops_hours_per_month,
                                            "hourly_rate": hourly_rate, "privacy_required": privacy_required})
    return out


# stage 6: the decision ------------------------------------------------------------------------------------
def decision_stage(*, run_dir: str | Path, monthly_volume: float, margin: float = 0.02,
                   privacy_required: bool = False, latency_target_s: float | None = None,
                   budget_per_month: float | None = None, ops_capacity: float | None = None) -> dict[str, Any]:
    """Per task: the rule-based Decision over the measured facts and the user's constraints."""
    from kit import decision
    from kit.report.stages import load_json
    from kit.cascade import CascadeChoice

    plans = load_plans(run_dir)
    econ = load_json(run_dir, "economics_params")
    constraints = decision.Constraints(privacy_required=privacy_required, monthly_volume=monthly_volume,
                                       latency_target_s=latency_target_s, budget_per_month=budget_per_month,
                                       margin=margin, ops_capacity=ops_capacity)
    out = {}
    for name in run_tasks(run_dir):
        scores = scores_for(name, run_dir)
        present = set(scores["arm"])
        arms = {OPTION_OF_ROLE[p.role]: p.spec for p in plans if p.spec in present}
        choice = load_json(run_dir, f"cascade_choice_{name}")
        local_option = choice.pop("local_option")
        facts = decision.facts_from_tables(
            task=name, volume=monthly_volume, arms=arms, scores=scores,
            comparison=load_table(run_dir, f"compare_{name}"), costs=load_table(run_dir, f"costs_{name}"),
            latency=load_table(run_dir, f"latency_{name}"), pii=load_table(run_dir, f"pii_{name}"),
            cascade=CascadeChoice(**choice), cascade_local=local_option, cascade_keeps_pii_local=privacy_required,
            ops_hours={o: econ["ops_hours_per_month"] for o in arms if o != "hosted API"},
            api_is_stand_in=any(p.standin for p in plans))
        made = decision.decide(facts, constraints)
        save_json(run_dir, f"decision_{name}", {"recommended": made.recommended, "verdict": made.verdict,
                                                "rule": made.rule, "conclusion": made.conclusion,
                                                "reasons": made.reasons, "caveats": made.caveats})
        save_table(run_dir, f"checks_{name}", made.checks)
        out[name] = made
    return out


# views over every task ------------------------------------------------------------------------------------
def tables(run_dir: str | Path, kind: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One stage table for every task, stacked with a ``task`` column first."""
    frames = []
    for name in run_tasks(run_dir):
        table = load_table(run_dir, f"{kind}_{name}")
        table = table[[c for c in columns if c in table.columns]] if columns else table
        frames.append(table.assign(task=name)[["task", *table.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def statements(run_dir: str | Path, kind: str) -> pd.DataFrame:
    """The plain-words ``statement`` column of a stage table, per task."""
    table = tables(run_dir, kind)
    keep = [c for c in ("task", "arm", "option_a", "option_b", "statement") if c in table.columns]
    return table[keep].style.hide(axis="index") if not table.empty else table


def cascade_statements(run_dir: str | Path) -> pd.DataFrame:
    from kit.report.stages import load_json

    rows = [{"task": name, "statement": load_json(run_dir, f"cascade_choice_{name}")["statement"]}
            for name in run_tasks(run_dir)]
    return pd.DataFrame(rows)
