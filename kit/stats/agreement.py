"""Agreement between two arms when there are no gold labels (the API's answers as the reference).

Agreement rate with a Wilson interval; Cohen's kappa with the large-sample standard error of
Fleiss, Cohen & Everitt (1969); per class, the specific agreement ``2 n_kk / (n_k. + n_.k)`` and a
one-class-versus-rest kappa. Unparseable answers form their own class, ``(unparsed)``: they are
counted, never dropped.

>>> agreement(["a", "b", "a", "a"], ["a", "b", "b", "a"])[["level", "agreement"]].to_dict("records")[0]
{'level': 'overall', 'agreement': 0.75}
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pct
from kit.stats._data import check_level, z_of
from kit.stats.clusters import cluster_ci, cluster_codes, cluster_weights, percentile, widest
from kit.stats.intervals import wilson_interval

UNPARSED = "(unparsed)"
OTHER = "(other)"


def _key(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return UNPARSED
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def kappa_se(table: np.ndarray) -> tuple[float, float]:
    """Cohen's kappa and its large-sample standard error (Fleiss, Cohen & Everitt 1969)."""
    n = table.sum()
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po, pe = np.trace(p), float(rows @ cols)
    if pe >= 1.0:
        return float("nan"), float("nan")
    kappa = (po - pe) / (1 - pe)
    diag = np.diag(p) * (1 - (rows + cols) * (1 - kappa)) ** 2
    off = p * (cols[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0.0)
    var = (diag.sum() + (1 - kappa) ** 2 * off.sum() - (kappa - pe * (1 - kappa)) ** 2) / ((1 - pe) ** 2 * n)
    return float(kappa), float(np.sqrt(max(var, 0.0)))


def agreement(a_answers: Any, b_answers: Any, *, labels: Sequence[Any] | None = None,
              ci: float = 0.95, clusters: Any = None, n_resamples: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """Agreement rate and Cohen's kappa of two arms' answers on the same items, overall and per class.

    ``labels`` fixes the classes (answers outside them become ``(other)``). Rows: ``level`` =
    "overall" then one per class. Columns: level, n, n_a, n_b, agreement, agreement_ci_low,
    agreement_ci_high, kappa, kappa_se, kappa_ci_low, kappa_ci_high, statement. Per class,
    ``agreement`` is the specific agreement and ``kappa`` the class-versus-rest kappa.

    With ``clusters`` (each item's cluster) the agreement rate's interval is cluster-robust (CR1, t with
    G - 1 df) and every kappa's interval (and ``kappa_se``) comes from a cluster bootstrap (percentile,
    ``n_resamples`` resamples of whole clusters, ``seed``) — each never narrower than its item-level
    interval; an ``n_clusters`` column counts the clusters.

    >>> float(agreement(["x", "y"], ["x", "y"])["kappa"].iloc[0])
    1.0
    """
    where = "kit.stats.agreement"
    ci = check_level(ci, "ci", where=where)
    a = [_key(v) for v in np.asarray(a_answers, dtype=object).ravel()]
    b = [_key(v) for v in np.asarray(b_answers, dtype=object).ravel()]
    if len(a) != len(b) or not a:
        raise ConfigError(f"got {len(a)} and {len(b)} answers", where=where,
                          fix="pass both arms' answers on the same items, in the same order")
    if labels is not None:
        allowed = {_key(v) for v in labels} | {UNPARSED}
        a, b = [v if v in allowed else OTHER for v in a], [v if v in allowed else OTHER for v in b]
        classes = list(dict.fromkeys([_key(v) for v in labels] + sorted(set(a) | set(b) - {_key(v) for v in labels})))
    else:
        classes = sorted(set(a) | set(b))
    pos = {c: i for i, c in enumerate(classes)}
    table = np.zeros((len(classes), len(classes)))
    np.add.at(table, ([pos[v] for v in a], [pos[v] for v in b]), 1)
    n = int(table.sum())
    z = z_of((1 + ci) / 2)
    agree = int(np.trace(table))
    lo, hi = wilson_interval(agree, n, ci)
    kappa, se = kappa_se(table)
    rows = [{Col.LEVEL: "overall", Col.N: n, Col.N_A: n, Col.N_B: n, Col.AGREEMENT: agree / n, Col.AGREEMENT_CI_LOW: lo,
             Col.AGREEMENT_CI_HIGH: hi, Col.KAPPA: kappa, Col.KAPPA_SE: se, Col.KAPPA_CI_LOW: kappa - z * se,
             Col.KAPPA_CI_HIGH: kappa + z * se, Col.STATEMENT: _words(agree / n, lo, hi, kappa, kappa - z * se,
                                                                   kappa + z * se, n, ci)}]
    for c, i in pos.items():
        in_a, in_b, both = table[i].sum(), table[:, i].sum(), table[i, i]
        two = np.array([[both, in_a - both], [in_b - both, n - in_a - in_b + both]])
        k, s = kappa_se(two)
        rows.append({Col.LEVEL: c, Col.N: n, Col.N_A: int(in_a), Col.N_B: int(in_b),
                     Col.AGREEMENT: 2 * both / (in_a + in_b) if in_a + in_b else float("nan"),
                     Col.AGREEMENT_CI_LOW: float("nan"), Col.AGREEMENT_CI_HIGH: float("nan"),
                     Col.KAPPA: k, Col.KAPPA_SE: s, Col.KAPPA_CI_LOW: k - z * s, Col.KAPPA_CI_HIGH: k + z * s,
                     Col.STATEMENT: f"Class {c}: A said it {int(in_a)} times, B {int(in_b)} times, both on "
                                  f"{int(both)} items (specific agreement {pct(2 * both / (in_a + in_b)) if in_a + in_b else 'n/a'})."})
    if clusters is not None:
        codes = cluster_codes(clusters, n, where=where)
        cells = np.array([pos[v] for v in a]) * len(classes) + np.array([pos[v] for v in b])
        _clustered_rows(rows, cells, codes, len(classes), ci=ci, n_resamples=n_resamples, seed=seed)
    return pd.DataFrame(rows)


def _clustered_rows(rows: list[dict[str, Any]], cells: np.ndarray, codes: np.ndarray, k: int, *, ci: float,
                    n_resamples: int, seed: int) -> None:
    """Redo the intervals of :func:`agreement`'s rows for clustered items: the rate's cluster-robust interval,
    and the kappas' from a cluster bootstrap of the whole confusion table (each resample's table is the sum of
    the drawn clusters' tables)."""
    g = int(codes.max()) + 1
    per_cluster = np.zeros((g, k * k))
    np.add.at(per_cluster, (codes, cells), 1.0)
    tables = (cluster_weights(g, n_resamples, seed=seed) @ per_cluster).reshape(-1, k, k)
    n = tables.sum(axis=(1, 2))
    rows_m, cols_m = tables.sum(axis=2), tables.sum(axis=1)
    po = np.trace(tables, axis1=1, axis2=2) / n
    pe = (rows_m * cols_m).sum(axis=1) / n ** 2
    boots = [_kappa(po, pe)]
    for c in range(k):
        both, in_a, in_b = tables[:, c, c], rows_m[:, c], cols_m[:, c]
        po_c = (2 * both + n - in_a - in_b) / n
        pe_c = (in_a * in_b + (n - in_a) * (n - in_b)) / n ** 2
        boots.append(_kappa(po_c, pe_c))
    item = (rows[0][Col.AGREEMENT_CI_LOW], rows[0][Col.AGREEMENT_CI_HIGH])
    agree_low, agree_high = cluster_ci((cells // k == cells % k).astype(float), codes, ci, item=item)[1:]
    rows[0].update({Col.AGREEMENT_CI_LOW: agree_low, Col.AGREEMENT_CI_HIGH: agree_high})
    for row, boot in zip(rows, boots):
        lo, hi = widest(percentile(boot, ci), (row[Col.KAPPA_CI_LOW], row[Col.KAPPA_CI_HIGH]))
        ok = boot[np.isfinite(boot)]
        row.update({Col.KAPPA_SE: float(ok.std(ddof=1)) if ok.size > 1 else float("nan"), Col.KAPPA_CI_LOW: lo,
                    Col.KAPPA_CI_HIGH: hi, Col.N_CLUSTERS: g})
    first = rows[0]
    words = _words(first[Col.AGREEMENT], agree_low, agree_high, first[Col.KAPPA], first[Col.KAPPA_CI_LOW],
                   first[Col.KAPPA_CI_HIGH], first[Col.N], ci)
    first[Col.STATEMENT] = (words + f" Items come in {g} clusters: the rate's interval is cluster-robust (CR1, t with "
                                    f"{g - 1} df) and kappa's a cluster bootstrap ({n_resamples:,} resamples of whole "
                                    "clusters), each widened to cover its item-level interval.")


def _kappa(po: np.ndarray, pe: np.ndarray) -> np.ndarray:
    """Cohen's kappa from observed and chance agreement, NaN where chance agreement is 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)


def _words(rate: float, lo: float, hi: float, kappa: float, klo: float, khi: float, n: int, ci: float) -> str:
    lvl = f"{100 * ci:g}%"
    if not np.isfinite(kappa):
        kap = "Kappa is undefined: both arms gave one and the same class throughout."
    else:
        kap = f"Cohen's kappa {kappa:.2f} ({lvl} CI {klo:.2f} to {khi:.2f}) corrects for agreement expected by chance."
    return (f"The arms gave the same answer on {pct(rate)} of {n} items ({lvl} CI {pct(lo)} to {pct(hi)}). {kap} "
            "Without gold labels this measures agreement with the reference arm, not correctness; unparseable "
            "answers count as their own class.")


def rater_agreement(judge: Any, human: Any, *, ci: float = 0.95) -> pd.DataFrame:
    """How well a model judge's grades match human grades of the same answers (ordinal grades or outcomes).

    Exact agreement with its Wilson interval, Cohen's kappa with its CI (as :func:`agreement`) and, for
    numbers, Spearman's rho with a Fisher-z interval on the ranks. Columns: n, agreement,
    agreement_ci_low, agreement_ci_high, kappa, kappa_ci_low, kappa_ci_high, spearman, spearman_ci_low,
    spearman_ci_high, statement.

    >>> r = rater_agreement([5, 4, 2, 1, 3, 5], [5, 4, 2, 2, 3, 4])
    >>> round(float(r["agreement"].item()), 3), round(float(r["spearman"].item()), 3)
    (0.667, 0.94)
    """
    where = "kit.stats.rater_agreement"
    ci = check_level(ci, "ci", where=where)
    a, b = list(np.asarray(judge, dtype=object).ravel()), list(np.asarray(human, dtype=object).ravel())
    if len(a) != len(b) or len(a) < 3:
        raise ConfigError(f"got {len(a)} judge and {len(b)} human grades", where=where,
                          fix="pass at least 3 answers graded by both, in the same order")
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in a + b)
    if numeric:  # 5 and 5.0 are the same grade
        a, b = [float(v) for v in a], [float(v) for v in b]
    overall = agreement(a, b, ci=ci).iloc[0]
    rho = lo = hi = float("nan")
    if numeric:
        ra, rb = stats.rankdata(np.asarray(a, dtype=float)), stats.rankdata(np.asarray(b, dtype=float))
        if np.ptp(ra) > 0 and np.ptp(rb) > 0:
            res = stats.pearsonr(ra, rb)
            rho = float(res.statistic)
            if len(a) > 3:
                interval = res.confidence_interval(confidence_level=ci)
                lo, hi = float(interval.low), float(interval.high)
    lvl = f"{100 * ci:g}%"
    words = (f"On {len(a)} answers graded by both, the judge gave the human's grade on {pct(overall[Col.AGREEMENT])} "
             f"({lvl} CI {pct(overall[Col.AGREEMENT_CI_LOW])} to {pct(overall[Col.AGREEMENT_CI_HIGH])}); Cohen's kappa "
             f"{overall[Col.KAPPA]:.2f} ({overall[Col.KAPPA_CI_LOW]:.2f} to {overall[Col.KAPPA_CI_HIGH]:.2f})"
             + (f"; Spearman's rho {rho:.2f} ({lo:.2f} to {hi:.2f})" if np.isfinite(rho) else "") + ".")
    return pd.DataFrame([{Col.N: len(a), Col.AGREEMENT: overall[Col.AGREEMENT], Col.AGREEMENT_CI_LOW: overall[Col.AGREEMENT_CI_LOW],
                          Col.AGREEMENT_CI_HIGH: overall[Col.AGREEMENT_CI_HIGH], Col.KAPPA: overall[Col.KAPPA],
                          Col.KAPPA_CI_LOW: overall[Col.KAPPA_CI_LOW], Col.KAPPA_CI_HIGH: overall[Col.KAPPA_CI_HIGH],
                          "spearman": rho, "spearman_ci_low": lo, "spearman_ci_high": hi, Col.STATEMENT: words}])
