"""Shared helpers: checking inputs, pairing arms item by item, wording numbers for readers.

Errors and unparseable answers arrive as ``correct=False`` rows and stay in every pair. An item that
an arm never answered (no row at all) is *missing*: by default it is also counted as wrong, and the
count is reported, so nothing leaves the pairs silently.

>>> df = pd.DataFrame({"option": ["a", "a", "b"], "item_id": [1, 2, 1], "correct": [True, False, True]})
>>> pair_arms(df, arms=["a", "b"]).to_dict("list")
{'a': [1.0, 0.0], 'b': [1.0, 0.0]}
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtri

from kit.columns import Col
from kit.errors import ConfigError

REQUIRED = (Col.OPTION, Col.ITEM_ID, Col.CORRECT)
Missing = Literal["wrong", "drop", "raise"]


def z_of(level: float) -> float:
    """Standard normal quantile ``Phi^-1(level)``."""
    return float(ndtri(level))


def check_level(value: float, name: str, *, where: str) -> float:
    """Check that a probability-like option lies strictly between 0 and 1."""
    if not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name}={value!r} must lie strictly between 0 and 1", where=where,
                          fix=f"pass e.g. {name}=0.05" if name == "alpha" else f"pass e.g. {name}=0.95")
    return float(value)


def as_values(x: Any, *, name: str, where: str, binary: bool = False) -> np.ndarray:
    """A 1-D float array in [0, 1] (booleans become 0/1); NaN is refused with a fix."""
    if isinstance(x, pd.DataFrame):
        col = "score" if "score" in x.columns else "correct"
        if col not in x.columns:
            raise ConfigError(f"{name} has neither a 'score' nor a 'correct' column", where=where,
                              fix="pass a 1-D array of per-item correctness or scores")
        x = x[col]
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise ConfigError(f"{name} is empty", where=where, fix="pass at least one item")
    if np.isnan(arr).any():
        raise ConfigError(f"{name} holds {int(np.isnan(arr).sum())} missing values", where=where,
                          fix="code errors and unparseable answers as wrong (0/False) instead of leaving them out")
    if arr.min() < 0 or arr.max() > 1:
        raise ConfigError(f"{name} has values outside [0, 1]", where=where,
                          fix="pass correctness (bool) or scores between 0 and 1")
    if binary and not np.isin(arr, (0.0, 1.0)).all():
        raise ConfigError(f"{name} must be right/wrong (0/1 or bool)", where=where,
                          fix="pass the 'correct' column, not fractional scores")
    return arr


def as_pair(a: Any, b: Any, *, names: tuple[str, str] = ("a", "b"), where: str,
            binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two aligned per-item arrays of equal length."""
    x = as_values(a, name=names[0], where=where, binary=binary)
    y = as_values(b, name=names[1], where=where, binary=binary)
    if x.size != y.size:
        raise ConfigError(f"{names[0]} has {x.size} items but {names[1]} has {y.size}", where=where,
                          fix="pass the same items in the same order for both arms (see kit.stats.pair_arms)")
    return x, y


def check_scores(scores_df: pd.DataFrame, *, where: str = "scores") -> pd.DataFrame:
    """Validate a per-item score table and fill defaults (epoch 0, score = correct, no errors)."""
    if not isinstance(scores_df, pd.DataFrame):
        raise ConfigError("a score table must be a pandas DataFrame", where=where,
                          fix="pass the table returned by kit.tasks.scoring")
    missing = [c for c in REQUIRED if c not in scores_df.columns]
    if missing:
        raise ConfigError(f"score table lacks columns {missing}", where=where,
                          fix="pass the per-item table from kit.tasks.scoring (arm, item_id, epoch, correct, score, ...)")
    if scores_df.empty:
        raise ConfigError("score table is empty", where=where, fix="score at least one item per arm")
    df = scores_df.copy()
    if Col.EPOCH not in df.columns:
        df[Col.EPOCH] = 0
    df[Col.OPTION] = df[Col.OPTION].astype(str)
    df[Col.CORRECT] = df[Col.CORRECT].astype("boolean").fillna(False).astype(bool)
    if "score" not in df.columns:
        df[Col.SCORE] = df[Col.CORRECT].astype(float)
    df[Col.SCORE] = pd.to_numeric(df[Col.SCORE], errors="coerce").fillna(df[Col.CORRECT].astype(float))
    if ((df[Col.SCORE] < 0) | (df[Col.SCORE] > 1)).any():
        raise ConfigError("column 'score' has values outside [0, 1]", where=where,
                          fix="scores must be between 0 and 1 (correctness or mean field score)")
    if Col.ERROR not in df.columns:
        df[Col.ERROR] = None
    df[Col.PARSE_ERROR] = (df[Col.PARSE_ERROR].astype("boolean").fillna(False).astype(bool)
                         if "parse_error" in df.columns else False)
    dup = df.duplicated([Col.OPTION, Col.ITEM_ID, Col.EPOCH])
    if dup.any():
        first = df.loc[dup, [Col.OPTION, Col.ITEM_ID, Col.EPOCH]].iloc[0].tolist()
        raise ConfigError(f"{int(dup.sum())} duplicate (arm, item_id, epoch) rows, e.g. {first}", where=where,
                          fix="keep one row per arm, item and epoch")
    return df


