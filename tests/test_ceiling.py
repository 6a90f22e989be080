"""The physical ceiling of decoding (memory bandwidth ÷ weight bytes) and the bandwidth figures it uses."""

from __future__ import annotations

import json

import pytest

from kit.errors import ConfigError
from kit.models.ceiling import ceiling_from, decode_ceiling
from kit.models.hardware import gpu_nominal_bandwidth, memory_bandwidth


def test_ceiling_on_known_numbers():
    # a 4 GB Q4 7B model on 20 GB/s DDR: 5 tokens/s at most; on a 3.35 TB/s H100: 837.5
    assert ceiling_from(4_000_000_000, 20e9).tokens_per_s == pytest.approx(5.0)
    assert ceiling_from(4_000_000_000, 3.35e12, device="gpu").tokens_per_s == pytest.approx(837.5)
    # half the weights on the GPU: the two halves are read one after the other, 0.1 s + 0.001 s per token
    split = ceiling_from(4_000_000_000, 20e9, gpu_share=0.5, gpu_bandwidth_bytes_per_s=2e12, device="cpu+gpu")
    assert split.tokens_per_s == pytest.approx(1 / 0.101)
    assert split.statement.startswith("at most 9.9 tokens/s for one stream")
    with pytest.raises(ConfigError):
        ceiling_from(0, 20e9)
    with pytest.raises(ConfigError, match="GPU's bandwidth"):
        ceiling_from(10, 20e9, gpu_share=0.5)


def test_ceiling_of_the_embedded_model_from_its_gguf():
    """Independent reference for the bytes: gguf's own GGUFReader (every tensor's n_bytes; SmolLM2 ties its
    output to the token embeddings, so the whole table is read each step)."""
    from gguf import GGUFReader

    from kit.models import resolve_model

    path = resolve_model("smollm2-135m-instruct").path
    reader = GGUFReader(path)
    names = {t.name: int(t.n_bytes) for t in reader.tensors}
    weights = sum(names.values()) - (names["token_embd.weight"] if "output.weight" in names else 0)
    cpu = decode_ceiling("smollm2-135m-instruct", bandwidth={"cpu_bytes_per_s": 10e9, "cpu_source": "given", "gpus": []})
    assert cpu.weight_bytes == weights and cpu.device == "cpu"
    assert cpu.tokens_per_s == pytest.approx(10e9 / weights)
    h100 = {"cpu_bytes_per_s": 10e9, "gpus": [{"name": "NVIDIA H100 80GB HBM3",
                                               "bytes_per_s": gpu_nominal_bandwidth("NVIDIA H100 80GB HBM3"),
                                               "source": "nominal (vendor datasheet)"}]}
    gpu = decode_ceiling("smollm2-135m-instruct", n_gpu_layers=-1, bandwidth=h100)
    assert gpu.device == "gpu" and gpu.tokens_per_s == pytest.approx(3.35e12 / weights)
    assert "NVIDIA H100 80GB HBM3: nominal" in gpu.statement
    with pytest.raises(ConfigError, match="no memory bandwidth is known"):
        decode_ceiling("smollm2-135m-instruct", n_gpu_layers=-1,
                       bandwidth={"cpu_bytes_per_s": 1e10, "gpus": [{"name": "Mystery GPU", "bytes_per_s": None}]})


def test_gpu_datasheet_table():
    assert gpu_nominal_bandwidth("NVIDIA H100 PCIe") == 2.0e12
    assert gpu_nominal_bandwidth("NVIDIA H200") == 4.8e12
    assert gpu_nominal_bandwidth("NVIDIA A100-SXM4-80GB") == 2.039e12
    assert gpu_nominal_bandwidth("NVIDIA A100-SXM4-40GB") == 1.555e12
    assert gpu_nominal_bandwidth("NVIDIA L40S") == 864e9 and gpu_nominal_bandwidth("NVIDIA L4") == 300e9
    assert gpu_nominal_bandwidth("Tesla T4") == 320e9
    assert gpu_nominal_bandwidth("NVIDIA GeForce RTX 4090") == 1008e9
    assert gpu_nominal_bandwidth("Some Other Card") is None


def test_cpu_bandwidth_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    first = memory_bandwidth()
    assert first["cpu_bytes_per_s"] > 1e8 and first["cpu_source"].startswith("measured on this machine: NumPy copy")
    cached = json.loads((tmp_path / "memory_bandwidth.json").read_text())
    assert [v["bytes_per_s"] for v in cached.values()] == [first["cpu_bytes_per_s"]]
    assert memory_bandwidth() == first  # read back, not measured again
