"""Stratified, design-weighted estimates: labels drawn where the options disagree, weighted back to every item.

A stratified design (:mod:`kit.labels.design`) splits a task's N test items into strata H from the options'
stored answers (all agree; this one disagrees with the others; …) and labels a simple random sample of
``n_h`` of the ``N_h`` items of each stratum (inclusion probability ``n_h / N_h``). For a per-item value y
(right/wrong, or a paired difference in {-1, 0, 1}) the design-weighted mean is the stratified estimator
(Cochran, *Sampling Techniques*, 3rd ed. 1977, §5.2–5.3)

    mean = sum_h (N_h / N) * ybar_h,   Var_labelling = sum_h (N_h / N)^2 (1 - n_h / N_h) s_h^2 / n_h,

with two refinements, each a standard survey estimator and each reducing to the plain one when it has nothing
to add:

- **Known values.** Where a value is known without a label — a paired difference is 0 on every item where the
  two options gave the same answer, whatever gold says — those items are exact; the stratum's other items
  (``M_h`` of them, ``m_h`` labelled) are post-stratified (Cochran §5A.9). With strata "agree / disagree" this is
  the issue's estimator: (disagreement share, known exactly) × (mean difference on the labelled disagreement
  items), with the finite-population correction ``1 - m/M``.
- **A proxy inside a stratum** (PPI++ within strata — stratified PPI, Fisch, Maynez, Hofer, Dhingra, Globerson,
  Cohen, NeurIPS 2024): ``ybar_h = lambda_h * mean_{M_h}(f) + mean_{m_h}(y - lambda_h f)``, the model-assisted
  difference estimator of Särndal, Swensson & Wretman (*Model Assisted Survey Sampling*, 1992, §6.3) with the
  PPI++ lambda. When the strata are the answer patterns, each option's proxy (agrees with the reference) is
  constant inside every stratum, lambda carries nothing and this *is* the stratified estimator: the strata
  have already used everything the proxy knows. It matters for merged strata, for answers that changed after
  the draw, and for the floor (the majority label against the reference's answer varies inside a stratum).

Why strata and not Active Statistical Inference (Zrnic & Candès, ICML 2024, the general form: label item i with
a probability ``pi_i`` proportional to the model's uncertainty, inverse-probability weight it): here the
"uncertainty" takes a handful of values known before labelling (the answer pattern), for which the optimal
``pi_i`` is constant within each pattern — exactly a stratified design, with Neyman allocation as the optimal
``pi``. Strata give fixed sample sizes per stratum (no Poisson-sampling variance in how many labels each pattern
gets), a known finite-population correction and an estimator a survey package checks; active inference would
add variance (random sample sizes) and no information.

**Traffic.** The N test items are themselves a sample of the traffic, so the interval for the traffic adds the
items' own sampling error ``S^2 / N`` (S^2: the population variance of y, design-estimated) to the labelling
variance; with every item labelled it is the ordinary paired interval. ``effective_labels`` is the number of
uniformly random labels with the same labelling variance: ``S^2 / (Var_labelling + S^2 / N)``.

**Small samples.** As in :mod:`kit.stats.ppi`: values on a 0/1 or -1/0/1 grid get their per-stratum variance
floored at the variance of the joint (y, proxy) table smoothed with 0.5 pseudo-observations per cell, and the
interval uses Student t with Satterthwaite's degrees of freedom across strata — except a share (0/1 values),
whose interval is Korn & Graubard's (Clopper–Pearson on the design's effective sample size): at 98% agreement an
accuracy of about 86% from 33 labels in one stratum covered only 87–94% with the symmetric interval (100–300
resamples of bench/bench_stratified.py's settings); with it, at least 95% at 1,000 (bench/README.md).

Several designs (answers changed, a second stratified draw): each design's estimate is unbiased on its own
and the draws are independent, so :func:`combine_designs` weights them by inverse variance.

>>> import numpy as np
>>> strata = np.array(["agree"] * 85 + ["disagree"] * 15)
>>> y = np.full(100, np.nan); y[:85] = 0.0                    # known: 0 where the options agree
>>> labelled = np.zeros(100, bool); labelled[85:95] = True    # 10 of the 15 disagreements labelled
>>> y[85:95] = [1, 1, 0, -1, 1, 0, 1, 1, 0, 1]
>>> r = stratified_mean(y, strata=strata, labelled=labelled, known=~np.isnan(y) & ~labelled)
>>> round(float(r["estimate"].item()), 3)                     # 0.15 * 0.5
0.075
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.stats._data import check_level

PSEUDO_COUNT = 0.5
GRIDS = ((0.0, 1.0), (-1.0, 0.0, 1.0))
METHOD = ("design-weighted stratified estimator (Cochran 1977 §5; known values exact, post-stratified within "
          "strata) with PPI++ within strata (Fisch et al., NeurIPS 2024), finite-population correction, the items' "
          "own sampling error for the traffic, Satterthwaite t")


@dataclass(frozen=True)
class Stratum:
    """One stratum of an estimate: its items ``size``, how many are ``known`` without a label, ``labelled``
    (among the others), its weighted mean and labelling variance."""

    name: str
    size: int
    known: int
    labelled: int
    mean: float
    variance: float
    lam: float


def _support(y: np.ndarray) -> tuple[float, ...] | None:
    """The grid right/wrong values live on: 0/1, or -1/0/1 for a difference of two; None off-grid."""
    return next((g for g in GRIDS if np.isin(y, g).all()), None)


def _smoothed_floor(y: np.ndarray, f: np.ndarray, f_all: np.ndarray, lam: float,
                    support: tuple[float, ...] | None) -> float:
    """The variance of ``y - lam f`` under the labelled (y, f) table smoothed with 0.5 pseudo-observations per
    cell — y over its ``support``, f over the values the proxy takes in the stratum (known for every item) — as
    :mod:`kit.stats.ppi` does for a random sample; 0 when y is off-grid."""
    if support is None or not np.isin(y, support).all():
        return 0.0
    ys_grid, fs_grid = np.asarray(support), np.unique(f_all)
    counts = np.array([[np.sum((y == a) & (f == b)) for b in fs_grid] for a in ys_grid], float) + PSEUDO_COUNT
    p = counts / counts.sum()
    ys, fs = np.meshgrid(ys_grid, fs_grid, indexing="ij")
    r = ys - lam * fs
    return float(np.sum(p * (r - np.sum(p * r)) ** 2))


def _lambda(y: np.ndarray, f: np.ndarray, f_all: np.ndarray) -> float:
    """PPI++'s variance-minimising lambda inside a stratum, clipped to [0, 1]; 0 for a constant proxy."""
    if y.size < 2 or np.var(f_all) <= 0:
        return 0.0
    cov = float(np.cov(y, f, ddof=1)[0, 1]) if np.var(f) > 0 else 0.0
    return float(np.clip(cov / (float(np.var(f_all, ddof=1)) * (1 + y.size / f_all.size)), 0.0, 1.0))


