"""Build llama-cpp-python once per machine, for the machine it runs on, and install it from the kit's own cache.

Standard library only: ``make setup`` runs this (through ``python -m kit.cli.llama``) before the kit's dependencies
are installed, so that pip never compiles llama-cpp-python itself.

Why not a plain ``pip install llama-cpp-python``:

* It compiles llama.cpp with ``GGML_NATIVE=ON``. ggml then appends ``-march=native`` to its CPU backend's flags,
  after any ``CMAKE_C_FLAGS``, and gcc expands ``-march=native`` into one ``-m`` flag per feature that CPUID
  advertises — ``-mamx-tile`` too, on Intel CPUs of the Sapphire Rapids class, even where the OS has not enabled
  the AMX tile state (common on cloud VMs). The library then dies with SIGILL at its first matrix product, and a
  ``-mno-amx-tile`` in ``CMAKE_C_FLAGS`` cannot help: it comes first, and the last flag wins.
* pip's wheel cache is keyed by name and version only: after the flags change, or on a disk image moved to another
  machine, pip silently reuses a wheel built for other flags or another CPU.

So the kit builds the wheel itself, into ``$KIT_HOME/wheels/<key>/``, where the key covers the version, the
profile, the CMake arguments, the compilers and (for builds tuned to this CPU) the CPU's feature flags, and installs
it with ``pip --no-deps``. Profiles:

``native`` (default)
    On x86-64: ``GGML_NATIVE=OFF``, every x86 feature option of ggml off, and ``-march=native -mno-amx-tile
    -mno-amx-int8 -mno-amx-bf16`` as ``CMAKE_C_FLAGS``/``CMAKE_CXX_FLAGS``: the compiler uses every feature of this
    CPU (AVX2, AVX-512, VNNI ...) except AMX. ggml's code selects its kernels from the compiler's ``__AVX2__``-style
    macros, which ``-march=native`` defines; its own feature options only add the same ``-m`` flags and the
    definitions used to score variants under ``GGML_BACKEND_DL``, which this build does not use. Elsewhere: llama.cpp's
    defaults.
``portable``
    x86-64-v3 (AVX, AVX2, FMA, F16C, BMI2, SSE4.2) through ggml's own options, no AVX-512, no AMX: for disk images
    that move between machines. The key leaves out the CPU, so one wheel serves them all.
``cuda``
    ``native`` plus ``-DGGML_CUDA=on``, for the compute capability of the GPUs ``nvidia-smi`` shows (else ggml's list).
``metal``
    ``-DGGML_METAL=on`` on macOS (Apple Silicon).

Every profile also passes ``-DLLAVA_BUILD=OFF``: the multimodal library (libmtmd), which the kit never loads.

>>> plan = plan_build("portable")
>>> plan.folder.name.startswith("llama-cpp-python-0.3.36-portable-")
True
>>> "-DGGML_AVX2=ON" in plan.cmake_args and "-DGGML_AVX512=OFF" in plan.cmake_args
True
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlparse

from kit.errors import ConfigError, SetupError
from kit.paths import kit_home

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
PROFILES: tuple[str, ...] = ("native", "portable", "cuda", "metal")
NO_AMX: tuple[str, ...] = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
# ggml's x86 instruction-set options (ggml/CMakeLists.txt): each ON adds its -m flag to the CPU backend.
GGML_X86_OPTIONS: tuple[str, ...] = (
    "GGML_SSE42", "GGML_AVX", "GGML_AVX_VNNI", "GGML_AVX2", "GGML_BMI2", "GGML_FMA", "GGML_F16C", "GGML_AVX512",
    "GGML_AVX512_VBMI", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16",
)
X86_64_V3: tuple[str, ...] = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_BMI2", "GGML_FMA", "GGML_F16C")
# llama-cpp-python's own option: skip libmtmd (multimodal projectors), which the kit never uses.
LEAN: tuple[str, ...] = ("-DLLAVA_BUILD=OFF",)
MANIFEST = "build.json"


def setup_command(profile: str = "portable", *, rebuild: bool = False) -> str:
    """The command that (re)installs llama.cpp through this module, as the kit's error messages name it.

    >>> setup_command("portable")
    '`make setup LLAMA=portable` (or `python -m kit.cli.llama install --profile portable`)'
    """
    flag = " --rebuild" if rebuild else ""
    return f"`make setup LLAMA={profile}` (or `python -m kit.cli.llama install --profile {profile}{flag}`)"


def is_x86(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def resolve_profile(profile: str = "auto") -> str:
    """``auto`` is ``metal`` on Apple Silicon, else ``native``; an unknown or impossible profile is a ConfigError.

    >>> resolve_profile("portable")
    'portable'
    """
    if profile == "auto":
        return "metal" if sys.platform == "darwin" and not is_x86() else "native"
    if profile not in PROFILES:
        raise ConfigError(f"unknown llama.cpp build profile '{profile}'", where="LLAMA / --profile",
                          fix=f"use one of: auto, {', '.join(PROFILES)}")
    if profile == "metal" and sys.platform != "darwin":
        raise ConfigError("the metal profile needs macOS", where="LLAMA / --profile",
                          fix="use cuda for an NVIDIA GPU, else native or portable")
    return profile


def cmake_args(profile: str, *, x86: bool | None = None, cuda_architectures: str | None = None) -> list[str]:
    """The CMake arguments of a profile (``x86`` defaults to this machine).

    >>> cmake_args("native", x86=True)[-1]
    '-DCMAKE_CXX_FLAGS=-march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
    >>> cmake_args("native", x86=False)
    ['-DLLAVA_BUILD=OFF']
    """
    x86 = is_x86() if x86 is None else x86
    args = list(LEAN)
    if profile == "metal":
        return [*args, "-DGGML_METAL=on"]
    if x86 and profile == "portable":
        args += ["-DGGML_NATIVE=OFF", *(f"-D{o}={'ON' if o in X86_64_V3 else 'OFF'}" for o in GGML_X86_OPTIONS)]
    elif x86:
        flags = " ".join(("-march=native", *NO_AMX))
        args += ["-DGGML_NATIVE=OFF", *(f"-D{o}=OFF" for o in GGML_X86_OPTIONS),
                 f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]
    elif profile == "portable":
        args += ["-DGGML_NATIVE=OFF"]  # the architecture's baseline instead of this CPU's extensions
    if profile == "cuda":
        args += ["-DGGML_CUDA=on"]
        if cuda_architectures:  # GGML_NATIVE=OFF would otherwise build for ggml's whole list of GPU generations
            args += [f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architectures}"]
    return args


def cpu_features() -> list[str]:
    """This CPU's feature flags (``/proc/cpuinfo``; the brand string on macOS), sorted."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in {"flags", "features"}:
                    return sorted(set(value.split()))
    except OSError:
        pass
    if sys.platform == "darwin":
        brand = _first_line(["sysctl", "-n", "machdep.cpu.brand_string"])
        if brand:
            return [brand]
    return [platform.processor() or platform.machine()]


