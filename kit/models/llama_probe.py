"""Does the installed llama.cpp run on this machine? One tiny inference in a child process, and a look at the library.

A llama.cpp built for instructions this machine (or its OS) does not execute dies with SIGILL, taking the process
with it; so the probe loads the model and generates a few tokens in a child process, and names the signal and the
fix when the child dies. Standard library only, like :mod:`kit.models.llama_build`.

It also counts AMX instructions in ``libggml-cpu`` (objdump) and asks Linux whether it lets processes use AMX
(``arch_prctl(ARCH_GET_XCOMP_SUPP)``): a build with AMX instructions runs only where both CPU and OS enable them.

>>> signal_name(-4)
'SIGILL'
>>> result = probe_llama("SmolLM2-135M-Instruct.Q4_1.gguf")   # doctest: +SKIP
>>> result.ok, result.seconds                                     # doctest: +SKIP
(True, 0.9)
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kit.models.llama_build import setup_command

MARK = "KIT_PROBE "
# One short completion: load, evaluate a prompt, sample a few tokens; printed as one JSON line after MARK. One
# thread: the probe checks that the code runs, and spinning OpenMP threads on a busy machine cost seconds.
PROBE_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, n_batch=32, n_gpu_layers=int(sys.argv[2]), seed=0,
                      n_threads=1, n_threads_batch=1, verbose=False)
out = llm.create_completion("1, 2, 3, 4,", max_tokens=3, temperature=0.0)
info = llama_cpp.llama_print_system_info()
print("KIT_PROBE " + json.dumps({
    "answer": out["choices"][0]["text"], "tokens": out["usage"]["completion_tokens"],
    "version": getattr(llama_cpp, "__version__", None), "library": llama_cpp.llama_cpp._base_path.as_posix(),
    "system_info": info.decode("utf-8", "replace").strip() if isinstance(info, bytes) else str(info),
    "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()), "seconds": time.perf_counter() - start,
}), flush=True)
llm.close()
"""
AMX_PATTERN = re.compile(r"\b(tileloadd|tileloaddt1|tilezero|tilestored|tdpb[su][su]d|tdpbf16ps|ldtilecfg|sttilecfg)\b")
ARCH_GET_XCOMP_SUPP = 0x1021  # linux/arch/x86/include/uapi/asm/prctl.h
XFEATURE_XTILEDATA = 18  # the AMX tile data state component
SYS_ARCH_PRCTL = 158  # x86-64 syscall number


def signal_name(returncode: int | None) -> str | None:
    """The signal's name for a child's negative return code (``-4`` → ``'SIGILL'``), else None."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def crash_fix(signal_or_none: str | None, *, env: Mapping[str, str] | None = None) -> str:
    """The likely fix for a llama.cpp process that died (``'SIGILL'``) or could not load or run (None);
    ``env`` is the process's environment (default: this one's).

    >>> "LLAMA=portable" in crash_fix("SIGILL")
    True
    """
    if signal_or_none == "SIGILL":
        return ("this llama.cpp build runs CPU instructions that this machine or its OS does not allow (an AMX or "
                f"AVX-512 build from another machine, or pip's own native build): rebuild it with "
                f"{setup_command('portable')}; `kit doctor` checks the result")
    if signal_or_none == "SIGKILL":
        return "the process was killed, most likely by the out-of-memory killer: free memory or use a smaller model"
    if signal_or_none:
        return (f"llama.cpp crashed ({signal_or_none}): rebuild it with {setup_command('native', rebuild=True)}, "
                f"or {setup_command('portable')}; `kit doctor` checks the result")
    if (os.environ if env is None else env).get("LLAMA_CPP_LIB_PATH"):
        return ("LLAMA_CPP_LIB_PATH points llama-cpp-python at another library: unset it, or point it at a working "
                f"build; else reinstall with {setup_command('native', rebuild=True)}")
    return f"reinstall llama.cpp for this machine with {setup_command('native', rebuild=True)}"


@dataclass(frozen=True)
class ProbeResult:
    """How the probe went. ``signal`` names the signal the child died of; ``problem`` and ``fix`` are empty when ok."""

    ok: bool
    seconds: float
    returncode: int | None
    signal: str | None
    problem: str
    fix: str
    answer: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # version, library, system_info, gpu_offload
    output_tail: str = ""


def probe_llama(model_path: str | Path, *, n_gpu_layers: int = 0, timeout: float = 180.0,
                env: Mapping[str, str] | None = None, python: str = sys.executable) -> ProbeResult:
    """Load ``model_path`` with the installed llama-cpp-python in a child process and generate three tokens.

    ``env`` replaces the child's environment (for example to point ``LLAMA_CPP_LIB_PATH`` elsewhere).
    """
    cmd = [python, "-c", PROBE_SCRIPT, str(model_path), str(n_gpu_layers)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
                              env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        tail = _tail((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout)
        return ProbeResult(False, time.perf_counter() - start, None, None,
                           f"llama.cpp did not answer within {timeout:.0f} s", "the machine may be overloaded; "
                           "run `kit doctor` again when it is idle, else rebuild: " + setup_command("portable"),
                           output_tail=tail)
    seconds = time.perf_counter() - start
    output = (done.stdout or "") + (done.stderr or "")
    report = _report(done.stdout or "")
    if done.returncode == 0 and report is not None:
        return ProbeResult(True, seconds, 0, None, "", "", str(report.get("answer", "")), report, _tail(output))
    name = signal_name(done.returncode)
    if name:
        problem = f"the llama.cpp process died with {name} ({_describe(name)})"
    else:
        problem = f"llama.cpp could not load or run (exit status {done.returncode}): {_last_error(output)}"
    return ProbeResult(False, seconds, done.returncode, name, problem, crash_fix(name, env=env),
                       output_tail=_tail(output))


def _report(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            try:
                return json.loads(line[len(MARK):])
            except ValueError:
                return None
    return None


def _describe(name: str) -> str:
    try:
        return signal.strsignal(signal.Signals[name]) or name
    except (KeyError, ValueError):
        return name


def _last_error(output: str) -> str:
    """The exception line of a Python traceback, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:400]


