"""The model judge: an arm grades free-text answers, and every judge call goes through the store.

Two ways of asking (a task's ``judge:`` names which):

- **rubric**: the judge grades each option's answer on the task's rubric scale. The grade is asked as a
  choice among the scale's whole numbers (label-constrained on llama.cpp, an enum on APIs), so a capable
  arm always gives one.
- **pairwise**: the judge compares a candidate's answer with the reference option's, **twice with the
  order swapped**. The candidate wins an item only when it wins both ways, loses only when it loses both
  ways; anything else is a tie. How often the two orders agree is reported: a judge that always prefers
  the first position agrees never and declares no winner.

A judge call is a question like any other: ``cache_key(..., kind="judge")`` over the judge's identity,
the prompt (which holds the answer judged) and the epoch — so a resumed judge run repeats no call, a
budget caps it, and identical answers are graded once. A reply with no parsable grade is kept, asked
again once, and then recorded as a judge error (counted, stored, shown; never dropped). An empty or
failed answer is not sent to the judge: it gets the lowest grade (rubric) or loses (pairwise).

>>> with Store("runs/kit.sqlite") as store:                                  # doctest: +SKIP
...     result = judge_task(task, store, {"api": api_rows, "local": local_rows}, judge_arm, reference="api")
>>> result.verdicts[["mode", "option", "item_id", "value"]].head()             # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import pandas as pd

from kit.arms.base import Arm, Request
from kit.columns import Col
from kit.errors import ConfigError
from kit.run.budget import Budget
from kit.run.runner import Question, ask
from kit.run.store import Store, cache_key
from kit.tasks import Task
from kit.tasks.generation import Generation, Rubric
from kit.tasks.prompts import prompt_hash, render_instruction

SYSTEM = "You are a careful, impartial grader. You reply with the verdict only."
PAIR_CHOICES = ("A", "B", "tie")
NO_ANSWER = "no answer to judge (empty, failed or missing)"


@dataclass(frozen=True)
class _Question:
    mode: str
    arm: str
    item_id: str
    epoch: int
    order: str | None  # pairwise: "AB" puts the candidate first, "BA" the reference
    request: Request
    key: str


@dataclass
class JudgeResult:
    """What a judge run asked and concluded.

    ``calls``: one row per question (mode, arm, item_id, epoch, order, key, grade, output, attempts,
    judge_error, error, cached). ``verdicts``: one row per judged answer (mode, arm, item_id, epoch,
    grade, value in [0, 1] or NaN, outcome, orders_agree, judge_error, note). ``self_preference``: one row
    per option (arm, judge, same_model, note).
    """

    judge: str
    identity: dict[str, Any]
    run_id: str
    calls: pd.DataFrame
    verdicts: pd.DataFrame
    self_preference: pd.DataFrame
    new_calls: int = 0
    cached: int = 0
    retries: int = 0
    skipped: int = 0
    stopped: str | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def judge_errors(self) -> int:
        """Questions without a grade: no parsable grade after a retry, or a failed call."""
        return int(self.calls[Col.JUDGE_ERROR].sum()) if len(self.calls) else 0

    def consistency(self) -> pd.DataFrame:
        """Per candidate (pairwise): items, how often the two orders agreed, and how often the judge picked
        the answer shown first. Columns: arm, n_items, orders_agree, first_position_share, wins, ties,
        losses, judge_errors, statement."""
        pairs = self.verdicts[self.verdicts[Col.MODE] == "pairwise"]
        calls = self.calls[(self.calls[Col.MODE] == "pairwise") & ~self.calls[Col.JUDGE_ERROR]]
        rows = []
        for arm, g in pairs.groupby(Col.OPTION, sort=False):
            ok = g[~g[Col.JUDGE_ERROR] & g[Col.ORDERS_AGREE].notna()]
            decided = calls[(calls[Col.OPTION] == arm) & calls[Col.GRADE].isin(["A", "B"])]
            first = float((decided[Col.GRADE] == "A").mean()) if len(decided) else float("nan")
            agree = float(ok[Col.ORDERS_AGREE].astype(float).mean()) if len(ok) else float("nan")
            counts = g[Col.OUTCOME].value_counts()
            rows.append({Col.OPTION: arm, Col.N_ITEMS: len(g), Col.ORDERS_AGREE: agree, Col.FIRST_POSITION_SHARE: first,
                         Col.WINS: int(counts.get("win", 0)), Col.TIES: int(counts.get("tie", 0)),
                         Col.LOSSES: int(counts.get("loss", 0)), Col.JUDGE_ERRORS: int(g[Col.JUDGE_ERROR].sum()),
                         Col.STATEMENT: _consistency_words(arm, self.judge, agree, first, len(ok))})
        return pd.DataFrame(rows, columns=[Col.OPTION, Col.N_ITEMS, Col.ORDERS_AGREE, Col.FIRST_POSITION_SHARE, Col.WINS, Col.TIES,
                                           Col.LOSSES, Col.JUDGE_ERRORS, Col.STATEMENT])


def _consistency_words(arm: str, judge: str, agree: float, first: float, n: int) -> str:
    if not n:
        return f"{judge} judged no pair of {arm}'s answers both ways."
    text = (f"Asked both ways round on {n} items, {judge} gave the same verdict in both orders on "
            f"{100 * agree:.0f}% of them; where it picked an answer, it picked the one shown first "
            f"{100 * first:.0f}% of the time" if math.isfinite(first) else "")
    text += ". An item counts as a win or a loss only when both orders agree; the rest are ties."
    if math.isfinite(first) and abs(first - 0.5) > 0.25:
        text += " The judge leans strongly to one position, so many verdicts cancel out as ties."
    return text


# prompts ------------------------------------------------------------------------------------------------
def rubric_request(task: Task, item_text: str, answer: str, rubric: Rubric, *,
                   references: Sequence[str] = (), max_tokens: int = 32) -> Request:
    """The question that asks for one answer's grade on the rubric (the grades are the choices)."""
    refs = "".join(f"\n\nReference answer:\n{r}" for r in references)
    content = (f"Grade the answer to the task below on a scale from {rubric.low} (worst) to {rubric.high} (best)."
               + (f"\n\nCriteria:\n{rubric.criteria}" if rubric.criteria else "")
               + f"\n\nTask:\n{render_instruction(task, item_text)}{refs}\n\nAnswer to grade:\n{answer}\n\n"
               f"Reply with one whole number from {rubric.low} to {rubric.high}.")
    return Request(item_id="", messages=({"role": "system", "content": SYSTEM}, {"role": "user", "content": content}),
                   choices=rubric.grades, max_tokens=max_tokens)


