"""The run record: what ran, written once by the prepare stage and read by the report — the experiment as it
runs (its file and a hash of its keys), the project's git revision, the kit, Python, system and package versions.

The record is typed and versioned (inspect_ai's eval log is the model): a report reads a record of its own
version or older, and refuses one written by a newer kit with a clear error instead of misreading it.

>>> import tempfile
>>> from kit.pipeline.folder import RunFolder
>>> folder = RunFolder(tempfile.mkdtemp())
>>> folder.save_doc(Doc.PROVENANCE, {"version": RECORD_VERSION + 1})
>>> read_provenance(folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
kit.errors.KitError: ...: the run record is version 2; this kit reads versions up to 1. Fix: ...
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from kit import __version__
from kit.errors import KitError
from kit.experiment import Experiment
from kit.models.hardware import package_versions
from kit.paths import project_root
from kit.pipeline.folder import Doc, RunFolder

RECORD_VERSION = 1  # raise it when a field changes meaning or goes; a new optional field keeps it


class Provenance(BaseModel):
    """Provenance of one report run, as it was when the run was prepared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = RECORD_VERSION
    created: str                          # UTC, ISO 8601, when the prepare stage wrote it
    experiment: str                       # the experiment file's name
    experiment_sha256: str                # of the experiment's keys as they run (``auto`` resolved)
    kit_version: str
    revision: str                         # the project folder's git commit, "(with local changes)", or "unknown"
    python: str
    system: str
    packages: dict[str, str | None]       # kit.models.hardware.PACKAGES; None: not installed


def provenance_of(exp: Experiment) -> Provenance:
    """The record of a run of ``exp`` (resolved) on this machine, now."""
    keys = json.dumps(exp.to_dict(), sort_keys=True, default=str).encode()
    return Provenance(created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     experiment=Path(exp.source).name, experiment_sha256=hashlib.sha256(keys).hexdigest(),
                     kit_version=__version__, revision=git_revision(project_root()),
                     python=platform.python_version(), system=platform.platform(), packages=package_versions())


def save_provenance(folder: RunFolder, record: Provenance) -> None:
    folder.save_doc(Doc.PROVENANCE, record.model_dump(mode="json"))


def read_provenance(folder: RunFolder) -> Provenance:
    """The run folder's record; a KitError naming the fix for one written by a newer kit or one that is damaged."""
    data = folder.doc(Doc.PROVENANCE)
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise KitError("the run record has no version", where=str(folder.path),
                       fix="run the report again from the prepare stage (kit report)")
    if version > RECORD_VERSION:
        raise KitError(f"the run record is version {version}; this kit reads versions up to {RECORD_VERSION}",
                       where=str(folder.path), fix="open this run with the newer kit that wrote it (pip install -U "
                                                   "the kit), or run the report again with this one")
    try:
        return Provenance.model_validate(data)
    except ValidationError as exc:
        raise KitError(f"the run record does not read: {exc.errors()[0]['msg']}", where=str(folder.path),
                       fix="run the report again from the prepare stage (kit report)") from None


def git_revision(root: Path) -> str:
    """The commit checked out at ``root``, marked when tracked files have local changes; ``unknown`` outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0 or not out.stdout.strip():
        return "unknown"
    return out.stdout.strip() + (" (with local changes)" if dirty else "")
