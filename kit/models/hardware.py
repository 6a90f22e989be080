"""The machine a run happened on (recorded with every run), and the GPU-offload check for the llama.cpp arm.

>>> fp = fingerprint()
>>> sorted(fp)[:3]
['cpu', 'gpus', 'llama_cpp']
>>> check_gpu_offload(0)  # CPU only: always fine
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

from kit.errors import ModelError
from kit.models.llama_build import setup_command

__all__ = ["PACKAGES", "package_versions", "fingerprint", "gpus", "cpu_info", "llama_cpp_info", "check_gpu_offload",
           "reinstall_command", "memory_bandwidth", "cpu_memory_bandwidth", "gpu_nominal_bandwidth"]

# The packages whose versions a run records (its fingerprint and its run record, kit.pipeline.provenance).
PACKAGES = (
    "kit", "llama-cpp-python", "huggingface_hub", "gguf", "numpy", "pandas", "scipy", "statsmodels", "papermill",
    "nbconvert", "openai", "anthropic", "genai-prices", "torch", "transformers", "peft",
)
# Through the kit's build (kit.models.llama_build): its own wheel cache keyed by the flags, and the probe after it.
CUDA_REINSTALL = setup_command("cuda")
METAL_REINSTALL = setup_command("metal")


def cpu_threads() -> int:
    """The cores this process may run on — its CPU affinity, and a container's cgroup CPU quota — not every
    core the machine shows: more threads than that only wait on each other (torch's, llama.cpp's).

    >>> cpu_threads() >= 1
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPUs that multiply bfloat16 natively (Zen 4+, Sapphire Rapids+)


def cpu_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 natively (its /proc/cpuinfo flags name AVX512-BF16 or AMX-BF16): there
    a bfloat16 matrix product runs about 2-3x faster than a float32 one; elsewhere bfloat16 is emulated and slower.

    >>> cpu_bf16("flags : fpu avx2 avx512f avx512_bf16"), cpu_bf16("flags : fpu avx2")
    (True, False)
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in BF16_FLAGS)


