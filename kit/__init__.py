"""Decision research kit: measure whether a task should run on a hosted API, a local open model,
a local fine-tune or a hybrid — on the same items, with paired statistics, cost and privacy."""

__version__ = "0.1.0"
