"""LoRA adapters in the GGUF format that llama.cpp loads (``Llama(lora_path=...)``).

A peft LoRA holds, for each adapted linear layer ``W`` (out x in), two matrices ``A`` (r x in) and
``B`` (out x r); the layer computes ``W x + (alpha / r) B A x``. The GGUF adapter stores them as
``blk.N.<tensor>.weight.lora_a`` and ``.lora_b`` (same row-major shapes, float32), with
``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha`` and the base model's
``general.architecture`` (llama.cpp refuses an adapter whose architecture differs from the model's).

llama.cpp stores the query and key projections of ``llama``-architecture models with the rows of each
attention head reordered for its rotary embedding: Hugging Face pairs row ``j`` of a head with row
``j + d/2`` (rotate-half), llama.cpp keeps each pair next to each other (interleaved). ``B`` holds the
output rows of the update ``B A``, so it gets the same reordering; ``A`` is unchanged.

>>> write_adapter("adapter.gguf", {"blk.0.attn_v.weight": (a, b)}, arch="llama", alpha=16)  # doctest: +SKIP
'3f1c…'                                                              # the file's sha256
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kit.errors import ModelError

__all__ = ["LLAMA_CPP_NAMES", "ROPE_REORDERED", "adapter_tensors", "read_adapter", "rope_row_order", "write_adapter"]

# Hugging Face module name -> llama.cpp tensor name inside ``blk.N.``.
LLAMA_CPP_NAMES: dict[str, str] = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
# Architectures whose GGUF holds q/k rows in llama.cpp's interleaved rotary order (see module doc).
ROPE_REORDERED: dict[str, tuple[str, ...]] = {"llama": ("q_proj", "k_proj")}

_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


def rope_row_order(n_rows: int, n_heads: int) -> np.ndarray:
    """Row indices that turn rotate-half rows (HF) into interleaved rows (llama.cpp), head by head.

    Within a head of ``d`` rows, new row ``2i`` is old row ``i`` and new row ``2i + 1`` is old row
    ``i + d/2``.

    >>> rope_row_order(8, 2).tolist()
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    if n_rows % n_heads or (n_rows // n_heads) % 2:
        raise ModelError(f"{n_rows} rows do not split into {n_heads} heads of even size",
                         where="LoRA export", fix="check the model's head counts")
    d = n_rows // n_heads
    within = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], axis=1).reshape(-1)
    return (np.arange(n_heads)[:, None] * d + within[None, :]).reshape(-1)


def adapter_tensors(state: Mapping[str, Any], *, arch: str, n_heads: int, n_kv_heads: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map a peft LoRA state dict to llama.cpp names: ``{"blk.N.attn_q.weight": (A, B)}`` (float32 arrays).

    ``state`` is what ``peft.get_peft_model_state_dict(model)`` returns (torch tensors or arrays).
    """
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _LORA_KEY.search(key)
        if m is None:
            raise ModelError(f"unexpected tensor '{key}' in the LoRA state", where="LoRA export",
                             fix="adapt only the attention and MLP projections (q,k,v,o,gate,up,down)")
        layer, module, which = int(m.group(1)), m.group(2), m.group(3)
        if module not in LLAMA_CPP_NAMES:
            raise ModelError(f"no llama.cpp tensor for module '{module}'", where="LoRA export",
                             fix=f"target only {sorted(LLAMA_CPP_NAMES)}")
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, np.float32)
        pairs.setdefault((layer, module), {})[which] = np.ascontiguousarray(array, dtype=np.float32)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (layer, module), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ModelError(f"layer {layer} {module} lacks lora_{'A' if 'A' not in ab else 'B'}", where="LoRA export")
        a, b = ab["A"], ab["B"]
        if module in ROPE_REORDERED.get(arch, ()):
            heads = n_heads if module == "q_proj" else n_kv_heads
            b = np.ascontiguousarray(b[rope_row_order(b.shape[0], heads)])
        out[f"blk.{layer}.{LLAMA_CPP_NAMES[module]}.weight"] = (a, b)
    return out


def write_adapter(path: str | Path, tensors: Mapping[str, tuple[np.ndarray, np.ndarray]], *, arch: str,
                  alpha: float, metadata: Mapping[str, str] | None = None) -> str:
    """Write a GGUF LoRA adapter (atomically) and return its sha256. ``metadata`` adds ``kit.*`` strings."""
    import gguf

    from kit.models import file_sha256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for key, value in sorted((metadata or {}).items()):
        writer.add_string(f"kit.{key}", str(value))
    for name, (a, b) in tensors.items():
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return file_sha256(path)


def read_adapter(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, tensors) of a GGUF adapter, tensors in the row-major shapes they were written with.

    >>> meta, tensors = read_adapter("adapter.gguf")  # doctest: +SKIP
    >>> meta["adapter.type"], tensors["blk.0.attn_q.weight.lora_a"].shape  # doctest: +SKIP
    ('lora', (8, 576))
    """
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = field.contents()
        meta[name] = value
    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
               for t in reader.tensors}
    return meta, tensors