def _strata_estimates(y: np.ndarray, *, strata: np.ndarray, labelled: np.ndarray, known: np.ndarray,
                      proxy: np.ndarray | None, small_sample: bool,
                      support: tuple[float, ...] | None = None) -> list[Stratum]:
    out = []
    for h in sorted(set(strata.tolist())):
        in_h = strata == h
        size = int(in_h.sum())
        k = in_h & known
        u = in_h & ~known
        lab = u & labelled
        m, big_m = int(lab.sum()), int(u.sum())
        known_total = float(y[k].sum())
        if big_m == 0:
            out.append(Stratum(name=str(h), size=size, known=int(k.sum()), labelled=0, mean=known_total / size,
                               variance=0.0, lam=0.0))
            continue
        if m == 0:
            out.append(Stratum(name=str(h), size=size, known=int(k.sum()), labelled=0, mean=math.nan,
                               variance=math.nan, lam=0.0))
            continue
        yl = y[lab]
        f_all = proxy[u] if proxy is not None else np.zeros(big_m)
        fl = proxy[lab] if proxy is not None else np.zeros(m)
        lam = _lambda(yl, fl, f_all)
        e = yl - lam * fl
        mean_u = lam * float(f_all.mean()) + float(e.mean())
        s2 = float(np.var(e, ddof=1)) if m > 1 else 0.0
        if small_sample:
            s2 = max(s2, _smoothed_floor(yl, fl, f_all, lam, support))
        var_u = (1 - m / big_m) * s2 / m
        w = big_m / size
        out.append(Stratum(name=str(h), size=size, known=int(k.sum()), labelled=m,
                           mean=(known_total + big_m * mean_u) / size, variance=w ** 2 * var_u, lam=lam))
    return out


