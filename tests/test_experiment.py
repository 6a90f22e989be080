"""The experiment file: typed options, declared placement and costs, and every bad input named before any
model is called."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT
from kit.errors import ConfigError
from kit.experiment import Experiment, Where

BASE = {
    "tasks": {"snips-intents": 20},
    "reference": "API",
    "options": [
        {"name": "API", "arm": "openai:gpt-4o-mini", "runs": "third-party"},
        {"name": "Mistral", "arm": "llama_cpp:mistral-7b-instruct-v0.3:Q4_K_M", "machine": "l4"},
        {"name": "vLLM", "arm": "openai:qwen", "runs": "self-hosted", "machine": "l4",
         "options": {"base_url": "http://10.0.0.5:8000/v1"}},
        {"name": "Ollama", "arm": "openai:llama3.1", "runs": "self-hosted", "machine": {"price_per_hour": 0.3},
         "options": {"base_url": "http://127.0.0.1:11434/v1"}},
        {"name": "Logs", "arm": "replay:exports/api.jsonl", "runs": "third-party",
         "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
        {"name": "LoRA", "finetune": {"base": "smollm2-135m-instruct", "steps": 10}, "machine": "l4"},
    ],
    "machines": {"l4": {"price_per_hour": 0.8, "utilisation": 0.6, "always_on": True}},
}


def build(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return Experiment.from_mapping(data, source="exp.yaml")


def with_option(index, **changes):
    data = copy.deepcopy(BASE)
    data["options"][index].update(changes)
    for key, value in list(changes.items()):
        if value is None:
            data["options"][index].pop(key)
    return Experiment.from_mapping(data, source="exp.yaml")


def test_options_are_typed_records_with_declared_placement():
    exp = build()
    where = {o.name: o.where for o in exp.options}
    assert where == {"API": Where.THIRD_PARTY, "Mistral": Where.SELF_HOSTED, "vLLM": Where.SELF_HOSTED,
                     "Ollama": Where.SELF_HOSTED, "Logs": Where.THIRD_PARTY, "LoRA": Where.SELF_HOSTED}
    # a loopback Ollama is what the user says it is, never "the stand-in"; a VPC address is not "hosted"
    assert not exp.option("Ollama").standin and exp.option("vLLM").self_hosted
    assert exp.option("Mistral").machine.price_per_hour == 0.8 and exp.option("Ollama").machine.price_per_hour == 0.3
    assert exp.option("API").price.model == "gpt-4o-mini" and exp.option("Logs").price.input_per_m == 0.15
    assert exp.reference.name == "API" and [o.name for o in exp.candidates][0] == "Mistral"
    assert exp.option("LoRA").applies_to("snips-intents") and exp.option("LoRA").arm is None


def test_round_trip_through_the_run_folder_copy():
    exp = build()
    assert Experiment.from_dict(yaml.safe_load(yaml.safe_dump(exp.to_dict()))) == exp


def test_the_shipped_experiments_load():
    for name in ("default", "real"):
        exp = Experiment.load(ROOT / "notebooks" / "params" / f"{name}.yaml")
        assert exp.reference in exp.options
    real = Experiment.load(ROOT / "notebooks" / "params" / "real.yaml")
    assert len(real.options) == 7 and {o.where for o in real.options} == {Where.THIRD_PARTY, Where.SELF_HOSTED}


def test_auto_is_the_standin_without_keys_and_the_api_with_one(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    exp = build(options=[{"name": "API", "arm": "auto"}], reference="API").resolved()
    assert exp.reference.standin and exp.reference.price.model == "gpt-4o-mini"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    exp = build(options=[{"name": "API", "arm": "auto"}], reference="API").resolved()
    assert exp.reference.arm == "anthropic:claude-3-5-haiku-latest" and not exp.reference.standin
    assert exp.reference.price.model == "claude-3-5-haiku-latest"


@pytest.mark.parametrize("change, message, fix", [
    (lambda: with_option(1, arm="lama_cpp:x"), "unknown arm backend 'lama_cpp'", "did you mean 'llama_cpp:x'"),
    (lambda: with_option(1, name="API"), "two options share the name 'API'", "own short name"),
    (lambda: build(reference=None), "`reference:` is missing", "add reference:"),
    (lambda: build(reference="Mistal"), "the reference 'Mistal' is not one of the options", "did you mean 'Mistral'"),
    (lambda: with_option(1, machine=None), "a self-hosted option needs a machine price", "machine:"),
    (lambda: with_option(1, machine="h100"), "no machine named 'h100'", "machines: ['l4']"),
    (lambda: with_option(0, arm="openai:my-fine-model"), "no price is known for 'my-fine-model'",
     "input_per_m"),
    (lambda: with_option(2, runs=None), "where this option runs is not declared", "runs: third-party"),
    (lambda: with_option(1, runs="third-party"), "runs in this process", "self-hosted"),
    (lambda: with_option(1, name="Mistral 7B Instruct v0.3 Q4_K_M on one NVIDIA L4 GPU"), "longer than 32",
     "description"),
    (lambda: with_option(5, finetune={"steps": 3}), "`finetune.base:` is missing", "add base:"),
    (lambda: build(tasks={"snips-intents": -3}), "`tasks.snips-intents:` -3 is out of range (at least 1)",
     "null for the whole"),
    (lambda: build(margin="two"), "`margin:` must be a number", "margin: 0.02"),
    (lambda: build(monthly_volum=5), "unknown keys ['monthly_volum']", "'monthly_volum' → 'monthly_volume'?"),
])
def test_bad_experiments_name_the_file_the_option_and_the_fix(change, message, fix):
    with pytest.raises(ConfigError) as err:
        change()
    text = str(err.value)
    assert text.startswith("exp.yaml") and message in text and fix in text


def test_a_finetune_on_a_task_without_a_train_split_is_refused_before_any_model(tmp_path):
    from kit.pipeline.prepare import check_finetunes

    rows = "".join(f'{{"id": "r{i}", "text": "t {i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(6))
    (tmp_path / "d.jsonl").write_text(rows)
    (tmp_path / "all-test.yaml").write_text("name: all-test\ntype: classification\ndata: d.jsonl\n"
                                            "instruction: 'Label: {text}'\nsplit: {test_fraction: 1.0}\n")
    from kit.tasks import load_task

    exp = build(tasks={"all-test": None})
    with pytest.raises(ConfigError, match="option 'LoRA'.*no labelled train split"):
        check_finetunes(exp, {"all-test": load_task(tmp_path / "all-test.yaml")})


# ------------------------------------------------------------------- nonsense refused before any model
def write_experiment(tmp_path, changes=(), text=None):
    """BASE with ``changes`` (dotted key paths, e.g. options.4.price.cached_share) as a YAML file."""
    data = copy.deepcopy(BASE)
    data["sweep"] = {"tasks": ["snips-intents"], "levels": [1, 2], "items": 4, "max_seconds": 30}
    for path, value in changes:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    file = tmp_path / "exp.yaml"
    file.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return file


@pytest.mark.parametrize("changes, where, problem, fix", [
    ([("latency_target_s", -1)], "", "`latency_target_s:` -1 is out of range (above 0)", "latency_target_s: 2"),
    ([("monthly_volume", float("nan"))], "", "`monthly_volume:` must be a finite number, got nan",
     "monthly_volume: 100000"),
    ([("budget_per_month", float("inf"))], "", "`budget_per_month:` must be a finite number", "budget_per_month: 500"),
    ([("budget_per_month", -100)], "", "`budget_per_month:` -100 is out of range (at least 0)",
     "budget_per_month: 500"),
    ([("hourly_rate", -500)], "", "`hourly_rate:` -500 is out of range (at least 0)", "hourly_rate: 100"),
    ([("horizon_months", 0)], "", "`horizon_months:` 0 is out of range (above 0)", "horizon_months: 12"),
    ([("ops_capacity", -1)], "", "`ops_capacity:` -1 is out of range (at least 0)", "ops_capacity: 8"),
    ([("options.4.price.cached_share", 5)], ": option 'Logs'",
     "`price.cached_share:` 5 is out of range (at least 0 and at most 1)", "cached_share: 0.5"),
    ([("options.1.options", {"temperature": float("nan")})], ": option 'Mistral'",
     "`options.temperature:` must be a finite number, got nan", "write a number for temperature"),
    ([("sweep.items", -3)], "", "`sweep.items:` -3 is out of range (at least 1)", "items: 24"),
    ([("sweep.levels", [1, 0])], "", "`sweep.levels:` 0 is out of range (at least 1)", "levels: [1, 2, 4, 8]"),
    ([("sweep.levels", [])], "", "`sweep.levels:` is empty", "levels: [1, 2, 4, 8]"),
    ([("sweep.levels", [1, 2.5])], "", "`sweep.levels:` must be a whole number, got 2.5", "levels: [1, 2, 4, 8]"),
    ([("sweep.max_seconds", 0)], "", "`sweep.max_seconds:` 0 is out of range (above 0)", "max_seconds: 300"),
    ([("sweep.tasks", ["hhs-breach-triage"])], "", "`sweep.tasks:` names 'hhs-breach-triage', which is not a task",
     "sweep some of ['snips-intents']"),
    ([("judge", "Mistal")], "", "the judge 'Mistal' is not one of the options", "did you mean 'Mistral'?"),
    ([("margin", 1.5)], "", "`margin:` 1.5 is out of range (at least 0 and below 1)", "margin: 0.02"),
    ([("margin", True)], "", "`margin:` must be a number, got True", "margin: 0.02"),
    ([("alpha", 0.7)], "", "`alpha:` 0.7 is out of range (above 0 and below 0.5)", "alpha: 0.05"),
    ([("agreement_target", 1.2)], "", "`agreement_target:` 1.2 is out of range (above 0 and at most 1)",
     "agreement_target: 0.95"),
    ([("machines.l4.utilisation", 0)], ": machine 'l4'", "`utilisation:` 0 is out of range (above 0 and at most 1)",
     "utilisation: 0.6"),
    ([("options.3.machine", {"price_per_hour": 0.3, "utilisation": 1.5})], ": option 'Ollama'",
     "`machine.utilisation:` 1.5 is out of range", "utilisation: 0.6"),
    ([("options.2.runs", "on-prem")], ": option 'vLLM'", "`runs:` 'on-prem' is not one of 'third-party' or "
     "'self-hosted'", "runs: self-hosted"),
    ([("max_tokens", 0)], "", "`max_tokens:` 0 is out of range (at least 1)", "max_tokens: 256"),
    ([("options.5.finetune.steps", -1)], ": option 'LoRA'", "`finetune.steps:` -1 is out of range (at least 1)",
     "steps: 40"),
    ([("options.0.price", {"input_per_m": 0.15})], ": option 'API'", "needs both input_per_m and output_per_m",
     "output_per_m: 0.60"),
    ([("options.1.price", {"model": "gpt-4o-mini"})], ": option 'Mistral'",
     "a self-hosted option is priced by its machine", "drop `price:`"),
    ([("monthly_volum", 5)], "", "unknown keys ['monthly_volum']", "'monthly_volum' → 'monthly_volume'?"),
    ([("options.0.prize", 5)], ": option 'API'", "unknown keys ['prize']", "'prize' → 'price'?"),
    ([("machines.l4.price_per_hr", 1)], ": machine 'l4'", "unknown keys ['price_per_hr']",
     "'price_per_hr' → 'price_per_hour'?"),
    ([("options.4.price.input_per_million", 1)], ": option 'Logs'", "unknown keys ['input_per_million'] in `price:`",
     "'input_per_million' → 'input_per_m'?"),
    ([("options.5.finetune.step", 10)], ": option 'LoRA'", "unknown keys ['step'] in `finetune:`",
     "'step' → 'steps'?"),
    ([("sweep.item", 10)], "", "unknown keys ['item'] in `sweep:`", "'item' → 'items'?"),
])
def test_nonsense_values_are_refused_before_any_model(tmp_path, changes, where, problem, fix):
    file = write_experiment(tmp_path, changes)
    with pytest.raises(ConfigError) as err:
        Experiment.load(file)
    assert err.value.where == f"{file}{where}"
    assert problem in err.value.problem, err.value.problem
    assert fix in err.value.fix, err.value.fix


@pytest.mark.parametrize("text, problem", [
    ("margin: 0.02\nalpha: 0.05\nmargin: 0.1\n", "line 3: the key 'margin' is given twice in one mapping (first on "
                                                 "line 1)"),
    ("options:\n  - name: A\n    arm: standin\n    name: B\n", "line 4: the key 'name' is given twice"),
    ("machines:\n  l4: {price_per_hour: 0.8, utilisation: 0.6, price_per_hour: 0.9}\n",
     "line 2: the key 'price_per_hour' is given twice"),
])
def test_a_key_given_twice_is_an_error_naming_it_and_its_line(tmp_path, text, problem):
    file = write_experiment(tmp_path, text=text)
    with pytest.raises(ConfigError) as err:
        Experiment.load(file)
    assert err.value.where == str(file) and problem in err.value.problem and "keep one" in err.value.fix


def test_a_yaml_merge_key_may_be_overridden_without_a_duplicate_error(tmp_path):
    anchors = "machines:\n  base: &box {price_per_hour: 0.8}\n  other: {<<: *box, price_per_hour: 0.5}\n"
    text = yaml.safe_dump(BASE, sort_keys=False).replace("machines:\n", anchors)
    exp = Experiment.load(write_experiment(tmp_path, text=text))
    assert exp.option("Mistral").machine.price_per_hour == 0.8


def test_a_file_that_is_not_utf8_names_the_byte_and_the_fix(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_bytes("margin: 0.02\n# caf".encode() + "é".encode("latin-1") + b"\n")
    with pytest.raises(ConfigError) as err:
        Experiment.load(file)
    assert err.value.where == str(file)
    assert err.value.problem == "not UTF-8 text: byte 18 (line 2) is b'\\xe9'"
    assert "save the file as UTF-8" in err.value.fix


def test_overrides_go_through_the_schema_and_are_named(tmp_path):
    from kit.experiment import override_value, read_experiment_file

    file = write_experiment(tmp_path)
    assert override_value("monthly_volume", "1e6") == 1e6 and override_value("margin", "0.05") == 0.05
    assert override_value("store", "2024.sqlite") == "2024.sqlite" and override_value("judge", "null") is None
    assert Experiment.load(file, overrides={"monthly_volume": override_value("monthly_volume", "1e6")}) \
        .monthly_volume == 1e6
    with pytest.raises(ConfigError) as err:
        Experiment.load(file, overrides={"margin": override_value("margin", ".nan")})
    assert err.value.where == f"{file} (-p margin)" and "must be a finite number" in err.value.problem
    with pytest.raises(ConfigError) as err:
        read_experiment_file(file, overrides={"sweep": {"items": 0}})
    assert err.value.where == f"{file} (-p sweep)" and "`sweep.items:` 0 is out of range" in err.value.problem
    with pytest.raises(ConfigError) as err:  # a check across keys names the -p key it involves
        Experiment.load(file, overrides={"tasks": {"hhs-breach-triage": 5}})
    assert err.value.where == f"{file} (-p tasks)" and "`sweep.tasks:` names 'snips-intents'" in err.value.problem
    assert "sweep: null" in err.value.fix
    with pytest.raises(ConfigError) as err:
        override_value("monthly_volum", "5")
    assert err.value.where == "-p monthly_volum" and "did you mean 'monthly_volume'?" in err.value.fix
    with pytest.raises(ConfigError, match=r"-p options: line 1: the key 'name' is given twice"):
        override_value("options", "[{name: A, name: B}]")


def test_kit_report_refuses_a_bad_override_before_any_notebook(tmp_path, capsys):
    from kit.cli import main

    file = write_experiment(tmp_path)
    code = main(["report", "--experiment", str(file), "-p", "margin", "1.5", "--run-dir", str(tmp_path / "run")])
    assert code == 2 and not (tmp_path / "run").exists()
    assert f"{file} (-p margin): `margin:` 1.5 is out of range" in capsys.readouterr().err


def test_the_notebook_parameters_are_an_experiment():
    """The 01 notebook's parameters cell, run as Python, is the default experiment."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "01_prepare.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102 — the repository's own notebook
    exp = Experiment.from_namespace(namespace)
    assert exp == Experiment.load(ROOT / "notebooks" / "params" / "default.yaml").model_copy(
        update={"source": "notebook parameters"})
    assert exp.sweep.covers("snips-intents") and not exp.sweep.covers("hhs-breach-triage")