def _tail(text: str | None, n: int = 12) -> str:
    return "\n".join((text or "").splitlines()[-n:])


def llama_library_dir() -> Path | None:
    """Where the installed llama-cpp-python loads its libraries from (``$LLAMA_CPP_LIB_PATH`` when set), found
    without importing it."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def cpu_library(lib_dir: Path | None = None) -> Path | None:
    """ggml's CPU backend (``libggml-cpu.so`` / ``.dylib``) in the installed package."""
    folder = lib_dir or llama_library_dir()
    if folder is None:
        return None
    for name in ("libggml-cpu.so", "libggml-cpu.dylib", "ggml-cpu.dll"):
        if (folder / name).is_file():
            return folder / name
    return None


def amx_instruction_count(library: Path) -> int | None:
    """How many AMX instructions (tileloadd, tilezero, tdpb*, ...) ``library`` holds; None without objdump."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return None
    count = 0
    with subprocess.Popen([objdump, "-d", "--no-show-raw-insn", str(library)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if AMX_PATTERN.search(line):
                count += 1
    return count if proc.returncode == 0 else None


def os_enables_amx() -> bool:
    """True when this is x86-64 Linux and the kernel lets processes use the AMX tile state
    (``arch_prctl(ARCH_GET_XCOMP_SUPP)`` lists XTILEDATA). False elsewhere, and on kernels before 5.16."""
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mask = ctypes.c_uint64(0)
        if libc.syscall(SYS_ARCH_PRCTL, ARCH_GET_XCOMP_SUPP, ctypes.byref(mask)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(mask.value >> XFEATURE_XTILEDATA & 1)


@dataclass(frozen=True)
class AmxCheck:
    """AMX instructions in ggml's CPU library against what the OS allows. ``instructions`` is None when objdump or
    the library is missing (then nothing is known)."""

    library: Path | None
    instructions: int | None
    os_enables: bool

    @property
    def ok(self) -> bool:
        return not self.instructions or self.os_enables

    def describe(self) -> str:
        allowed = "this OS enables AMX" if self.os_enables else "this OS does not enable AMX"
        if self.library is None:
            return "llama.cpp's CPU library was not found"
        if self.instructions is None:
            return f"{self.library.name}: AMX instructions not counted (objdump is missing); {allowed}"
        return f"{self.library.name}: {self.instructions} AMX instructions; {allowed}"


def check_amx(lib_dir: Path | None = None) -> AmxCheck:
    """Count AMX instructions in the installed ``libggml-cpu`` and ask the OS whether it runs them.

    >>> check_amx().ok      # doctest: +SKIP
    True
    """
    library = cpu_library(lib_dir)
    return AmxCheck(library, amx_instruction_count(library) if library else None, os_enables_amx())
