"""Extension points shipped in other packages: one entry point loaded and checked the same way for every group
(arm backends, ``kit.arms``; paired statistics, ``kit.paired_statistics``).

>>> from kit.errors import ConfigError
>>> point = EntryPoint("json", "json:JSONDecoder", "kit.example")
>>> try:
...     load_entry_point(point, record=type, what="example", group="kit.example", error=ConfigError)
... except ConfigError as exc:
...     print(exc.problem)
the entry point 'json' of json does not name a type called 'json'

"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

from kit.errors import KitError


def load_entry_point(point: EntryPoint, *, record: type, what: str, group: str,
                     error: type[KitError]) -> Any:
    """The object ``point`` names, checked to be a ``record`` whose ``name`` is the entry point's; a plugin that
    fails to import, or names something else, is an ``error`` naming its package and the fix."""
    package = point.dist.name if point.dist is not None else point.value.partition(":")[0]
    try:
        loaded = point.load()
    except Exception as exc:  # noqa: BLE001 — a plugin's own failure, named with its package
        raise error(f"the {what} '{point.name}' from the package {package} could not be loaded "
                            f"({type(exc).__name__}: {exc})", where=point.value,
                     fix=f"reinstall it (pip install -U {package}) or uninstall it") from None
    if not isinstance(loaded, record) or getattr(loaded, "name", None) != point.name:
        raise error(f"the entry point '{point.name}' of {package} does not name a {record.__name__} called "
                            f"'{point.name}'", where=point.value,
                     fix=f"point the {group} entry point '{point.name}' at a {record.__name__}('{point.name}', ...)")
    return loaded

