"""The rounds driver: answer until the verdict is settled (experiment key ``sequential:``).

A driver, not a stage: per task, it asks the answer stage's loop (:class:`kit.pipeline.answers.Answering`)
for the next round of test items of every option (the same items for all, in test-split order), then the
quality stage where the verdict's open questions stand (:func:`kit.pipeline.quality.round_look`: always-valid
confidence sequences, :mod:`kit.pipeline.looks`, so looking after every round costs no validity). It writes what
the answer stage writes, plus the looks of every round (``Table.SEQUENTIAL``) and where they stopped
(``Doc.SEQUENTIAL``); the quality stage then concludes the bar and the floor from the last look.

An option is settled once any of its questions is shown to fail (it is out whatever the rest says) or all of
them are shown to pass; an option shown below a *leader* (a candidate that passes every question) is settled
too. A task stops when every option is settled, or at its item cap (``max_items``, default the experiment's
items for the task) or cost cap (``max_cost_usd``): each round is sized so that no call it starts could take the
spend over the cap — every call priced at the most it can cost before it starts — and a cap the first item's calls
could already pass is refused before any call. Any stopping rule keeps the sequences valid; this one
stops when more items could no longer change which option is recommended.

>>> answer_in_rounds(RunFolder("runs/report-x"))                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Experiment, Option
from kit.pipeline import answers, quality
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.pipeline.looks import Questions, settled_options
from kit.pipeline.outputs import Stop
from kit.pipeline.pricing import answers_usd, call_bound_usd
from kit.pipeline.scores import load_tasks
from kit.stats.sequential import METHOD
from kit.tasks import Item, Task
from kit.tasks.prompts import DEFAULT_PROMPT, build_request


@dataclass(frozen=True)
class RoundPlan:
    """How a task is answered in rounds: items per round, the item cap, the fixed plan's items, the cost cap."""

    round_items: int
    max_items: int
    fixed_items: int
    max_cost_usd: float | None


def plan_for(exp: Experiment, task: Task) -> RoundPlan:
    """A task's rounds under ``exp.sequential`` (a free-text task, graded by a judge after the answers, runs its
    fixed items in one round: its scores do not exist between rounds).

    >>> plan_for(exp, load_task("snips-intents"))                             # doctest: +SKIP
    RoundPlan(round_items=40, max_items=100, fixed_items=100, max_cost_usd=None)
    """
    spec = exp.sequential
    n_test = len(task.test)
    fixed = min(exp.tasks.get(task.name) or n_test, n_test)
    cap = min(spec.max_items or fixed, n_test) if spec is not None else fixed
    step = cap if spec is None or task.type.judged else spec.round_items
    return RoundPlan(round_items=step, max_items=cap, fixed_items=fixed,
                     max_cost_usd=spec.max_cost_usd if spec is not None else None)


def answer_in_rounds(folder: RunFolder, *, progress: bool = True) -> pd.DataFrame:
    """The answers of a sequential run: per task, each option's prompt chosen on the dev items first (as in a
    fixed run), then rounds of test items for every option until the verdict is settled or a cap is reached.
    Saves what the answer stage saves, and per task the rounds' looks and where they stopped; returns the runs
    table."""
    folder = folder.scoped(answers.STAGE)
    exp = folder.experiment()
    questions = Questions.of(exp)
    tasks = load_tasks(exp)
    with answers.answering(folder, exp, progress=progress) as loop:
        for task in tasks.values():
            looks, stop = _rounds(loop, task, exp=exp, questions=questions)
            folder.save_table(Table.SEQUENTIAL, looks, task=task.name)
            folder.save_doc(Doc.SEQUENTIAL, asdict(stop), task=task.name)
        return answers.finish(folder, loop, tasks)