def pairwise_request(task: Task, item_text: str, first: str, second: str, *, criteria: str = "",
                     max_tokens: int = 32) -> Request:
    """The question that asks which of two answers is better (A is shown first); ties are allowed."""
    content = ("Which answer does the task below better? Judge correctness and faithfulness first, then "
               "clarity; do not prefer an answer for its length or its position."
               + (f"\n\nCriteria:\n{criteria}" if criteria else "")
               + f"\n\nTask:\n{render_instruction(task, item_text)}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}"
               "\n\nReply with A, B or tie.")
    return Request(item_id="", messages=({"role": "system", "content": SYSTEM}, {"role": "user", "content": content}),
                   choices=PAIR_CHOICES, max_tokens=max_tokens)


def parse_grade(text: str, rubric: Rubric) -> int | None:
    """The first whole number on the scale in the reply, or None.

    >>> parse_grade("Grade: 4/5", Rubric(1, 5)), parse_grade("excellent", Rubric(1, 5))
    (4, None)
    """
    for token in re.findall(r"(?<![\d.])-?\d+(?![\d.])", str(text or "")):
        if rubric.low <= int(token) <= rubric.high:
            return int(token)
    return None


def parse_preference(text: str) -> str | None:
    """'A', 'B' or 'tie' from a reply such as ``Answer B.`` or ``It's a tie``; None when it names none or both.

    >>> parse_preference("Answer B."), parse_preference("tie"), parse_preference("A and B")
    ('B', 'tie', None)
    """
    norm = str(text or "").strip()
    if re.search(r"\b(tie|equal(ly)?|same)\b", norm, flags=re.I):
        return "tie"
    found = set(re.findall(r"\b([AB])\b", norm))
    return found.pop() if len(found) == 1 else None


