"""Quality on a partly labelled task: prediction-powered estimates with the reference's answers as the proxy.

A task without gold answers in its data (or run with ``ignore_labels: true``) can carry gold labels on a
uniformly random, seeded sample of its test items (the labelling loop, :mod:`kit.labels`; the run folder keeps
a snapshot, :class:`SampledLabels`). Then, per option, on the items the run asked:

- Y = 1 when the option's answer is right against gold (labelled items only; an error counts as wrong);
- the proxy f = 1 when the option's answer equals the reference's (every item; no reference answer: 0).
  The reference's own proxy is constant 1, so its accuracy reduces to the labels alone (lambda = 0).

Each option's accuracy is :func:`kit.stats.ppi_mean` (PPI++, Angelopoulos, Bates, Fannjiang, Jordan, Zrnic,
*Science* 2023; Angelopoulos, Duchi, Zrnic 2023, "PPI++"), with the kit's small-sample adjustment. Each
candidate's paired difference from the reference is :func:`kit.stats.ppi_mean_difference` (proxy: agrees with
the reference - 1), tested for non-inferiority at the margin (one-sided, Student t) and Holm-corrected across
candidates by :func:`kit.stats.conclusions.finish_comparison`, so the compare table reads like any other. The
floor: each option against always answering the most frequent label among the labelled items (its proxy:
that label equals the reference's answer). Labels outside the random sample are counted, never used.

With no labels the task stays an agreement decision; :func:`labels_to_decide` says how many random labels
would turn it into a correctness decision at the margin (:func:`kit.stats.power.labels_for_agreement`).

>>> labels = SampledLabels.from_doc({"order": ["a", "b"], "gold": {"a": "x"}, "outside": 0, "population": 9,
...                                 "seed": 1}, where="labels.json")
>>> labels.gold["a"], labels.outside
('x', 0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from kit.columns import Col, RowKind
from kit.errors import ConfigError
from kit.format import p_words, pct, pts
from kit.stats import ppi_mean, ppi_mean_difference
from kit.stats.conclusions import finish_comparison, holm, holm_words
from kit.stats.paired import conclude
from kit.stats.paired_stats import ComparisonKind, PairedValues
from kit.stats.power import labels_for_agreement, sample_size_noninferiority
from kit.stats.stratified import combine_designs, stratified_mean
from kit.tasks.loading import Task

P_COLUMNS = (Col.P_NONINFERIORITY, Col.P_SUPERIORITY, Col.P_INFERIORITY)
METHOD = ("PPI++ (Angelopoulos et al., Science 2023; Angelopoulos, Duchi, Zrnic 2023) with the kit's small-sample "
          "adjustment: smoothed lambda, variance floor, Student-t quantile")


MIN_LABELS = 10  # fewer labels in the design: no estimate is shown as a measurement (the task stays on agreement)
RANDOM, STRATIFIED = "random", "stratified"  # the designs (kit.labels.design.Design)
DIFFERENCE_VALUES = (-1.0, 0.0, 1.0)  # a difference of two right/wrong values


@dataclass(frozen=True)
class SampledLabels:
    """The labels a run may use on one task (the run folder's ``labels`` doc).

    ``order``: the drawn sample of test item ids (the active design's); ``gold``: item id -> label, the labels
    the design uses (each stratum's gap-free prefix, :mod:`kit.labels.design`); ``outside``: labels given outside
    the design (the disagreements queue, items not drawn when labelled — kept, never used); ``population``: the
    test items the sample was drawn from; ``seed``: the sample's seed. ``design``: ``random`` or ``stratified``;
    ``skipped``: drawn items skipped; ``waiting``: labels held back behind a gap; ``strata``: every test item's
    stratum (stratified designs); ``inclusion``: each drawn item's inclusion probability at its draw;
    ``earlier``: the task's other designs (their labels stay valid; estimates combine them by inverse variance).

    >>> SampledLabels(order=("a",), gold={"a": "x"}, outside=0, population=9, seed=1).measured
    False
    """

    order: tuple[str, ...]
    gold: Mapping[str, Any]
    outside: int
    population: int
    seed: int
    design: str = RANDOM
    skipped: int = 0
    waiting: int = 0
    strata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    inclusion: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    earlier: tuple[SampledLabels, ...] = ()

    @property
    def measured(self) -> bool:
        """At least :data:`MIN_LABELS` labels in the design: below it no estimate is given as a measurement."""
        return len(self.gold) >= MIN_LABELS

    @property
    def all_designs(self) -> tuple[SampledLabels, ...]:
        """This design and the earlier ones whose labels it is combined with, earliest first."""
        return (*self.earlier, self)

    def stratum_of(self, item_id: str) -> str:
        return self.strata.get(item_id, RANDOM) if self.strata else RANDOM

    def stratum_table(self) -> pd.DataFrame:
        """The design as the report shows it: per stratum its items (``stratum_size``), items ``drawn``, labels
        used (``n_labelled``) and the inclusion probability of the used labels (``inclusion``).

        >>> SampledLabels(order=("a", "b"), gold={"a": "x"}, outside=0, population=4, seed=1).stratum_table()
        ... # doctest: +NORMALIZE_WHITESPACE
          design stratum  stratum_size  drawn  n_labelled  inclusion
        0 random  random             4      2           1       0.25
        """
        sizes: Counter[str] = Counter(self.strata.values()) if self.strata else Counter({RANDOM: self.population})
        drawn = Counter(self.stratum_of(i) for i in self.order)
        used = Counter(self.stratum_of(i) for i in self.gold)
        return pd.DataFrame([{Col.DESIGN: self.design, Col.STRATUM: h, Col.STRATUM_SIZE: n, Col.DRAWN: drawn[h],
                              Col.N_LABELLED: used[h], Col.INCLUSION: used[h] / n if n else math.nan}
                             for h, n in sorted(sizes.items())])

    @classmethod
    def from_doc(cls, data: Mapping[str, Any], *, where: str) -> SampledLabels:
        """Read the doc; a missing key or a label outside the sample is a ConfigError naming the fix."""
        fix = "snapshot the labels again (kit label TASK, then re-run the report)"
        missing = [k for k in ("order", "gold", "outside", "population", "seed") if k not in data]
        if missing:
            raise ConfigError(f"the labels record lacks {missing}", where=where, fix=fix)
        order = tuple(str(i) for i in data["order"])
        gold = {str(k): v for k, v in dict(data["gold"]).items()}
        stray = sorted(set(gold) - set(order))
        if stray:
            raise ConfigError(f"{len(stray)} labelled items are not in the random sample (e.g. {stray[0]!r})",
                              where=where, fix="count labels outside the sample under 'outside', not in 'gold': "
                                               "the estimate may use the random sample only")
        return cls(order=order, gold=MappingProxyType(gold), outside=int(data["outside"]),
                   population=int(data["population"]), seed=int(data["seed"]), design=str(data.get("design", RANDOM)),
                   skipped=int(data.get("skipped", 0)), waiting=int(data.get("waiting", 0)),
                   strata=MappingProxyType({str(k): str(v) for k, v in dict(data.get("strata", {})).items()}),
                   inclusion=MappingProxyType({str(k): float(v) for k, v in dict(data.get("inclusion", {})).items()}),
                   earlier=tuple(cls.from_doc(d, where=f"{where} (an earlier design)")
                                 for d in data.get("earlier", ())))

    def check_split(self, task: Task, *, where: str) -> None:
        """The sample must come from the test items this run's task has (same split, same ``ignore_labels``):
        a sample of another split is not a random sample of these items, and PPI would be biased."""
        test = {i.id for i in task.test}
        for earlier in self.earlier:
            earlier.check_split(task, where=where)
        stray = [i for i in self.order if i not in test]
        if stray or (self.order and self.population != len(test)):
            what = (f"{len(stray)} sampled items (e.g. {stray[0]!r}) are not test items of {task.name}" if stray else
                    f"the sample was drawn from {self.population} test items, this run's task has {len(test)}")
            raise ConfigError(f"the labels were drawn from another split: {what}", where=where,
                              fix="draw the sample from the task as this experiment loads it (same ignore_labels, "
                                  "same task file), then snapshot the labels again")

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"order": list(self.order), "gold": dict(self.gold), "outside": self.outside,
                               "population": self.population, "seed": self.seed}
        if self.design != RANDOM or self.skipped or self.waiting or self.earlier:
            doc.update(design=self.design, skipped=self.skipped, waiting=self.waiting, strata=dict(self.strata),
                       inclusion=dict(self.inclusion), earlier=[e.to_doc() for e in self.earlier])
        return doc


@dataclass(frozen=True)
class _Items:
    """One row per item the run asked (first epoch), in the scores' order: every option's answer, whether it
    agrees with the reference (the proxy), and — on labelled items — whether it is right."""

    ids: list[str]
    labelled: np.ndarray        # bool per item
    answers: pd.DataFrame       # item x option
    agree: pd.DataFrame         # item x option, 0/1
    right: pd.DataFrame         # labelled item x option, 0/1
    gold: list[Any]             # per labelled item
    cluster: np.ndarray | None = None  # per item, when the task declares ``cluster:``

    @property
    def clusters(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The clusters of the labelled and of the unlabelled items, for cluster-robust PPI++ variances."""
        return None if self.cluster is None else (self.cluster[self.labelled], self.cluster[~self.labelled])


def _items(task: Task, scores: pd.DataFrame, labels: SampledLabels, *, reference: str) -> _Items:
    first = scores.sort_values(Col.EPOCH, kind="stable").drop_duplicates([Col.OPTION, Col.ITEM_ID])
    answers = first.pivot(index=Col.ITEM_ID, columns=Col.OPTION, values=Col.ANSWER)
    ok = first[Col.CORRECT].astype(bool)
    if Col.GAP in first.columns:
        ok &= first[Col.GAP].isna()
    agree = first.assign(**{Col.CORRECT: ok.astype(float)}).pivot(index=Col.ITEM_ID, columns=Col.OPTION,
                                                                   values=Col.CORRECT).fillna(0.0)
    agree[reference] = 1.0
    ids = [str(i) for i in answers.index]
    every = _every_gold(labels)
    labelled = np.array([i in every for i in ids])
    gold = [every[i] for i in np.asarray(ids)[labelled]]
    right = pd.DataFrame({o: [float(task.type.score(_answer(a), g).correct) for a, g in
                              zip(answers[o].to_numpy()[labelled], gold)] for o in answers.columns},
                         index=np.asarray(ids)[labelled])
    cluster = None
    if Col.CLUSTER in first.columns:
        by_item = first.drop_duplicates(Col.ITEM_ID).set_index(Col.ITEM_ID)[Col.CLUSTER]
        cluster = np.array([str(by_item[i]) for i in answers.index])
    return _Items(ids=ids, labelled=labelled, answers=answers, agree=agree, right=right, gold=gold, cluster=cluster)


def _every_gold(labels: SampledLabels) -> dict[str, Any]:
    """The labels of every design (an item's gold label is the same whichever design drew it)."""
    out: dict[str, Any] = {}
    for design in labels.all_designs:
        out.update(design.gold)
    return out


def _designed(labels: SampledLabels) -> bool:
    """Design-weighted estimates (a stratified design, or several designs) rather than PPI++ on one random sample."""
    return labels.design != RANDOM or bool(labels.earlier)


def _accuracy(labels: SampledLabels, it: _Items, right: Any, proxy: np.ndarray, *, alpha: float) -> pd.Series:
    """A mean of right/wrong with a proxy on every item: PPI++ on a random sample, else design-weighted."""
    if not _designed(labels):
        return ppi_mean(right, proxy[it.labelled], proxy[~it.labelled], alpha=alpha, clusters=it.clusters).iloc[0]
    return _weighted(labels, it, np.asarray(right, float), proxy=proxy, alpha=alpha)


def _difference(labels: SampledLabels, it: _Items, right: Any, other: Any, proxy: np.ndarray, other_proxy: np.ndarray,
                *, alpha: float, zero: np.ndarray | None = None) -> pd.Series:
    """The paired difference ``right - other``; ``zero``: items where it is 0 whatever gold says (same answers)."""
    if not _designed(labels):
        return ppi_mean_difference(right, other, proxy[it.labelled], other_proxy[it.labelled], proxy[~it.labelled],
                                   other_proxy[~it.labelled], alpha=alpha, clusters=it.clusters).iloc[0]
    return _weighted(labels, it, np.asarray(right, float) - np.asarray(other, float), proxy=proxy - other_proxy,
                     alpha=alpha, zero=zero, support=DIFFERENCE_VALUES)


def _weighted(labels: SampledLabels, it: _Items, values: np.ndarray, *, proxy: np.ndarray, alpha: float,
              zero: np.ndarray | None = None, support: tuple[float, ...] = (0.0, 1.0)) -> pd.Series:
    """Each design's design-weighted estimate (:func:`kit.stats.stratified_mean`), combined across designs by
    inverse variance (:func:`kit.stats.stratified.combine_designs`)."""
    full = np.full(len(it.ids), np.nan)
    full[it.labelled] = values
    zeros = np.zeros(len(it.ids), bool) if zero is None else np.asarray(zero, bool)
    full[zeros] = 0.0  # the same answers: a difference of 0, labelled or not
    rows = []
    for design in labels.all_designs:
        in_design = np.array([i in design.gold for i in it.ids])
        if not in_design.any():
            continue
        known = zeros & ~in_design  # a design's own labels stay its labels; other items are known where 0
        strata = np.array([design.stratum_of(i) for i in it.ids])
        rows.append(stratified_mean(np.where(in_design | known, full, np.nan), strata=strata, labelled=in_design,
                                    known=known, proxy=proxy, alpha=alpha, support=support).iloc[0])
    if len(rows) == 1:
        return rows[0]
    traffic = float(rows[-1][Col.STD_ERROR]) ** 2 - float(rows[-1][Col.LABELLING_SE]) ** 2  # shared by the designs
    both = combine_designs([{Col.ESTIMATE: r[Col.ESTIMATE], Col.STD_ERROR: r[Col.LABELLING_SE], Col.DF: r[Col.DF]}
                            for r in rows], shared_variance=max(traffic, 0.0), shared_df=len(it.ids) - 1,
                           alpha=alpha)
    out = rows[-1].copy()
    for key in (Col.ESTIMATE, Col.STD_ERROR, Col.CI_LOW, Col.CI_HIGH, Col.DF):
        out[key] = both[key]
    out[Col.N_LABELLED] = int(it.labelled.sum())
    out[Col.N_UNLABELLED] = len(it.ids) - int(it.labelled.sum())
    out[Col.EFFECTIVE_LABELS] = float(sum(r[Col.EFFECTIVE_LABELS] for r in rows))
    out[Col.LABELLING_SE] = math.sqrt(max(both[Col.STD_ERROR] ** 2 - max(traffic, 0.0), 0.0))
    out[Col.METHOD] = (f"{out[Col.METHOD]}; {len(rows)} designs combined by the inverse of their labelling "
                       "variance, the items' own sampling error counted once")
    return out


def _answer(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def labelled_count(scores: pd.DataFrame, labels: SampledLabels | None) -> int:
    """How many of the items the run asked carry a label a design uses."""
    if labels is None:
        return 0
    return int(pd.Series(scores[Col.ITEM_ID].unique()).astype(str).isin(_every_gold(labels).keys()).sum())


def usable(scores: pd.DataFrame, labels: SampledLabels | None) -> bool:
    """Labels are used once at least :data:`MIN_LABELS` of the items the run asked carry one (fewer give no
    estimate as a measurement: the task stays an agreement decision, which says how many labels would decide)
    and at least 1 item is unlabelled."""
    n = labelled_count(scores, labels)
    return n >= MIN_LABELS and n < scores[Col.ITEM_ID].nunique()


def _ppi_columns(r: pd.Series, *, floor: float) -> dict[str, Any]:
    """The columns shown beside a PPI++ interval; the labels-only interval cut to [floor, 1] like the PPI++ one."""
    return {**{c: r[c] for c in (Col.LAMBDA, Col.N_LABELLED, Col.N_UNLABELLED, Col.LABELS_ONLY, Col.WIDTH_RATIO,
                                 Col.EFFECTIVE_LABELS, Col.STD_ERROR, Col.DF)},
            Col.LABELS_ONLY_CI_LOW: max(float(r[Col.LABELS_ONLY_CI_LOW]), floor),
            Col.LABELS_ONLY_CI_HIGH: min(float(r[Col.LABELS_ONLY_CI_HIGH]), 1.0)}


def ppi_metrics(task: Task, scores: pd.DataFrame, labels: SampledLabels, metrics: pd.DataFrame, *, reference: str,
                alpha: float = 0.05) -> pd.DataFrame:
    """The metrics table with each option's accuracy as PPI++ (``mean_score``, its interval and ``accuracy``),
    the PPI columns beside it (labels-only interval, effective labels, n labelled / unlabelled, lambda), the
    observed agreement with the reference kept in ``agreement``, and the majority-label baseline as a row."""
    it = _items(task, scores, labels, reference=reference)
    rows = []
    for o in it.answers.columns:
        r = _accuracy(labels, it, it.right[o], it.agree[o].to_numpy(), alpha=alpha)
        rows.append({Col.OPTION: o, Col.N_ITEMS: len(it.ids), Col.MEAN_SCORE: r[Col.ESTIMATE],
                     **_clipped(r, Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH, 0.0), Col.ACCURACY: r[Col.ESTIMATE],
                     Col.AGREEMENT: float(it.agree[o].mean()), Col.METHOD: r[Col.METHOD], Col.CI_METHOD: r[Col.METHOD],
                     **_ppi_columns(r, floor=0.0),
                     Col.STATEMENT: f"{o}: {r[Col.STATEMENT]}"})
    ppi = pd.DataFrame(rows).set_index(Col.OPTION)
    out = metrics[metrics[Col.KIND] == RowKind.OPTION].drop(columns=[Col.ACCURACY_CI_LOW, Col.ACCURACY_CI_HIGH],
                                                             errors="ignore").set_index(Col.OPTION)
    for col in ppi.columns:
        out[col] = ppi[col]
    out = out.reset_index()
    base = _baseline(it, labels, reference=reference, alpha=alpha)
    return pd.concat([out, pd.DataFrame([{Col.OPTION: base.name, Col.KIND: RowKind.BASELINE,
                                          Col.N_ITEMS: len(it.ids), **base.row}])], ignore_index=True)


@dataclass(frozen=True)
class _Baseline:
    name: str
    answer: Any
    right: np.ndarray   # per labelled item
    agree: np.ndarray   # per item: the label equals the reference's answer
    row: dict[str, Any]


def _baseline(it: _Items, labels: SampledLabels, *, reference: str, alpha: float) -> _Baseline:
    """Always the most frequent label among the labelled items (ties: the first in sorted order); under a
    stratified design each label weighs 1 / its inclusion probability, so the count estimates the traffic's."""
    counts: Counter[str] = Counter()
    ids = np.asarray(it.ids)[it.labelled]
    for item_id, g in zip(ids, it.gold):
        counts[str(g)] += 1.0 / labels.inclusion.get(item_id, 1.0) if _designed(labels) else 1
    answer = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    right = np.array([str(g) == answer for g in it.gold], dtype=float)
    agree = np.array([str(_answer(a)) == answer for a in it.answers[reference]], dtype=float)
    r = _accuracy(labels, it, right, agree, alpha=alpha)
    name = "majority label of the labelled sample"
    return _Baseline(name=name, answer=answer, right=right, agree=agree, row={
        Col.MEAN_SCORE: r[Col.ESTIMATE], **_clipped(r, Col.SCORE_CI_LOW, Col.SCORE_CI_HIGH, 0.0),
        Col.ACCURACY: r[Col.ESTIMATE], **_ppi_columns(r, floor=0.0),
        Col.STATEMENT: f"{name} ({answer}): {r[Col.STATEMENT]}"})


def _clipped(r: pd.Series, low: str, high: str, floor: float) -> dict[str, float]:
    """A PPI++ interval as ``{low: ..., high: ...}``, cut to the values the quantity can take ([0, 1] for an
    accuracy, [-1, 1] for a difference of two): the estimator leaves it unclipped, the report need not show
    an accuracy above 100%; coverage is unchanged, since the truth lies inside the range."""
    return {low: max(float(r[Col.CI_LOW]), floor), high: min(float(r[Col.CI_HIGH]), 1.0)}


def _t_sf(x: float, df: float) -> float:
    """Upper tail of Student's t (the normal for ``df`` = inf)."""
    return float(scipy_stats.t.sf(x, df) if math.isfinite(df) else scipy_stats.norm.sf(x))


def ppi_floor(task: Task, scores: pd.DataFrame, labels: SampledLabels, *, reference: str,
              alpha: float = 0.05) -> pd.DataFrame:
    """Each option against always answering the labelled sample's most frequent label: the PPI++ difference
    option - baseline (proxy: agrees with the reference - the label equals the reference's answer), one-sided
    test that it is above 0. Columns of the floor table (``candidate_mean``: the option's PPI++ accuracy, as in the
    metrics; ``difference``: the difference tested, whose own lambda makes it differ a little from
    ``candidate_mean - baseline_mean``) plus the PPI columns."""
    it = _items(task, scores, labels, reference=reference)
    base = _baseline(it, labels, reference=reference, alpha=alpha)
    rows = []
    for o in it.answers.columns:
        agree = it.agree[o].to_numpy()
        r = _difference(labels, it, it.right[o], base.right, agree, base.agree, alpha=alpha)
        p = _t_sf(r[Col.ESTIMATE] / r[Col.STD_ERROR], r[Col.DF]) if r[Col.STD_ERROR] > 0 else float(
            r[Col.ESTIMATE] <= 0)
        own = _accuracy(labels, it, it.right[o], agree, alpha=alpha)  # as in metrics
        rows.append({Col.OPTION: o, Col.BASELINE: base.name, Col.ANSWER: base.answer, Col.N: len(it.ids),
                     Col.CANDIDATE_MEAN: own[Col.ESTIMATE],
                     Col.BASELINE_MEAN: base.row[Col.MEAN_SCORE], Col.DIFFERENCE: r[Col.ESTIMATE],
                     Col.P_VALUE: p, Col.PASSES: bool(p < alpha), **_ppi_columns(r, floor=-1.0),
                     Col.STATEMENT: (f"{o} against always answering {base.answer!r} (the most frequent label among "
                                     f"the {len(it.gold)} labelled items): {pts(r[Col.ESTIMATE])} by "
                                     f"{_how(labels)} from "
                                     f"{r[Col.N_LABELLED]} labels and the reference's answers on "
                                     f"{r[Col.N_UNLABELLED]} more items (labels alone: {pts(r[Col.LABELS_ONLY])}); "
                                     f"one-sided {p_words(p)}: it " + ("clears" if p < alpha else "does not clear")
                                     + " the floor.")})
    return pd.DataFrame(rows)


def ppi_compare(task: Task, scores: pd.DataFrame, labels: SampledLabels, *, reference: str, margin: float = 0.02,
                alpha: float = 0.05, power: float = 0.80) -> pd.DataFrame:
    """Every candidate against ``reference`` in accuracy, by PPI++: the difference with its ``1 - alpha``
    interval, the one-sided ``1 - alpha`` lower bound, non-inferiority at ``margin`` (Student t), Holm across
    candidates; beside it the labels-only interval and the effective labels. ``n_needed``: labels for
    ``power`` to show non-inferiority (Nam 1997 on the labelled pairs, divided by the proxy's gain)."""
    it = _items(task, scores, labels, reference=reference)
    ref_agree = it.agree[reference].to_numpy()
    rows, paired = [], []
    for o in [c for c in it.answers.columns if c != reference]:
        agree = it.agree[o].to_numpy()
        r = _difference(labels, it, it.right[o], it.right[reference], agree, ref_agree, alpha=alpha,
                        zero=agree == 1.0)
        est, se, df = float(r[Col.ESTIMATE]), float(r[Col.STD_ERROR]), float(r[Col.DF])
        q = float(scipy_stats.t.ppf(1 - alpha, df) if math.isfinite(df) else scipy_stats.norm.ppf(1 - alpha))
        if se > 0:
            p = {Col.P_NONINFERIORITY: _t_sf((est + margin) / se, df), Col.P_SUPERIORITY: _t_sf(est / se, df),
                 Col.P_INFERIORITY: _t_sf(-(est + margin) / se, df)}
        else:
            p = {Col.P_NONINFERIORITY: float(est <= -margin), Col.P_SUPERIORITY: float(est <= 0),
                 Col.P_INFERIORITY: float(est >= -margin)}
        if _designed(labels):
            n_needed = _labels_needed_by_design(r, margin=margin, alpha=alpha, power=power)
        else:
            need = sample_size_noninferiority(it.right[o], it.right[reference], margin=margin, alpha=alpha,
                                              power=power).iloc[0]
            gain = r[Col.EFFECTIVE_LABELS] / r[Col.N_LABELLED] if r[Col.EFFECTIVE_LABELS] > 0 else 1.0
            n_needed = float(math.ceil(need["n_required"] / gain)) if math.isfinite(need["n_required"]) else math.inf
        cand = _accuracy(labels, it, it.right[o], agree, alpha=alpha)
        ref_value = (_accuracy(labels, it, it.right[reference], ref_agree, alpha=alpha)[Col.ESTIMATE]
                     if _designed(labels) else float(it.right[reference].mean()))
        rows.append({Col.OPTION: o, Col.REFERENCE: reference, Col.N_ITEMS: len(it.ids), Col.METRIC: "accuracy",
                     Col.CANDIDATE_VALUE: cand[Col.ESTIMATE], Col.REFERENCE_VALUE: float(ref_value),
                     Col.DIFFERENCE: est, **_clipped(r, Col.DIFF_CI_LOW, Col.DIFF_CI_HIGH, -1.0),
                     Col.MARGIN: margin, Col.LOWER_BOUND: est - q * se, Col.UPPER_BOUND: est + q * se, **p,
                     Col.CONCLUSION: conclude(p, alpha, equivalence=False), **_ppi_columns(r, floor=-1.0),
                     Col.N_OUTSIDE: labels.outside, Col.METHOD: METHOD, Col.N_NEEDED: n_needed,
                     Col.ENOUGH_ITEMS: bool(math.isfinite(n_needed) and r[Col.N_LABELLED] >= n_needed)})
        paired.append(PairedValues(ComparisonKind.PREDICTION_POWERED, it.right[o].to_numpy(float),
                                   it.right[reference].to_numpy(float), alpha=alpha,
                                   clusters=None if it.clusters is None else it.clusters[0]))
    return finish_comparison(rows, p_columns=P_COLUMNS, rule=lambda p: conclude(p, alpha, equivalence=False),
                             kind=ComparisonKind.PREDICTION_POWERED, paired=paired, words=lambda r, k: _statement(r, k, alpha=alpha, labels=labels))


def _how(labels: SampledLabels) -> str:
    return "the design-weighted stratified estimator" if _designed(labels) else "PPI++"


def _labels_needed_by_design(r: pd.Series, *, margin: float, alpha: float, power: float) -> float:
    """Labels this design would need for ``power`` to show non-inferiority if the observed difference holds: the
    labelling variance shrinks as 1/n, the items' own sampling error does not."""
    est, se, n = float(r[Col.ESTIMATE]), float(r[Col.STD_ERROR]), int(r[Col.N_LABELLED])
    lab = float(r[Col.LABELLING_SE]) ** 2
    z = float(scipy_stats.norm.ppf(1 - alpha) + scipy_stats.norm.ppf(power))
    if est + margin <= 0 or not math.isfinite(se):
        return math.inf
    target = ((est + margin) / z) ** 2
    room = target - (se ** 2 - lab)
    if room <= 0:
        return math.inf
    return float(max(math.ceil(n * lab / room), 2)) if lab > 0 else float(n)


def _statement(r: pd.Series, k: int, *, alpha: float, labels: SampledLabels) -> str:
    lvl = f"{100 * (1 - alpha):g}%"
    how = _how(labels)
    sample = ("labels of a stratified random sample (design-weighted; the share of items where the two answers "
              "differ known exactly)"
              if _designed(labels) else "a random gold label")
    text = (f"{r[Col.OPTION]} against {r[Col.REFERENCE]} on {r[Col.N_ITEMS]} items, {r[Col.N_LABELLED]} of them with "
            f"{sample} and the reference's answers as the proxy on the other {r[Col.N_UNLABELLED]}: accuracy "
            f"{pct(r[Col.CANDIDATE_VALUE])}, difference {pts(r[Col.DIFFERENCE])} ({lvl} {how} interval "
            f"{pts(r[Col.DIFF_CI_LOW])} to {pts(r[Col.DIFF_CI_HIGH])}; the labels alone give "
            f"{pts(r[Col.LABELS_ONLY_CI_LOW])} to {pts(r[Col.LABELS_ONLY_CI_HIGH])}, so the proxy makes the "
            f"{r[Col.N_LABELLED]} labels worth about {r[Col.EFFECTIVE_LABELS]:,.0f}). Margin "
            f"{pts(r[Col.MARGIN], sign=False)}: one-sided {lvl} lower bound {pts(r[Col.LOWER_BOUND])}, so the result "
            f"is **{r[Col.CONCLUSION]}**.")
    text += holm_words(r, k)
    if r[Col.CONCLUSION_ADJUSTED] == "inconclusive" and math.isfinite(r[Col.N_NEEDED]):
        kind = "labels of this design" if _designed(labels) else "random labels"
        text += (f" About {int(r[Col.N_NEEDED]):,} {kind} would be needed to show non-inferiority at this "
                 "margin if the observed difference, discordance and proxy hold.")
    if r[Col.N_OUTSIDE]:
        text += (f" {r[Col.N_OUTSIDE]} label(s) given outside the design are not used (items not drawn when "
                 "labelled, or labelled from the disagreements queue)." if _designed(labels) else
                 f" {r[Col.N_OUTSIDE]} label(s) given outside the random sample are not used.")
    if labels.skipped:
        text += (f" {labels.skipped} sampled item(s) were skipped: the estimate uses the labels before the first "
                 f"gap" + (f" ({labels.waiting} later label(s) wait for it)." if labels.waiting else "."))
    return text + (" Assumes the labelled items are the design's random sample (inclusion probabilities recorded); "
                   "errors and unparseable answers count as wrong." if _designed(labels) else
                   " Assumes the labelled items are a uniformly random sample of the test items; errors and "
                   "unparseable answers count as wrong.")


def labels_to_decide(compare: pd.DataFrame, *, margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """An agreement comparison (no labels): per candidate, the random gold labels that would turn it into a
    correctness decision at ``margin``, planned from its observed agreement with the reference
    (:func:`kit.stats.power.labels_for_agreement`). Columns: option, agreement, labels_needed, statement.

    >>> t = pd.DataFrame({"option": ["local"], "candidate_value": [0.9]})
    >>> int(labels_to_decide(t, margin=0.02)["labels_needed"].item())
    1578
    """
    rows = []
    for r in compare.to_dict("records"):
        agreement = float(r[Col.CANDIDATE_VALUE])
        need = float(labels_for_agreement(agreement, margin=margin, alpha=alpha).iloc[0]["n_required"])
        how = (f"about {need:,.0f} random gold labels" if math.isfinite(need) else "no number of random labels")
        rows.append({Col.OPTION: r[Col.OPTION], Col.AGREEMENT: agreement, Col.LABELS_NEEDED: need,
                     Col.STATEMENT: (f"{r[Col.OPTION]} agrees with the reference on {pct(agreement)} of the items: "
                                     "this decision is about agreement with the reference, not correctness. To "
                                     f"decide on correctness at a {pts(margin, sign=False)} margin, {how} would be "
                                     "needed (a paired non-inferiority test planned for no true difference, "
                                     "80% power).")})
    return pd.DataFrame(rows, columns=[Col.OPTION, Col.AGREEMENT, Col.LABELS_NEEDED, Col.STATEMENT])


def ppi_pairs(task: Task, scores: pd.DataFrame, labels: SampledLabels, *, reference: str,
              alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of options in accuracy, by PPI++ or the labelling design's weights (the pairs table of a partly
    labelled task): the paired
    difference ``a - b`` (proxies: each agrees with the reference), a two-sided Student-t test, Holm across the
    pairs — so the verdict's "significantly better than" and its quality trade read correctness, never agreement.
    Columns of :func:`kit.stats.pairwise`: a, b, n, mean_a, mean_b, difference, p_value, p_holm, significant,
    statement (``mean_a``/``mean_b``: each option's PPI++ accuracy)."""
    it = _items(task, scores, labels, reference=reference)
    acc = {o: float(_accuracy(labels, it, it.right[o], it.agree[o].to_numpy(), alpha=alpha)[Col.ESTIMATE])
           for o in it.answers.columns}
    rows = []
    for a, b in combinations(it.answers.columns, 2):
        same = (it.answers[a].astype(str) == it.answers[b].astype(str)).to_numpy()
        r = _difference(labels, it, it.right[a], it.right[b], it.agree[a].to_numpy(), it.agree[b].to_numpy(),
                        alpha=alpha, zero=same)
        est, se = float(r[Col.ESTIMATE]), float(r[Col.STD_ERROR])
        p = min(1.0, 2 * _t_sf(abs(est) / se, float(r[Col.DF]))) if se > 0 else float(est == 0)
        rows.append({Col.A: a, Col.B: b, Col.N: len(it.ids), Col.MEAN_A: acc[a], Col.MEAN_B: acc[b],
                     Col.DIFFERENCE: est, Col.P_VALUE: p, Col.N_LABELLED: int(r[Col.N_LABELLED])})
    out = pd.DataFrame(rows, columns=[Col.A, Col.B, Col.N, Col.MEAN_A, Col.MEAN_B, Col.DIFFERENCE, Col.P_VALUE,
                                      Col.N_LABELLED])
    out[Col.P_HOLM] = holm(out[Col.P_VALUE]) if len(out) else []
    out[Col.SIGNIFICANT] = out[Col.P_HOLM] < alpha
    how = "design-weighted" if _designed(labels) else "PPI++"
    out[Col.STATEMENT] = [
        f"{r.a} {pct(r.mean_a)} vs {r.b} {pct(r.mean_b)} in accuracy ({how} from {r.n_labelled} labels and "
        f"the reference's answers): {pts(r.difference)}, {p_words(r.p_holm)} after Holm over {len(out)} pairs — "
        + ("a real difference." if r.significant else "not shown to differ.") for r in out.itertuples()]
    return out
