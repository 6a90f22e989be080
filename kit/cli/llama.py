"""``python -m kit.cli.llama`` (also ``kit llama``): build, install and probe llama.cpp for this machine.

Standard library only, so ``make setup`` can run it on a virtual environment that has nothing but pip:

    python -m kit.cli.llama install [--profile auto|native|portable|cuda|metal] [--rebuild]
    python -m kit.cli.llama probe [--gpu]
    python -m kit.cli.llama plan [--profile P]      # the build's key, CMake arguments and cached wheel, as JSON

``install`` builds the wheel once into ``$KIT_HOME/wheels/`` (see :mod:`kit.models.llama_build`), installs it with
``pip --no-deps`` and then runs the probe, when the kit's dependencies are there to run it. ``probe`` runs one tiny
inference on the embedded model in a child process and checks the library for AMX instructions; it exits 1 with
the signal's name and the fix when llama.cpp cannot run here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Sequence

from kit.errors import KitError, SetupError

PROBE_MODEL = "smollm2-135m-instruct"


def _say(message: str) -> None:
    print(f"[llama.cpp] {message}", file=sys.stderr, flush=True)


def _extra_args(args: argparse.Namespace) -> list[str]:
    """``--cmake-arg`` values, after those of ``$CMAKE_ARGS`` (llama-cpp-python's documented variable)."""
    return [*shlex.split(os.environ.get("CMAKE_ARGS", "")), *(args.cmake_arg or [])]


def cmd_install(args: argparse.Namespace) -> int:
    from kit.models.llama_build import ensure_installed

    ensure_installed(args.profile, rebuild=args.rebuild, extra_cmake_args=_extra_args(args), source=args.source,
                     on_step=_say)
    if args.no_probe:
        return 0
    try:
        from kit.models.catalog import resolve_model

        model = resolve_model(PROBE_MODEL).path
    except (ImportError, KitError):
        _say("probe deferred: it runs once the kit's dependencies are installed (`python -m kit.cli.llama probe`)")
        return 0
    return _probe(model, n_gpu_layers=0)


def cmd_probe(args: argparse.Namespace) -> int:
    try:
        from kit.models.catalog import resolve_model

        model = resolve_model(PROBE_MODEL).path
    except ImportError as exc:
        raise SetupError(f"the kit's dependencies are not installed ({exc})", where="probe",
                         fix="run `make setup` (or `pip install -e .` after `python -m kit.cli.llama install`)") from None
    return _probe(model, n_gpu_layers=-1 if args.gpu else 0)


def _probe(model: os.PathLike[str], *, n_gpu_layers: int) -> int:
    from kit.models.llama_probe import check_amx, probe_llama

    result = probe_llama(model, n_gpu_layers=n_gpu_layers)
    if not result.ok:
        print(f"error: {result.problem}\n{result.output_tail}\nFix: {result.fix}", file=sys.stderr)
        return 1
    report = result.report
    _say(f"probe: {PROBE_MODEL} answered in {result.seconds:.1f} s (llama-cpp-python {report.get('version')}, "
         f"GPU offload {'yes' if report.get('gpu_offload') else 'no'})")
    if n_gpu_layers and not report.get("gpu_offload"):
        print("error: the probe asked for GPU layers, but this build has no GPU support. "
              "Fix: `make setup LLAMA=cuda` (or `python -m kit.cli.llama install --profile cuda`)", file=sys.stderr)
        return 1
    amx = check_amx()
    if not amx.ok:
        print(f"error: {amx.describe()}: it would die with SIGILL at the first AMX instruction. Fix: "
              "`make setup LLAMA=native` (or `python -m kit.cli.llama install --profile native --rebuild`)",
              file=sys.stderr)
        return 1
    _say(amx.describe())
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from kit.models.llama_build import cached_wheel, installed_from, plan_build

    plan = plan_build(args.profile, extra_cmake_args=_extra_args(args))
    wheel = cached_wheel(plan)
    current = installed_from()
    print(json.dumps({
        "profile": plan.profile, "key": plan.key, "folder": str(plan.folder), "cmake_args": list(plan.cmake_args),
        "cached_wheel": str(wheel) if wheel else None, "installed_from": str(current) if current else None,
        "installed_is_this_build": current is not None and current == plan.folder, "inputs": plan.inputs,
    }, indent=2))
    return 0


def _add_commands(sub: argparse._SubParsersAction) -> None:
    def profile(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="auto", help="auto (default: native, metal on Apple Silicon), native, "
                                                         "portable, cuda or metal")
        p.add_argument("--cmake-arg", action="append", metavar="ARG",
                       help="one more CMake argument after $CMAKE_ARGS, part of the cache key "
                            "(write --cmake-arg=-DNAME=VALUE)")

    p = sub.add_parser("install", help="build the wheel once per machine and profile, install it, probe it")
    profile(p)
    p.add_argument("--rebuild", action="store_true", help="compile again even when the cache has this build")
    p.add_argument("--source", help="a local llama-cpp-python sdist to build from (default: PyPI)")
    p.add_argument("--no-probe", dest="no_probe", action="store_true", help="skip the probe after installing")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("probe", help="one tiny inference in a child process; names the signal and fix if it dies")
    p.add_argument("--gpu", action="store_true", help="offload every layer to the GPU")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("plan", help="the build's key, CMake arguments and cached wheel, as JSON")
    profile(p)
    p.set_defaults(func=cmd_plan)


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("llama", help="build, install and probe llama.cpp for this machine")
    _add_commands(p.add_subparsers(dest="llama_command", required=True, metavar="COMMAND"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.cli.llama", description=__doc__.splitlines()[0])
    _add_commands(parser.add_subparsers(dest="llama_command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