def _arrays(values: Any, strata: Any, labelled: Any, known: Any, proxy: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(values, dtype=float).ravel()
    s = np.asarray(strata).astype(str).ravel()
    lab = np.asarray(labelled, dtype=bool).ravel()
    kn = np.zeros(y.size, bool) if known is None else np.asarray(known, dtype=bool).ravel()
    f = None if proxy is None else np.asarray(proxy, dtype=float).ravel()
    sizes = {s.size, lab.size, kn.size, *(() if f is None else (f.size,))}
    if sizes != {y.size}:
        raise ConfigError("values, strata, labelled, known and proxy must have one entry per item", where="stratified",
                          fix="pass arrays over every item of the population (NaN where a value is not known)")
    missing = (lab | kn) & ~np.isfinite(y)
    if missing.any():
        raise ConfigError(f"{int(missing.sum())} labelled or known items have no value", where="stratified",
                          fix="code errors and unparseable answers as wrong instead of leaving them out")
    if f is not None and not np.isfinite(f).all():
        raise ConfigError("the proxy has missing values", where="stratified", fix="give a proxy on every item")
    return y, s, lab, kn, f


def stratified_mean(values: Any, *, strata: Any, labelled: Any, known: Any = None, proxy: Any = None,
                    alpha: float = 0.05, small_sample: bool = True,
                    support: tuple[float, ...] | None = None, labels_only: bool = True) -> pd.DataFrame:
    """The design-weighted mean of ``values`` over every item, from a stratified random sample of labels.

    Arrays run over every item of the population: ``values`` (NaN where not known), ``strata`` (each item's
    stratum, as recorded when the sample was drawn), ``labelled`` (the item's label is in the sample's used
    part), ``known`` (the value is exact without a label), ``proxy`` (a per-item guess of the value, e.g.
    "agrees with the reference"). One row: ``estimate``, ``ci_low``/``ci_high`` (the traffic's interval),
    ``std_error``, ``labelling_se`` (the labelling's share), ``df``, ``n_labelled``, ``n_unlabelled``,
    ``effective_labels``, ``labels_only`` (the estimate without known values or proxy) with its interval,
    ``width_ratio``, ``lambda`` (the strata's size-weighted mean), ``method``, ``statement``. ``support``: the
    values an item's value can take, for the small-sample smoothing (default: 0/1 when every value given is
    0 or 1, else -1/0/1 when they lie there; pass ``(-1.0, 0.0, 1.0)`` for a paired difference).
    ``labels_only=False`` leaves the labels-only columns NaN (a simulation's shortcut).

    >>> r = stratified_mean([1, 0, 1, np.nan, 1, np.nan], strata=list("aaabbb"),
    ...                     labelled=[1, 1, 1, 0, 1, 0])
    >>> int(r["n_labelled"].item()), round(float(r["estimate"].item()), 3)
    (4, 0.833)
    """
    check_level(alpha, name="alpha", where="stratified")
    y, s, lab, kn, f = _arrays(values, strata, labelled, known, proxy)
    lab = lab & ~kn
    grid = support if support is not None else _support(y[lab | kn])
    main = _estimate(y, s, lab, kn, f, alpha=alpha, small_sample=small_sample, support=grid)
    plain = (_estimate(np.where(lab, y, np.nan), s, lab, np.zeros_like(kn), None, alpha=alpha,
                       small_sample=small_sample, support=grid) if labels_only else
             {Col.ESTIMATE: math.nan, Col.CI_LOW: math.nan, Col.CI_HIGH: math.nan})
    width = main[Col.CI_HIGH] - main[Col.CI_LOW]
    plain_width = plain[Col.CI_HIGH] - plain[Col.CI_LOW]
    row = {**main, Col.LABELS_ONLY: plain[Col.ESTIMATE], Col.LABELS_ONLY_CI_LOW: plain[Col.CI_LOW],
           Col.LABELS_ONLY_CI_HIGH: plain[Col.CI_HIGH],
           Col.WIDTH_RATIO: width / plain_width if plain_width > 0 else math.nan, Col.METHOD: METHOD}
    row[Col.STATEMENT] = (f"{row[Col.ESTIMATE]:.3f} (design-weighted, {100 * (1 - alpha):g}% interval "
                          f"{row[Col.CI_LOW]:.3f} to {row[Col.CI_HIGH]:.3f}) from {row[Col.N_LABELLED]} stratified "
                          f"labels, worth about {row[Col.EFFECTIVE_LABELS]:,.0f} uniformly random ones")
    return pd.DataFrame([row])


def _estimate(y: np.ndarray, s: np.ndarray, lab: np.ndarray, kn: np.ndarray, f: np.ndarray | None, *,
              alpha: float, small_sample: bool, support: tuple[float, ...] | None) -> dict[str, Any]:
    big_n = y.size
    parts = _strata_estimates(y, strata=s, labelled=lab, known=kn, proxy=f, small_sample=small_sample,
                              support=support)
    weights = np.array([p.size / big_n for p in parts])
    means = np.array([p.mean for p in parts])
    estimate = float(np.sum(weights * means))
    contributions = [(w ** 2 * p.variance, p.labelled) for w, p in zip(weights, parts)]  # Var of sum W_h ybar_h
    v_lab = float(sum(v for v, _ in contributions))
    # the population variance of y (for the traffic's share and the effective labels): E[y^2] - E[y]^2
    sq = _strata_estimates(np.where(np.isfinite(y), y ** 2, np.nan), strata=s, labelled=lab, known=kn, proxy=None,
                           small_sample=False)
    second = float(np.sum(np.array([p.size / big_n for p in sq]) * np.array([p.mean for p in sq])))
    s2 = max(second - estimate ** 2, 0.0) * big_n / max(big_n - 1, 1)
    v_traffic = s2 / big_n
    variance = v_lab + v_traffic
    # Satterthwaite's degrees of freedom over the estimated parts (the traffic's with N - 1)
    terms = [(v, m - 1) for v, m in contributions if v > 0 and m > 1]
    terms.append((v_traffic, big_n - 1))
    denom = sum(v ** 2 / d for v, d in terms if d > 0)
    df = float(max(1.0, variance ** 2 / denom)) if denom > 0 else float(max(big_n - 1, 1))
    se = math.sqrt(variance) if math.isfinite(variance) else math.nan
    q = float(scipy_stats.t.ppf(1 - alpha / 2, df))
    n_lab = int(sum(p.labelled for p in parts))
    low, high = estimate - q * se, estimate + q * se
    if support == GRIDS[0] and 0 < estimate < 1 and variance > 0 and n_lab > 1:
        low, high = _korn_graubard(estimate, variance, df=df, n=n_lab, alpha=alpha)
    elif support == GRIDS[0]:  # a share at 0 or 1 (every label the same): its interval stays a share's
        low, high = max(low, 0.0), min(high, 1.0)
    effective = s2 / (v_lab + s2 / big_n) if (v_lab + s2 / big_n) > 0 else float(n_lab)
    lam = float(np.sum(weights * np.array([p.lam for p in parts])))
    return {Col.ESTIMATE: estimate, Col.CI_LOW: low, Col.CI_HIGH: high,
            Col.STD_ERROR: se, Col.LABELLING_SE: math.sqrt(v_lab) if math.isfinite(v_lab) else math.nan,
            Col.DF: df, Col.N_LABELLED: n_lab, Col.N_UNLABELLED: big_n - n_lab,
            Col.EFFECTIVE_LABELS: float(min(effective, big_n)) if math.isfinite(effective) else math.nan,
            Col.LAMBDA: lam}


def _korn_graubard(p: float, variance: float, *, df: float, n: int, alpha: float) -> tuple[float, float]:
    """A share's interval from a complex sample (Korn & Graubard, *Survey Methodology* 1998; R's
    ``survey::svyciprop(method = "beta")``): Clopper–Pearson on the effective sample size
    ``p (1 - p) / variance``, scaled by ``(t_{n-1} / t_df)^2`` for the design's degrees of freedom. Near 0 and 1,
    where the symmetric interval of a share from 30-odd labels covers too little, it stays inside [0, 1] and
    skews the right way."""
    n_eff = p * (1 - p) / variance
    if math.isfinite(df) and n > 1:
        n_eff *= (float(scipy_stats.t.ppf(1 - alpha / 2, n - 1)) / float(scipy_stats.t.ppf(1 - alpha / 2, df))) ** 2
    x = n_eff * p
    low = float(scipy_stats.beta.ppf(alpha / 2, x, n_eff - x + 1)) if x > 0 else 0.0
    high = float(scipy_stats.beta.ppf(1 - alpha / 2, x + 1, n_eff - x)) if n_eff - x > 0 else 1.0
    return low, high


def combine_designs(estimates: Sequence[Mapping[str, float]], *, shared_variance: float = 0.0,
                    shared_df: float = math.inf, alpha: float = 0.05) -> dict[str, float]:
    """Independent designs' estimates of one quantity on the same items, weighted by the inverse of their
    labelling variance (each ``estimate``, ``std_error`` — the labelling's — and ``df``); the variance they share,
    the items' own sampling error for the traffic, is added once (``shared_variance``, with ``shared_df``).
    Returns ``estimate``, ``std_error``, ``ci_low``, ``ci_high``, ``df`` (Satterthwaite). A design whose labelling
    error is 0 (every item of its strata labelled) decides alone.

    >>> r = combine_designs([{"estimate": 0.1, "std_error": 0.1, "df": 20},
    ...                      {"estimate": 0.2, "std_error": 0.1, "df": 20}])
    >>> round(r["estimate"], 3), round(r["std_error"], 4)
    (0.15, 0.0707)
    """
    check_level(alpha, name="alpha", where="stratified")
    usable = [e for e in estimates if math.isfinite(e[Col.ESTIMATE]) and math.isfinite(e[Col.STD_ERROR])]
    if not usable:
        return {Col.ESTIMATE: math.nan, Col.STD_ERROR: math.nan, Col.CI_LOW: math.nan, Col.CI_HIGH: math.nan,
                Col.DF: math.nan}
    exact = [e for e in usable if e[Col.STD_ERROR] == 0]
    if exact:
        est, var, parts = float(exact[-1][Col.ESTIMATE]), 0.0, []
    else:
        w = np.array([1 / e[Col.STD_ERROR] ** 2 for e in usable])
        est = float(np.sum(w * np.array([e[Col.ESTIMATE] for e in usable])) / w.sum())
        var = float(1 / w.sum())
        parts = [((w_i / w.sum()) ** 2 * e[Col.STD_ERROR] ** 2, max(float(e[Col.DF]), 1.0)) for w_i, e in
                 zip(w, usable)]
    total = var + shared_variance
    if shared_variance > 0:
        parts.append((shared_variance, shared_df))
    denom = sum(p ** 2 / d for p, d in parts if math.isfinite(d))
    df = float(total ** 2 / denom) if denom > 0 else math.inf
    se = math.sqrt(total)
    q = float(scipy_stats.t.ppf(1 - alpha / 2, df)) if math.isfinite(df) else float(scipy_stats.norm.ppf(1 - alpha / 2))
    return {Col.ESTIMATE: est, Col.STD_ERROR: se, Col.CI_LOW: est - q * se, Col.CI_HIGH: est + q * se, Col.DF: df}


def allocate(sizes: Mapping[str, int], spreads: Mapping[str, float], *, total: int, proportional_share: float = 0.2,
             minimum: int = 2) -> dict[str, int]:
    """How many of ``total`` labels each stratum gets: ``proportional_share`` of them in proportion to the
    strata's sizes (each option's accuracy and the floor need every stratum), the rest by Neyman allocation
    (``n_h`` ∝ ``N_h S_h``, Cochran §5.5) on the paired differences' anticipated spread ``S_h`` (0 where every
    option agrees: the difference is known there); at least ``minimum`` per stratum (a variance needs two), never
    more than its size. Largest-remainder rounding; the counts add up to ``total`` (or every item).

    >>> allocate({"agree": 850, "disagree": 150}, {"agree": 0.0, "disagree": 1.0}, total=40)
    {'agree': 7, 'disagree': 33}
    """
    if total < 1:
        raise ConfigError(f"a stratified sample of {total} labels is empty", fix="ask for at least 1 label")
    names = sorted(sizes)
    big_n = sum(sizes.values())
    total = min(total, big_n)
    ns = np.array([sizes[h] for h in names], float)
    sd = np.array([max(float(spreads.get(h, 1.0)), 0.0) for h in names])
    share = proportional_share if (ns * sd).sum() > 0 else 1.0
    neyman = ns * sd / (ns * sd).sum() if (ns * sd).sum() > 0 else ns / ns.sum()
    ideal = total * (share * ns / ns.sum() + (1 - share) * neyman)
    floor = np.minimum(minimum, ns)
    ideal = np.minimum(np.maximum(ideal, floor), ns)
    counts = np.floor(ideal).astype(int)
    while counts.sum() > total and (counts > floor).any():  # the minimums pushed it over: trim the largest
        i = int(np.argmax(np.where(counts > floor, counts, -1)))
        counts[i] -= 1
    order = np.argsort(-(ideal - counts), kind="stable")
    for i in order:
        if counts.sum() >= total:
            break
        if counts[i] < ns[i]:
            counts[i] += 1
    while counts.sum() < total:  # still short (strata full): fill wherever room is left
        room = np.flatnonzero(counts < ns)
        counts[room[0]] += 1
    return {h: int(c) for h, c in zip(names, counts)}
