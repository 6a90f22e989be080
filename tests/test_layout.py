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


# The kit's layers, lowest first: a package imports only from layers below its own (and from itself).
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(f"kit.{name}" for name in layer.split()) for layer in (
    "errors columns",                               # the kit's errors and column names: import nothing of the kit
    "paths util format records progress",           # small helpers every layer may use
    "stats economics models",                       # statistics, money, model files and hardware
    "arms",                                         # the ways of answering (the stand-in server too)
    "tasks",                                        # task types, loading, prompts, scoring
    "run finetune privacy",                         # the runner and store, training, personal data
    "judge cascade",                                # built on the runner and on the statistics
    "decision",                                     # pure rules over typed facts
    "experiment",                                   # the experiment's schema
    "pipeline",                                     # the run folder and the stages, in flow order
    "report",                                       # views, plots, rendering
    "cli",                                          # the command line: the only layer on top
))


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_package_has_a_layer():
    placed = set().union(*LAYERS)
    unplaced = sorted({_package(m) for m in _kit_imports() if m != "kit"} - placed)
    assert not unplaced, f"give these a place in LAYERS: {unplaced}"


def test_imports_only_run_down_the_layers():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    wrong = []
    for module, imports in _kit_imports().items():
        here = _package(module)
        for target in imports:
            there = _package(target)
            if target == "kit" or there == here:
                continue
            if layer[there] >= layer[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports that run up or across the layers:\n" + "\n".join(sorted(wrong))


def test_decision_is_pure():
    """kit.decision takes typed facts and returns a typed verdict: no pandas, no files, no network, no printing."""
    import ast

    tree = ast.parse((ROOT / "kit" / "decision.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"pandas", "numpy", "os", "pathlib", "json", "sqlite3", "subprocess", "urllib", "shutil",
                           "socket", "requests", "httpx"}, imported
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"open", "print", "input", "exec", "eval"}, calls


def test_make_test_runs_the_doctests_of_the_package():
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "kit" in pytest_ini["testpaths"] and "--doctest-modules" in pytest_ini["addopts"]