# who judges whom ----------------------------------------------------------------------------------------
def _model_name(identity: Mapping[str, Any]) -> str:
    name = str(identity.get(Col.MODEL) or "").strip().lower()
    return PurePath(name).name.removesuffix(".gguf")


def same_model(judge: Mapping[str, Any], option: Mapping[str, Any]) -> bool:
    """Whether a judge and an option run the same model (same GGUF sha256, or the same model name).

    >>> same_model({"model": "gemma-3-270m", "endpoint": "127.0.0.1"}, {"model": "gemma-3-270m", "sha256": "ab"})
    True
    """
    if judge.get(Col.SHA256) and option.get(Col.SHA256):
        return judge[Col.SHA256] == option[Col.SHA256]
    return bool(_model_name(judge)) and _model_name(judge) == _model_name(option)


def self_preference(judge: str, judge_identity: Mapping[str, Any],
                    identities: Mapping[str, Mapping[str, Any] | None]) -> pd.DataFrame:
    """One row per option: whether the judge is the option's own model (a judge tends to prefer its own
    answers: a caveat for the report). Columns: arm, judge, same_model, note."""
    rows = []
    for arm, ident in identities.items():
        same = bool(ident) and same_model(judge_identity, ident or {})
        note = (f"{judge} is the same model as {arm}: judges tend to prefer their own answers, so read "
                f"{arm}'s judged quality with care" if same else "")
        if same and (ident or {}).get("lora_sha256"):
            note += " (the judge is its base model; the option adds a fine-tuned adapter)"
        rows.append({Col.OPTION: arm, Col.JUDGE: judge, Col.SAME_MODEL: same, Col.NOTE: note})
    return pd.DataFrame(rows, columns=[Col.OPTION, Col.JUDGE, Col.SAME_MODEL, Col.NOTE])


def _identity_of(rows: pd.DataFrame) -> dict[str, Any] | None:
    if "params" in rows and len(rows) and isinstance(rows[Col.PARAMS].iloc[0], Mapping):
        return dict(rows[Col.PARAMS].iloc[0])
    if "params" in rows and len(rows) and isinstance(rows[Col.PARAMS].iloc[0], str):
        try:
            return json.loads(rows[Col.PARAMS].iloc[0])
        except ValueError:
            return None
    return None


def _answers(rows: pd.DataFrame, where: str) -> dict[tuple[str, int], str | None]:
    """(item, epoch) -> the answer text, None when the call failed or the answer is empty."""
    if "item_id" not in rows:
        raise ConfigError("answers lack an item_id column", where=where,
                          fix="pass the stored rows (Store.rows(summary.keys.values())) of each option")
    out: dict[tuple[str, int], str | None] = {}
    for rec in rows.to_dict("records"):
        error = rec.get(Col.ERROR)
        failed = error is not None and not (isinstance(error, float) and math.isnan(error))
        text = rec.get(Col.ANSWER) if isinstance(rec.get(Col.ANSWER), str) else rec.get(Col.OUTPUT)
        text = str(text).strip() if isinstance(text, str) and not failed else ""
        out[(str(rec[Col.ITEM_ID]), int(rec.get(Col.EPOCH) or 0))] = text or None
    return out


