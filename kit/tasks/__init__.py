"""Tasks: a YAML file in ``datasets/`` next to its data, loaded into items with a type that reads gold
answers, constrains, parses and scores answers. Task types (classification, extraction with typed fields,
generation) come through one registry (:mod:`kit.tasks.types`); prompts and their variants, scoring, and the
quality comparison of a task — fully labelled, unlabelled (agreement) or partly labelled (prediction-powered) —
live here too.

>>> task = load_task("snips-intents")          # doctest: +SKIP
"""

from kit.tasks.loading import Task, list_tasks, load_task, task_files
from kit.tasks.types import Item

__all__ = ["Item", "Task", "list_tasks", "load_task", "task_files"]