def pair_arms(scores_df: pd.DataFrame, *, arms: Sequence[str] | None = None, value: str = "score",
              epochs: Literal["mean", "majority"] | int = "mean", missing: Missing = "wrong") -> pd.DataFrame:
    """Wide per-item table (index ``item_id``, one column per arm) ready for paired statistics.

    ``epochs="mean"`` averages each item over its epochs; ``"majority"`` gives 1 when the item is
    right in more than half of its epochs; an int keeps that epoch only. Items an arm lacks are
    counted as wrong (``missing="wrong"``), dropped (``"drop"``) or refused (``"raise"``); the counts
    are in ``.attrs["missing"]``.

    >>> df = pd.DataFrame({"option": list("aabb"), "item_id": [1, 2, 1, 2], "correct": [1, 0, 1, 1]})
    >>> pair_arms(df)["b"].tolist()
    [1.0, 1.0]
    """
    where = "kit.stats.pair_arms"
    df = check_scores(scores_df, where=where)
    arms = list(dict.fromkeys(df[Col.OPTION])) if arms is None else [str(a) for a in arms]
    unknown = [a for a in arms if a not in set(df[Col.OPTION])]
    if unknown:
        raise ConfigError(f"arms {unknown} are not in the score table", where=where,
                          fix=f"choose among {sorted(set(df[Col.OPTION]))}")
    if value not in df.columns:
        raise ConfigError(f"column {value!r} not in the score table", where=where, fix="use 'score' or 'correct'")
    df = df[df[Col.OPTION].isin(arms)]
    if isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool):
        df = df[df[Col.EPOCH] == int(epochs)]
        if df.empty:
            raise ConfigError(f"no rows for epoch {epochs}", where=where, fix="pick an epoch that was run")
    elif epochs not in ("mean", "majority"):
        raise ConfigError(f"epochs={epochs!r} is not understood", where=where, fix="use 'mean', 'majority' or an int")
    per_item = df.assign(_v=df[value].astype(float)).groupby([Col.ITEM_ID, Col.OPTION])["_v"].mean()
    if epochs == "majority":
        per_item = (per_item > 0.5).astype(float)
    wide = per_item.unstack(Col.OPTION).reindex(columns=arms)
    counts = {a: int(wide[a].isna().sum()) for a in arms}
    if any(counts.values()):
        if missing == "raise":
            raise ConfigError(f"some arms lack items: {counts}", where=where,
                              fix="finish the runs, or pass missing='wrong' to count them as wrong")
        wide = wide.dropna() if missing == "drop" else wide.fillna(0.0)
    wide.columns.name = None
    wide.attrs["missing"] = counts
    return wide


def candidates_of(df: pd.DataFrame, reference: str, *, where: str) -> list[str]:
    """The arms of a score table other than ``reference``; clear errors when the reference is missing or alone."""
    arms = list(dict.fromkeys(df[Col.OPTION]))
    if reference not in arms:
        raise ConfigError(f"reference arm {reference!r} is not in the score table", where=where,
                          fix=f"choose among {arms}")
    candidates = [a for a in arms if a != reference]
    if not candidates:
        raise ConfigError("only the reference arm is in the score table", where=where,
                          fix="score at least one candidate on the same items")
    return candidates


ASSUME_PAIRED = ("Assumptions: the items are independent and represent the traffic the decision is about; "
                 "every arm answered the same items (paired); errors and unparseable answers count as wrong.")