def test_every_shipped_experiment_loads():
    for file in sorted((ROOT / "notebooks" / "params").glob("*.yaml")):
        assert Experiment.load(file).reference.name, file


def test_the_readme_lists_the_keys_the_schema_declares():
    from kit.experiment import schema_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin = "<!-- experiment keys: generated by kit.experiment.schema_table() -->\n"
    end = "<!-- end of experiment keys -->"
    assert begin in readme and end in readme
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == schema_table(), ("the README's table of keys differs from the schema: paste the output of python "
                                     "-c 'from kit.experiment import schema_table; print(schema_table(), end=\"\")'")
    assert "| `sweep.max_seconds` | number | `300` | above 0 |" in table


def test_the_load_sweep_runs_with_the_typed_sweep_settings(task_dir, store):
    """answers.load_sweep reads levels and items from the checked experiment (a loopback OpenAI-style server)."""
    from servers import OpenAIServer

    from kit.arms import get_arm
    from kit.pipeline.answers import load_sweep
    from kit.tasks import load_task

    exp = Experiment.from_mapping({
        "tasks": {"mini": None}, "reference": "Box", "latency_target_s": 5,
        "options": [{"name": "Box", "arm": "openai:fake", "runs": "self-hosted", "machine": {"price_per_hour": 0.5}}],
        "sweep": {"levels": [1, 3], "items": 4, "max_seconds": 30}}, source="exp.yaml")
    assert exp.sweep.covers("mini") and exp.sweep.levels == (1, 3)
    task = load_task("mini", folder=task_dir)
    with OpenAIServer() as server, get_arm("openai:fake", base_url=server.base_url, max_attempts=1,
                                           logprobs=False) as arm:
        table = load_sweep(exp, exp.reference, task, arm, store=store, progress=False)
    assert table["load"].tolist() == [1, 3] and table["n_items"].tolist() == [4, 4]
    assert table["latency_target_s"].tolist() == [5.0, 5.0] and set(table["option"]) == {"Box"}


