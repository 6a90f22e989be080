"""Per-arm tables: metric with interval, errors and unparseable answers, variation across epochs.

>>> df = pd.DataFrame({"option": ["a", "a", "b", "b"], "item_id": [1, 2, 1, 2], "correct": [1, 0, 0, 0],
...                    "error": [None, None, "timeout", None]})
>>> errors_table(df)[["option", "n_errors", "treated_as"]].values.tolist()
[['a', 0, 'wrong'], ['b', 1, 'wrong']]
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.format import pct, pts
from kit.stats._data import check_level, check_scores, pair_arms
from kit.stats.clusters import CLUSTER_METHOD, cluster_ci, cluster_note, clusters_for, item_clusters
from kit.stats.intervals import mean_ci
from kit.stats.paired import non_inferiority


def metric_table(scores_df: pd.DataFrame, *, ci: float = 0.95) -> pd.DataFrame:
    """Per arm: accuracy and mean score with Wilson intervals, over items (epochs averaged per item). When the
    table has a ``cluster`` column (a task that declares ``cluster:``), the intervals are cluster-robust
    (:mod:`kit.stats.clusters`) and an ``n_clusters`` column counts the clusters.

    Columns: arm, n_items, n_epochs, accuracy, accuracy_ci_low, accuracy_ci_high, mean_score,
    score_ci_low, score_ci_high, n_errors, n_parse_errors, ci_method, statement.

    >>> df = pd.DataFrame({"option": "a", "item_id": range(10), "correct": [1] * 8 + [0] * 2})
    >>> round(metric_table(df)["accuracy_ci_high"].item(), 4)
    0.9433
    """
    ci = check_level(ci, "ci", where="kit.stats.metric_table")
    df = check_scores(scores_df, where="kit.stats.metric_table")
    by_item = item_clusters(df, where="kit.stats.metric_table")
    rows = []
    for arm, g in df.groupby(Col.OPTION, sort=False):
        per_item = g.groupby(Col.ITEM_ID)
        acc = per_item[Col.CORRECT].mean().to_numpy(dtype=float)
        score = per_item[Col.SCORE].mean().to_numpy(dtype=float)
        groups = clusters_for(per_item[Col.CORRECT].mean().index, by_item)
        if groups is None:
            a, alo, ahi = mean_ci(acc, ci)
            s, slo, shi = mean_ci(score, ci)
        else:
            a, alo, ahi = cluster_ci(acc, groups, ci, item=mean_ci(acc, ci)[1:])
            s, slo, shi = cluster_ci(score, groups, ci, item=mean_ci(score, ci)[1:])
        n_epochs = int(g[Col.EPOCH].nunique())
        words = (f"{arm}: accuracy {pct(a)} ({100 * ci:g}% CI {pct(alo)} to {pct(ahi)}) on {acc.size} items"
                 + (f", each averaged over {n_epochs} epochs (the interval treats each item's average as one "
                    "result, which is conservative)" if n_epochs > 1 else "")
                 + f". Errors ({int(g[Col.ERROR].notna().sum())}) and unparseable answers "
                   f"({int(g[Col.PARSE_ERROR].sum())}) count as wrong.")
        rows.append({Col.OPTION: arm, Col.N_ITEMS: int(acc.size), Col.N_EPOCHS: n_epochs, Col.ACCURACY: a,
                     Col.ACCURACY_CI_LOW: alo, Col.ACCURACY_CI_HIGH: ahi, Col.MEAN_SCORE: s, Col.SCORE_CI_LOW: slo,
                     Col.SCORE_CI_HIGH: shi, Col.N_ERRORS: int(g[Col.ERROR].notna().sum()),
                     Col.N_PARSE_ERRORS: int(g[Col.PARSE_ERROR].sum()), Col.CI_METHOD: "wilson", Col.STATEMENT: words})
        if groups is not None:
            n_clusters = int(pd.Series(groups).nunique())
            rows[-1].update({Col.N_CLUSTERS: n_clusters, Col.CI_METHOD: CLUSTER_METHOD,
                             Col.STATEMENT: words + cluster_note(n_clusters)})
    return pd.DataFrame(rows)


def errors_table(scores_df: pd.DataFrame) -> pd.DataFrame:
    """Per arm: errors, unparseable answers and items never answered, all counted as wrong.

    Columns: arm, n_rows, n_items, n_errors, n_parse_errors, n_failed, failed_rate,
    n_missing_items, treated_as, top_error, statement.
    """
    df = check_scores(scores_df, where="kit.stats.errors_table")
    all_items = set(df[Col.ITEM_ID])
    rows = []
    for arm, g in df.groupby(Col.OPTION, sort=False):
        err = g[Col.ERROR].notna()
        failed = err | g[Col.PARSE_ERROR]
        missing = len(all_items - set(g[Col.ITEM_ID]))
        top = g.loc[err, Col.ERROR].astype(str).value_counts()
        top_error = (top.index[0][:80] if len(top) else None)
        words = (f"{arm}: {int(err.sum())} call errors and {int(g[Col.PARSE_ERROR].sum())} unparseable answers in "
                 f"{len(g)} answers ({pct(failed.mean())}); they count as wrong answers and stay in every "
                 "comparison." + (f" {missing} item(s) answered by other arms were never answered by this one "
                                  "and count as wrong in comparisons." if missing else ""))
        rows.append({Col.OPTION: arm, Col.N_ROWS: len(g), Col.N_ITEMS: int(g[Col.ITEM_ID].nunique()),
                     Col.N_ERRORS: int(err.sum()), Col.N_PARSE_ERRORS: int(g[Col.PARSE_ERROR].sum()),
                     Col.N_FAILED: int(failed.sum()), Col.FAILED_RATE: float(failed.mean()), Col.N_MISSING_ITEMS: missing,
                     Col.TREATED_AS: "wrong", Col.TOP_ERROR: top_error, Col.STATEMENT: words})
    return pd.DataFrame(rows)


def _epoch_conclusions(df: pd.DataFrame, arm: str, reference: str, *, value: str, margin: float,
                       alpha: float) -> tuple[dict[int, str], str]:
    ref_epochs = set(df.loc[df[Col.OPTION] == reference, Col.EPOCH])
    out = {}
    for e in sorted(df.loc[df[Col.OPTION] == arm, Col.EPOCH].unique()):
        ref_rows = df[(df[Col.OPTION] == reference) & ((df[Col.EPOCH] == e) if e in ref_epochs else True)]
        sub = pd.concat([df[(df[Col.OPTION] == arm) & (df[Col.EPOCH] == e)], ref_rows])
        wide = pair_arms(sub, arms=[arm, reference], value=value, epochs="mean")
        out[int(e)] = non_inferiority(wide[arm], wide[reference], margin=margin, alpha=alpha)[Col.CONCLUSION].item()
    wide = pair_arms(df, arms=[arm, reference], value=value, epochs="mean")
    pooled = non_inferiority(wide[arm], wide[reference], margin=margin, alpha=alpha)[Col.CONCLUSION].item()
    return out, pooled


def epoch_variation(scores_df: pd.DataFrame, *, reference: str | None = None,
                    value: Literal[Col.SCORE, Col.CORRECT] = "score", margin: float = 0.02,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Between-epoch variation of each arm's metric and whether the verdict changes across epochs.

    With ``reference``, each candidate epoch is tested for non-inferiority against the reference's
    same epoch (or its per-item average when it ran fewer epochs). Columns: arm, n_epochs, n_items,
    value_mean, value_sd, value_min, value_max, value_range, values_by_epoch, item_flip_rate,
    conclusions_by_epoch, conclusion_pooled, conclusion_changes, statement.

    >>> df = pd.DataFrame({"option": "a", "item_id": [1, 2, 1, 2], "epoch": [0, 0, 1, 1], "correct": [1, 0, 1, 1]})
    >>> epoch_variation(df)[["value_min", "value_max", "item_flip_rate"]].iloc[0].tolist()
    [0.5, 1.0, 0.5]
    """
    where = "kit.stats.epoch_variation"
    df = check_scores(scores_df, where=where)
    if reference is not None and reference not in set(df[Col.OPTION]):
        raise ConfigError(f"reference arm {reference!r} is not in the score table", where=where,
                          fix=f"choose among {sorted(set(df[Col.OPTION]))}")
    rows = []
    for arm, g in df.groupby(Col.OPTION, sort=False):
        by_epoch = g.groupby(Col.EPOCH)[value].mean().astype(float)
        per_item = g.groupby(Col.ITEM_ID)[Col.CORRECT].agg(["nunique", "size"])
        multi = per_item[per_item["size"] > 1]
        flip = float((multi["nunique"] > 1).mean()) if len(multi) else float("nan")
        row: dict[str, Any] = {
            Col.OPTION: arm, Col.N_EPOCHS: int(by_epoch.size), Col.N_ITEMS: int(g[Col.ITEM_ID].nunique()),
            "value_mean": float(by_epoch.mean()), "value_sd": float(by_epoch.std(ddof=1)) if by_epoch.size > 1 else float("nan"),
            "value_min": float(by_epoch.min()), "value_max": float(by_epoch.max()),
            "value_range": float(by_epoch.max() - by_epoch.min()),
            "values_by_epoch": ", ".join(f"{int(e)}: {v:.4f}" for e, v in by_epoch.items()),
            "item_flip_rate": flip, "conclusions_by_epoch": None, "conclusion_pooled": None, "conclusion_changes": None,
        }
        if by_epoch.size == 1:
            words = (f"{arm}: one epoch only, so run-to-run variation is not measured. If the arm samples "
                     "(temperature above 0), run more epochs before trusting a close verdict.")
        else:
            words = (f"{arm}: over {by_epoch.size} epochs the {value} ranges from {pct(row['value_min'])} to "
                     f"{pct(row['value_max'])} (sd {pts(row['value_sd'], sign=False)}); {pct(flip)} of items "
                     "flip between right and wrong from one epoch to another.")
        if reference is not None and arm != reference:
            per, pooled = _epoch_conclusions(df, arm, reference, value=value, margin=margin, alpha=alpha)
            changes = len(set(per.values())) > 1
            row.update({"conclusions_by_epoch": ", ".join(f"{e}: {c}" for e, c in per.items()),
                        "conclusion_pooled": pooled, "conclusion_changes": changes})
            if changes:
                words += (f" Against {reference} the verdict changes between epochs ({row['conclusions_by_epoch']}): "
                          f"a single run would not have been reliable; the pooled verdict, averaging each item "
                          f"over epochs, is {pooled}.")
            elif len(per) > 1:
                common = next(iter(per.values()))
                words += (f" Against {reference} every epoch gives the same verdict ({common})"
                          + (f"; pooling the epochs per item gives {pooled}." if pooled != common else "."))
            else:
                words += f" Verdict against {reference}: {pooled}."
        row[Col.STATEMENT] = words
        rows.append(row)
    return pd.DataFrame(rows)
