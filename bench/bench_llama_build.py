"""The kit's native llama.cpp build (GGML_NATIVE=OFF, -march=native minus AMX) against a plain GGML_NATIVE=ON
build, side by side in one run: items/s of the kit's llama_cpp arm on SNIPS and generated tokens/s, per second of
wall time and per second of the process's CPU time (which other jobs on a shared machine disturb far less).

    .venv/bin/python bench/bench_llama_build.py --items 40 --rounds 6

Each build is unpacked from its wheel into a temporary folder and loaded in its own child process (first on
PYTHONPATH, so the installed llama-cpp-python is not used); the rounds alternate between the two builds so that
load from other jobs falls on both. The kit's wheel is the cached one of ``kit.models.llama_build``'s native
profile (``python -m kit.cli.llama install`` builds it); the plain one is built once into its own folder of the
kit's wheel cache (``--build-plain``: about 20 minutes of CPU), or given with ``--plain-wheel``.
It prints, per build, the AMX instructions in libggml-cpu, whether the two libraries hold the same instructions,
the CPU features llama.cpp reports, then the figures per round and the median ratio kit/plain (goal: 1.00x on a
CPU without AMX — nothing but AMX is left out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from kit.models.llama_build import BuildPlan, build_key, build_wheel, cached_wheel, plan_build, wheels_dir
from kit.models.llama_probe import amx_instruction_count

ROOT = Path(__file__).resolve().parents[1]
WORKER = r"""
import json, sys, tempfile, time
from pathlib import Path
import llama_cpp
assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__
from kit.arms import get_arm
from kit.models import resolve_model
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.tasks import load_task

items_n, threads = int(sys.argv[2]), int(sys.argv[3])
task = load_task("snips-intents")
items = list(task.test[:items_n])
with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.sqlite") as store, \
        get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=4096, n_threads=threads) as arm:
    run_arm(task, arm, store=store, items=items[:2], max_tokens=16, progress=False)  # warm up, load the model
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_arm(task, arm, store=store, items=items[2:], max_tokens=16, progress=False)
    n = len(items) - 2
    items_s, items_cpu = n / (time.perf_counter() - wall), n / (time.process_time() - cpu)
    assert summary.errors == 0
llm = llama_cpp.Llama(model_path=str(resolve_model("smollm2-135m-instruct").path), n_ctx=512, n_threads=threads,
                      seed=0, verbose=False)
wall, cpu = time.perf_counter(), time.process_time()
out = llm.create_completion("Once upon a time", max_tokens=128, temperature=0.0)
tokens = out["usage"]["completion_tokens"]
tokens_s, tokens_cpu = tokens / (time.perf_counter() - wall), tokens / (time.process_time() - cpu)
info = llama_cpp.llama_print_system_info().decode()
print("RESULT " + json.dumps({"items_s": items_s, "tokens_s": tokens_s, "items_cpu": items_cpu,
                              "tokens_cpu": tokens_cpu, "system_info": info}))
"""


def plain_plan() -> BuildPlan:
    """A plain ``pip install llama-cpp-python`` build (no CMAKE_ARGS: GGML_NATIVE=ON), keyed like the kit's."""
    native = plan_build("native")
    inputs = {**native.inputs, "profile": "plain-native", "cmake_args": []}
    key = build_key(inputs)
    return BuildPlan("plain-native", native.version, (), inputs, key, wheels_dir() / f"bench-plain-native-{key}")


def instructions(library: Path) -> list[str] | None:
    """The library's disassembly without addresses and symbol comments (which move with .rodata: paths, strings),
    or None without objdump."""
    if shutil.which("objdump") is None:
        return None
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=True).stdout
    lines = (re.sub(r"#.*$", "", re.sub(r"^\s*[0-9a-f]+:\s*", "", line)) for line in text.splitlines()[3:])
    return [re.sub(r"[0-9a-f]{4,}", "ADDR", line).strip() for line in lines]


def unpack(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(dest)
    return dest


def run_once(folder: Path, items: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", WORKER, str(folder), str(items), str(threads)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1800, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"the build in {folder} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40, help="SNIPS items per round (2 more warm up)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: spinning OpenMP threads on a shared machine distort the figures)")
    parser.add_argument("--kit-wheel", type=Path, help="default: the cached wheel of the native profile")
    parser.add_argument("--plain-wheel", type=Path, help="default: the cached plain build (see --build-plain)")
    parser.add_argument("--build-plain", action="store_true", help="build the plain wheel if it is not cached")
    args = parser.parse_args()

    kit_wheel = args.kit_wheel or cached_wheel(plan_build("native"))
    if kit_wheel is None:
        raise SystemExit("no cached native build: run `python -m kit.cli.llama install` first, or pass --kit-wheel")
    plain = plain_plan()
    plain_wheel = args.plain_wheel or cached_wheel(plain) or (build_wheel(plain) if args.build_plain else None)
    if plain_wheel is None:
        raise SystemExit("no plain build cached: pass --build-plain (about 10 minutes on 2 cores) or --plain-wheel")

    with tempfile.TemporaryDirectory() as tmp:
        builds = {"kit native (no AMX)": unpack(kit_wheel, Path(tmp) / "kit"),
                  "plain GGML_NATIVE=ON": unpack(plain_wheel, Path(tmp) / "plain")}
        for name, folder in builds.items():
            amx = amx_instruction_count(folder / "llama_cpp" / "lib" / "libggml-cpu.so")
            print(f"{name}: {amx} AMX instructions in libggml-cpu.so")
        kit_code, plain_code = (instructions(f / "llama_cpp" / "lib" / "libggml-cpu.so") for f in builds.values())
        if kit_code is not None and plain_code is not None:
            same = kit_code == plain_code
            differ = sum(a != b for a, b in zip(kit_code, plain_code)) + abs(len(kit_code) - len(plain_code))
            print(f"libggml-cpu.so instructions: {'identical' if same else f'{differ} lines differ'} "
                  f"({len(kit_code):,} lines of disassembly, addresses left out)")
        results: dict[str, list[dict]] = {name: [] for name in builds}
        for round_no in range(1, args.rounds + 1):
            order = list(builds) if round_no % 2 else list(reversed(builds))
            for name in order:
                results[name].append(run_once(builds[name], args.items, args.threads))
            kit, plain_r = (results[n][-1] for n in builds)
            print(f"round {round_no}: kit {kit['items_s']:.2f} items/s ({kit['items_cpu']:.2f} per CPU-s), "
                  f"{kit['tokens_s']:.1f} tok/s ({kit['tokens_cpu']:.1f}) | plain {plain_r['items_s']:.2f} items/s "
                  f"({plain_r['items_cpu']:.2f}), {plain_r['tokens_s']:.1f} tok/s ({plain_r['tokens_cpu']:.1f})",
                  flush=True)
        for name in builds:
            print(f"{name}: {results[name][0]['system_info'].strip()}")
        kit_runs, plain_runs = results.values()
        for metric, what in (("items_s", "items/s"), ("items_cpu", "items per CPU-second"), ("tokens_s", "tokens/s"),
                             ("tokens_cpu", "tokens per CPU-second")):
            ratios = [k[metric] / p[metric] for k, p in zip(kit_runs, plain_runs)]
            print(f"median ratio kit/plain, {what}: {statistics.median(ratios):.2f}x "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; goal 1.00x without AMX)")

if __name__ == "__main__":
    main()
