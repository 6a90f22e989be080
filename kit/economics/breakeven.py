"""Where the cost lines cross: break-even volumes with a Monte Carlo band, and cost against volume.

>>> break_even([api, local])["statement"].iloc[0]        # doctest: +SKIP
"""

from __future__ import annotations

from kit.columns import Col
from kit.economics.options import CostOption

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


def _crossing(a: CostOption, b: CostOption, pa: Any, pb: Any, grid: np.ndarray) -> np.ndarray:
    """First volume on ``grid`` (refined by bisection) where the cheaper of a and b changes; NaN if none."""
    pa_, pb_ = _col(pa), _col(pb)
    diff = a.monthly(grid[None, :], pa_) - b.monthly(grid[None, :], pb_)
    sign = np.sign(diff)
    change = (sign[:, 1:] != sign[:, :-1]) & (sign[:, :-1] != 0)
    has = change.any(axis=1)
    idx = np.where(has, change.argmax(axis=1), 0)
    lo, hi = np.log(grid[idx]), np.log(grid[idx + 1])
    s_lo = sign[np.arange(sign.shape[0]), idx]
    for _ in range(60):
        mid = (lo + hi) / 2
        d = a.monthly(np.exp(mid)[:, None], pa_) - b.monthly(np.exp(mid)[:, None], pb_)
        same = np.sign(d[:, 0]) == s_lo
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    out = np.exp(hi)
    out[~has] = np.nan
    return out


def _col(params: Any) -> Any:
    """Parameters shaped as a column (draws x 1) so they broadcast against a volume grid."""
    if isinstance(params, tuple):
        return tuple(_col(p) for p in params)
    return np.asarray(params, dtype=float).reshape(-1, 1)


def _n(params: Any) -> int:
    return _n(params[0]) if isinstance(params, tuple) else np.asarray(params).size


def _repeat(params: Any, n: int) -> Any:
    return tuple(_repeat(p, n) for p in params) if isinstance(params, tuple) else np.full(n, float(params))


def break_even(options: Sequence[CostOption], *, max_volume: float = 1e10, n_draws: int = 2000, seed: int = 0,
               ci: float = 0.9) -> pd.DataFrame:
    """Volume (items/month) where each pair of options costs the same, with a Monte Carlo band.

    The band comes from ``n_draws`` bootstrap draws of the measurements (API token lengths, local
    latencies), seeded. Columns: option_a, option_b, break_even_volume, low, high, ci_level,
    share_of_draws_crossing, cheaper_below, cheaper_above, statement.
    """
    grid = np.logspace(0, math.log10(max_volume), 400)
    draws = {o.name: o.sample(n_draws, seed=seed) for o in options}
    rows = []
    for i, a in enumerate(options):
        for b in options[i + 1:]:
            point = float(_crossing(a, b, _repeat(a.point(), 1), _repeat(b.point(), 1), grid)[0])
            mc = _crossing(a, b, draws[a.name], draws[b.name], grid)
            ok = mc[np.isfinite(mc)]
            lo, hi = (np.quantile(ok, [(1 - ci) / 2, (1 + ci) / 2]) if ok.size else (np.nan, np.nan))
            below_v = point / 2 if np.isfinite(point) else 1000.0
            cheaper_low = a.name if a.monthly(below_v) < b.monthly(below_v) else b.name
            other = b.name if cheaper_low == a.name else a.name
            if np.isfinite(point):
                words = (f"{cheaper_low} is cheaper below about {point:,.0f} items/month and {other} above "
                         f"({100 * ci:g}% band {lo:,.0f} to {hi:,.0f}; {ok.size / n_draws:.0%} of draws cross).")
            else:
                words = (f"{cheaper_low} is cheaper than {other} at every volume up to {max_volume:,.0f} "
                         f"items/month ({ok.size / n_draws:.0%} of draws cross).")
            rows.append({Col.OPTION_A: a.name, Col.OPTION_B: b.name, Col.BREAK_EVEN_VOLUME: point, Col.LOW: float(lo),
                         Col.HIGH: float(hi), Col.CI_LEVEL: ci, Col.SHARE_OF_DRAWS_CROSSING: ok.size / n_draws,
                         Col.CHEAPER_BELOW: cheaper_low, Col.CHEAPER_ABOVE: other if np.isfinite(point) else cheaper_low,
                         Col.STATEMENT: words})
    return pd.DataFrame(rows, columns=[Col.OPTION_A, Col.OPTION_B, Col.BREAK_EVEN_VOLUME, Col.LOW, Col.HIGH, Col.CI_LEVEL,
                                       Col.SHARE_OF_DRAWS_CROSSING, Col.CHEAPER_BELOW, Col.CHEAPER_ABOVE, Col.STATEMENT])


def cost_curve(options: Sequence[CostOption], *, volumes: Sequence[float] | None = None, n_draws: int = 500,
               seed: int = 0, ci: float = 0.9) -> pd.DataFrame:
    """Cost against volume for plotting: one row per volume and option with a Monte Carlo band.

    Columns: volume, option, kind, monthly_cost, cost_low, cost_high.
    """
    vols = np.asarray(volumes if volumes is not None else np.logspace(2, 8, 61), dtype=float)
    frames = []
    for opt in options:
        draws = opt.monthly(vols[None, :], _col(opt.sample(n_draws, seed=seed)))
        lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        frames.append(pd.DataFrame({Col.VOLUME: vols, Col.OPTION: opt.name, Col.KIND: opt.kind,
                                    Col.MONTHLY_COST: opt.monthly(vols), Col.COST_LOW: lo, Col.COST_HIGH: hi}))
    return pd.concat(frames, ignore_index=True)


def monthly_band(option: CostOption, volume: float, *, n_draws: int = 2000, seed: int = 0,
                 ci: float = 0.9) -> tuple[float, float]:
    """The ``ci`` band of an option's monthly cost at ``volume``, from bootstrap draws of its measurements
    (token lengths, latencies) — the uncertainty a budget check must allow for.

    >>> api = CostOption("api", "api", item_costs=np.array([0.001, 0.003]))
    >>> [round(x) for x in monthly_band(api, 100_000)]
    [100, 300]
    """
    draws = option.monthly(np.asarray([float(volume)])[None, :], _col(option.sample(n_draws, seed=seed)))
    low, high = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)