# the run ------------------------------------------------------------------------------------------------
def judge_task(task: Task, store: Store, answers_by_option: Mapping[str, pd.DataFrame], judge_arm: Arm, *,
               reference: str | None = None, modes: Sequence[str] | None = None, epoch: int = 0,
               budget: Budget | None = None, progress: bool = False, max_tokens: int = 32,
               label: str | None = None) -> JudgeResult:
    """Have ``judge_arm`` grade every option's answers on a free-text task; every call goes through ``store``.

    ``answers_by_option`` maps each option's arm (as named in the score table) to its stored rows
    (``Store.rows(summary.keys.values())``: item_id, epoch, answer/output, error, params). ``reference``
    names the option the pairwise mode compares against. ``modes`` defaults to the task's ``judge:``.
    ``epoch`` is the judge's own epoch (a new one asks every question again).

    >>> result = judge_task(task, store, {"openai:gpt-4o-mini": api_rows, "llama_cpp:smollm2": local_rows},
    ...                     judge_arm, reference="openai:gpt-4o-mini")          # doctest: +SKIP
    >>> result.consistency()[["option", "orders_agree"]]                        # doctest: +SKIP
    """
    where = f"judge {judge_arm.spec} · {task.name}"
    if not isinstance(task.type, Generation):
        raise ConfigError(f"task '{task.name}' is a {task.kind} task; a judge grades free-text answers",
                          where=where, fix="score label and field answers with kit.tasks.scoring instead")
    modes = tuple(task.type.judge_modes if modes is None else modes)
    bad = [m for m in modes if m not in ("rubric", "pairwise")]
    if bad or not modes:
        raise ConfigError(f"judge modes {list(modes)} are not usable", where=where,
                          fix="ask for rubric and/or pairwise (or declare `judge:` in the task file)")
    if "rubric" in modes and task.type.rubric is None:
        raise ConfigError("the rubric mode needs a rubric in the task file", where=where,
                          fix='add rubric: {scale: [1, 5], criteria: "..."} to the task, or use modes=["pairwise"]')
    if "pairwise" in modes and reference not in answers_by_option:
        raise ConfigError(f"pairwise judging needs the reference option's answers; {reference!r} is not among "
                          f"{sorted(answers_by_option)}", where=where, fix="pass reference= one of the options")
    answers = {arm: _answers(rows, where) for arm, rows in answers_by_option.items()}
    identity = judge_arm.identity()
    items = {i.id: i for i in task.items}
    questions, verdict_keys, skipped = _questions(task, answers, items, modes, reference, identity, epoch, max_tokens)
    by_key = {q.key: q for q in questions}
    rubric = task.type.rubric

    def parse(question: Question, text: str) -> Any:
        mode = by_key[question.key].mode
        return parse_grade(text, rubric) if mode == "rubric" and rubric else parse_preference(text)

    # the runner asks and stores; a reply without a grade is asked again once
    summary = ask(task, judge_arm, [Question(item_id=q.item_id, request=q.request, key=q.key,
                                             extra={Col.MODE: q.mode, "judged_arm": q.arm, "order": q.order})
                                    for q in questions],
                  store=store, parse=parse, reask=1, epoch=epoch, kind="judge", budget=budget, progress=progress,
                  label=label or f"judge {judge_arm.spec}", stage="judge", unit="question", hardware=None,
                  options={Col.KIND: "judge", "modes": list(modes), Col.REFERENCE: reference, Col.EPOCH: epoch,
                           "max_tokens": max_tokens})
    result = JudgeResult(judge=judge_arm.spec, identity=identity, run_id=summary.run_id, calls=pd.DataFrame(),
                         verdicts=pd.DataFrame(), self_preference=pd.DataFrame(), skipped=skipped,
                         keys=[q.key for q in questions], new_calls=summary.new_calls, cached=summary.cached,
                         retries=summary.reasked, stopped=summary.stopped)
    grades = _grades(store, result.keys, run_id=summary.run_id)
    result.calls = _calls_table(questions, grades)
    result.verdicts = _verdicts(verdict_keys, grades, task.type.rubric)
    result.self_preference = self_preference(judge_arm.spec, identity, {
        arm: _identity_of(rows) for arm, rows in answers_by_option.items()})
    return result