def test_keys_a_file_leaves_out_take_the_schema_defaults_not_the_default_experiment(tmp_path):
    """Seen: an experiment without `sweep:` ran the default experiment's load sweep, and one without
    `latency_target_s:` was held to its 2 s (papermill keeps the parameters cell's value for a key it is not given)."""
    from kit.experiment import read_experiment_file

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False), encoding="utf-8")
    params = read_experiment_file(path)
    assert params["sweep"] is None and params["latency_target_s"] is None and params["budget_per_month"] is None
    assert params["margin"] == 0.02 and params["tasks"] == BASE["tasks"]
    assert read_experiment_file(path, overrides={"margin": 0.05})["margin"] == 0.05


# --- arm options: each backend's typed schema, checked when the experiment loads (issue 26, case 1) ---------------


@pytest.mark.parametrize("index, options, problem, fix", [
    (5, {"n_ctx": -1}, "option n_ctx=-1 must be at least 1", "write e.g. options: {n_ctx: 4096}"),  # the fine-tune's
    (2, {"concurrency": "lots"}, "option concurrency='lots' is not a whole number", "options: {concurrency: 4}"),
    (3, {"base_url": 5}, "option base_url=5 is not text", "options: {base_url: http://127.0.0.1:8080/v1}"),
    (1, {"n_ctxx": 4096}, "unknown llama_cpp option n_ctxx", "did you mean n_ctx?"),
    (1, {"temperature": -3}, "option temperature=-3 must be at least 0", "options: {temperature: 0}"),
    (2, {"structured": "json"}, "option structured='json' is not one of 'auto', 'off'", "options: {structured: auto}"),
    (3, {"base_url": "ftp://x/v1"}, "base_url 'ftp://x/v1' is not an http(s) URL", "--base-url"),
    (0, {"api_key_env": "KIT_TEST_KEY_NOT_SET"}, "the environment variable KIT_TEST_KEY_NOT_SET is not set",
     "export KIT_TEST_KEY_NOT_SET=..."),
    (4, {"concurrency": 2}, "unknown replay option concurrency", "none (everything comes from the spec)"),
])
def test_arm_options_are_checked_when_the_experiment_loads(tmp_path, monkeypatch, index, options, problem, fix):
    """Every option's arm options, the fine-tune's included, are checked against its backend's schema at load —
    before any model loads or any LoRA trains — and a key variable a run will read must be set."""
    monkeypatch.delenv("KIT_TEST_KEY_NOT_SET", raising=False)
    file = write_experiment(tmp_path, [(f"options.{index}.options", options)])
    with pytest.raises(ConfigError) as err:
        Experiment.load(file)
    name = BASE["options"][index]["name"]
    assert err.value.where.startswith(f"{file}: option {name!r} (arm "), err.value.where
    assert problem in err.value.problem, err.value.problem
    assert fix in err.value.fix, err.value.fix
    assert "\n" not in str(err.value)


