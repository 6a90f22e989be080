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


def _kit_imports() -> dict[str, set[str]]:
    """Module -> the kit modules it imports (at any level of the file), from the source."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in (ROOT / "kit").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kit"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("kit"))
        graph[name] = found
    return graph


def test_only_the_cli_sits_on_top():
    """Nothing imports kit.cli except the cli itself; only the report layer (and the cli) import kit.report."""
    for module, imports in _kit_imports().items():
        if not module.startswith("kit.cli"):
            assert not any(i.startswith("kit.cli") for i in imports), f"{module} imports the command line"
        if not module.startswith(("kit.cli", "kit.report")):
            assert not any(i.startswith("kit.report") for i in imports), f"{module} imports the report layer"


def test_no_import_cycles_between_packages():
    """Between the kit's packages (tasks, arms, run, stats, ...) imports flow one way."""
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    edges: dict[str, set[str]] = {}
    for module, imports in _kit_imports().items():
        for target in imports:
            if package(target) != package(module) and target != "kit":
                edges.setdefault(package(module), set()).add(package(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in edges if reaches(p, p, {p}))
    assert not cycles, f"packages in an import cycle: {cycles}"
