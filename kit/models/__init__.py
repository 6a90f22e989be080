"""Models: the GGUF catalog, verified downloads from the hub, GGUF metadata, the machine's fingerprint, and the
llama.cpp build the kit installs (``llama_build``, ``llama_probe``: standard library only, so they run before
the kit's dependencies are installed).

The catalog is imported on first use of one of its names, so importing ``kit.models.llama_build`` on a bare
Python imports nothing else.

>>> from kit.models import resolve_model
>>> resolve_model("smollm2-135m-instruct").quant
'Q4_1'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CatalogEntry", "ModelFile", "catalog", "file_sha256", "get_entry", "hub_cache_dir", "model_info",
           "models_table", "pull_model", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("kit.models.catalog"), name)
    raise AttributeError(f"module 'kit.models' has no attribute '{name}'")
