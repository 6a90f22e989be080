"""Weights converted once for llama.cpp's faster kernels: the arm option ``weights`` (``llama_cpp:``, ``lora:``).

A GGUF's weight type decides which of llama.cpp's CPU kernels evaluate its prompts. A small model's prompts
are compute-bound, and some types have no fast path: the embedded SmolLM2's Q4_1 evaluates prompts at ~300
tokens/s on two Zen 4 cores where the same weights stored as Q8_0 go at ~600 (llama.cpp's int8 kernels),
while decoding stays as fast (bench/bench_weights.py). ``weights: q8_0`` runs such a copy: made once with
llama.cpp's own quantizer (``llama_model_quantize``), kept in ``$KIT_HOME/converted/``, and named in the
arm's identity by its own sha256, so its answers are never served for the original file's or the other way.

What a conversion keeps: ``f32`` holds the original's values exactly (4 bytes a weight); ``q8_0`` rounds each
value to one of 255 steps of its block of 32 (a tenth of a Q4_1 step or less); ``bf16`` keeps 8 bits of each
value's mantissa. The report names the weights that answered (``describe()``), and a deployment runs the
same file (``kit export``).

>>> WeightType("q8_0").ftype_name
'MOSTLY_Q8_0'
>>> converted(resolve_model("smollm2-135m-instruct"), WeightType.Q8_0).quant     # doctest: +SKIP
'Q8_0'
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path

from kit.errors import MissingDependency, ModelError
from kit.models.catalog import ModelFile, file_sha256


class WeightType(StrEnum):
    """The weights a llama.cpp arm runs: the file as it is, or a copy converted to one type."""

    AUTO = "auto"      # bf16 where llama.cpp multiplies bfloat16 natively, else q8_0; native on a GPU
    NATIVE = "native"  # the GGUF as shipped
    Q8_0 = "q8_0"      # 8-bit blocks of 32: llama.cpp's int8 prompt kernels (AVX2/AVX512-VNNI, NEON)
    BF16 = "bf16"      # bfloat16: fast prompts where the CPU has AVX512-BF16; slower decoding than 8 bits
    F32 = "f32"        # float32: the original's values exactly; 4 bytes a weight, the slowest decoding

    @property
    def ftype_name(self) -> str:
        """The name of llama.cpp's file type (``LLAMA_FTYPE_<name>``) the copy is written as."""
        return {"q8_0": "MOSTLY_Q8_0", "bf16": "MOSTLY_BF16", "f32": "ALL_F32"}[self.value]  # auto: resolve first


def resolve_weights(weights: WeightType | str, *, gpu: bool = False) -> WeightType:
    """The type ``auto`` stands for here: the file as it is when layers run on a GPU (its kernels take the
    quantised types as they are); on a CPU, ``bf16`` where this llama.cpp build multiplies bfloat16 natively
    (AVX512-BF16: the fastest prompts, and the closest to the exact weights), else ``q8_0`` (int8 kernels on any
    x86-64 or ARM CPU). Any other type stands for itself.

    >>> resolve_weights("auto", gpu=True), resolve_weights("q8_0")
    (<WeightType.NATIVE: 'native'>, <WeightType.Q8_0: 'q8_0'>)
    """
    weights = WeightType(weights)
    if weights is not WeightType.AUTO:
        return weights
    if gpu:
        return WeightType.NATIVE
    return WeightType.BF16 if llama_bf16() else WeightType.Q8_0


def llama_bf16() -> bool:
    """Whether the installed llama.cpp has bfloat16 kernels for this CPU (its system info reads AVX512_BF16 = 1)."""
    try:
        import llama_cpp
    except ImportError:
        return False
    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AVX512_BF16 = 1" in text


def converted_dir() -> Path:
    from kit.paths import kit_home

    return kit_home() / "converted"


def converted(model: ModelFile, weights: WeightType, *, progress: bool = True) -> ModelFile:
    """``model`` with its weights as ``weights``: the file itself for ``native`` (or when it already is that
    type), else a copy made once in ``$KIT_HOME/converted/<sha256[:16]>-<type>.gguf`` and reused after. The
    copy is written under a scratch name and renamed into place, so a conversion cut off halfway, or two at
    once, leave no half file. Its ``id`` stays the model's; ``sha256`` and ``quant`` are the copy's."""
    weights = resolve_weights(weights)
    if weights is WeightType.NATIVE or (model.quant or "").lower() == weights.value:
        return model
    target = converted_dir() / f"{model.sha256[:16]}-{weights.value}.gguf"
    if not target.is_file():
        _convert(model, weights, target, progress=progress)
    return ModelFile(id=model.id, path=target, sha256=file_sha256(target), size=target.stat().st_size,
                     quant=weights.value.upper())


def weights_words(model: ModelFile, source: ModelFile) -> str:
    """What runs, in words: ``Q4_1``, or ``BF16 (converted from Q4_1)`` when ``model`` is :func:`converted` from
    ``source``; empty when the file names no type.

    >>> q41 = ModelFile(id="m", path=Path("m.gguf"), sha256="0" * 64, size=1, quant="Q4_1")
    >>> weights_words(q41, q41), weights_words(ModelFile("m", Path("c.gguf"), "1" * 64, 2, "BF16"), q41)
    ('Q4_1', 'BF16 (converted from Q4_1)')
    """
    words = model.quant or ""
    if model is not source:
        words += f" (converted from {source.quant or 'the original'})"
    return words


def _convert(model: ModelFile, weights: WeightType, target: Path, *, progress: bool) -> None:
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", purpose=f"to convert weights to {weights.value}") from None
    from kit.models.gguf import _quiet_llama
    from kit.models.hardware import cpu_threads

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".gguf", dir=target.parent)
    except OSError as exc:
        raise ModelError(f"cannot write the converted weights ({exc.strerror})", where=str(target.parent),
                         fix="set KIT_HOME to a writable folder, or run with weights: native") from None
    os.close(fd)
    if progress:
        print(f"converting {model.id} ({model.quant}) to {weights.value} once, for llama.cpp's faster kernels "
              f"(kept in {target.parent})", file=sys.stderr, flush=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{weights.ftype_name}")
    params.allow_requantize = True  # the source is itself quantised: convert from its dequantised values
    params.nthread = cpu_threads()
    log = io.StringIO()  # llama.cpp logs a line a tensor: kept for the error only
    try:
        with _quiet_llama(), contextlib.redirect_stderr(log):
            code = llama_cpp.llama_model_quantize(str(model.path).encode(), scratch.encode(), ctypes.byref(params))
        if code != 0:
            lines = [ln.strip() for ln in log.getvalue().splitlines() if ln.strip()]
            raise ModelError(f"llama.cpp could not convert the weights to {weights.value} (code {code}: "
                             f"{lines[-1] if lines else 'no reason given'})",
                             where=str(model.path),
                             fix="run with weights: native, or check the free space in " + str(target.parent))
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)
