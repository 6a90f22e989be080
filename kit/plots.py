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
    """Quality against cost as the escalation threshold τ moves; the chosen τ marked."""
    ax = _axes(ax, (7, 3.4))
    ax.plot(sweep["cost_per_1k"], sweep["quality"], marker="o", ms=3, color=ROLE_COLOURS["hybrid"])
    ax.fill_between(sweep["cost_per_1k"], sweep["quality_ci_low"], sweep["quality_ci_high"], alpha=0.15,
                    color=ROLE_COLOURS["hybrid"])
    if chosen is not None and (sweep["tau"] == chosen).any():
        row = sweep[sweep["tau"] == chosen].iloc[0]
        ax.scatter([row["cost_per_1k"]], [row["quality"]], s=90, color="black", zorder=3)
        ax.annotate(f"τ = {chosen:.2f}, {row['share_local']:.0%} local", (row["cost_per_1k"], row["quality"]),
                    xytext=(8, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel("USD per 1,000 items")
    ax.set_ylabel("quality")
    ax.set_title("local first, escalate below τ", fontsize=9)
    return ax
