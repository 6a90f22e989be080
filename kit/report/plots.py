"""Plots for the report, readable at eight options. Each plot function takes a tidy table and ``ax=None`` and
returns the Axes; the ``*_grid`` functions draw one panel per task from a run folder.

Colours say where an option runs: third-party (blue), self-hosted (orange), hybrid (purple); trivial
baselines are grey dashed lines.

>>> ax = quality_plot(metrics_table, where={"API": "third-party"})     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd

from kit.columns import Col, RowKind
from kit.pipeline.folder import Doc, RunFolder, Table

COLOURS = {"third-party": "#4C72B0", "self-hosted": "#DD8452", "hybrid": "#8172B3", RowKind.BASELINE: "#8C8C8C"}


def _axes(ax: plt.Axes | None, size: tuple[float, float]) -> plt.Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _legend(ax: plt.Axes, kinds: set[str]) -> None:
    handles = [plt.Line2D([], [], marker="o", ls="", color=COLOURS[k], label=k) for k in COLOURS if k in kinds]
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="lower right")


def quality_plot(metrics: pd.DataFrame, *, where: Mapping[str, str], reference: str | None = None,
                 ax: plt.Axes | None = None) -> plt.Axes:
    """Each option's quality with its 95% interval, best on top; trivial baselines as dashed lines."""
    options = metrics[metrics[Col.KIND] == RowKind.OPTION].sort_values(Col.MEAN_SCORE)
    ax = _axes(ax, (7, 0.9 + 0.42 * len(options)))
    y = np.arange(len(options))
    colours = [COLOURS.get(where.get(a, "self-hosted"), "grey") for a in options[Col.OPTION]]
    ax.hlines(y, options[Col.SCORE_CI_LOW], options[Col.SCORE_CI_HIGH], color="black", lw=1)
    ax.scatter(options[Col.MEAN_SCORE], y, c=colours, s=60, zorder=3)
    labels = [f"{a} (reference)" if a == reference else str(a) for a in options[Col.OPTION]]
    ax.set_yticks(y, labels, fontsize=8)
    for b in metrics[metrics[Col.KIND] == RowKind.BASELINE].itertuples():
        ax.axvline(b.mean_score, color=COLOURS[RowKind.BASELINE], ls="--", lw=1)
        ax.annotate(str(b.option), (b.mean_score, len(options) - 0.4), fontsize=7, color=COLOURS[RowKind.BASELINE],
                    rotation=90, va="top", ha="right")
    ax.set_xlim(0, 1)
    ax.set_xlabel("quality (95% CI)")
    _legend(ax, {where.get(a, "self-hosted") for a in options[Col.OPTION]})
    return ax