def _rounds(loop: answers.Answering, task: Task, *, exp: Experiment,
            questions: Questions) -> tuple[pd.DataFrame, Stop]:
    """One task's rounds: the looks of every round and where they stopped."""
    options = list(exp.options_for(task.name))
    plan = plan_for(exp, task)
    labels = quality.store_labels(loop.store, task)  # a partly labelled task: its questions are on correctness
    looks: list[pd.DataFrame] = []
    done, round_no, spent = 0, 0, {o.name: 0.0 for o in options}
    slowest = {o.name: 0.0 for o in options}  # seconds of the slowest answer so far: a machine's worst call
    stopped = "item cap"
    _check_cap(task, options, plan, max_tokens=loop.max_tokens(task))
    try:
        for o in options:
            loop.prompt(task, o)
        while done < plan.max_items:
            wanted = list(task.test)[done:min(done + plan.round_items, plan.max_items)]
            items = _within_cap(loop, task, options, wanted, spent=sum(spent.values()), cap=plan.max_cost_usd,
                                slowest=slowest)
            if not items:  # the next item's calls could take the spend over the cap: no call starts
                stopped = "cost cap"
                break
            round_no += 1
            for o in options:
                loop.answer(task, o, items=items, label=f"{o.name} · round {round_no}")
            done += len(items)
            if task.type.judged:
                continue
            scores, table = quality.round_look(task, loop.rows(task, options), questions=questions, labels=labels,
                                               round_no=round_no, items=done, planned_n=plan.max_items)
            spent = {o.name: answers_usd(o, scores[scores[Col.OPTION] == o.name]) for o in options}
            slowest = {o.name: float(pd.to_numeric(scores.loc[scores[Col.OPTION] == o.name, Col.LATENCY_S],
                                                   errors="coerce").fillna(0.0).max()) for o in options}
            looks.append(table.assign(**{Col.SPENT_USD: table[Col.OPTION].map(spent)}))  # USD so far, per option
            if all(settled_options(table, [o.name for o in options]).values()):
                stopped = "settled"
                break
            if plan.max_cost_usd is not None and sum(spent.values()) >= plan.max_cost_usd:
                stopped = "cost cap"
                break
    finally:
        loop.release()
    per_item = {k: (v / done if done else 0.0) for k, v in spent.items()}
    stop = Stop(round=round_no, items=done, round_items=plan.round_items, max_items=plan.max_items,
                fixed_items=plan.fixed_items, stopped=stopped, spent_usd=spent,
                planned_usd={k: v * plan.fixed_items for k, v in per_item.items()},
                settled=settled_options(looks[-1], list(spent)) if looks else {}, method=METHOD, alpha=exp.alpha,
                tested=not task.type.judged, max_cost_usd=plan.max_cost_usd)
    return (pd.concat(looks, ignore_index=True) if looks else pd.DataFrame()), stop


def _within_cap(loop: answers.Answering, task: Task, options: list[Option], wanted: list[Item], *, spent: float,
                cap: float | None, slowest: dict[str, float]) -> list[Item]:
    """The first items of the next round whose calls, each priced at the most it can cost
    (:func:`kit.pipeline.pricing.call_bound_usd`), keep the spend within ``cap``: a round never starts a call
    that could take the spend over it. A self-hosted option's machine time is bounded by its slowest answer so
    far, so the first round of a capped run with one is a single item."""
    if cap is None:
        return wanted
    if any(o.self_hosted and o.machine is not None and not slowest[o.name] for o in options):
        wanted = wanted[:1]  # a machine's time is unknown before it answers: one item first, then its slowest
    out, total = [], spent
    for item in wanted:
        worst = sum(call_bound_usd(o, build_request(task, item, variant=loop.prompt(task, o).chosen,
                                                    max_tokens=loop.max_tokens(task)), seconds=slowest[o.name])
                    for o in options)
        if total + worst > cap:
            break
        out.append(item)
        total += worst
    return out


def _check_cap(task: Task, options: list[Option], plan: RoundPlan, *, max_tokens: int) -> None:
    """Refuse, before any call, a cost cap that the first item's calls could already exceed (every prompt variant
    of each option priced at its most)."""
    if plan.max_cost_usd is None or not task.test:
        return
    first = task.test[0]
    worst = sum(max(call_bound_usd(o, build_request(task, first, variant=v, max_tokens=max_tokens))
                    for v in (o.prompts or (DEFAULT_PROMPT,))) for o in options)
    if worst > plan.max_cost_usd:
        raise ConfigError(f"sequential.max_cost_usd ${plan.max_cost_usd:g} is below what one item's calls can cost "
                          f"on {task.name} (up to ${worst:.6f} for {len(options)} options): no call was made",
                          where="sequential.max_cost_usd", fix=f"raise max_cost_usd to at least {worst:.6f}, or "
                                                               "remove it")
