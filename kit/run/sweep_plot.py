"""The load-sweep plot: items/s against p95 latency per self-hosted option (a report plot; written in the style
of ``kit/report/plots.py`` so it can move there as it is).

>>> ax = sweep_plot(pd.concat([result.table() for result in results]), latency_target_s=2.0)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd


def sweep_plot(table: pd.DataFrame, *, latency_target_s: float | None = None, chosen: Mapping[str, int] | None = None,
               ax: plt.Axes | None = None) -> plt.Axes:
    """Throughput (items/s) against p95 latency as load rises, one line per option, each point labelled with
    its load level; failed levels crossed out, the latency target dashed, each option's chosen level circled.

    ``table``: rows of :meth:`kit.run.sweep.SweepResult.table` (columns option, load, load_kind,
    items_per_s, p95_latency_s, status). ``chosen``: option -> load level (the goodput choice).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    for option, rows in table.groupby("option", sort=False):
        rows = rows.sort_values("load")
        ok = rows[rows["status"] != "failed"]
        line, = ax.plot(ok["p95_latency_s"], ok["items_per_s"], marker="o", ms=4, label=option[:48])
        kind = str(rows["load_kind"].iloc[0]) if "load_kind" in rows else "load"
        for _, r in rows.iterrows():
            ax.annotate(f"{r['load']}", (r["p95_latency_s"], r["items_per_s"]), xytext=(4, 3),
                        textcoords="offset points", fontsize=7, color=line.get_color())
        bad = rows[rows["status"] == "failed"]
        if not bad.empty:
            ax.scatter(bad["p95_latency_s"], bad["items_per_s"], marker="x", s=50, color=line.get_color(),
                       label=f"{option[:30]}: failed under load")
        pick = (chosen or {}).get(option)
        if pick is not None and (rows["load"] == pick).any():
            r = rows[rows["load"] == pick].iloc[0]
            ax.scatter([r["p95_latency_s"]], [r["items_per_s"]], s=160, facecolors="none",
                       edgecolors="black", zorder=3)
            ax.annotate(f"{kind} {pick}", (r["p95_latency_s"], r["items_per_s"]), xytext=(8, -12),
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