def _questions(task: Task, answers: dict[str, dict[tuple[str, int], str | None]], items: Mapping[str, Any],
               modes: Sequence[str], reference: str | None, identity: dict[str, Any], epoch: int,
               max_tokens: int) -> tuple[list[_Question], list[dict[str, Any]], int]:
    """Every question to ask, and per judged answer which questions decide it (no question: no answer)."""
    ttype = task.type
    assert isinstance(ttype, Generation)
    questions: dict[str, _Question] = {}
    verdicts: list[dict[str, Any]] = []
    skipped = 0

    def ask(mode: str, arm: str, item_id: str, ep: int, order: str | None, request: Request) -> str:
        request = Request(item_id=item_id, messages=request.messages, choices=request.choices,
                          max_tokens=request.max_tokens)
        key = cache_key(task=task.name, item_id=item_id, identity=identity, prompt_hash=prompt_hash(request),
                        epoch=epoch, kind="judge")
        questions.setdefault(f"{key}|{arm}|{ep}|{order}", _Question(mode, arm, item_id, ep, order, request, key))
        return f"{key}|{arm}|{ep}|{order}"

    ref_answers = answers.get(reference or "", {})
    for arm, by_item in answers.items():
        for (item_id, ep), text in sorted(by_item.items()):
            item = items.get(item_id)
            if item is None:
                continue
            base = {Col.OPTION: arm, Col.ITEM_ID: item_id, Col.EPOCH: ep}
            if "rubric" in modes:
                if text is None:
                    skipped += 1
                    verdicts.append({**base, Col.MODE: "rubric", "asks": (), Col.NOTE: NO_ANSWER})
                else:
                    refs = tuple(item.gold) if item.gold else ()
                    req = rubric_request(task, item.text, text, ttype.rubric, references=refs, max_tokens=max_tokens)
                    verdicts.append({**base, Col.MODE: "rubric", "asks": (ask("rubric", arm, item_id, ep, None, req),),
                                     Col.NOTE: ""})
            if "pairwise" in modes and arm != reference:
                ref_text = ref_answers.get((item_id, ep), ref_answers.get((item_id, 0)))
                if text is None or ref_text is None:
                    skipped += 1
                    verdicts.append({**base, Col.MODE: "pairwise", "asks": (), Col.NOTE: NO_ANSWER,
                                     Col.OUTCOME: "tie" if text is None and ref_text is None else
                                     "loss" if text is None else "win"})
                    continue
                criteria = ttype.rubric.criteria if ttype.rubric else ""
                ab = pairwise_request(task, item.text, text, ref_text, criteria=criteria, max_tokens=max_tokens)
                ba = pairwise_request(task, item.text, ref_text, text, criteria=criteria, max_tokens=max_tokens)
                verdicts.append({**base, Col.MODE: "pairwise", Col.NOTE: "",
                                 "asks": (ask("pairwise", arm, item_id, ep, "AB", ab),
                                          ask("pairwise", arm, item_id, ep, "BA", ba))})
    # identical prompts (two options gave the same answer) are one question: ask each key once
    unique = list({q.key: q for q in questions.values()}.values())
    for v in verdicts:
        v["asks"] = tuple((questions[a].key, questions[a].order) for a in v["asks"])
    return unique, verdicts, skipped


def _grades(store: Store, keys: list[str], *, run_id: str) -> dict[str, dict[str, Any]]:
    """key -> {grade, output, attempts, judge_error, error, cached} for the questions that have a grade or a
    failure of this run (a failure of an earlier run is a question not asked now)."""
    grades = {}
    for row in store.rows(keys).to_dict("records"):
        mine = row[Col.RUN_ID] == run_id
        if row[Col.ERROR] is not None and not mine:
            continue
        extra = _json(row.get(Col.EXTRA))
        grades[row[Col.CACHE_KEY]] = {Col.GRADE: row[Col.ANSWER], Col.OUTPUT: row[Col.OUTPUT], "cached": not mine,
                                    Col.ATTEMPTS: extra.get(Col.ATTEMPTS, 1) if isinstance(extra, dict) else 1,
                                    Col.JUDGE_ERROR: row[Col.ERROR] is not None or bool(row[Col.PARSE_ERROR]),
                                    Col.ERROR: row[Col.ERROR]}
    return grades


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return {} if value is None else value


