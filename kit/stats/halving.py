"""Successive halving: find the best of K variants (prompts, settings) on N shared items for a fraction of the
K x N answers that asking every variant every item costs.

The rule is **Sequential Halving** (Karnin, Koren & Somekh, "Almost optimal exploration in multi-armed
bandits", ICML 2013, Algorithm 1), for a fixed budget ``T`` of answers: ``R = ceil(log2 K)`` rounds; in round
``r`` each of the ``s_r`` surviving variants answers ``T / (R * s_r)`` items, and the better half by mean score
(``ceil(s_r / 2)`` of them) goes on. Every round spends the same share of the budget, so the variants that stay
longest — the good ones — are compared on the most items. Here the items are shared and reused:

* every survivor answers the **same** next slice of items (the items are taken in the order given), so the
  variants are compared *paired*, item for item: an item every variant gets right or wrong moves no ranking;
* a round ranks the survivors on **every** item they have answered so far (they all answered the same prefix),
  not on the round's slice alone — the estimates only gain items (as Hyperband does, Li et al., JMLR 2018);
* a budget a round leaves unspent (it ran out of items) goes to the later rounds; the last round gets the rest.

Why it keeps the best variant with high probability (Karnin et al., Lemma 4.2 and Theorem 4.1): the best
variant is cut in a round only if at least half of the survivors score above it on the items seen. A variant
whose true mean score is ``D`` below the best's does so on ``n`` shared items with probability at most
``exp(-n D² / 2)`` (Hoeffding's inequality on the paired per-item differences, which lie in [-1, 1]), and by
Markov's inequality on how many do, the best is cut in a round with probability at most about three times
that for the variants ranked just below it. Summed over the rounds: P(not returning the best)
<= 3 log2(K) exp(-T / (8 H2 log2 K)), with ``H2 = max_i i / D_i²`` over the variants sorted by their gaps. The
error falls exponentially in the budget and is driven by the close variants; one far below the best is cut
almost surely, and one that is close to it costs little quality when it wins instead. The theorem is proved
for fresh items each round; with reused items the bound is not proven, so ``bench/bench_halving.py`` measures
the error rate by simulation (and the agreement with asking every variant every item on real answers).

Ties (means within :data:`TIE`) go to the lower ``tiebreak`` (e.g. the shorter prompt), then to the variant
listed first — the rule exhaustive selection uses, so the two agree whenever the best reaches the last round
and that round sees every item.

>>> import numpy as np
>>> truth = np.array([[1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1] * 5,      # variant 0: 67% right
...                   [0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0] * 5,      # variant 1: 25%
...                   [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1] * 5,      # variant 2: 83%, the best
...                   [0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0] * 5])     # variant 3: 17%
>>> pick = successive_halving(4, 60, lambda v, items: truth[v, items.start:items.stop])
>>> pick.best, pick.calls, pick.exhaustive_calls
(2, 120, 240)
>>> [(a.arm, a.items) for a in pick.arms]
[(0, 45), (1, 15), (2, 45), (3, 15)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kit.errors import ConfigError

TIE = 1e-9  # means this close are a tie (the tiebreak decides), as in exhaustive selection
BUDGET = 0.5  # the default budget: half the answers of asking every variant every item
MIN_SLICE = 5  # no round gives a variant fewer new items than this (while items are left)

Score = Callable[[int, range], Sequence[float]]  # (variant index, positions of items) -> one score per item, in [0, 1]


@dataclass(frozen=True)
class ArmRecord:
    """One variant's part in a halving: how many items it answered (the first ``items`` of the order given),
    its mean score on them, and the round it was cut in (None: the chosen one)."""

    arm: int
    items: int
    mean: float
    cut_in_round: int | None


@dataclass(frozen=True)
class Halving:
    """The outcome: the chosen variant, each variant's record (in input order), the answers asked, what asking
    every variant every item would have cost, and the number of items each round ended at (a prefix)."""

    best: int
    arms: tuple[ArmRecord, ...]
    calls: int
    exhaustive_calls: int
    round_ends: tuple[int, ...]

    @property
    def share(self) -> float:
        """The share of exhaustive selection's answers that halving asked."""
        return self.calls / self.exhaustive_calls if self.exhaustive_calls else 0.0


