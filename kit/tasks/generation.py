"""Generation: a free-text answer per item, scored against reference answers and/or by a model judge.

Reference answers are optional (one or several per item: a column holding a string, a JSONL list, or
a string split on a separator). Per item the kit computes chrF (sacrebleu) and ROUGE-L F1
(rouge-score), both in [0, 1] and both taking the best-matching reference when there are several. A
rubric (a score scale and criteria) is what a model judge grades on (:mod:`kit.judge`); without
references a judge is the only measure of quality.

>>> t = Generation(references_column="reference")
>>> t.parse("  The model wins.  ")
'The model wins.'
>>> round(t.score("the cat sat", ("the cat sat",)).score, 3)
1.0
>>> Rubric.from_spec({"criteria": "faithful"}, "x.yaml")
Traceback (most recent call last):
...
kit.errors.TaskError: x.yaml: the rubric has no `scale:`. Fix: give the score scale, e.g. rubric: {scale: [1, 5], criteria: "5 = faithful and complete; 1 = wrong"}
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from kit import stats
from kit.columns import Col
from kit.errors import MissingDependency, TaskError
from kit.tasks.types import (Baseline, Columns, Comparison, ComparisonKind, Item, ItemScore, TaskType,
                             register_task_type)

REFERENCE_METRICS = ("chrf", "rouge_l")
JUDGE_METRICS = (Col.JUDGE, "preference")  # a rubric grade scaled to [0, 1]; pairwise preference over the reference
METRICS = REFERENCE_METRICS + JUDGE_METRICS
JUDGE_MODES = ("rubric", "pairwise")
METRIC_WORDS = {"chrf": "chrF", "rouge_l": "ROUGE-L F1", Col.JUDGE: "judge's rubric grade (scaled)",
                "preference": "judge's preference over the reference"}
DEFAULT_MAX_TOKENS = 128


def chrf(answer: str, references: Sequence[str]) -> float:
    """Sentence chrF (sacrebleu's defaults: character 6-grams, beta 2) against the best reference, in [0, 1].

    >>> chrf("A cat sat on the mat.", ["A cat sat on the mat."])
    1.0
    """
    return float(_chrf_metric().sentence_score(answer, list(references)).score) / 100.0


def rouge_l(answer: str, references: Sequence[str]) -> float:
    """ROUGE-L F1 (rouge-score, Porter stemming) against the best reference, in [0, 1].

    >>> round(rouge_l("the cat sat", ["the cat sat down"]), 4)
    0.8571
    """
    return float(_rouge_scorer().score_multi(list(references), answer)["rougeL"].fmeasure)


@functools.lru_cache(maxsize=1)
def _chrf_metric() -> Any:
    try:
        from sacrebleu.metrics import CHRF
    except ImportError:
        raise MissingDependency("sacrebleu", purpose="for chrF on free-text tasks") from None
    return CHRF()


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise MissingDependency("rouge-score", purpose="for ROUGE-L on free-text tasks") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@dataclass(frozen=True)
class Rubric:
    """What a judge grades on: whole-number grades ``low``..``high``, the criteria in words, a pass mark."""

    low: int
    high: int
    criteria: str = ""
    pass_mark: int | None = None

    @classmethod
    def from_spec(cls, spec: Any, where: str) -> Rubric:
        fix = 'give the score scale, e.g. rubric: {scale: [1, 5], criteria: "5 = faithful and complete; 1 = wrong"}'
        if not isinstance(spec, Mapping):
            raise TaskError(f"`rubric:` must be a mapping, got {spec!r}", where=where, fix=fix)
        unknown = sorted(set(map(str, spec)) - {"scale", "criteria", "pass"})
        if unknown:
            raise TaskError(f"`rubric:` has unknown keys {unknown}", where=where, fix="use scale, criteria and pass")
        scale = spec.get("scale")
        if scale is None:
            raise TaskError("the rubric has no `scale:`", where=where, fix=fix)
        if (not isinstance(scale, (list, tuple)) or len(scale) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in scale) or scale[0] >= scale[1]):
            raise TaskError(f"rubric.scale must be two whole numbers, lowest first, got {scale!r}", where=where, fix=fix)
        if scale[1] - scale[0] > 20:
            raise TaskError(f"rubric.scale {scale} has {scale[1] - scale[0] + 1} grades", where=where,
                            fix="use a short scale such as [1, 5] or [0, 10]: judges grade coarse scales more reliably")
        criteria = spec.get("criteria", "")
        if isinstance(criteria, (list, tuple)):
            criteria = "\n".join(f"- {c}" for c in criteria)
        if not isinstance(criteria, str):
            raise TaskError("rubric.criteria must be text or a list of lines", where=where, fix=fix)
        mark = spec.get("pass")
        if mark is not None and (isinstance(mark, bool) or not isinstance(mark, int) or not scale[0] <= mark <= scale[1]):
            raise TaskError(f"rubric.pass must be a grade on the scale {scale}, got {mark!r}", where=where,
                            fix=f"write e.g. pass: {scale[1] - (scale[1] - scale[0]) // 4}")
        return cls(low=int(scale[0]), high=int(scale[1]), criteria=criteria.strip(), pass_mark=mark)

    @property
    def grades(self) -> tuple[str, ...]:
        return tuple(str(g) for g in range(self.low, self.high + 1))

    def scaled(self, grade: float) -> float:
        """A grade as a score in [0, 1]: the lowest grade is 0, the highest 1.

        >>> Rubric(1, 5).scaled(4)
        0.75
        """
        return (float(grade) - self.low) / (self.high - self.low)

    @property
    def pass_score(self) -> float:
        """The pass mark as a score in [0, 1] (the middle of the scale when none is given)."""
        return 0.5 if self.pass_mark is None else self.scaled(self.pass_mark)


def _references_column(spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]],
                       where: str) -> tuple[str | None, str | None]:
    declared = spec.get("references")
    if declared is None:
        return next((c for c in ("references", "reference") if any(c in row for _, row in rows)), None), None
    if isinstance(declared, str):
        return declared, None
    if isinstance(declared, Mapping) and isinstance(declared.get("column"), str):
        sep = declared.get("separator")
        if sep is not None and (not isinstance(sep, str) or not sep):
            raise TaskError(f"references.separator must be text, got {sep!r}", where=where, fix='write e.g. separator: " || "')
        return declared["column"], sep
    raise TaskError(f"`references:` must name a column, got {declared!r}", where=where,
                    fix='write references: summary (a column), or references: {column: refs, separator: " || "}')


def _metric(spec: Mapping[str, Any], has_refs: bool, rubric: Rubric | None, where: str) -> str:
    metric = spec.get(Col.METRIC)
    if metric is None:
        return "chrf" if has_refs else "judge" if rubric else "preference"
    if metric not in METRICS:
        raise TaskError(f"`metric: {metric}` is not a free-text metric", where=where, fix=f"use one of {list(METRICS)}")
    if metric in REFERENCE_METRICS and not has_refs:
        raise TaskError(f"`metric: {metric}` needs reference answers, and the data has none", where=where,
                        fix="name the column that holds them under `references:`, or use metric: judge (with a "
                            "rubric) or metric: preference")
    if metric == "judge" and rubric is None:
        raise TaskError("`metric: judge` needs a rubric to grade on", where=where,
                        fix='add rubric: {scale: [1, 5], criteria: "..."}, or use metric: preference')
    return str(metric)


def _judge_modes(spec: Mapping[str, Any], metric: str, rubric: Rubric | None, where: str) -> tuple[str, ...]:
    declared = spec.get(Col.JUDGE)
    if declared is None:
        modes: list[str] = (["rubric"] if rubric else []) + (["pairwise"] if metric == "preference" else [])
    else:
        modes = [declared] if isinstance(declared, str) else list(declared) if isinstance(declared, list) else [None]
        bad = [m for m in modes if m not in JUDGE_MODES + ("none",)]
        if bad:
            raise TaskError(f"`judge:` must be rubric, pairwise, both as a list, or none; got {declared!r}",
                            where=where, fix="write e.g. judge: [rubric, pairwise]")
        modes = [m for m in modes if m != "none"]
    if "rubric" in modes and rubric is None:
        raise TaskError("`judge: rubric` needs a rubric", where=where,
                        fix='add rubric: {scale: [1, 5], criteria: "..."}, or use judge: pairwise')
    needed = {Col.JUDGE: "rubric", "preference": "pairwise"}.get(metric)
    if needed and needed not in modes:
        raise TaskError(f"`metric: {metric}` needs `judge: {needed}`", where=where, fix=f"add {needed} under `judge:`")
    return tuple(dict.fromkeys(modes))


@register_task_type
@dataclass(frozen=True)
class Generation(TaskType):
    """Free-text answers. ``metric`` is the headline: chrf, rouge_l (references), judge (rubric) or preference."""

    references_column: str | None = None
    separator: str | None = None
    rubric: Rubric | None = None
    metric: str = "chrf"
    judge_modes: tuple[str, ...] = ()
    max_tokens: int = DEFAULT_MAX_TOKENS
    kind: ClassVar[str] = "generation"
    judged: ClassVar[bool] = True

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        others = [m for m in REFERENCE_METRICS if self.references_column] + [
            m for m, mode in zip(JUDGE_METRICS, JUDGE_MODES) if mode in self.judge_modes]
        return (self.metric, *[m for m in others if m != self.metric])

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], rows: Sequence[tuple[int, dict[str, Any]]], columns: Columns,
                  where: str) -> Generation:
        column, sep = _references_column(spec, rows, where)
        if column is not None and spec.get("references") is not None and not any(column in r for _, r in rows):
            has = sorted({c for _, row in rows for c in row})
            raise TaskError(f"the references column '{column}' is not in the data (has {has})",
                            where=where, fix="correct `references:` or add the column")
        rubric = Rubric.from_spec(spec["rubric"], where) if spec.get("rubric") is not None else None
        metric = _metric(spec, column is not None, rubric, where)
        max_tokens = spec.get("max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 8192:
            raise TaskError(f"`max_tokens:` must be a whole number from 1 to 8192, got {max_tokens!r}", where=where,
                            fix="write e.g. max_tokens: 128")
        return cls(references_column=column, separator=sep, rubric=rubric, metric=metric,
                   judge_modes=_judge_modes(spec, metric, rubric, where), max_tokens=max_tokens)

    def gold_columns(self, columns: Columns) -> tuple[str, ...]:
        return (self.references_column,) if self.references_column else ()

    def missing_gold(self, row: Mapping[str, Any], columns: Columns) -> str | None:
        return None if self._references(row) else f"no reference answer in column '{self.references_column}'"

    def gold(self, row: Mapping[str, Any], columns: Columns, where: str) -> tuple[str, ...]:
        """The row's reference answers (one at least: :meth:`missing_gold` says when there is none)."""
        return self._references(row)

    def _references(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        raw = row.get(self.references_column or "")
        if isinstance(raw, list):
            refs = [str(r) for r in raw if r is not None]
        elif raw is None:
            refs = []
        else:
            refs = str(raw).split(self.separator) if self.separator else [str(raw)]
        return tuple(r.strip() for r in refs if r.strip())

    def render(self, answer: Any) -> str:
        return str(answer[0] if isinstance(answer, (tuple, list)) else answer)

    def parse(self, text: str) -> str | None:
        """The answer is the text itself; an empty answer is None (counted as unparseable, scored 0)."""
        text = str(text or "").strip()
        return text or None

    def score(self, answer: Any, gold: Any) -> ItemScore:
        """chrF and ROUGE-L against the references; ``score`` is the headline reference metric (chrF when the
        headline is a judge metric, which :func:`kit.tasks.scoring.score_generation` fills in)."""
        if not answer or not gold:
            return ItemScore(correct=False, score=0.0, parts={m: 0.0 for m in REFERENCE_METRICS})
        refs = tuple(gold) if isinstance(gold, (tuple, list)) else (str(gold),)
        parts = {"chrf": chrf(str(answer), refs), "rouge_l": rouge_l(str(answer), refs)}
        value = parts[self.metric] if self.metric in parts else parts["chrf"]
        return ItemScore(correct=value >= self.pass_score, score=value, parts=parts)

    @property
    def pass_score(self) -> float:
        """The score at which an answer counts as acceptable in right/wrong views (0.5, or the rubric's pass mark)."""
        return self.rubric.pass_score if self.rubric and self.metric == "judge" else 0.5

    def summarise(self, rows: pd.DataFrame) -> dict[str, float]:
        out = {}
        for name in self.metrics:
            col = f"part_{name}"
            values = rows[col].astype(float) if col in rows else pd.Series(dtype=float)
            out[name] = float(values.mean()) if values.notna().any() else float("nan")
        out[self.metrics[0]] = float(rows[Col.SCORE].astype(float).mean())
        return out

    def compare(self, scores: pd.DataFrame, *, reference: str, labelled: bool = True, margin: float = 0.02,
                alpha: float = 0.05, agreement_target: float = 0.95, n_resamples: int = 10_000,
                seed: int = 0) -> Comparison:
        """Scores in [0, 1] — chrF, ROUGE-L, the judge's grade or preference — paired against the reference's
        (:func:`kit.stats.compare_scores`: bootstrap, Wilcoxon, t-test non-inferiority at ``margin`` in score
        units, win/tie/loss), with or without reference answers: a judge-only task is scored the same way.
        ``agreement_target`` does not apply."""
        table = stats.compare_scores(scores, reference=reference, margin=margin, alpha=alpha,
                                     metric=METRIC_WORDS[self.metric], n_resamples=n_resamples, seed=seed)
        return Comparison(ComparisonKind.PAIRED_SCORES, table)

    def comparison_kind(self, *, labelled: bool) -> ComparisonKind:
        return ComparisonKind.PAIRED_SCORES

    def baselines(self, train: Sequence[Item], test: Sequence[Item]) -> list[Baseline]:
        """Lead-1: the input's first sentence as the answer, scored against the references (the classic
        extractive floor for summaries). None without references or with a judge metric as the headline."""
        if self.metric not in REFERENCE_METRICS or not test or any(i.gold is None for i in test):
            return []
        firsts = [_first_sentence(i.text) for i in test]
        return [Baseline("lead-1", "the first sentence of the input",
                         tuple(self.score(a, i.gold) for a, i in zip(firsts, test)))]


def _first_sentence(text: str) -> str:
    """The text up to its first sentence end.

    >>> _first_sentence("We test it. It works.")
    'We test it.'
    """
    match = re.search(r"^(.+?[.!?])(\s|$)", text.strip(), flags=re.S)
    return (match.group(1) if match else text).strip()


def answer_lengths(answers: Sequence[str | None]) -> np.ndarray:
    """Words per answer (0 for none), for a length column beside the scores."""
    return np.array([len(str(a).split()) if a else 0 for a in answers], dtype=int)
