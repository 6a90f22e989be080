"""The project's layout promises: environment.yml mirrors pyproject, CI calls the README's test command."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

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


def import_graph(root: Path, package: str = "kit") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, from the source under ``root``: every import statement
    of the file (at module level, inside functions and classes, within the package, relative ones resolved);
    ``from pkg import name`` counts as importing the module ``pkg.name`` when there is one, else ``pkg``."""
    files = {}
    for path in (root / package).rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        files[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..y import z
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base == package or base.startswith(package + "."):
                    for alias in node.names:
                        sub = f"{base}.{alias.name}"
                        found.add(sub if sub in files else base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name == package or a.name.startswith(package + "."))
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def local_imports(path: Path) -> list[tuple[int, str, str]]:
    """The imports inside functions or classes of a file: (line, the statement, its trailing comment)."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
            comment = lines[node.end_lineno - 1].partition("#")[2].strip()
            out.append((node.lineno, ast.unparse(node), comment))
    return out


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of an import graph: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _kit_imports() -> dict[str, set[str]]:
    return import_graph(ROOT)


# The kit's layers, lowest first: a package imports only from layers below its own (and from itself).
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(f"kit.{name}" for name in layer.split()) for layer in (
    "errors columns",                               # the kit's errors and column names: import nothing of the kit
    "paths util format records progress plugins",   # small helpers every layer may use
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

# Within kit.pipeline, lowest first: a module imports only from floors below its own — so no stage imports
# another stage, and only the drivers (which walk the stages) import them.
PIPELINE_LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(f"kit.pipeline.{n}" for n in layer.split()) for layer in (
    "folder",                                       # the run folder, its artefacts and the Stage declaration
    "provenance",                                   # the run record: what ran, written at prepare, read by the report
    "arming pricing scores looks outputs",          # helpers of several stages
    "selection",                                    # prompt choice, the answer stage's helper
    "prepare answers quality costs verdict",        # the stages: none imports another
    "sequential",                                   # the rounds driver: calls the answer and quality stages
    "runner plan",                                  # the graph of the stages and its drivers; planning from stored answers
))


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_violations(graph: dict[str, set[str]], layers: tuple[frozenset[str], ...], *,
                     unit=_package) -> list[str]:
    """Imports that run up or across ``layers`` (each module placed by ``unit(module)``; imports within one
    unit, and of modules no layer places, are not judged here)."""
    layer = {name: i for i, names in enumerate(layers) for name in names}
    wrong = []
    for module, imports in graph.items():
        here = unit(module)
        for target in imports:
            there = unit(target)
            if there == here or here not in layer or there not in layer:
                continue
            if layer[there] >= layer[here]:
                wrong.append(f"{module} imports {target}")
    return sorted(wrong)


def test_every_package_has_a_layer():
    placed = set().union(*LAYERS)
    unplaced = sorted({_package(m) for m in _kit_imports() if m != "kit"} - placed)
    assert not unplaced, f"give these a place in LAYERS: {unplaced}"
    modules = {m for m in _kit_imports() if m.startswith("kit.pipeline.")}
    assert not modules - set().union(*PIPELINE_LAYERS), "give these a place in PIPELINE_LAYERS"


def test_imports_only_run_down_the_layers():
    wrong = layer_violations(_kit_imports(), LAYERS)
    assert not wrong, "imports that run up or across the layers:\n" + "\n".join(wrong)


def test_within_the_pipeline_no_stage_imports_another():
    wrong = layer_violations(_kit_imports(), PIPELINE_LAYERS, unit=lambda m: m)
    assert not wrong, "imports that run up or across the pipeline's floors:\n" + "\n".join(wrong)


def test_no_import_circle_in_the_kit():
    """Counting every import — inside functions too, and within a package — no module of the kit reaches
    itself again."""
    circles = import_circles(_kit_imports())
    assert not circles, f"import circles: {circles}"


def test_function_local_imports_in_the_pipeline_say_why():
    """In kit.pipeline and kit.decision a function-local import stays only where start-up time needs it, and
    says so on its line."""
    unexplained = [f"{path.relative_to(ROOT)}:{line} {stmt}" for path in
                   [*sorted((ROOT / "kit" / "pipeline").glob("*.py")), ROOT / "kit" / "decision.py"]
                   for line, stmt, why in local_imports(path) if not why]
    assert not unexplained, "function-local imports without a reason comment:\n" + "\n".join(unexplained)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checks_catch_a_planted_function_local_import(tmp_path):
    """A function-local import that runs up a layer, or closes a circle, is found by the same checks."""
    clean = {"kit/__init__.py": "", "kit/low/__init__.py": "", "kit/high/__init__.py": "",
             "kit/low/a.py": "import os\n\ndef f():\n    return os.sep\n",
             "kit/low/b.py": "from kit.low import a\n",
             "kit/high/c.py": "from kit.low.a import f\n"}
    layers = (frozenset({"kit.low"}), frozenset({"kit.high"}))
    graph = import_graph(_tree(tmp_path / "clean", clean))
    assert graph["kit.low.b"] == {"kit.low.a"} and graph["kit.high.c"] == {"kit.low.a"}
    assert layer_violations(graph, layers) == [] and import_circles(graph) == []

    up = {**clean, "kit/low/a.py": "def f():\n    from kit.high.c import g  # planted\n    return g\n"}
    graph = import_graph(_tree(tmp_path / "up", up))
    assert layer_violations(graph, layers) == ["kit.low.a imports kit.high.c"]
    assert import_circles(graph) == [["kit.high.c", "kit.low.a"]]

    around = {**clean, "kit/low/a.py": "def f():\n    from . import b\n    return b\n"}  # relative, in a function
    graph = import_graph(_tree(tmp_path / "around", around))
    assert import_circles(graph) == [["kit.low.a", "kit.low.b"]]
    assert local_imports(tmp_path / "around" / "kit" / "low" / "a.py") == [(2, "from . import b", "")]


def test_decision_is_pure():
    """kit.decision takes typed facts and returns a typed verdict: no pandas, no files, no network, no printing."""
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
    reader = ast.parse('frame["p95_s"].max()\nrow = {"option": 1}\nif "score" in frame.columns: band(frame, "low")')
    assert sorted(c.value for c in _column_literals(reader)) == ["low", "option", "p95_s", "score"]