def rank(means: Sequence[float], arms: Sequence[int], *, tiebreak: Sequence[float] | None = None) -> list[int]:
    """``arms`` best first: the higher mean (ties within TIE by the lower tiebreak, then the lower index).

    >>> rank([0.5, 0.8, 0.8, 0.1], [0, 1, 2, 3], tiebreak=[1.0, 9.0, 2.0, 1.0])
    [2, 1, 0, 3]
    """
    order = sorted(arms, key=lambda a: -means[a])
    out: list[int] = []
    while order:  # peel off the group tied with the best remaining, ordered by the tiebreak
        top = means[order[0]]
        tied = [a for a in order if means[a] >= top - TIE]
        tied.sort(key=lambda a: (tiebreak[a] if tiebreak is not None else 0.0, a))
        out += tied
        order = [a for a in order if a not in tied]
    return out


def successive_halving(n_arms: int, n_items: int, score: Score, *, budget: float = BUDGET,
                       tiebreak: Sequence[float] | None = None, min_slice: int = MIN_SLICE) -> Halving:
    """The best of ``n_arms`` variants on ``n_items`` shared items, by Sequential Halving (module docstring).

    ``score(arm, items)`` answers and scores variant ``arm`` on the items at positions ``items`` (a ``range``;
    the positions a variant is asked about are consecutive, starting where its last call ended) and returns one
    score in [0, 1] per item, in order (an error or unparseable answer scores 0). ``budget`` is the share of
    ``n_arms * n_items`` answers to spend; with few items it may be exceeded so that no round gives a variant
    fewer than ``min_slice`` new items — never beyond asking every variant every item. ``tiebreak``: lower wins a
    tie in mean score (e.g. prompt tokens per item).

    >>> scores = [[1.0] * 20, [0.0] * 20]
    >>> successive_halving(2, 20, lambda v, items: scores[v][items.start:items.stop]).best
    0
    """
    if n_arms < 1 or n_items < 1:
        raise ConfigError(f"halving needs at least one variant and one item, got {n_arms} and {n_items}",
                          where="kit.stats.successive_halving", fix="pass the variants and the dev items")
    if not 0 < budget <= 1:
        raise ConfigError(f"budget must be a share in (0, 1], got {budget!r}", where="kit.stats.successive_halving",
                          fix="pass e.g. budget=0.5 (half the answers of asking every variant every item)")
    if tiebreak is not None and len(tiebreak) != n_arms:
        raise ConfigError(f"tiebreak has {len(tiebreak)} values for {n_arms} variants",
                          where="kit.stats.successive_halving", fix="pass one value per variant, or none")
    totals = np.zeros(n_arms)
    answered = np.zeros(n_arms, dtype=int)
    cut: dict[int, int] = {}
    survivors = list(range(n_arms))
    total_budget = budget * n_arms * n_items
    rounds = max(1, math.ceil(math.log2(n_arms))) if n_arms > 1 else 0
    spent, done, ends = 0, 0, []
    for r in range(rounds):
        per_arm = int((total_budget - spent) // ((rounds - r) * len(survivors)))
        new = min(max(per_arm, min_slice), n_items - done)
        for arm in survivors:
            totals[arm] += _answer(score, arm, range(done, done + new))
        done += new
        spent += new * len(survivors)
        answered[survivors] = done
        ends.append(done)
        means = totals / np.maximum(answered, 1)
        ranked = rank(means.tolist(), survivors, tiebreak=tiebreak)
        keep = 1 if done == n_items else math.ceil(len(survivors) / 2)  # every item seen: the best one wins
        cut.update({arm: r for arm in ranked[keep:]})
        survivors = ranked[:keep]
        if len(survivors) == 1:
            break
    if n_arms == 1:  # nothing to choose: no answers
        survivors = [0]
    means = totals / np.maximum(answered, 1)
    records = tuple(ArmRecord(arm=a, items=int(answered[a]), mean=float(means[a]) if answered[a] else math.nan,
                              cut_in_round=cut.get(a)) for a in range(n_arms))
    return Halving(best=survivors[0], arms=records, calls=int(spent), exhaustive_calls=n_arms * n_items,
                   round_ends=tuple(ends))


def _answer(score: Score, arm: int, items: range) -> float:
    """The sum of ``arm``'s scores on ``items``; a clear error for a callback that breaks the contract."""
    if not len(items):
        return 0.0
    values = np.asarray(score(arm, items), dtype=float).ravel()
    if values.size != len(items) or not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ConfigError(f"the score callback gave {values.size} values for {len(items)} items of variant {arm} "
                          "(each must be a finite score in [0, 1])", where="kit.stats.successive_halving",
                          fix="return one score per item asked, in order; score an error or unparseable answer 0")
    return float(values.sum())
