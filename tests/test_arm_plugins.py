"""A new arm backend shipped as its own package: found through the ``kit.arms`` entry-point group, with 0 files
of the kit changed; its typed options are checked before any work.

The package is written by the test into a folder — a module and a ``.dist-info`` with ``entry_points.txt``, what
``pip install`` leaves — and put on ``PYTHONPATH`` of a fresh Python process (the test's own process keeps its
entry points as they are). There it is listed, an experiment naming it loads (and a misspelt option of it is
refused at load), and ``kit run`` answers a task's items with it into a real SQLite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

PLUGIN = '''
"""An arm that answers the first label (or echoes the prompt's last words): a backend in its own package."""

from kit.arms import Arm, ArmOptions, Backend, Completion, Request
from kit.arms.options import Field, parse_options


class EchoOptions(ArmOptions):
    prefix: str = Field("", description="put before every free-text answer")
    concurrency: int = Field(1, ge=1)


class EchoArm(Arm):
    def __init__(self, name, **options):
        self.name, self.spec = name, f"echo:{name}"
        self.options = parse_options(EchoOptions, self.spec, options)
        self.concurrency = self.options.concurrency

    def complete(self, request: Request) -> Completion:
        text = request.choices[0] if request.choices else self.options.prefix + request.messages[-1]["content"][-20:]
        return Completion(text=text, prompt_tokens=1, completion_tokens=1, latency_s=0.001)

    def identity(self):
        return {"backend": "echo", "model": self.name, "prefix": self.options.prefix}


BACKEND = Backend("echo", EchoArm, options=EchoOptions, in_process=True)
'''

BROKEN = '''
raise ImportError("kit_broken_arm needs libfoo")
'''


def _install(folder, name: str, module: str, source: str, entry: str) -> None:
    """What pip leaves in site-packages: the module, and its dist-info with the entry point."""
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[kit.arms]\n{entry} = {module}:BACKEND\n", encoding="utf-8")


@pytest.fixture
def plugins(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    _install(folder, "kit-echo-arm", "kit_echo_arm", PLUGIN, "echo")
    _install(folder, "kit-broken-arm", "kit_broken_arm", BROKEN, "broken")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    return folder, env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_a_backend_in_its_own_package_is_listed_checked_and_used(plugins, tmp_path):
    _, env = plugins
    listed = _python('''
        import json
        from kit.arms import backend_of, check_options, registered_backends
        from kit.errors import ConfigError
        from kit.experiment import Experiment, Where
        data = {"tasks": {"snips-intents": 3}, "reference": "Echo",
                "options": [{"name": "Echo", "arm": "echo:first", "options": {"prefix": "> "},
                             "machine": {"price_per_hour": 0.1}}]}
        exp = Experiment.from_mapping(data, source="exp.yaml")
        data["options"][0]["options"] = {"prefx": "> "}
        try:
            Experiment.from_mapping(data, source="exp.yaml")
            refused = None
        except ConfigError as exc:
            refused = str(exc)
        try:
            check_options("echo:first", {"concurrency": 0})
        except ConfigError as exc:
            bad_value = str(exc)
        print(json.dumps({"backends": registered_backends(), "where": exp.option("Echo").where.value,
                          "refused": refused, "bad_value": bad_value}))
    ''', env)
    assert listed.returncode == 0, listed.stderr
    seen = json.loads(listed.stdout)
    assert {"echo", "llama_cpp", "lora", "openai", "anthropic", "replay"} <= set(seen["backends"])
    assert seen["where"] == "self-hosted"  # the backend's record says it runs in process: no `runs:` needed
    assert "unknown echo option prefx" in seen["refused"] and "did you mean prefix?" in seen["refused"]
    assert "option concurrency=0 must be at least 1" in seen["bad_value"]

    store = tmp_path / "store.sqlite"
    run = subprocess.run([sys.executable, "-m", "kit.cli", "run", "--task", "snips-intents", "--arm", "echo:first",
                          "--limit", "3", "--store", str(store), "--json"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)[0]
    assert (row["arm"], row["items"], row["new_calls"], row["errors"]) == ("echo:first", 3, 3, 0)


def test_a_broken_plugin_is_named_and_does_not_stop_the_others(plugins):
    _, env = plugins
    out = _python('''
        from kit.arms import backend_of, registered_backends
        from kit.errors import ArmError
        assert "broken" in registered_backends()
        assert backend_of("llama_cpp:x").in_process
        try:
            backend_of("broken:x")
        except ArmError as exc:
            print(exc)
    ''', env)
    assert out.returncode == 0, out.stderr
    assert "the arm backend 'broken' from the package kit-broken-arm could not be loaded" in out.stdout
    assert "ImportError: kit_broken_arm needs libfoo" in out.stdout and "pip install -U kit-broken-arm" in out.stdout


def test_the_kits_own_backends_are_entry_points_of_its_package():
    """No hand-kept list: the built-ins are declared in pyproject.toml like any plugin's."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["kit.arms"]
    assert set(declared) == {"llama_cpp", "lora", "openai", "anthropic", "replay"}
    from kit.arms import backend_of

    for name, target in declared.items():
        module, _, attr = target.partition(":")
        assert getattr(__import__(module, fromlist=[attr]), attr) is backend_of(f"{name}:x")
    assert not (ROOT / "kit" / "arms" / "__init__.py").read_text().count("BUILTIN_MODULES")
