"""What a GGUF file says about itself (read from its header, using the ``gguf`` package's type tables), and
whether the installed llama.cpp can load it.

>>> info = read_gguf_info("SmolLM2-135M-Instruct.Q4_1.gguf")   # doctest: +SKIP
>>> info.architecture, info.quant, info.context_length, info.has_chat_template  # doctest: +SKIP
('llama', 'Q4_1', 8192, True)
"""

from __future__ import annotations

import contextlib
import io
import mmap
import struct
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
    tensor_bytes: int = 0  # every tensor's data
    lookup_bytes: int = 0  # a token-embedding table only looked up (a separate output matrix exists)

    @property
    def decode_bytes(self) -> int:
        """Weight bytes one decoding step reads: every tensor but a token-embedding table that is only looked
        up (one row per token) because the model has a separate output matrix."""
        return self.tensor_bytes - self.lookup_bytes

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


class _Header:
    """A GGUF header walked with ``struct`` over an mmap: key/values (large arrays skipped) and tensor infos.

    gguf's GGUFReader builds numpy views of every vocabulary string; on a 262k-token vocabulary that takes
    about 10 s, this takes well under one. The tests check both agree (GGUFReader is the reference).
    """

    def __init__(self, buf: Any) -> None:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

        self.buf, self.off, self.e = buf, 4, "<"
        self.version = self._u32()
        if self.version & 0xFFFF == 0:  # written big-endian
            self.e, self.off = ">", 4
            self.version = self._u32()
        self.T = GGUFValueType
        self._fmt = {
            GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
            GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?",
            GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
        }
        n_tensors, n_kv = self._u64(), self._u64()
        self.kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._str()
            self.kv[key] = self._value(GGUFValueType(self._u32()))
        self.tensors: list[tuple[str, int, int, int]] = []  # name, n_elements, n_bytes, offset in data section
        for _ in range(n_tensors):
            name = self._str()
            dims = [self._u64() for _ in range(self._u32())]
            ggml_type = GGMLQuantizationType(self._u32())
            offset = self._u64()
            n = 1
            for d in dims:
                n *= d
            block, type_size = GGML_QUANT_SIZES[ggml_type]
            self.tensors.append((name, n, n * type_size // block, offset))
        align = int(self.kv.get("general.alignment") or 32)
        self.data_offset = -(-self.off // align) * align

    def _unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(self.e + fmt, self.buf, self.off)[0]
        self.off += struct.calcsize(fmt)
        return value

    def _u32(self) -> int:
        return int(self._unpack("I"))

    def _u64(self) -> int:
        return int(self._unpack("Q"))

    def _str(self) -> str:
        n = self._u64()
        if self.off + n > len(self.buf):
            raise struct.error("string runs past the end of the file")
        raw = bytes(self.buf[self.off:self.off + n])
        self.off += n
        return raw.decode("utf-8", "replace")

    def _value(self, t: Any, *, keep: bool = True) -> Any:
        if t == self.T.STRING:
            if keep:
                return self._str()
            n = self._u64()  # (read before adding: `self.off += self._u64()` would lose the 8 bytes)
            self.off += n
            return None
        if t == self.T.ARRAY:
            item, count = self.T(self._u32()), self._u64()
            small = keep and count <= 4096  # per-layer arrays are kept; vocabularies are skipped
            if item != self.T.STRING and item != self.T.ARRAY and not small:
                self.off += count * struct.calcsize(self._fmt[item])
                return None
            values = [self._value(item, keep=small) for _ in range(count)]
            return values if small else None
        return self._unpack(self._fmt[t])


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
    from gguf import LlamaFileType

    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as fh:
        if fh.read(4) != _MAGIC:
            fh.seek(0)
            raise _corrupt(p, f"it does not start with the GGUF magic bytes (starts with {fh.read(4)!r})")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                h = _Header(buf)
            except (struct.error, ValueError, KeyError, OverflowError, MemoryError) as exc:
                raise _corrupt(p, f"its header is cut short or damaged ({type(exc).__name__}: {exc})") from exc
    end = max((h.data_offset + off + nb for _, _, nb, off in h.tensors), default=h.data_offset)
    if end > size:
        raise _corrupt(p, f"it is truncated: its tensors need {end} bytes, the file has {size}")
    kv = h.kv
    arch = kv.get("general.architecture")
    if not arch:
        raise _corrupt(p, "general.architecture is missing")
    quant = None
    if kv.get("general.file_type") is not None:
        try:
            quant = LlamaFileType(int(kv["general.file_type"])).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            quant = f"file_type={kv['general.file_type']}"

    def arch_int(key: str) -> int | None:
        value = kv.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer arrays (some architectures): take the largest
            value = max(value) if value else None
        return int(value) if value is not None else None

    return GGUFInfo(
        path=str(p),
        size=size,
        gguf_version=h.version,
        architecture=str(arch),
        name=kv.get("general.name"),
        parameter_count=sum(n for _, n, _, _ in h.tensors),
        quant=quant,
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        has_chat_template=bool(kv.get("tokenizer.chat_template")),
        n_tensors=len(h.tensors),
        file_type=str(kv.get("general.type") or "model"),
        tensor_bytes=sum(nb for _, _, nb, _ in h.tensors),
        lookup_bytes=_lookup_bytes(h.tensors),
    )


def _lookup_bytes(tensors: list[tuple[str, int, int, int]]) -> int:
    names = {name: nb for name, _, nb, _ in tensors}
    return names.get("token_embd.weight", 0) if "output.weight" in names else 0


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