def llama_threads(n_threads: int | None = None, n_threads_batch: int | None = None) -> tuple[int, int]:
    """llama.cpp's threads for one token at a time and for batches: the given ones, else llama-cpp-python's
    own defaults (half the cores, all the cores) counted on :func:`cpu_threads`, not on every core the machine
    shows (a container limited to 2 of 64 cores would otherwise start 32 and 64 threads).

    >>> llama_threads(3, 5)
    (3, 5)
    >>> llama_threads()[1] == cpu_threads()
    True
    """
    cores = cpu_threads()
    return n_threads or max(cores // 2, 1), n_threads_batch or cores


def cpu_info() -> dict[str, Any]:
    """CPU model, physical and logical cores, machine type, whether it multiplies bfloat16 natively.

    >>> cpu_info()["logical_cores"] >= 1
    True
    """
    import psutil

    return {
        "model": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "bf16": cpu_bf16(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out.strip()
    return platform.processor() or platform.machine()


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs from ``nvidia-smi`` (name, memory, driver); an empty list without it.

    >>> gpus()  # doctest: +SKIP
    [{'index': 0, 'name': 'NVIDIA H100 80GB HBM3', 'memory_total_bytes': 85520809984, ...}]
    """
    out = _run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,driver_version,compute_cap",
                "--format=csv,noheader,nounits"])
    if not out:
        return []
    rows = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        rows.append({
            "index": int(parts[0]), "name": parts[1],
            "memory_total_bytes": _mib(parts[2]), "memory_free_bytes": _mib(parts[3]),
            "driver": parts[4], "compute_capability": parts[5] if len(parts) > 5 else None,
        })
    return rows


def _mib(text: str) -> int | None:
    try:
        return int(float(text) * 1024 * 1024)
    except ValueError:
        return None


def llama_cpp_info() -> dict[str, Any]:
    """Version, build/system info and GPU-offload support of the installed llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError as exc:
        return {"installed": False, "error": str(exc)}
    info = llama_cpp.llama_print_system_info()
    return {
        "installed": True,
        "version": getattr(llama_cpp, "__version__", None),
        "system_info": info.decode("utf-8", "replace").strip() if isinstance(info, bytes) else str(info).strip(),
        "supports_gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "supports_mmap": bool(llama_cpp.llama_supports_mmap()),
    }


# Nominal peak memory bandwidth (bytes/s) from the vendors' datasheets, matched on the name nvidia-smi
# gives (first match wins, so the more specific names come first).
GPU_BANDWIDTH: tuple[tuple[str, float], ...] = (
    ("B200", 8.0e12), ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
    ("A100 80GB PCIe", 1.935e12), ("A100-SXM4-80GB", 2.039e12), ("A100", 1.555e12),
    ("L40S", 864e9), ("L40", 864e9), ("L4", 300e9), ("A10G", 600e9), ("A10", 600e9), ("A40", 696e9),
    ("T4", 320e9), ("V100", 900e9), ("RTX 6000 Ada", 960e9), ("RTX A6000", 768e9),
    ("RTX 4090", 1008e9), ("RTX 4080", 716.8e9), ("RTX 3090 Ti", 1008e9), ("RTX 3090", 936e9),
)


def gpu_nominal_bandwidth(name: str) -> float | None:
    """A GPU's nominal peak memory bandwidth in bytes/s (vendor datasheet), or None for a GPU not in the table.

    >>> gpu_nominal_bandwidth("NVIDIA H100 80GB HBM3")
    3350000000000.0
    >>> gpu_nominal_bandwidth("NVIDIA GeForce GTX 1080") is None
    True
    """
    for pattern, bandwidth in GPU_BANDWIDTH:
        if pattern.lower() in name.lower():
            return bandwidth
    return None


def cpu_memory_bandwidth(*, mib: int = 256, repeats: int = 5) -> dict[str, Any]:
    """Measure main-memory bandwidth: NumPy copies of a ``mib`` MiB array (larger than the caches), by one
    thread and by one thread per usable core, each on its own slice; the best time of ``repeats``.
    Bytes counted as in the STREAM benchmark's copy (read + write = 2 x the array). About a second.

    >>> cpu_memory_bandwidth(mib=64, repeats=2)["bytes_per_s"] > 1e8
    True
    """
    import threading
    import time

    import numpy as np

    src = np.ones(mib * 2**20 // 8)
    dst = np.zeros_like(src)
    cores = max(1, cpu_info()["usable_cores"] or 1)
    best: dict[int, float] = {}
    for threads in sorted({1, cores}):
        bounds = np.linspace(0, src.size, threads + 1).astype(int)
        for _ in range(repeats):
            workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b]))
                       for a, b in zip(bounds[:-1], bounds[1:])]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best[threads] = min(best.get(threads, float("inf")), time.perf_counter() - start)
    threads = min(best, key=best.get)
    return {"bytes_per_s": 2 * src.nbytes / best[threads], "threads": threads,
            "method": f"NumPy copy of {mib} MiB, {threads} thread(s), best of {repeats} (STREAM copy bytes)"}


