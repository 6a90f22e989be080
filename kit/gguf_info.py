"""What a GGUF file says about itself (read from its header with the ``gguf`` package), and whether the
installed llama.cpp can load it.

>>> info = read_gguf_info("SmolLM2-135M-Instruct.Q4_1.gguf")   # doctest: +SKIP
>>> info.architecture, info.quant, info.context_length, info.has_chat_template  # doctest: +SKIP
('llama', 'Q4_1', 8192, True)
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kit.errors import ModelError

__all__ = ["GGUFInfo", "read_gguf_info", "check_loadable"]

_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFInfo:
    """Header metadata of one GGUF file."""

    path: str
    size: int
    gguf_version: int
    architecture: str
    name: str | None
    parameter_count: int
    quant: str | None  # e.g. "Q4_K_M", from general.file_type
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None  # per-head K size, when the header gives it (gemma3: 256)
    value_length: int | None
    has_chat_template: bool
    n_tensors: int
    file_type: str = ""  # "model" or "adapter" (general.type)

    @property
    def head_dim(self) -> int | None:
        if self.key_length:
            return self.key_length
        if self.embedding_length and self.head_count:
            return self.embedding_length // self.head_count
        return None

    def kv_cache_bytes(self, n_ctx: int = 4096) -> int | None:
        """f16 K and V for ``n_ctx`` tokens, when the header has the shapes."""
        if not (self.block_count and self.head_dim):
            return None
        per_head = self.head_dim + (self.value_length or self.head_dim)  # K + V elements per head and token
        return self.block_count * (self.head_count_kv or self.head_count or 0) * per_head * 2 * n_ctx

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "head_dim": self.head_dim}


def _field(reader: Any, key: str) -> Any:
    f = reader.get_field(key)
    if f is None:
        return None
    try:
        return f.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _corrupt(path: Path, why: str) -> ModelError:
    return ModelError(
        f"not a readable GGUF file: {why}",
        where=str(path),
        fix="the file is truncated or corrupt; download it again (`kit models pull ID`) or re-export it",
    )


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Architecture, parameter count, quantisation, context length and chat template of a GGUF file.

    Raises ModelError for a file that is not GGUF, is truncated, or is corrupt.

    >>> read_gguf_info("model.gguf").architecture  # doctest: +SKIP
    'llama'
    """
    from gguf import GGUFReader, LlamaFileType

    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as fh:
        head = fh.read(8)
    if head[:4] != _MAGIC:
        raise _corrupt(p, f"it does not start with the GGUF magic bytes (starts with {head[:4]!r})")
    try:
        reader = GGUFReader(p, "r")
    except Exception as exc:  # the reader raises ValueError, IndexError, KeyError... on damaged headers
        raise _corrupt(p, f"its header cannot be parsed ({type(exc).__name__}: {exc})") from exc
    tensors = list(reader.tensors)
    end = max((t.data_offset + t.n_bytes for t in tensors), default=reader.data_offset)
    if end > size:
        raise _corrupt(p, f"it is truncated: its tensors need {end} bytes, the file has {size}")
    arch = _field(reader, "general.architecture")
    if not arch:
        raise _corrupt(p, "general.architecture is missing")
    ftype = _field(reader, "general.file_type")
    quant = None
    if ftype is not None:
        try:
            quant = LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            quant = f"file_type={ftype}"

    def arch_int(key: str) -> int | None:
        value = _field(reader, f"{arch}.{key}")
        if isinstance(value, list):  # per-layer arrays (some architectures): take the largest
            value = max(value) if value else None
        return int(value) if value is not None else None

    return GGUFInfo(
        path=str(p),
        size=size,
        gguf_version=int(_field(reader, "GGUF.version") or 0),
        architecture=str(arch),
        name=_field(reader, "general.name"),
        parameter_count=int(sum(t.n_elements for t in tensors)),
        quant=quant,
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        has_chat_template=bool(_field(reader, "tokenizer.chat_template")),
        n_tensors=len(tensors),
        file_type=str(_field(reader, "general.type") or "model"),
    )


def check_loadable(path: str | Path) -> None:
    """Raise ModelError when the installed llama.cpp cannot load this GGUF (e.g. an architecture it does not
    know). Loads the vocabulary only, so it is quick even for a large file.

    >>> check_loadable("mistral-7b.Q4_K_M.gguf")  # doctest: +SKIP
    """
    p = Path(path)
    info = read_gguf_info(p)
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelError(
            "llama-cpp-python is not installed", where=str(p), fix="run `pip install llama-cpp-python`"
        ) from exc
    log = io.StringIO()
    with _quiet_llama(), contextlib.redirect_stderr(log):
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(str(p).encode(), params)
        if model:
            llama_cpp.llama_model_free(model)
    if model:
        return
    lines = [ln.strip() for ln in log.getvalue().splitlines() if "error" in ln.lower() or "unknown" in ln.lower()]
    reason = lines[-1] if lines else "no reason given"
    version = getattr(llama_cpp, "__version__", "?")
    raise ModelError(
        f"the installed llama.cpp (llama-cpp-python {version}) cannot load this GGUF "
        f"(architecture '{info.architecture}'): {reason}",
        where=str(p),
        fix="upgrade llama.cpp: `pip install --upgrade --no-cache-dir llama-cpp-python` "
        "(a newer release may support the architecture), or use a model of a supported architecture",
    )


@contextlib.contextmanager
def _quiet_llama() -> Any:
    """Route llama.cpp's log lines to ``sys.stderr`` (captured by the caller) whatever the logger level."""
    try:
        import llama_cpp._logger as lg
    except ImportError:
        yield
        return
    before = lg.logger.level
    lg.logger.setLevel(0)
    try:
        yield
    finally:
        lg.logger.setLevel(before)
        sys.stderr.flush()