def latency_plot(scores: pd.DataFrame, *, target: float | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Per-item latency of each option (log scale) with its p95 marked; the target as a red line."""
    data = scores.dropna(subset=[Col.LATENCY_S])
    data = data[data[Col.LATENCY_S] > 0]
    order = list(data.groupby(Col.OPTION)[Col.LATENCY_S].median().sort_values().index)
    ax = _axes(ax, (7, 0.9 + 0.42 * len(order)))
    rng = np.random.default_rng(0)
    for i, arm in enumerate(order):
        values = data.loc[data[Col.OPTION] == arm, Col.LATENCY_S].to_numpy()
        ax.scatter(values, i + rng.uniform(-0.25, 0.25, values.size), s=6, alpha=0.4, color="#4C72B0")
        p95 = np.quantile(values, 0.95)
        ax.plot([p95, p95], [i - 0.35, i + 0.35], color="black", lw=2)
    if target:
        ax.axvline(target, color="#C44E52", ls="--", lw=1)
        ax.annotate("target", (target, len(order) - 0.5), fontsize=7, color="#C44E52", rotation=90, va="top")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("seconds per item (bar: p95)")
    ax.set_yticks(range(len(order)), order, fontsize=8)
    return ax


def cost_plot(curve: pd.DataFrame, *, volume: float | None = None, budget: float | None = None,
              ax: plt.Axes | None = None) -> plt.Axes:
    """Monthly cost of each option against volume with its band; your volume and budget marked."""
    ax = _axes(ax, (7, 3.6))
    cmap = plt.get_cmap("tab10")
    for i, (option, rows) in enumerate(curve.groupby(Col.OPTION, sort=False)):
        colour = cmap(i % 10)
        ax.plot(rows[Col.VOLUME], rows[Col.MONTHLY_COST], label=option, color=colour, lw=1.5)
        ax.fill_between(rows[Col.VOLUME], rows[Col.COST_LOW], rows[Col.COST_HIGH], alpha=0.15, color=colour)
    if volume:
        ax.axvline(volume, color="black", ls="--", lw=1)
        ax.annotate("your volume", (volume, ax.get_ylim()[0]), rotation=90, fontsize=7, va="bottom", ha="right")
    if budget:
        ax.axhline(budget, color="#C44E52", ls=":", lw=1)
        ax.annotate("budget", (ax.get_xlim()[0], budget), fontsize=7, color="#C44E52", va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items per month")
    ax.set_ylabel("USD per month")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return ax


def cascade_plot(sweep: pd.DataFrame, *, choices: Mapping[str, Mapping], ax: plt.Axes | None = None) -> plt.Axes:
    """Quality against cost per 1,000 items as the threshold τ moves, one line per self-hosted candidate.

    The lines sweep τ over every test item (in-sample, for the shape of the trade); the black point is the τ to
    deploy with its out-of-fold (or dev-fitted) share kept local and quality, the figures the report stands by.
    """
    ax = _axes(ax, (7, 3.4))
    cmap = plt.get_cmap("tab10")
    for i, (candidate, rows) in enumerate(sweep.groupby(Col.CANDIDATE, sort=False)):
        data = rows.assign(cost_1k=rows[Col.COST_PER_ITEM] * 1000).sort_values("cost_1k")
        ax.plot(data["cost_1k"], data[Col.ACCURACY], marker="o", ms=2, color=cmap(i % 10), label=f"{candidate} first")
        tau = choices.get(candidate, {}).get(Col.TAU)
        if tau is not None and (data[Col.TAU] == tau).any():
            row = data[data[Col.TAU] == tau].iloc[0]
            ax.scatter([row["cost_1k"]], [row[Col.ACCURACY]], s=80, color="black", zorder=3)
            chosen = choices[candidate]
            share, quality = chosen.get(Col.SHARE_LOCAL), chosen.get(Col.ACCURACY)
            held_out = (f", held out: {share:.0%} self-hosted, {quality:.0%} right" if share is not None
                        and quality is not None else "")
            ax.annotate(f"τ={tau:.2f}{held_out}", (row["cost_1k"], row[Col.ACCURACY]),
                        xytext=(6, -10), textcoords="offset points", fontsize=7)
    ax.set_xlabel("USD per 1,000 items at your volume (τ swept over all test items)")
    ax.set_ylabel("quality")
    ax.legend(fontsize=7)
    return ax


def sweep_plot(table: pd.DataFrame, *, latency_target_s: float | None = None, chosen: Mapping[str, int] | None = None,
               ax: plt.Axes | None = None) -> plt.Axes:
    """Throughput (items/s) against p95 latency as load rises, one line per option, each point labelled with
    its load level; failed levels crossed out, the latency target dashed, each option's chosen level circled.

    ``table``: rows of :meth:`kit.run.sweep.SweepResult.table` (columns option, load, load_kind,
    items_per_s, p95_latency_s, status). ``chosen``: option -> load level (the goodput choice).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    for option, rows in table.groupby(Col.OPTION, sort=False):
        rows = rows.sort_values(Col.LOAD)
        ok = rows[rows[Col.STATUS] != "failed"]
        line, = ax.plot(ok[Col.P95_LATENCY_S], ok[Col.ITEMS_PER_S], marker="o", ms=4, label=option[:48])
        kind = str(rows[Col.LOAD_KIND].iloc[0]) if "load_kind" in rows else "load"
        for _, r in rows.iterrows():
            ax.annotate(f"{r[Col.LOAD]}", (r[Col.P95_LATENCY_S], r[Col.ITEMS_PER_S]), xytext=(4, 3),
                        textcoords="offset points", fontsize=7, color=line.get_color())
        bad = rows[rows[Col.STATUS] == "failed"]
        if not bad.empty:
            ax.scatter(bad[Col.P95_LATENCY_S], bad[Col.ITEMS_PER_S], marker="x", s=50, color=line.get_color(),
                       label=f"{option[:30]}: failed under load")
        pick = (chosen or {}).get(option)
        if pick is not None and (rows[Col.LOAD] == pick).any():
            r = rows[rows[Col.LOAD] == pick].iloc[0]
            ax.scatter([r[Col.P95_LATENCY_S]], [r[Col.ITEMS_PER_S]], s=160, facecolors="none",
                       edgecolors="black", zorder=3)
            ax.annotate(f"{kind} {pick}", (r[Col.P95_LATENCY_S], r[Col.ITEMS_PER_S]), xytext=(8, -12),
                        textcoords="offset points", fontsize=8)
    if latency_target_s is not None:
        ax.axvline(latency_target_s, color="black", ls="--", lw=1)
        ax.annotate("latency target", (latency_target_s, ax.get_ylim()[0]), rotation=90, fontsize=8,
                    va="bottom", ha="right")
    ax.set_xlabel("p95 latency per item (s)")
    ax.set_ylabel("items per second")
    ax.set_title("throughput as load rises (labels: load level)", fontsize=9)
    ax.legend(fontsize=8)
    return ax


# ------------------------------------------------------------------------------------ one panel per task
def _grid(n: int, *, height: float, width: float = 7.5) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(max(1, n), 1, figsize=(width, height * max(1, n)), layout="constrained", squeeze=False)
    return fig, list(axes.ravel())


def quality_grid(folder: RunFolder) -> plt.Figure:
    exp = folder.experiment()
    where = {o.name: o.where.value for o in exp.options}
    tasks = folder.tasks()
    n = max(len(exp.options), 2)
    fig, axes = _grid(len(tasks), height=1.0 + 0.42 * n)
    for task, ax in zip(tasks, axes):
        quality_plot(folder.table(Table.METRICS, task=task), where=where, reference=exp.reference_name, ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def latency_grid(folder: RunFolder) -> plt.Figure:
    exp = folder.experiment()
    tasks = folder.tasks()
    fig, axes = _grid(len(tasks), height=1.0 + 0.42 * max(len(exp.options), 2))
    for task, ax in zip(tasks, axes):
        latency_plot(folder.table(Table.SCORES, task=task), target=exp.latency_target_s, ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def cost_grid(folder: RunFolder) -> plt.Figure:
    exp = folder.experiment()
    tasks = folder.tasks()
    fig, axes = _grid(len(tasks), height=3.6, width=9)
    for task, ax in zip(tasks, axes):
        curve = folder.table(Table.COST_CURVE, task=task)
        if curve.empty:
            ax.set_axis_off()
            continue
        cost_plot(curve, volume=exp.monthly_volume, budget=exp.budget_per_month, ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def cascade_grid(folder: RunFolder) -> plt.Figure | None:
    tasks = [t for t in folder.tasks() if not folder.table(Table.CASCADE, task=t).empty]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), height=3.4)
    for task, ax in zip(tasks, axes):
        cascade_plot(folder.table(Table.CASCADE, task=task), choices=folder.doc(Doc.CASCADES, task=task), ax=ax)
        ax.set_title(task, fontsize=9)
    return fig


def throughput_grid(folder: RunFolder) -> plt.Figure | None:
    """Items/s against p95 latency as load rises, per task that had a load sweep."""
    tasks = [t for t in folder.tasks() if folder.has(Table.THROUGHPUT, task=t)
             and not folder.table(Table.THROUGHPUT, task=t).empty]
    if not tasks:
        return None
    exp = folder.experiment()
    fig, axes = _grid(len(tasks), height=3.6)
    for task, ax in zip(tasks, axes):
        chosen = {o: g[Col.LOAD] for o, g in folder.doc(Doc.GOODPUT, task=task, default={}).items()
                  if g.get(Col.LOAD) is not None}
        sweep_plot(folder.table(Table.THROUGHPUT, task=task), latency_target_s=exp.latency_target_s, chosen=chosen,
                   ax=ax)
        ax.set_title(f"{task}: throughput as load rises (labels: load level)", fontsize=9)
    return fig
