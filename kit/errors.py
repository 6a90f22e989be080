"""Errors the kit raises. Every message says what went wrong, where, and how to fix it.

Library code raises these; only the CLI and the notebooks turn them into messages.

>>> str(TaskError("column 'text' missing", where="datasets/x.yaml", fix="add the column"))
"datasets/x.yaml: column 'text' missing. Fix: add the column"
"""

from __future__ import annotations


class KitError(Exception):
    """Base of every error the kit raises on purpose."""

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class TaskError(KitError):
    """A task file or its data is invalid."""


class ModelError(KitError):
    """A model cannot be found, fetched, verified or loaded."""


class ArmError(KitError):
    """An arm spec is unknown or an arm cannot be set up."""


class EndpointDown(ArmError):
    """An HTTP arm's endpoint stopped answering: its connections failed ``breaker`` times in a row, or the
    server process behind it exited. The run stops at once; answers already stored are kept, and a re-run
    asks only the items still missing. ``url`` is the endpoint; ``exited`` is True when its process died.

    >>> str(EndpointDown("3 connections in a row failed", where="openai:x", fix="start it", url="http://h/v1"))
    'openai:x: 3 connections in a row failed. Fix: start it'
    """

    def __init__(self, problem: str, *, url: str, exited: bool = False, where: str | None = None,
                 fix: str | None = None) -> None:
        self.url = url
        self.exited = exited
        super().__init__(problem, where=where, fix=fix)


class MissingDependency(ArmError):
    """An optional package is needed; the message names the pip install that fixes it."""

    def __init__(self, package: str, *, extra: str | None = None, purpose: str = "") -> None:
        cmd = f"pip install 'kit[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"the package '{package}' is needed{' ' + purpose if purpose else ''}", fix=f"run `{cmd}`")


class StoreError(KitError):
    """The response store cannot be opened or is inconsistent."""


class BudgetExceeded(KitError):
    """A spending cap (--max-cost / --max-calls) stopped a run before it was exceeded."""


class ConfigError(KitError):
    """A parameter or option has an invalid value."""


class ReportError(KitError):
    """A notebook of the report pipeline failed."""


class SetupError(KitError):
    """This machine's setup is broken: the llama.cpp build cannot be built, installed, loaded or run here."""
