"""Plots for the report. Each takes a tidy table and ``ax=None`` and returns the Axes.

>>> ax = metric_plot(quality_overview(run_dir), task="snips-intents")   # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

ROLE_COLOURS = {"api": "#4C72B0", "local": "#DD8452", "finetuned": "#55A868", "hybrid": "#8172B3"}


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (7, 3)) -> plt.Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def metric_plot(overview: pd.DataFrame, *, task: str, ax: plt.Axes | None = None) -> plt.Axes:
    """The task's metric per option, with its 95% confidence interval."""
    rows = overview[overview["task"] == task].reset_index(drop=True)
    ax = _axes(ax, (7, 0.6 + 0.55 * len(rows)))
    y = np.arange(len(rows))
    colours = [ROLE_COLOURS.get(r, "grey") for r in rows["option"]]
    ax.errorbar(rows["value"], y, xerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                fmt="none", ecolor="black", capsize=4, lw=1)
    ax.scatter(rows["value"], y, c=colours, s=70, zorder=3)
    ax.set_yticks(y, [f"{o}\n{a[:48]}" for o, a in zip(rows["option"], rows["arm"])], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{rows['metric'].iloc[0]} (95% CI)" if len(rows) else "")
    ax.set_title(task)
    ax.invert_yaxis()
    return ax


def discordance_plot(scores: pd.DataFrame, *, reference: str, candidate: str, ax: plt.Axes | None = None) -> plt.Axes:
    """The paired 2×2 table: items both got right, only one got right, both got wrong."""
    wide = scores.pivot_table(index="item_id", columns="arm", values="correct", aggfunc="mean") >= 0.5
    wide = wide[[reference, candidate]].dropna()
    table = pd.crosstab(wide[candidate].map({True: "right", False: "wrong"}),
                        wide[reference].map({True: "right", False: "wrong"})).reindex(
        index=["right", "wrong"], columns=["right", "wrong"], fill_value=0)
    ax = _axes(ax, (3.4, 2.8))
    sns.heatmap(table, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax)
    ax.set_xlabel(f"reference: {reference[:30]}")
    ax.set_ylabel(f"{candidate[:30]}")
    ax.set_title("paired answers (off-diagonal: discordant)", fontsize=9)
    return ax


def latency_plot(scores: pd.DataFrame, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Per-item latency of each arm (log scale), with each arm's p95 marked."""
    data = scores.dropna(subset=["latency_s"])
    ax = _axes(ax, (7, 0.8 + 0.5 * data["arm"].nunique()))
    order = list(dict.fromkeys(data["arm"]))
    sns.stripplot(data=data, x="latency_s", y="arm", order=order, ax=ax, size=3, alpha=0.5, jitter=0.25)
    for i, arm in enumerate(order):
        p95 = np.quantile(data.loc[data["arm"] == arm, "latency_s"], 0.95)
        ax.plot([p95, p95], [i - 0.35, i + 0.35], color="black", lw=2)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per item (bar: p95)")
    ax.set_ylabel("")
    ax.set_yticks(range(len(order)), [a[:48] for a in order], fontsize=8)
    return ax


def cost_plot(curve: pd.DataFrame, *, volume: float | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Monthly cost of each option against volume, with its uncertainty band; the user's volume marked."""
    ax = _axes(ax, (7, 3.6))
    for option, rows in curve.groupby("option", sort=False):
        line, = ax.plot(rows["volume"], rows["monthly_cost"], label=option)
        ax.fill_between(rows["volume"], rows["cost_low"], rows["cost_high"], alpha=0.2, color=line.get_color())
    if volume:
        ax.axvline(volume, color="black", ls="--", lw=1)
        ax.annotate("your volume", (volume, ax.get_ylim()[0]), rotation=90, fontsize=8, va="bottom", ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items per month")
    ax.set_ylabel("USD per month")
    ax.legend(fontsize=8)
    return ax


def cascade_plot(sweep: pd.DataFrame, *, chosen: float | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Quality against cost per 1,000 items as the escalation threshold τ moves; the chosen τ marked."""
    ax = _axes(ax, (7, 3.4))
    data = sweep.assign(cost_1k=sweep["cost_per_item"] * 1000).sort_values("cost_1k")
    colour = ROLE_COLOURS["hybrid"]
    ax.plot(data["cost_1k"], data["accuracy"], marker="o", ms=3, color=colour)
    ax.fill_between(data["cost_1k"], data["ci_low"], data["ci_high"], alpha=0.15, color=colour)
    for policy in ("all API", "all local"):
        end = data[data["policy"] == policy]
        if not end.empty:
            ax.annotate(policy, (end["cost_1k"].iloc[0], end["accuracy"].iloc[0]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    if chosen is not None and (data["tau"] == chosen).any():
        row = data[data["tau"] == chosen].iloc[0]
        ax.scatter([row["cost_1k"]], [row["accuracy"]], s=90, color="black", zorder=3)
        ax.annotate(f"τ = {chosen:.2f}, {row['share_local']:.0%} local", (row["cost_1k"], row["accuracy"]),
                    xytext=(8, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel("USD per 1,000 items at your volume")
    ax.set_ylabel("quality (95% CI)")
    ax.set_title("local first, escalate below τ", fontsize=9)
    return ax


# one panel per task, from a report run's folder -------------------------------------------------------------
def _grid(n: int, *, width: float = 7, height: float = 3, cols: int = 1) -> tuple[plt.Figure, list[plt.Axes]]:
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), layout="constrained", squeeze=False)
    return fig, list(axes.ravel())


def metric_grid(overview: pd.DataFrame) -> plt.Figure:
    tasks = list(dict.fromkeys(overview["task"]))
    fig, axes = _grid(len(tasks), height=0.8 + 0.6 * overview.groupby("task").size().max())
    for task, ax in zip(tasks, axes):
        metric_plot(overview, task=task, ax=ax)
    return fig


def discordance_grid(run_dir: str) -> plt.Figure:
    from kit.report.analysis import reference_arm, run_tasks
    from kit.report.stages import scores_for

    ref = reference_arm(run_dir)
    pairs = [(t, arm, scores) for t in run_tasks(run_dir) for scores in [scores_for(t, run_dir)]
             for arm in dict.fromkeys(scores["arm"]) if arm != ref]
    fig, axes = _grid(len(pairs), width=3.6, height=3.0, cols=min(3, max(1, len(pairs))))
    for (task, arm, scores), ax in zip(pairs, axes):
        discordance_plot(scores, reference=ref, candidate=arm, ax=ax)
        ax.set_title(f"{task}", fontsize=9)
    return fig


def latency_grid(run_dir: str) -> plt.Figure:
    from kit.report.analysis import run_tasks
    from kit.report.stages import scores_for

    tasks = run_tasks(run_dir)
    fig, axes = _grid(len(tasks), height=2.4)
    for task, ax in zip(tasks, axes):
        latency_plot(scores_for(task, run_dir), ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def cost_grid(run_dir: str, *, volume: float | None = None) -> plt.Figure:
    from kit.report.analysis import run_tasks
    from kit.report.stages import load_table

    tasks = run_tasks(run_dir)
    fig, axes = _grid(len(tasks), height=3.4)
    for task, ax in zip(tasks, axes):
        cost_plot(load_table(run_dir, f"cost_curve_{task}"), volume=volume, ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def cascade_grid(run_dir: str) -> plt.Figure:
    from kit.report.analysis import run_tasks
    from kit.report.stages import load_json, load_table

    tasks = run_tasks(run_dir)
    fig, axes = _grid(len(tasks), height=3.2)
    for task, ax in zip(tasks, axes):
        cascade_plot(load_table(run_dir, f"cascade_{task}"), chosen=load_json(run_dir, f"cascade_choice_{task}")["tau"],
                     ax=ax)
        ax.set_title(task, fontsize=9)
    return fig
