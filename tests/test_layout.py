"""The project's layout promises: environment.yml mirrors pyproject, CI calls the README's test command."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT


def test_environment_yml_installs_this_checkout_with_pyproject_extras():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == pyproject["project"]["requires-python"]
    pip_lines = next(d["pip"] for d in deps if isinstance(d, dict))
    editable = next(line for line in pip_lines if line.startswith("-e ."))
    extras = set(re.search(r"\[(.*)\]", editable).group(1).split(","))
    assert extras <= set(pyproject["project"]["optional-dependencies"])
    makefile = (ROOT / "Makefile").read_text()
    make_extras = set(re.search(r"EXTRAS \?= (.*)", makefile).group(1).split(","))
    assert extras == make_extras, "environment.yml and `make setup` install the same extras"
    torch_pin = re.search(r"TORCH  \?= (\S+)", makefile).group(1)
    assert torch_pin in pip_lines, "the same PyTorch build"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"```(?:bash|sh)?\n(make test[^\n]*)\n```", readme).group(1)
    assert command in ci
