"""Models: the GGUF catalog, verified downloads from the hub, GGUF metadata, the machine's fingerprint and the
package versions a run records, the decoding ceiling (memory bandwidth), ``kit doctor``'s checks, and the
llama.cpp build the kit installs (``llama_build``, ``llama_probe``).

``make setup`` runs ``python -m kit.cli.llama`` before the kit's dependencies are installed, which imports this
package: the catalog imports only the standard library at module level (third-party packages inside its
functions), and ``tests/test_llama_build.py`` runs the command on a Python without site-packages to keep it so."""

from kit.models.catalog import (CatalogEntry, ModelFile, catalog, file_sha256, get_entry, hub_cache_dir, model_info,
                                models_table, pull_model, resolve_model)

__all__ = ["CatalogEntry", "ModelFile", "catalog", "file_sha256", "get_entry", "hub_cache_dir", "model_info",
           "models_table", "pull_model", "resolve_model"]
