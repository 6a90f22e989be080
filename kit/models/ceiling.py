"""The physical ceiling of decoding: memory bandwidth ÷ the weight bytes one decoding step reads.

Generating one token of one sequence reads every weight once, so a single stream can never decode faster
than ``bandwidth / weight bytes`` tokens per second, however fast the arithmetic. A measured figure far
below this ceiling means the machine is bound by something else (arithmetic, per-call overhead, other
jobs); batching several sequences (each step reads the weights once for all of them) can only lift
throughput towards ``batch x ceiling`` where decoding is bound by memory bandwidth.

Bandwidth comes from the hardware fingerprint (:func:`kit.models.hardware.memory_bandwidth`): measured
for the CPU, nominal (datasheet) for known GPUs. Weight bytes come from the GGUF's tensor table.

>>> ceiling = decode_ceiling("smollm2-135m-instruct")                     # doctest: +SKIP
>>> ceiling.statement                                                      # doctest: +SKIP
'at most 177 tokens/s for one stream: 17.1 GB/s (CPU, measured ...) ÷ 96.6 MB of weights read per token'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError


@dataclass(frozen=True)
class DecodeCeiling:
    """Upper bound on single-stream decoding speed, with what it was computed from."""

    tokens_per_s: float
    weight_bytes: int
    bandwidth_bytes_per_s: float
    device: str  # "cpu", "gpu" or "cpu+gpu"
    source: str  # where the bandwidth came from
    statement: str


def ceiling_from(weight_bytes: int, bandwidth_bytes_per_s: float, *, gpu_share: float = 0.0,
                 gpu_bandwidth_bytes_per_s: float | None = None, device: str = "cpu",
                 source: str = "given") -> DecodeCeiling:
    """The ceiling from known numbers: ``weight_bytes`` read per token, at ``bandwidth_bytes_per_s``; with a
    ``gpu_share`` of the weights on a GPU, the two parts are read one after the other (times add).

    >>> ceiling_from(4_000_000_000, 20e9).tokens_per_s
    5.0
    >>> round(ceiling_from(4_000_000_000, 20e9, gpu_share=0.5, gpu_bandwidth_bytes_per_s=2e12).tokens_per_s, 2)
    9.9
    """
    where = "kit.models.ceiling"
    if weight_bytes <= 0 or not bandwidth_bytes_per_s > 0 or not 0 <= gpu_share <= 1:
        raise ConfigError(f"weight_bytes={weight_bytes}, bandwidth={bandwidth_bytes_per_s}, gpu_share={gpu_share}",
                          where=where, fix="weights and bandwidth are > 0; gpu_share is in [0, 1]")
    if gpu_share and not (gpu_bandwidth_bytes_per_s or 0) > 0:
        raise ConfigError("a GPU share without the GPU's bandwidth", where=where,
                          fix="pass gpu_bandwidth_bytes_per_s")
    seconds = (1 - gpu_share) * weight_bytes / bandwidth_bytes_per_s
    if gpu_share:
        seconds += gpu_share * weight_bytes / float(gpu_bandwidth_bytes_per_s or 0)
    rate = 1.0 / seconds
    effective = weight_bytes / seconds
    text = (f"at most {rate:,.3g} tokens/s for one stream: {effective / 1e9:,.4g} GB/s ({device}, {source}) ÷ "
            f"{weight_bytes / 1e6:,.1f} MB of weights read per token")
    return DecodeCeiling(tokens_per_s=rate, weight_bytes=int(weight_bytes), bandwidth_bytes_per_s=effective,
                         device=device, source=source, statement=text)


def decode_ceiling(model: str | Path, *, n_gpu_layers: int = 0,
                   bandwidth: dict[str, Any] | None = None) -> DecodeCeiling:
    """The single-stream decoding ceiling of ``model`` (catalog id or GGUF path) on this machine.

    ``n_gpu_layers`` as for the llama.cpp arm (0: CPU; -1 or at least the layer count: all on the first
    GPU; between: that share of the layers). ``bandwidth`` is :func:`kit.models.hardware.memory_bandwidth`'s
    result (default: this machine's, measured once and cached).
    """
    from kit.models import resolve_model
    from kit.models.gguf import read_gguf_info
    from kit.models.hardware import memory_bandwidth

    info = read_gguf_info(resolve_model(str(model)).path)
    bw = bandwidth if bandwidth is not None else memory_bandwidth()
    weights = info.decode_bytes or info.size
    cpu_bw, cpu_source = float(bw["cpu_bytes_per_s"]), str(bw.get("cpu_source", "given"))
    if n_gpu_layers == 0:
        return ceiling_from(weights, cpu_bw, device="cpu", source=cpu_source)
    gpu = next(iter(bw.get("gpus") or []), None)
    if gpu is None or not gpu.get("bytes_per_s"):
        name = gpu["name"] if gpu else "no GPU found"
        raise ConfigError(f"no memory bandwidth is known for the GPU ({name})", where="kit.models.decode_ceiling",
                          fix="pass bandwidth={'cpu_bytes_per_s': ..., 'gpus': [{'name': ..., 'bytes_per_s': ...}]} "
                              "with your GPU's datasheet figure")
    layers = info.block_count or 1
    share = 1.0 if n_gpu_layers < 0 or n_gpu_layers >= layers else n_gpu_layers / (layers + 1)
    source = f"{gpu['name']}: {gpu.get('source', 'given')}"
    if share == 1.0:
        return ceiling_from(weights, float(gpu["bytes_per_s"]), device="gpu", source=source)
    return ceiling_from(weights, cpu_bw, gpu_share=share, gpu_bandwidth_bytes_per_s=float(gpu["bytes_per_s"]),
                        device="cpu+gpu", source=f"{source}; CPU {cpu_source}; {n_gpu_layers}/{layers} layers on GPU")
