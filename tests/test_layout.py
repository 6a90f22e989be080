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
    "judge cascade labels",                         # built on the runner, the statistics and the store
    "decision",                                     # pure rules over typed facts
    "experiment",                                   # the experiment's schema
    "pipeline",                                     # the run folder and the stages, in flow order
    "export monitor",                               # the chosen routing deployed, and its logs watched
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


def _column_literals(tree) -> list:
    """String constants where a table's column is named: subscripts (``df["x"]``, ``row["x"]``), keys of dict
    literals (rows), and the arguments of pandas' column-taking methods and keywords."""
    import ast

    methods = {"get", "pop", "groupby", "sort_values", "drop_duplicates", "set_index", "pivot_table", "insert",
               "drop", "isin", "merge", "duplicated", "unstack", "explode", "dropna", "reindex", "pivot", "melt"}
    keywords = {"columns", "on", "by", "subset", "index", "values", "id_vars", "value_vars", "left_on", "right_on"}
    found = []

    def strings(node) -> list:
        nodes = node.elts if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else \
            node.keys if isinstance(node, ast.Dict) else [node]
        return [n for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            found += strings(node.slice)
        elif isinstance(node, ast.Dict):
            found += [k for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(node, ast.keyword) and node.arg in keywords:
            found += strings(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in methods:
            found += [s for a in node.args[:2] for s in strings(a)]
        elif isinstance(node, ast.Call) and node.args and not isinstance(node.args[0], ast.Constant):
            # a helper handed a table and column names: interval(frame, "low", "high")
            found += [a for a in node.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif isinstance(node, ast.Compare) and isinstance(node.comparators[0], ast.Attribute) \
                and node.comparators[0].attr == "columns":  # "x" in frame.columns
            found += strings(node.left)
        elif isinstance(node, ast.For) and isinstance(node.iter, (ast.Tuple, ast.List)):
            found += strings(node.iter)
    return found


def test_no_column_name_is_written_in_two_modules():
    """A table's column is named through kit.columns.Col: its name as a string literal stands in one module at
    most (the one that has it to itself), never in a producer and again in each reader."""
    import ast

    from kit.columns import Col

    names = {c.value for c in Col}
    where: dict[str, set[str]] = {}
    for path in sorted((ROOT / "kit").rglob("*.py")):
        text = path.read_text()
        if path.name == "columns.py" or "import pandas" not in text:  # modules that work with tables
            continue
        for const in _column_literals(ast.parse(text)):
            if const.value in names:
                where.setdefault(const.value, set()).add(str(path.relative_to(ROOT)))
    twice = {name: sorted(mods) for name, mods in where.items() if len(mods) > 1}
    assert not twice, f"column names written as strings in more than one module (use Col): {twice}"


def test_the_check_finds_a_column_written_twice():
    import ast

    reader = ast.parse('frame["p95_s"].max()\nrow = {"option": 1}\nif "score" in frame.columns: band(frame, "low")')
    assert sorted(c.value for c in _column_literals(reader)) == ["low", "option", "p95_s", "score"]
