"""Hardware fingerprint and the GPU-offload check, against independent readings of the same machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest

from kit.errors import ModelError


def test_fingerprint_is_json_and_matches_the_machine():
    import llama_cpp

    from kit.models.hardware import fingerprint

    fp = fingerprint()
    assert json.loads(json.dumps(fp)) == fp  # stored as JSON with every run
    assert set(fp) == {"cpu", "ram_bytes", "gpus", "llama_cpp", "memory_bandwidth", "packages", "os", "python"}
    assert fp["cpu"]["logical_cores"] == os.cpu_count() and fp["cpu"]["model"]
    if os.path.exists("/proc/meminfo"):  # independent: the kernel's MemTotal (kB)
        with open("/proc/meminfo") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
        assert fp["ram_bytes"] == kb * 1024
    assert fp["llama_cpp"]["version"] == llama_cpp.__version__ == metadata.version("llama-cpp-python")
    assert "CPU" in fp["llama_cpp"]["system_info"]
    assert fp["llama_cpp"]["supports_gpu_offload"] == bool(llama_cpp.llama_supports_gpu_offload())
    assert fp["packages"]["huggingface_hub"] == metadata.version("huggingface_hub")
    assert fp["packages"]["gguf"] == metadata.version("gguf")
    assert fp["python"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_gpus_come_from_nvidia_smi_when_present():
    from kit.models.hardware import gpus

    found = gpus()
    if shutil.which("nvidia-smi") is None:
        assert found == []
    else:  # independent: `nvidia-smi -L` lists one line per GPU with its name
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
        names = [line.split(": ", 1)[1].split(" (UUID")[0] for line in listing.strip().splitlines()]
        assert [g["name"] for g in found] == names
        assert all(g["memory_total_bytes"] > 2**30 for g in found)


def test_cpu_only_runs_never_need_a_gpu_build():
    from kit.models.hardware import check_gpu_offload

    check_gpu_offload(0)  # raises nothing, whatever the build


@pytest.mark.parametrize("layers", [-1, 20])
def test_gpu_offload_on_a_build_without_it_names_the_reinstall_command(layers):
    import llama_cpp

    from kit.models.hardware import check_gpu_offload

    if llama_cpp.llama_supports_gpu_offload():  # a CUDA/Metal build: offload is honoured, nothing to say
        check_gpu_offload(layers)
        return
    with pytest.raises(ModelError) as err:
        check_gpu_offload(layers)
    text = str(err.value)
    assert f"n_gpu_layers={layers} asks for GPU offload" in text and "built without GPU support" in text
    profile = "metal" if sys.platform == "darwin" else "cuda"
    expected = f"`make setup LLAMA={profile}` (or `python -m kit.cli.llama install --profile {profile}`)"
    assert expected in text and "n_gpu_layers=0" in text


def test_reinstall_command_matches_the_platform():
    from kit.models.hardware import CUDA_REINSTALL, METAL_REINSTALL, reinstall_command

    assert reinstall_command() == (METAL_REINSTALL if sys.platform == "darwin" else CUDA_REINSTALL)
    assert METAL_REINSTALL.startswith("`make setup LLAMA=metal`") and "--profile cuda" in CUDA_REINSTALL
