"""``kit doctor``'s checks of this machine: does llama.cpp load and answer, is its build the kit's for this CPU,
GPU offload (when asked), Chromium for the report tests, disk for models, which API keys are set.

Each check returns a :class:`Check` row — ``ok``, ``warn`` or ``fail``, a detail and the fix — and never raises:
a broken machine is what the doctor is for. The stand-in server's check lives with the server
(:mod:`kit.arms.standin`); ``kit doctor`` (``kit.cli.doctor``) runs them all and prints the table.

>>> [c.name for c in run_checks(machine_checks())]             # doctest: +SKIP
['llama.cpp answers', 'llama.cpp build', 'chromium', 'disk · KIT_HOME', 'disk · HF cache', 'API keys']
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from kit.errors import KitError
from kit.models import llama_build
from kit.models.llama_probe import ProbeResult, check_amx, probe_llama

PROBE_MODEL = "smollm2-135m-instruct"
API_KEYS: tuple[str, ...] = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY", "HF_TOKEN")
DISK_FAIL_BYTES = 1 << 30  # below this nothing fits, not even the embedded models' working files
DISK_WARN_BYTES = 10 << 30  # a 7B model at Q4_K_M is about 4.4 GB, and fine-tuning one needs ~15 GB more
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser")


@dataclass(frozen=True)
class Check:
    """One row of ``kit doctor``: ``status`` is ``ok``, ``warn`` (works, with a caveat) or ``fail``."""

    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        return {"check": row["name"], "ok": row["status"], "detail": row["detail"], "fix": row["fix"]}


def llama_probe(*, n_gpu_layers: int = 0, env: dict[str, str] | None = None) -> ProbeResult:
    """The probe on the embedded model (a failure to find the model is reported as the probe's failure)."""
    from kit.models.catalog import resolve_model

    try:
        model = resolve_model(PROBE_MODEL).path
    except KitError as exc:
        return ProbeResult(False, 0.0, None, None, f"the probe's model is missing: {exc.problem}", exc.fix or "")
    return probe_llama(model, n_gpu_layers=n_gpu_layers, env=env)


def check_llama(*, env: dict[str, str] | None = None) -> Check:
    """llama.cpp loads the embedded model and answers, in a child process (the signal named if it dies)."""
    result = llama_probe(env=env)
    if not result.ok:
        return Check("llama.cpp answers", "fail", result.problem, result.fix)
    report = result.report
    features = _cpu_features(str(report.get("system_info", "")))
    return Check("llama.cpp answers", "ok",
                 f"{PROBE_MODEL} answered in {result.seconds:.1f} s · llama-cpp-python {report.get('version')}"
                 + (f" · {features}" if features else ""))


def _cpu_features(system_info: str) -> str:
    """``AVX2 AVX512 FMA ...``: the features llama.cpp reports as 1."""
    names = [part.split("=")[0].strip() for part in system_info.replace("CPU :", "|").split("|")
             if part.strip().endswith("= 1")]
    return " ".join(n for n in names if n)


def check_build() -> Check:
    """The installed build: the kit's own wheel for this machine (not pip's), and no AMX the OS does not run."""
    amx = check_amx()
    version = llama_build.installed_version()
    if version is None:
        return Check("llama.cpp build", "fail", "llama-cpp-python is not installed",
                     f"run {llama_build.setup_command('native')}")
    if not amx.ok:
        return Check("llama.cpp build", "fail", f"{amx.describe()}: it dies with SIGILL at the first AMX instruction",
                     f"rebuild it: {llama_build.setup_command('native', rebuild=True)}")
    folder = llama_build.installed_from()
    manifest = llama_build.read_manifest(folder) if folder else None
    if not manifest:
        return Check("llama.cpp build", "warn", f"llama-cpp-python {version} was not installed from the kit's wheel "
                     f"cache (pip built it, or it came from elsewhere); {amx.describe()}",
                     f"install the kit's build: {llama_build.setup_command('native')}")
    inputs = manifest.get("inputs", {})
    profile = str(inputs.get("profile"))
    if "cpu" in inputs and inputs["cpu"] != llama_build.cpu_features():
        return Check("llama.cpp build", "warn", f"profile {profile} was built for another CPU (its feature flags "
                     f"differ from this one's); {amx.describe()}",
                     f"rebuild it here: {llama_build.setup_command(profile)}")
    return Check("llama.cpp build", "ok", f"the kit's {profile} build {folder.name if folder else ''} · "
                 f"{amx.describe()}")


def check_gpu() -> Check:
    """GPU offload: the build supports it and every layer of the embedded model runs on the GPU."""
    from kit.models.hardware import check_gpu_offload, gpus

    try:
        check_gpu_offload(-1)
    except KitError as exc:
        return Check("GPU offload", "fail", exc.problem, exc.fix or "")
    result = llama_probe(n_gpu_layers=-1)
    if not result.ok:
        return Check("GPU offload", "fail", result.problem, result.fix)
    found = gpus()
    name = found[0]["name"] if found else "the GPU"
    return Check("GPU offload", "ok", f"{PROBE_MODEL} answered with every layer on {name} in {result.seconds:.1f} s")


def check_chromium() -> Check:
    """Chromium opens the rendered report in the report tests (the kit itself does not need it)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return Check("chromium", "ok", path)
    return Check("chromium", "warn", "not found: the report tests open the rendered report in headless Chromium",
                 "apt-get install chromium (Debian/Ubuntu; `make test` installs it when run as root)")


def check_disk() -> list[Check]:
    """Free space where models go: the kit's cache (``$KIT_HOME``) and the Hugging Face hub cache."""
    from kit.models.catalog import hub_cache_dir
    from kit.paths import kit_home

    rows = []
    for label, folder in (("disk · KIT_HOME", kit_home()), ("disk · HF cache", hub_cache_dir())):
        existing = _existing_parent(folder)
        free = shutil.disk_usage(existing).free
        detail = f"{free / 2**30:.1f} GiB free at {folder}"
        if free < DISK_FAIL_BYTES:
            rows.append(Check(label, "fail", detail, "free disk space, or point the cache elsewhere "
                              "(KIT_HOME, HF_HOME)"))
        elif free < DISK_WARN_BYTES:
            rows.append(Check(label, "warn", detail + ": enough for small models, not for a 7B model and its "
                              "fine-tuning", "free disk space, or point the cache elsewhere (KIT_HOME, HF_HOME)"))
        else:
            rows.append(Check(label, "ok", detail))
    return rows


def _existing_parent(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_keys() -> Check:
    """Which API keys are set — names only, never a value."""
    present = [name for name in API_KEYS if os.environ.get(name)]
    absent = [name for name in API_KEYS if name not in present]
    detail = f"set: {', '.join(present) or 'none'}; not set: {', '.join(absent) or 'none'}"
    if not any(name in present for name in API_KEYS[:3]):
        detail += " (the report's hosted-API side is the local stand-in)"
    return Check("API keys", "ok", detail)


CheckFunction = Callable[[], "Check | list[Check]"]


def machine_checks(*, gpu: bool = False) -> list[CheckFunction]:
    """Every machine check, in the order ``kit doctor`` shows them (GPU offload only when ``gpu``)."""
    return [check_llama, check_build, *([check_gpu] if gpu else []), check_chromium, check_disk, check_keys]


def run_checks(checks: Sequence[CheckFunction]) -> list[Check]:
    """Run the checks side by side (the slow ones wait on child processes) and return their rows in order.

    >>> [c.status for c in run_checks([check_keys])]
    ['ok']
    """
    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        results = list(pool.map(lambda check: check(), checks))
    return [row for result in results for row in (result if isinstance(result, list) else [result])]
