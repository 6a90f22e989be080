"""Privacy policy over a task's traffic: which items carry personal data, the share of traffic, and keeping
those items away from hosted (third-party) arms.

>>> pii_share(scan_items(task))          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.economics import ApiPricing, CostOption, LocalDeployment
from kit.privacy.detect import KINDS, find_pii
from kit.tasks import Item, Task

def _texts(items: Task | Iterable[Item] | pd.DataFrame) -> list[tuple[str, str]]:
    if isinstance(items, Task):
        return [(i.id, i.text) for i in items.items]
    if isinstance(items, pd.DataFrame):
        if not {"item_id", "text"} <= set(items.columns):
            raise ConfigError("the table needs 'item_id' and 'text' columns", where="kit.privacy.scan_items",
                              fix="pass a Task, a list of Items, or a DataFrame with item_id and text")
        return list(zip(items[Col.ITEM_ID].astype(str), items[Col.TEXT].astype(str)))
    return [(i.id, i.text) for i in items]


def scan_items(items: Task | Iterable[Item] | pd.DataFrame, *, region: str = "US",
               kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """Per-item flags. Columns: item_id, has_pii, kinds (comma-separated), n_matches, matches (redacted).

    A Task is scanned whole (train and test items): it is the traffic the decision is about.

    >>> scan_items([Item("1", "born on 12 March 1984", None)])[["item_id", "kinds"]].values.tolist()
    [['1', 'dob']]
    """
    rows = []
    for item_id, text in _texts(items):
        found = find_pii(text, region=region, kinds=kinds)
        rows.append({Col.ITEM_ID: item_id, Col.HAS_PII: bool(found),
                     Col.KINDS: ",".join(sorted({m.kind for m in found})), Col.N_MATCHES: len(found),
                     Col.MATCHES: "; ".join(f"{m.kind}: {m.redacted}" for m in found)})
    return pd.DataFrame(rows, columns=[Col.ITEM_ID, Col.HAS_PII, Col.KINDS, Col.N_MATCHES, Col.MATCHES])


def pii_share(flags: pd.DataFrame, *, ci: float = 0.95) -> pd.DataFrame:
    """Share of items carrying personal data, overall (``kind="any"``) and by kind, with Wilson intervals.

    Columns: kind, n_items, n_flagged, share, ci_low, ci_high, statement.
    """
    from kit.stats.intervals import wilson_interval

    n = len(flags)
    if n == 0:
        raise ConfigError("no items were scanned", where="kit.privacy.pii_share", fix="scan the task's items first")
    rows = []
    for kind in ("any",) + KINDS:
        hit = flags[Col.HAS_PII] if kind == "any" else flags[Col.KINDS].str.split(",").apply(lambda ks, k=kind: k in ks)
        k = int(hit.sum())
        if kind != "any" and k == 0:
            continue
        lo, hi = wilson_interval(k, n, ci)
        what = "personal data of some kind" if kind == "any" else f"personal data of kind '{kind}'"
        rows.append({Col.KIND: kind, Col.N_ITEMS: n, Col.N_FLAGGED: k, Col.SHARE: k / n, Col.CI_LOW: lo, Col.CI_HIGH: hi,
                     Col.STATEMENT: f"{k} of {n} items ({k / n:.1%}; {100 * ci:g}% interval {lo:.1%} to {hi:.1%}) "
                                  f"carry {what} that the scan detects."})
    return pd.DataFrame(rows)


def withhold_pii(*, region: str = "US", kinds: Sequence[str] = KINDS,
                 task: Task | None = None) -> Callable[[Item], str | None]:
    """The runner's ``withhold`` hook: the reason to keep an item from a hosted arm, or None.

    With ``task``, the prompt's fixed parts (instruction, system text, k-shot examples) are scanned
    too: personal data there would travel with every request, so every item is withheld.

    >>> withhold_pii()(Item("1", "write to jane@example.com", None))
    'personal data: email'
    """
    fixed: list[str] = []
    if task is not None:
        parts = [task.instruction, task.system or ""] + [shot.text for shot in task.shot_items()]
        fixed = sorted({m.kind for text in parts for m in find_pii(text, region=region, kinds=kinds)})

    def reason(item: Item) -> str | None:
        if fixed:
            return "personal data in the prompt's examples or instruction: " + ", ".join(fixed)
        found = find_pii(item.text, region=region, kinds=kinds)
        return "personal data: " + ", ".join(sorted({m.kind for m in found})) if found else None

    return reason


def privacy_hook(arm: object, *, privacy_required: bool, region: str = "US",
                 task: Task | None = None) -> Callable[[Item], str | None] | None:
    """The hook ``kit run`` passes to ``run_arm``: withholding only when privacy is required and the arm is hosted.

    >>> privacy_hook(object(), privacy_required=True) is None   # not a hosted arm
    True
    """
    if privacy_required and getattr(arm, "hosted", False):
        return withhold_pii(region=region, task=task)
    return None


def route_private(scores: pd.DataFrame, *, flags: pd.DataFrame, hosted_arm: str, local_arm: str,
                  name: str | None = None) -> pd.DataFrame:
    """Per-item table of the privacy rule: flagged items answered by ``local_arm``, the rest by ``hosted_arm``.

    Rows keep the score-table columns with ``arm`` set to ``name`` and two more: ``source_arm`` and
    ``pii``. A flagged item the local arm never answered stays in the table as wrong.
    """
    where = "kit.privacy.route_private"
    for arm in (hosted_arm, local_arm):
        if arm not in set(scores[Col.OPTION]):
            raise ConfigError(f"arm {arm!r} is not in the score table", where=where,
                              fix=f"choose among {sorted(scores[Col.OPTION].unique())}")
    flagged = set(flags.loc[flags[Col.HAS_PII], Col.ITEM_ID].astype(str))
    hosted = scores[scores[Col.OPTION] == hosted_arm].copy()
    local = scores[scores[Col.OPTION] == local_arm].set_index([Col.ITEM_ID, Col.EPOCH])
    out = []
    for row in hosted.to_dict("records"):
        pii = str(row[Col.ITEM_ID]) in flagged
        if pii:
            key = (row[Col.ITEM_ID], row[Col.EPOCH])
            if key in local.index:
                row = {**local.loc[key].to_dict(), Col.ITEM_ID: row[Col.ITEM_ID], Col.EPOCH: row[Col.EPOCH]}
            else:
                row = {**row, Col.ANSWER: None, Col.CORRECT: False, Col.SCORE: 0.0, Col.LATENCY_S: None,
                       Col.ERROR: f"no answer from {local_arm} for an item kept local", Col.OPTION: local_arm}
        row["source_arm"] = local_arm if pii else hosted_arm
        row["pii"] = pii
        row[Col.OPTION] = name or f"{hosted_arm} + {local_arm} for personal data"
        out.append(row)
    return pd.DataFrame(out)


def private_cost_option(name: str, scores: pd.DataFrame, *, flags: pd.DataFrame, hosted_arm: str, local_arm: str,
                        pricing: ApiPricing, deployment: LocalDeployment, concurrency: int = 1) -> CostOption:
    """Cost of the privacy rule: the API bills the unflagged items' tokens, the local machine answers the
    flagged share (its throughput measured on all of its items)."""
    from kit.economics import api_option, hybrid_option, local_option

    flagged = set(flags.loc[flags[Col.HAS_PII], Col.ITEM_ID].astype(str))
    hosted = scores[scores[Col.OPTION] == hosted_arm]
    is_pii = hosted[Col.ITEM_ID].astype(str).isin(flagged)
    share = float(is_pii.mean()) if len(hosted) else 0.0
    parts = [(local_option(f"{name}: local", scores, deployment=deployment, arm=local_arm,
                           concurrency=concurrency), share)]
    if (~is_pii).any():
        parts.append((api_option(f"{name}: API", hosted[~is_pii], pricing=pricing, arm=hosted_arm), 1 - share))
    return hybrid_option(name, parts, basis=f"{share:.1%} of items carry personal data and stay on {local_arm}; "
                                            f"the rest go to {hosted_arm}")
