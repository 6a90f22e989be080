"""The llama.cpp build the kit installs: its flags, its wheel cache, the probe, and the installed library.

Real processes throughout: the compiler preprocesses the flags, the build module runs on a Python without
site-packages, the probe loads the embedded model in a child process, objdump reads the installed library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from kit.models.llama_build import (NO_AMX, build_key, cached_wheel, cmake_args, plan_build, read_manifest,
                                    store_wheel)
from kit.models.llama_probe import check_amx, os_enables_amx, probe_llama

CC = shutil.which("gcc")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _flags(profile: str) -> str:
    (flags,) = {a.split("=", 1)[1] for a in cmake_args(profile, x86=True) if a.startswith("-DCMAKE_C_FLAGS=")}
    return flags


def _amx_macros(flags: str) -> set[str]:
    """The AMX macros gcc defines for these flags (``gcc -dM -E``)."""
    done = subprocess.run([CC, *flags.split(), "-dM", "-E", "-"], input="", capture_output=True, text=True,
                          check=True)
    return {line.split()[1] for line in done.stdout.splitlines() if "__AMX" in line}


@pytest.mark.skipif(CC is None, reason="needs gcc")
def test_native_flags_keep_amx_off_even_on_a_cpu_that_advertises_it():
    """gcc's driver expands ``-march=native`` into ``-march=<cpu>`` plus one explicit ``-m``/``-mno-`` flag per
    feature (seen here with ``-###``), and among explicit flags the last one wins. On a Sapphire Rapids CPU the
    expansion holds ``-mamx-tile``: after ggml's ``-march=native`` (GGML_NATIVE=ON) AMX comes back whatever
    CMAKE_C_FLAGS said; with the kit's order (``-march=native``, then ``-mno-amx-*``) it stays off."""
    driver = subprocess.run([CC, "-march=native", "-###", "-E", "-"], input="", capture_output=True, text=True,
                            check=True).stderr
    assert "amx-tile" in next(line for line in driver.splitlines() if "cc1" in line)  # -mamx-tile or -mno-amx-tile
    flags = _flags("native")
    assert flags == " ".join(("-march=native", *NO_AMX))
    spr_native = "-march=sapphirerapids -mamx-tile -mamx-int8 -mamx-bf16"  # what -march=native becomes there
    assert "__AMX_TILE__" in _amx_macros(" ".join((*NO_AMX, spr_native)))  # GGML_NATIVE=ON: flags, then ggml's
    assert _amx_macros(flags.replace("-march=native", spr_native)) == set()  # the kit's native profile
    native = cmake_args("native", x86=True)
    assert "-DGGML_NATIVE=OFF" in native and "-DGGML_AMX_TILE=OFF" in native and "-DGGML_AVX512=OFF" in native


def test_portable_profile_is_x86_64_v3_without_avx512_or_amx():
    args = cmake_args("portable", x86=True)
    for on in ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2", "GGML_SSE42"):
        assert f"-D{on}=ON" in args
    for off in ("GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
        assert f"-D{off}=OFF" in args
    assert not any(a.startswith("-DCMAKE_C_FLAGS") for a in args)
    assert cmake_args("cuda", x86=True, cuda_architectures="90")[-2:] == ["-DGGML_CUDA=on",
                                                                        "-DCMAKE_CUDA_ARCHITECTURES=90"]
    assert "-DGGML_NATIVE=OFF" not in cmake_args("native", x86=False)  # llama.cpp's defaults off x86


def test_cache_key_changes_with_flags_cpu_and_compiler(tmp_path):
    base = dict(home=tmp_path, cpu=["avx2", "fma"], compilers={"cc": "gcc 12.2", "cxx": "g++ 12.2"})
    native = plan_build("native", **base)
    others = [
        plan_build("native", **{**base, "cpu": ["avx2", "fma", "amx_tile"]}),  # another CPU
        plan_build("native", **{**base, "compilers": {"cc": "gcc 13.1", "cxx": "g++ 13.1"}}),
        plan_build("native", extra_cmake_args=["-DGGML_BLAS=ON"], **base),
        plan_build("portable", **base),
        plan_build("native", version="0.3.35", **base),
    ]
    assert len({native.key, *(p.key for p in others)}) == 1 + len(others)
    assert len({native.folder, *(p.folder for p in others)}) == 1 + len(others)
    # a portable wheel is meant to move between machines: its key leaves the CPU out
    assert plan_build("portable", **{**base, "cpu": ["sse2"]}).key == others[3].key
    assert native.key == build_key(native.inputs)


def test_a_wheel_built_for_other_flags_or_another_cpu_is_not_reused(tmp_path):
    base = dict(home=tmp_path, cpu=["avx2", "fma"], compilers={"cc": "gcc 12.2", "cxx": "g++ 12.2"})
    plan = plan_build("native", **base)
    plan.folder.parent.mkdir(parents=True)
    built = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    built.write_bytes(b"PK wheel built for avx2+fma")
    wheel = store_wheel(plan, built, build_seconds=1.0)
    assert cached_wheel(plan) == wheel and read_manifest(plan.folder)["inputs"] == plan.inputs
    assert cached_wheel(plan_build("native", **{**base, "cpu": ["avx2", "fma", "amx_tile"]})) is None
    assert cached_wheel(plan_build("native", extra_cmake_args=["-DGGML_NATIVE=ON"], **base)) is None
    assert cached_wheel(plan_build("portable", **base)) is None
    wheel.write_bytes(b"PK a different file under the same name")  # damaged or swapped: not trusted
    assert cached_wheel(plan) is None


def test_the_build_command_runs_on_a_python_without_site_packages(tmp_path):
    """``python -S``: no site-packages at all, as on a fresh venv before `make setup` installs anything."""
    def plan(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-S", "-m", "kit.cli.llama", "plan", *args], capture_output=True,
                              text=True, env=_env(KIT_HOME=str(tmp_path)), cwd=ROOT, check=True, timeout=60)
        return json.loads(done.stdout)

    native = plan("--profile", "native")
    assert native["cached_wheel"] is None and native["folder"].startswith(str(tmp_path / "wheels"))
    # seed the cache with a "wheel" for exactly this machine's native build: the command finds it, and only it
    from kit.models.llama_build import plan_build as plan_here

    here = plan_here("native", home=tmp_path)
    assert here.key == native["key"]
    here.folder.parent.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    fake.write_bytes(b"PK")
    store_wheel(here, fake, build_seconds=None)
    assert plan("--profile", "native")["cached_wheel"] == str(here.folder / fake.name)
    assert plan("--profile", "native", "--cmake-arg=-DGGML_BLAS=ON")["cached_wheel"] is None
    assert plan("--profile", "portable")["cached_wheel"] is None


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
def test_installed_library_holds_no_amx_unless_the_os_enables_it():
    amx = check_amx()
    assert amx.library is not None and amx.library.name.startswith("libggml-cpu")
    assert amx.instructions is not None
    if not os_enables_amx():  # this machine: AMD EPYC, no AMX; Linux reports no XTILEDATA
        assert amx.instructions == 0, amx.describe()
    assert amx.ok


def _embedded() -> Path:
    from kit.models import resolve_model

    return resolve_model("smollm2-135m-instruct").path


def test_probe_answers_on_this_machine():
    result = probe_llama(_embedded())
    assert result.ok, (result.problem, result.output_tail)
    assert result.answer.strip() and result.report["version"] == "0.3.36" and result.returncode == 0


@pytest.mark.skipif(CC is None or os.uname().machine != "x86_64", reason="needs gcc on x86-64")
def test_probe_names_sigill_and_the_portable_fix(tmp_path):
    """A 'llama.cpp' that executes an illegal instruction as it loads (ud2 in a constructor): the child really
    dies with SIGILL, and the probe says so and names the portable build."""
    source = tmp_path / "trap.c"
    source.write_text("__attribute__((constructor)) static void trap(void) { __builtin_trap(); }\n")
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(tmp_path / "libllama.so"), str(source)], check=True)
    result = probe_llama(_embedded(), env=_env(LLAMA_CPP_LIB_PATH=str(tmp_path)))
    assert not result.ok and result.signal == "SIGILL" and result.returncode == -4
    assert "SIGILL" in result.problem and "LLAMA=portable" in result.fix and "--profile portable" in result.fix


def test_probe_names_a_library_that_cannot_load_or_is_damaged(tmp_path):
    """A copy of the package whose libllama.so is cut short, first on PYTHONPATH in the child: cut inside the ELF
    headers, dlopen refuses it (exit status 1); cut after them, the mapped file ends early and the child dies
    with SIGBUS (a half-written install)."""
    import llama_cpp

    package = Path(llama_cpp.__file__).parent
    copy = tmp_path / "llama_cpp"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("lib", "__pycache__"))
    (copy / "lib").mkdir()
    library = (package / "lib" / "libllama.so").read_bytes()
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    (copy / "lib" / "libllama.so").write_bytes(library[:64])
    result = probe_llama(_embedded(), env=env)
    assert not result.ok and result.signal is None and result.returncode == 1
    assert "Failed to load shared library" in result.problem and "--rebuild" in result.fix

    (copy / "lib" / "libllama.so").write_bytes(library[:4096])
    result = probe_llama(_embedded(), env=env)
    assert not result.ok and result.signal == "SIGBUS" and "died with SIGBUS" in result.problem
    assert "--rebuild" in result.fix