def test_good_arm_options_load_and_a_set_key_variable_passes(monkeypatch):
    monkeypatch.setenv("KIT_TEST_KEY_SET", "sk-test-0000000000")
    data = copy.deepcopy(BASE)
    data["options"][0]["options"] = {"api_key_env": "KIT_TEST_KEY_SET", "concurrency": 8, "temperature": 0}
    data["options"][1]["options"] = {"n_ctx": 2048, "batch": 4}
    data["options"][5]["options"] = {"n_ctx": 1024}
    exp = Experiment.from_mapping(data, source="exp.yaml")
    assert exp.option("API").arm_options["concurrency"] == 8 and exp.option("LoRA").arm_options == {"n_ctx": 1024}


def test_kit_report_refuses_bad_arm_options_before_any_notebook_or_training(tmp_path, capsys):
    """The fine-tune is listed first: before, it trained, then 03_answers refused the next option's n_ctx."""
    from kit.cli import main

    data = copy.deepcopy(BASE)
    data["options"] = [data["options"][5], *data["options"][:5]]
    data["options"][2]["options"] = {"n_ctx": -1}
    file = tmp_path / "exp.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    code = main(["report", "--experiment", str(file), "--run-dir", str(tmp_path / "run")])
    assert code == 2 and not (tmp_path / "run").exists()
    assert "option 'Mistral' (arm llama_cpp:mistral-7b-instruct-v0.3:Q4_K_M): option n_ctx=-1 must be at least 1" \
        in capsys.readouterr().err
