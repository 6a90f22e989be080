"""Paired bootstrap confidence interval of the difference of any metric between two arms.

Items are resampled *as pairs*: one matrix of resampled row indices (``n_resamples x n``) serves both
arms, so the interval reflects that the arms answered the same items. Metrics are :class:`Metric`
objects evaluated on many resamples at once; built-ins are ``"mean"`` (accuracy or mean score) and
``"macro_f1"`` (needs ``answer`` and ``gold``). Any plain function ``f(data) -> float`` also works,
evaluated one resample at a time.

>>> r = paired_bootstrap([1, 1, 1, 0] * 50, [1, 0, 1, 0] * 50, n_resamples=2000)
>>> r[["difference", "method_used"]].to_dict("records")
[{'difference': 0.25, 'method_used': 'bca'}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pts
from kit.stats._data import as_values, check_level

CHUNK_CELLS = 4_000_000  # resampled cells per chunk: bounds memory whatever n and n_resamples are


@dataclass(frozen=True)
class Metric:
    """A metric evaluated on many resamples at once.

    ``prepare(data)`` turns one arm's data into arrays; ``on_index(prepared, idx)`` takes an integer
    matrix ``idx`` (one resample of row positions per row) and returns one value per row.
    ``linear=True`` declares ``metric(a) - metric(b) == metric-of-differences`` (means), which allows a
    faster path. Call the metric on data to get its value on all rows.

    >>> MEAN([1, 0, 1, 1])
    0.75
    """

    name: str
    prepare: Callable[[Any], Any]
    on_index: Callable[[Any, np.ndarray], np.ndarray]
    linear: bool = False

    def __call__(self, data: Any) -> float:
        prepared = self.prepare(data)
        return float(self.on_index(prepared, np.arange(_length(prepared))[None, :])[0])


def _length(prepared: Any) -> int:
    first = prepared[0] if isinstance(prepared, tuple) else prepared
    return len(first)


def _prepare_mean(data: Any) -> np.ndarray:
    return as_values(data, name="metric input", where="kit.stats.paired_bootstrap")


def _label_key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _prepare_labels(data: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode (gold, answer) as integer codes; an unparseable answer (None) gets code K (no label)."""
    if isinstance(data, pd.DataFrame) and {"answer", "gold"} <= set(data.columns):
        answers, gold = list(data[Col.ANSWER]), list(data[Col.GOLD])
    elif isinstance(data, tuple) and len(data) == 2:
        answers, gold = list(data[0]), list(data[1])
    else:
        raise ConfigError("macro_f1 needs the answers and the gold labels", where="kit.stats.paired_bootstrap",
                          fix="pass DataFrames with 'answer' and 'gold' columns (or (answers, gold) tuples)")
    g = [_label_key(v) for v in gold]
    p = [_label_key(v) for v in answers]
    if any(v is None for v in g):
        raise ConfigError("gold labels contain missing values", where="kit.stats.paired_bootstrap",
                          fix="drop items without a gold label from the task, for every arm alike")
    labels = sorted(set(g) | {v for v in p if v is not None})
    code = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    return (np.array([code[v] for v in g], dtype=np.intp),
            np.array([k if v is None else code[v] for v in p], dtype=np.intp), k)