def _first_line(cmd: Sequence[str], *, last: bool = False) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in (done.stdout or done.stderr).splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        return None
    return lines[-1] if last else lines[0]


def compiler_versions(*, cuda: bool = False) -> dict[str, str | None]:
    """The first line of ``--version`` of the C and C++ compilers CMake will pick (``$CC``/``$CXX``, else cc/c++)."""
    found = {
        "cc": _first_line([os.environ.get("CC") or "cc", "--version"]),
        "cxx": _first_line([os.environ.get("CXX") or "c++", "--version"]),
    }
    if cuda:
        found["nvcc"] = _first_line(["nvcc", "--version"], last=True)
    return found


def cuda_architectures() -> str | None:
    """The GPUs' compute capabilities as CMake wants them (``"90"``, ``"86;89"``), or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    caps = sorted({line.strip().replace(".", "") for line in done.stdout.splitlines() if line.strip()})
    return ";".join(caps) if done.returncode == 0 and caps and all(c.isdigit() for c in caps) else None


def build_key(inputs: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of everything a wheel's machine code depends on.

    >>> build_key({"version": "0.3.36", "cmake_args": ["-DGGML_NATIVE=OFF"]})
    '3442d89a98fe7ce9'
    """
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BuildPlan:
    """What would be built: the profile, its CMake arguments, the key's inputs, and the cache folder."""

    profile: str
    version: str
    cmake_args: tuple[str, ...]
    inputs: dict[str, Any]
    key: str
    folder: Path

    @property
    def cmake_env(self) -> str:
        """The ``CMAKE_ARGS`` value (scikit-build-core splits it as a shell would)."""
        return shlex.join(self.cmake_args)


