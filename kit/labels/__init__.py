"""The labelling loop: label a uniformly random, seeded, recorded sample of a task's test items by hand (the
``kit label`` command, the notebook's form, or a CSV/JSONL file from elsewhere), kept in the store with who
and when — and the labels the estimates use, :func:`sampled_labels`. Which items a design draws (uniform, or
stratified on the options' disagreements) and with what inclusion probability is :mod:`kit.labels.design`.

>>> from kit.run.store import Store
>>> from kit.tasks import load_task
>>> task = load_task("snips-intents")
>>> with Store(":memory:") as store:
...     _ = LabelBook(store, task).draw(50)
...     labels = sampled_labels(store, task)
>>> len(labels.order), len(labels.gold), labels.population
(50, 0, 347)
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from kit.labels.book import DEFAULT_SEED, SUPPORTED, Label, LabelBook, Progress, Queue, Sample, Source, default_who
from kit.labels.design import Design, StratifiedDesign, designs, draw_stratified, used_prefix
from kit.run.store import Store
from kit.tasks.loading import Task
from kit.tasks.ppi_compare import SampledLabels

__all__ = ["Design", "Label", "LabelBook", "Progress", "Queue", "Sample", "SampledLabels", "Source", "SUPPORTED",
           "default_who", "draw_stratified", "sampled_labels"]


def sampled_labels(store: Store, task: Task) -> SampledLabels:
    """The labels the estimates may use on ``task`` in ``store``: the active design's sample and the labels it
    uses (each stratum's gap-free prefix; never a label from the disagreements queue or given before its item
    was drawn), with the task's other designs as ``earlier`` (an empty sample before any is drawn).

    Raises :class:`~kit.errors.ConfigError` for a task type that is not labelled by hand (see
    :data:`kit.labels.book.SUPPORTED`).
    """
    book = LabelBook(store, task)
    given = book.design_labels()
    samples = [*([book.random_sample()] if book.random_sample() is not None else []),
               *(Sample(task=task.name, seed=d.seed, order=d.order, design=Design.STRATIFIED, design_id=d.id,
                        groups=tuple((h, tuple(items)) for h, items in d.drawn().items())) for d in designs(store, task))]
    strata = {d.id: d for d in designs(store, task)}
    labelled = {item_id for item_id, row in book.current().items()
                if row.label is not None and book.item_problem(item_id) is None}
    records = [_record(sample, given, labelled, strata.get(sample.design_id), population=len(task.test))
               for sample in samples if sample.order]
    if not records:
        return SampledLabels(order=(), gold=MappingProxyType({}), outside=len(labelled), population=len(task.test),
                             seed=DEFAULT_SEED)
    active = records[-1]
    return replace(active, earlier=tuple(r for r in records[:-1] if r.gold))


def _record(sample: Sample, given: dict[str, Label], labelled: set[str], design: StratifiedDesign | None, *,
            population: int) -> SampledLabels:
    used, skipped, waiting = used_prefix(sample.prefixes(), {i: not row.skipped for i, row in given.items()})
    gold = {item_id: given[item_id].label for item_id in sample.order if item_id in used}
    return SampledLabels(order=sample.order, gold=MappingProxyType(gold), outside=len(labelled) - len(gold) - waiting,
                         population=population, seed=sample.seed, design=str(sample.design), skipped=skipped,
                         waiting=waiting,
                         strata=MappingProxyType(dict(design.strata) if design else {}),
                         inclusion=MappingProxyType(dict(design.inclusion) if design else {}))
