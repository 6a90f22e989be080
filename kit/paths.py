"""Where the kit finds and writes things.

The project root holds ``datasets/``, ``runs/`` and ``reports/``. It is ``$KIT_PROJECT`` when set, else
the nearest folder above the working directory that has ``datasets/`` beside a ``pyproject.toml``,
else the checkout the package was installed from.

>>> default_store().name
'kit.sqlite'
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("KIT_PROJECT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "datasets").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return Path(__file__).resolve().parents[1]


def datasets_dir() -> Path:
    return project_root() / "datasets"


def runs_dir() -> Path:
    return project_root() / "runs"


def reports_dir() -> Path:
    return project_root() / "reports"


def default_store() -> Path:
    return runs_dir() / "kit.sqlite"


def kit_home() -> Path:
    """Per-user cache of the kit (assembled embedded models, the model lock file)."""
    return Path(os.environ.get("KIT_HOME", Path.home() / ".cache" / "kit")).expanduser()