def _calls_table(questions: list[_Question], grades: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for q in questions:
        g = grades.get(q.key)
        rows.append({Col.MODE: q.mode, Col.OPTION: q.arm, Col.ITEM_ID: q.item_id, Col.EPOCH: q.epoch, "order": q.order,
                     "key": q.key, "asked": g is not None, Col.GRADE: g[Col.GRADE] if g else None,
                     Col.OUTPUT: g[Col.OUTPUT] if g else None, Col.ATTEMPTS: g[Col.ATTEMPTS] if g else 0,
                     Col.JUDGE_ERROR: bool(g[Col.JUDGE_ERROR]) if g else False, Col.ERROR: g[Col.ERROR] if g else None,
                     "cached": bool(g["cached"]) if g else False})
    return pd.DataFrame(rows, columns=[Col.MODE, Col.OPTION, Col.ITEM_ID, Col.EPOCH, "order", "key", "asked", Col.GRADE, Col.OUTPUT,
                                       Col.ATTEMPTS, Col.JUDGE_ERROR, Col.ERROR, "cached"])


def _verdicts(verdicts: list[dict[str, Any]], grades: dict[str, dict[str, Any]],
              rubric: Rubric | None) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        got = [grades.get(key) for key, _ in v["asks"]]
        row = {Col.MODE: v[Col.MODE], Col.OPTION: v[Col.OPTION], Col.ITEM_ID: v[Col.ITEM_ID], Col.EPOCH: v[Col.EPOCH], Col.GRADE: None,
               Col.VALUE: float("nan"), Col.OUTCOME: v.get(Col.OUTCOME), Col.ORDERS_AGREE: None, Col.JUDGE_ERROR: False,
               Col.NOTE: v[Col.NOTE]}
        if not v["asks"]:  # no answer to judge
            row[Col.VALUE] = 0.0 if v[Col.MODE] == "rubric" else {"win": 1.0, "tie": 0.5, "loss": 0.0}[v[Col.OUTCOME]]
            row[Col.GRADE] = rubric.low if v[Col.MODE] == "rubric" and rubric else None
        elif any(g is None for g in got):
            row[Col.NOTE] = "not asked (the run stopped at a cap)"
        elif any(g[Col.JUDGE_ERROR] for g in got):
            row.update(judge_error=True, note="judge error: " + "; ".join(
                g[Col.ERROR] or "no parsable grade after a retry" for g in got if g[Col.JUDGE_ERROR]))
        elif v[Col.MODE] == "rubric":
            row.update(grade=got[0][Col.GRADE], value=rubric.scaled(got[0][Col.GRADE]) if rubric else float("nan"))
        else:
            first, second = got[0][Col.GRADE], got[1][Col.GRADE]  # AB: candidate first; BA: reference first
            w1 = {"A": "candidate", "B": "reference"}.get(first, "tie")
            w2 = {"A": "reference", "B": "candidate"}.get(second, "tie")
            outcome = "win" if w1 == w2 == "candidate" else "loss" if w1 == w2 == "reference" else "tie"
            row.update(grade=f"{first}/{second}", outcome=outcome, orders_agree=w1 == w2,
                       value={"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome])
        rows.append(row)
    return pd.DataFrame(rows, columns=[Col.MODE, Col.OPTION, Col.ITEM_ID, Col.EPOCH, Col.GRADE, Col.VALUE, Col.OUTCOME, Col.ORDERS_AGREE,
                                       Col.JUDGE_ERROR, Col.NOTE])


def judge_human_agreement(verdicts: pd.DataFrame, human: pd.DataFrame, *, mode: str = "rubric",
                          ci: float = 0.95) -> pd.DataFrame:
    """Where people graded some answers too: how well the judge agrees with them, with CIs.

    ``human`` has columns option, item_id and grade (a rubric grade, or win/tie/loss for ``mode="pairwise"``).
    Answers the judge graded and people graded are matched on (arm, item_id); the rest are counted in
    ``n_unmatched``. Columns: those of :func:`kit.stats.rater_agreement` plus mode and n_unmatched.

    >>> judge_human_agreement(result.verdicts, pd.read_csv("human_grades.csv"))   # doctest: +SKIP
    """
    from kit.stats import rater_agreement

    missing = [c for c in (Col.OPTION, Col.ITEM_ID, Col.GRADE) if c not in human.columns]
    if missing:
        raise ConfigError(f"human grades lack columns {missing}", where="kit.judge.judge_human_agreement",
                          fix="give one row per graded answer: option, item_id, grade")
    mine = verdicts[(verdicts[Col.MODE] == mode) & ~verdicts[Col.JUDGE_ERROR] & (verdicts[Col.NOTE] == "")]
    column = "grade" if mode == "rubric" else "outcome"
    judged = mine.drop_duplicates([Col.OPTION, Col.ITEM_ID]).set_index([Col.OPTION, Col.ITEM_ID])[column]
    people = human.drop_duplicates([Col.OPTION, Col.ITEM_ID]).set_index([Col.OPTION, Col.ITEM_ID])[Col.GRADE]
    both = judged.index.intersection(people.index)
    table = rater_agreement(list(judged.loc[both]), list(people.loc[both]), ci=ci)
    table.insert(0, Col.MODE, mode)
    table["n_unmatched"] = len(people) - len(both)
    return table
