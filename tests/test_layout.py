"""The project's layout promises: environment.yml mirrors pyproject, CI calls the README's test command."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT


def test_environment_yml_sets_up_through_make_setup():
    """conda gives the toolchain; `make setup` installs the kit, so llama-cpp-python is always built by the kit."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    text = (ROOT / "environment.yml").read_text()
    deps = yaml.safe_load(text)["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == pyproject["project"]["requires-python"]
    assert {"pip", "make", "cmake", "cxx-compiler"} <= {d.split()[0] for d in deps if isinstance(d, str)}
    assert not any(isinstance(d, dict) for d in deps), "no pip section: pip would compile llama-cpp-python itself"
    assert 'make setup VENV="$CONDA_PREFIX"' in text


def test_make_setup_builds_llama_cpp_before_pip_installs_the_kit():
    from kit.models.llama_build import VERSION

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"llama-cpp-python=={VERSION}" in pyproject["project"]["dependencies"]
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP): "):].split("\n\n")[0].splitlines()
    steps = [line.strip() for line in recipe[1:]]
    build = steps.index("$(PY) -m kit.cli.llama install --profile $(LLAMA) --no-probe")
    kit = next(i for i, s in enumerate(steps) if "-e '.[$(EXTRAS)]'" in s)
    assert build < kit and "--only-binary llama-cpp-python" in steps[kit]
    assert steps[kit + 1] == "$(PY) -m kit.cli.llama probe"
    assert re.search(r"^STAMP .*-\$\(LLAMA\)$", makefile, re.M), "another profile is another setup"
    assert "force-reinstall" not in (ROOT / "README.md").read_text(), "GPU builds go through make setup too"


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