def _macro_f1_on_index(prepared: tuple[np.ndarray, np.ndarray, int], idx: np.ndarray) -> np.ndarray:
    gold, pred, k = prepared
    rows, width = idx.shape[0], k + 1
    g, p = gold[idx], pred[idx]
    offset = (np.arange(rows, dtype=np.intp) * width)[:, None]
    size = rows * width
    support = np.bincount((offset + g).ravel(), minlength=size).reshape(rows, width)[:, :k]
    predicted = np.bincount((offset + p).ravel(), minlength=size).reshape(rows, width)[:, :k]
    hits = np.bincount((offset + g).ravel(), weights=(g == p).ravel(), minlength=size).reshape(rows, width)[:, :k]
    denom = support + predicted
    present = denom > 0
    f1 = np.divide(2.0 * hits, denom, out=np.zeros(denom.shape), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


MEAN = Metric("mean", _prepare_mean, lambda x, idx: x[idx].mean(axis=1), linear=True)
MACRO_F1 = Metric("macro_f1", _prepare_labels, _macro_f1_on_index)
METRICS: dict[str, Metric] = {"mean": MEAN, Col.ACCURACY: MEAN, Col.SCORE: MEAN, Col.MACRO_F1: MACRO_F1}


def vectorised_metric(fn: Callable[[Any, np.ndarray], np.ndarray], *, name: str | None = None,
                      prepare: Callable[[Any], Any] | None = None) -> Metric:
    """Wrap ``fn(data, idx) -> values`` (``idx``: resamples x items) as a :class:`Metric`.

    >>> m = vectorised_metric(lambda x, idx: np.asarray(x)[idx].max(axis=1), name="max")
    >>> m([0.2, 0.9])
    0.9
    """
    return Metric(name or getattr(fn, "__name__", "metric"), prepare or (lambda d: d), fn)


def metric_from_function(fn: Callable[[Any], float], *, name: str | None = None) -> Metric:
    """Wrap a plain ``fn(data) -> float`` (array or DataFrame rows); evaluated one resample at a time."""
    def take(data: Any, rows: np.ndarray) -> Any:
        return data.iloc[rows] if isinstance(data, (pd.DataFrame, pd.Series)) else np.asarray(data)[rows]

    def on_index(data: Any, idx: np.ndarray) -> np.ndarray:
        return np.array([float(fn(take(data, r))) for r in idx])

    return Metric(name or getattr(fn, "__name__", "metric"), lambda d: d, on_index)


def resolve_metric(metric: str | Metric | Callable[[Any], float]) -> Metric:
    """A :class:`Metric` from a name, a Metric, or a plain function."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ConfigError(f"metric {metric!r} is unknown", where="kit.stats.paired_bootstrap",
                              fix=f"use one of {sorted(METRICS)} or pass a function")
        return METRICS[metric]
    if callable(metric):
        return metric_from_function(metric)
    raise ConfigError(f"metric {metric!r} is not usable", where="kit.stats.paired_bootstrap",
                      fix="pass a metric name, a kit.stats.Metric or a function")


def _index_chunks(rng: np.random.Generator, n: int, n_resamples: int):
    step = max(1, CHUNK_CELLS // n)
    for start in range(0, n_resamples, step):
        yield rng.integers(0, n, size=(min(step, n_resamples - start), n), dtype=np.intp)


def _jackknife(metric: Metric, pa: Any, pb: Any, n: int) -> np.ndarray:
    """Leave-one-out values of metric(a) - metric(b)."""
    if metric.linear:
        d = pa - pb
        return (d.sum() - d) / (n - 1)
    base = np.arange(n - 1, dtype=np.intp)[None, :]
    out = []
    step = max(1, CHUNK_CELLS // n)
    for start in range(0, n, step):
        left_out = np.arange(start, min(n, start + step), dtype=np.intp)[:, None]
        idx = base + (base >= left_out)
        out.append(metric.on_index(pa, idx) - metric.on_index(pb, idx))
    return np.concatenate(out)


def bca_interval(boot: np.ndarray, theta: float, jack: np.ndarray, ci: float) -> tuple[float, float, str]:
    """BCa interval from bootstrap values, the estimate and jackknife values (Efron & Tibshirani 1993).

    Falls back to the percentile interval when the bias correction is infinite (every resample on
    one side of the estimate), and to the point when all resamples are equal.
    """
    if np.ptp(boot) == 0:
        return float(boot[0]), float(boot[0]), "degenerate"
    share = ((boot < theta).sum() + (boot <= theta).sum()) / (2.0 * boot.size)
    z0 = ndtri(share)
    if not np.isfinite(z0):
        lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
        return float(lo), float(hi), "percentile"
    dev = jack.mean() - jack
    den = 6.0 * (dev ** 2).sum() ** 1.5
    acc = (dev ** 3).sum() / den if den > 0 else 0.0
    zs = ndtri(np.array([(1 - ci) / 2, (1 + ci) / 2]))
    levels = ndtr(z0 + (z0 + zs) / (1 - acc * (z0 + zs)))
    lo, hi = np.quantile(boot, levels)
    return float(lo), float(hi), "bca"


def prepared_pair(metric: str | Metric | Callable[[Any], float], a: Any, b: Any, *, n_resamples: int,
                  where: str) -> tuple[Metric, Any, Any, int]:
    """The metric and both arms' values prepared for resampling, with their common length; too few resamples or
    arms of different lengths are errors naming the fix."""
    if int(n_resamples) < 100:
        raise ConfigError(f"n_resamples={n_resamples} is too few", where=where, fix="use at least 1,000 (10,000 for reports)")
    m = resolve_metric(metric)
    pa, pb = m.prepare(a), m.prepare(b)
    n = _length(pa)
    if _length(pb) != n:
        raise ConfigError(f"a has {n} items but b has {_length(pb)}", where=where,
                          fix="pass the same items in the same order for both arms (see kit.stats.pair_arms)")
    return m, pa, pb, n


def paired_bootstrap(a: Any, b: Any, *, metric: str | Metric | Callable[[Any], float] = "mean",
                     n_resamples: int = 10_000, ci: float = 0.95,
                     method: Literal["bca", "percentile"] = "bca", seed: int = 0) -> pd.DataFrame:
    """Confidence interval of ``metric(a) - metric(b)`` by resampling items as pairs.

    ``a`` and ``b`` hold the same items in the same order: arrays of correctness/scores for
    ``"mean"``, DataFrames with ``answer`` and ``gold`` for ``"macro_f1"``, anything your function
    accepts otherwise. Columns: metric, n, estimate_a, estimate_b, difference, ci_low, ci_high,
    ci_level, method, method_used, se, n_resamples, seed, statement.

    >>> paired_bootstrap([1, 0, 1, 1], [1, 0, 1, 1], n_resamples=500)[["ci_low", "ci_high"]].iloc[0].tolist()
    [0.0, 0.0]
    """
    where = "kit.stats.paired_bootstrap"
    ci = check_level(ci, "ci", where=where)
    if method not in ("bca", "percentile"):
        raise ConfigError(f"method={method!r} is unknown", where=where, fix="use 'bca' or 'percentile'")
    m, pa, pb, n = prepared_pair(metric, a, b, n_resamples=n_resamples, where=where)
    if n < 2:
        raise ConfigError("a paired bootstrap needs at least 2 items", where=where, fix="score more items")
    est_a = float(m.on_index(pa, np.arange(n)[None, :])[0])
    est_b = float(m.on_index(pb, np.arange(n)[None, :])[0])
    theta = est_a - est_b
    rng = np.random.default_rng(seed)
    d = pa - pb if m.linear else None
    parts = [(m.on_index(d, idx) if m.linear else m.on_index(pa, idx) - m.on_index(pb, idx))
             for idx in _index_chunks(rng, n, int(n_resamples))]
    boot = np.concatenate(parts)
    if method == "bca":
        lo, hi, used = bca_interval(boot, theta, _jackknife(m, pa, pb, n), ci)
    elif np.ptp(boot) == 0:
        lo, hi, used = float(boot[0]), float(boot[0]), "degenerate"
    else:
        lo, hi = (float(v) for v in np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2]))
        used = "percentile"
    words = (f"Paired bootstrap ({used}, {int(n_resamples):,} resamples of the {n} items, seed {seed}): "
             f"{'accuracy (mean score)' if m is MEAN else m.name} of A minus B = {pts(theta)}, {100 * ci:g}% CI {pts(lo)} to {pts(hi)}. Items are "
             f"resampled as pairs, so the interval accounts for both arms answering the same items; it "
             f"assumes the items are independent and representative.")
    if used == "degenerate":
        words += " Every resample gave the same difference (the arms agree item by item), so the interval is a point."
    return pd.DataFrame([{
        Col.METRIC: m.name, Col.N: n, "estimate_a": est_a, "estimate_b": est_b, Col.DIFFERENCE: theta,
        Col.CI_LOW: lo, Col.CI_HIGH: hi, Col.CI_LEVEL: ci, Col.METHOD: method, "method_used": used,
        "se": float(boot.std(ddof=1)), "n_resamples": int(n_resamples), Col.SEED: seed, Col.STATEMENT: words,
    }])
