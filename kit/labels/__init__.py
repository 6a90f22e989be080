"""The labelling loop: label a uniformly random, seeded, recorded sample of a task's test items by hand (the
``kit label`` command, the notebook's form, or a CSV/JSONL file from elsewhere), kept in the store with who
and when — and the labels the estimates use, :func:`sampled_labels`.

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

from types import MappingProxyType

from kit.labels.book import DEFAULT_SEED, SUPPORTED, Label, LabelBook, Progress, Queue, Sample, Source, default_who
from kit.run.store import Store
from kit.tasks.loading import Task
from kit.tasks.ppi_compare import SampledLabels

__all__ = ["Label", "LabelBook", "Progress", "Queue", "Sample", "SampledLabels", "Source", "SUPPORTED", "default_who",
           "sampled_labels"]


def sampled_labels(store: Store, task: Task) -> SampledLabels:
    """The random sample of ``task`` in ``store`` and its labels (an empty sample before any is drawn).

    Raises :class:`~kit.errors.ConfigError` for a task type that is not labelled by hand (see
    :data:`kit.labels.book.SUPPORTED`).
    """
    book = LabelBook(store, task)
    sample = book.sample()
    order = sample.order if sample is not None else ()
    labelled = {item_id: row.label for item_id, row in book.current().items()
                if row.label is not None and book.item_problem(item_id) is None}
    gold = {item_id: labelled[item_id] for item_id in order if item_id in labelled}
    return SampledLabels(order=order, gold=MappingProxyType(gold),
                         outside=len(labelled) - len(gold), population=len(task.test),
                         seed=sample.seed if sample is not None else DEFAULT_SEED)