def memory_bandwidth(*, refresh: bool = False) -> dict[str, Any]:
    """The machine's memory bandwidth: the CPU's measured (once per machine, cached in ``$KIT_HOME``) and each
    GPU's nominal figure. Keys: cpu_bytes_per_s, cpu_source, gpus (name, bytes_per_s, source).

    >>> memory_bandwidth()["cpu_bytes_per_s"] > 0                      # doctest: +SKIP
    True
    """
    import json

    from kit.paths import kit_home
    from kit.util import atomic_write_json

    cpu = cpu_info()
    key = f"{cpu['model']}|{cpu['logical_cores']}|{cpu['usable_cores']}|{platform.node()}"
    path = kit_home() / "memory_bandwidth.json"
    cached: dict[str, Any] = {}
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    measured = cached.get(key) if not refresh else None
    if not isinstance(measured, dict) or "bytes_per_s" not in measured:
        measured = cpu_memory_bandwidth()
        cached[key] = measured
        try:
            atomic_write_json(path, cached)
        except OSError:
            pass  # an unwritable cache only means measuring again next time
    return {
        "cpu_bytes_per_s": float(measured["bytes_per_s"]),
        "cpu_source": f"measured on this machine: {measured['method']}",
        "gpus": [{"name": g["name"], "bytes_per_s": gpu_nominal_bandwidth(g["name"]),
                  "source": "nominal (vendor datasheet)" if gpu_nominal_bandwidth(g["name"]) else "unknown GPU"}
                 for g in gpus()],
    }


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None: not installed).

    >>> package_versions()["numpy"] is not None
    True
    """
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fingerprint() -> dict[str, Any]:
    """Everything that makes a measurement machine-specific, as a JSON-ready dict.

    Keys: cpu, ram_bytes, gpus, llama_cpp, memory_bandwidth, packages, os, python.

    >>> fingerprint()["ram_bytes"] > 0
    True
    """
    import psutil

    return {
        "cpu": cpu_info(),
        "ram_bytes": psutil.virtual_memory().total,
        "gpus": gpus(),
        "llama_cpp": llama_cpp_info(),
        "memory_bandwidth": memory_bandwidth(),
        "packages": package_versions(),
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable_prefix": "venv" if sys.prefix != sys.base_prefix else "system"},
    }


def machine_words(fp: dict[str, Any]) -> str:
    """A fingerprint's machine in a few words: CPU model, cores and GPUs.

    >>> machine_words({"cpu": {"model": "AMD EPYC", "logical_cores": 2}, "gpus": []})
    'AMD EPYC (2 cores), no GPU'
    """
    cpu = fp.get("cpu", {})
    gpu_names = ", ".join(g.get("name", "?") for g in fp.get("gpus", [])) or "no GPU"
    return f"{cpu.get('model', '?')} ({cpu.get('logical_cores', '?')} cores), {gpu_names}"


def reinstall_command() -> str:
    """The command that rebuilds llama-cpp-python with this machine's GPU backend (Metal on macOS, else CUDA).

    >>> reinstall_command()            # doctest: +SKIP
    '`make setup LLAMA=cuda` (or `python -m kit.cli.llama install --profile cuda`)'
    """
    return METAL_REINSTALL if sys.platform == "darwin" else CUDA_REINSTALL


def check_gpu_offload(n_gpu_layers: int) -> None:
    """Raise ModelError when GPU layers are asked for (``n_gpu_layers != 0``; -1 = all) but the installed
    llama-cpp-python was built without GPU offload, instead of silently running on the CPU.

    >>> check_gpu_offload(-1)  # doctest: +SKIP
    kit.errors.ModelError: n_gpu_layers=-1 asks for GPU offload, but ... Fix: ... `make setup LLAMA=cuda` ...
    """
    if n_gpu_layers == 0:
        return
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelError("llama-cpp-python is not installed", where="llama.cpp arm",
                         fix=f"install it with GPU support: {reinstall_command()}") from exc
    if llama_cpp.llama_supports_gpu_offload():
        return
    version = getattr(llama_cpp, "__version__", "?")
    gpu = gpus()
    seen = f"; this machine has {gpu[0]['name']}" if gpu else ""
    raise ModelError(
        f"n_gpu_layers={n_gpu_layers} asks for GPU offload, but the installed llama-cpp-python {version} was built "
        f"without GPU support and would run on the CPU{seen}",
        where="llama.cpp arm",
        fix=f"reinstall it with the GPU backend: {reinstall_command()}"
        + ("" if sys.platform == "darwin" else f" (CUDA needs the toolkit's nvcc; on a Mac: {METAL_REINSTALL})")
        + ", or set n_gpu_layers=0 to run on the CPU",
    )