def wheels_dir(home: Path | None = None) -> Path:
    return (home or kit_home()) / "wheels"


def plan_build(profile: str = "auto", *, extra_cmake_args: Sequence[str] = (), version: str = VERSION,
               home: Path | None = None, cpu: Sequence[str] | None = None,
               compilers: dict[str, str | None] | None = None) -> BuildPlan:
    """The build for ``profile`` on this machine. ``cpu`` and ``compilers`` default to this machine's; a profile
    tuned to the CPU (all but ``portable``) keys its wheel on the CPU's feature flags.

    >>> a = plan_build("native", cpu=["avx2", "fma"], compilers={"cc": "gcc 12"})
    >>> b = plan_build("native", cpu=["avx2", "fma", "amx_tile"], compilers={"cc": "gcc 12"})
    >>> a.key != b.key
    True
    """
    profile = resolve_profile(profile)
    archs = cuda_architectures() if profile == "cuda" else None
    args = (*cmake_args(profile, cuda_architectures=archs), *extra_cmake_args)
    inputs: dict[str, Any] = {
        "package": PACKAGE, "version": version, "profile": profile, "cmake_args": list(args),
        "platform": f"{sys.platform}-{platform.machine().lower()}", "libc": " ".join(platform.libc_ver()).strip(),
        "compilers": compilers if compilers is not None else compiler_versions(cuda=profile == "cuda"),
    }
    if profile != "portable":
        inputs["cpu"] = sorted(cpu) if cpu is not None else cpu_features()
    key = build_key(inputs)
    return BuildPlan(profile, version, tuple(args), inputs, key,
                     wheels_dir(home) / f"{PACKAGE}-{version}-{profile}-{key}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_wheel(plan: BuildPlan) -> Path | None:
    """The cached wheel of exactly this build, or None: a wheel is reused only when its manifest records the same
    key inputs and the file still has the sha256 recorded when it was built."""
    manifest = read_manifest(plan.folder)
    if not manifest or manifest.get("key") != plan.key or manifest.get("inputs") != plan.inputs:
        return None
    wheel = plan.folder / str(manifest.get("wheel", ""))
    if not wheel.is_file() or wheel.suffix != ".whl" or _sha256(wheel) != manifest.get("sha256"):
        return None
    return wheel


def store_wheel(plan: BuildPlan, wheel: Path, *, build_seconds: float | None, log: Path | None = None) -> Path:
    """Move a wheel built for ``plan`` into its cache folder with its manifest; return its new path."""
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.folder.name}-", dir=plan.folder.parent))
    target = staging / wheel.name
    shutil.move(str(wheel), target)
    if log is not None and log.is_file():
        shutil.move(str(log), staging / "build.log")
    manifest = {"key": plan.key, "inputs": plan.inputs, "wheel": wheel.name, "sha256": _sha256(target),
                "cmake_args_env": plan.cmake_env, "build_seconds": build_seconds,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if plan.folder.exists():
        shutil.rmtree(plan.folder)
    staging.rename(plan.folder)
    return plan.folder / wheel.name


def build_wheel(plan: BuildPlan, *, source: str | None = None) -> Path:
    """Compile the wheel for ``plan`` with pip (never from or into pip's cache) and store it in the kit's cache.

    ``source`` is a local sdist to build from instead of PyPI's. Takes about 20 minutes of CPU.
    """
    if plan.profile == "cuda" and shutil.which("nvcc") is None:
        raise SetupError("the cuda profile needs the CUDA toolkit's nvcc, which is not on PATH", where="nvcc",
                         fix="install the CUDA toolkit (or add its bin/ to PATH), or use the native profile")
    if not (plan.inputs.get("compilers") or {}).get("cxx"):
        raise SetupError("no C/C++ compiler found to build llama.cpp", where=os.environ.get("CXX") or "c++",
                         fix="install one (Debian/Ubuntu: `apt-get install build-essential cmake`; macOS: "
                             "`xcode-select --install`)")
    plan.folder.parent.mkdir(parents=True, exist_ok=True)
    log = plan.folder.parent / f"{plan.folder.name}.build.log"
    env = {**os.environ, "CMAKE_ARGS": plan.cmake_env,
           "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)}
    with tempfile.TemporaryDirectory(prefix=".build-", dir=plan.folder.parent) as out:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
               "--progress-bar", "off", "-v", "-w", out, source or f"{PACKAGE}=={plan.version}"]
        start = time.perf_counter()
        with log.open("w", encoding="utf-8") as fh:
            fh.write(f"CMAKE_ARGS={plan.cmake_env}\n$ {shlex.join(cmd)}\n")
            fh.flush()
            done = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - start
        wheels = sorted(Path(out).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SetupError(f"building {PACKAGE} {plan.version} failed (pip exit status {done.returncode}):\n{tail}",
                             where=str(log), fix="read the log; a C/C++ compiler and cmake >= 3.21 are needed "
                                                 "(Debian/Ubuntu: `apt-get install build-essential cmake`)")
        return store_wheel(plan, wheels[0], build_seconds=round(seconds, 1), log=log)


def installed_from() -> Path | None:
    """The cache folder the installed llama-cpp-python came from, or None (not installed, or installed by pip
    from elsewhere). Read from the ``direct_url.json`` pip writes for a wheel installed from a file (PEP 610)."""
    try:
        text = metadata.distribution(PACKAGE).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        url = str(json.loads(text or "{}").get("url", ""))
    except ValueError:
        return None
    if not url.startswith("file:"):
        return None
    return Path(unquote(urlparse(url).path)).parent


def installed_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def install_wheel(wheel: Path) -> None:
    """``pip install --no-deps --force-reinstall`` this file into the running interpreter's environment."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-cache-dir",
           "--progress-bar", "off", "-q", str(wheel)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupError(f"pip could not install the wheel: {(done.stderr or done.stdout).strip()[-800:]}",
                         where=str(wheel), fix="rebuild it: python -m kit.cli.llama install --rebuild")


@dataclass(frozen=True)
class InstallOutcome:
    """What :func:`ensure_installed` did: the plan, the wheel, whether it was built now and whether pip ran."""

    plan: BuildPlan
    wheel: Path
    built: bool
    installed: bool
    build_seconds: float | None


def ensure_installed(profile: str = "auto", *, rebuild: bool = False, extra_cmake_args: Sequence[str] = (),
                     source: str | None = None, on_step: Callable[[str], None] | None = None) -> InstallOutcome:
    """Make the installed llama-cpp-python the wheel of ``profile`` for this machine: build it once into the kit's
    cache (or reuse the cached one of exactly this build), then install it unless it is installed already.

    >>> ensure_installed("native")            # doctest: +SKIP
    InstallOutcome(plan=..., wheel=PosixPath('~/.cache/kit/wheels/llama-cpp-python-0.3.36-native-.../...whl'), ...)
    """
    say = on_step or (lambda _msg: None)
    plan = plan_build(profile, extra_cmake_args=extra_cmake_args)
    wheel = None if rebuild else cached_wheel(plan)
    seconds = None
    if wheel is None:
        say(f"building {PACKAGE} {plan.version} (profile {plan.profile}) into {plan.folder} — about 20 minutes of "
            f"CPU (10 on 2 idle cores); log: {plan.folder.parent / (plan.folder.name + '.build.log')}")
        say(f"CMAKE_ARGS={plan.cmake_env}")
        wheel = build_wheel(plan, source=source)
        seconds = (read_manifest(plan.folder) or {}).get("build_seconds")
        say(f"built in {seconds} s")
    else:
        say(f"reusing {wheel} (built for exactly this profile, CMake arguments, compiler and CPU)")
    current = installed_from()
    if not rebuild and current is not None and current.resolve() == plan.folder.resolve() \
            and installed_version() == plan.version:
        say(f"{PACKAGE} {plan.version} from that wheel is installed already")
        return InstallOutcome(plan, wheel, seconds is not None, False, seconds)
    install_wheel(wheel)
    say(f"installed {wheel.name} with pip --no-deps")
    return InstallOutcome(plan, wheel, seconds is not None, True, seconds)
