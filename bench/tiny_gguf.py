"""A tiny random llama-architecture GGUF with a real tokenizer and chat template (copied from a source GGUF).

Used to exercise the fine-tuning code paths that need hardware this machine lacks (4-bit QLoRA on CUDA)
without shipping a large model: the tokenizer and template come from the embedded SmolLM2 GGUF, the
weights are random and small (a few MB).

    python bench/tiny_gguf.py SOURCE.gguf OUT.gguf    # or: tiny_llama_gguf(source, out)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KEEP_PREFIXES = ("tokenizer.", "general.")
TINY = {"block_count": 2, "embedding_length": 64, "feed_forward_length": 128, "attention.head_count": 4,
        "attention.head_count_kv": 2, "context_length": 2048, "rope.dimension_count": 16}


def tiny_llama_gguf(source: str | Path, out: str | Path, *, seed: int = 0) -> Path:
    """Write ``out``: the tokenizer/chat-template metadata of ``source`` and random tiny llama weights."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    writer = gguf.GGUFWriter(str(out), arch="llama")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or not name.startswith(KEEP_PREFIXES):
            continue
        if name in ("general.file_type", "general.quantization_version"):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    for key, value in TINY.items():
        writer.add_uint32(f"llama.{key}", value)
    writer.add_uint32("llama.vocab_size", vocab)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    rng = np.random.default_rng(seed)
    d, f = TINY["embedding_length"], TINY["feed_forward_length"]
    hd = d // TINY["attention.head_count"]
    kv = hd * TINY["attention.head_count_kv"]

    def w(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", w(vocab, d).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for b in range(TINY["block_count"]):
        for name, shape in (("attn_q", (d, d)), ("attn_k", (kv, d)), ("attn_v", (kv, d)), ("attn_output", (d, d)),
                            ("ffn_gate", (f, d)), ("ffn_up", (f, d)), ("ffn_down", (d, f))):
            writer.add_tensor(f"blk.{b}.{name}.weight", w(*shape))
        writer.add_tensor(f"blk.{b}.attn_norm.weight", np.ones(d, np.float32))
        writer.add_tensor(f"blk.{b}.ffn_norm.weight", np.ones(d, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)


if __name__ == "__main__":
    print(tiny_llama_gguf(sys.argv[1], sys.argv[2]))
