"""Models: the GGUF catalog, verified downloads from the hub, GGUF metadata and the machine's fingerprint."""

from kit.models.catalog import (CatalogEntry, ModelFile, catalog, file_sha256, get_entry, hub_cache_dir, model_info,
                                models_table, pull_model, resolve_model)

__all__ = ["CatalogEntry", "ModelFile", "catalog", "file_sha256", "get_entry", "hub_cache_dir", "model_info",
           "models_table", "pull_model", "resolve_model"]
