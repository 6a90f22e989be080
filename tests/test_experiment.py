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
    (lambda: build(reference=None), "no `reference:` option", "reference:"),
    (lambda: build(reference="Mistal"), "the reference 'Mistal' is not one of the options", "did you mean 'Mistral'"),
    (lambda: with_option(1, machine=None), "a self-hosted option needs a machine price", "machine:"),
    (lambda: with_option(1, machine="h100"), "no machine named 'h100'", "machines: ['l4']"),
    (lambda: with_option(0, arm="openai:my-fine-model"), "no price is known for 'my-fine-model'",
     "input_per_m"),
    (lambda: with_option(2, runs=None), "where this option runs is not declared", "runs: third-party"),
    (lambda: with_option(1, runs="third-party"), "runs in this process", "self-hosted"),
    (lambda: with_option(1, name="Mistral 7B Instruct v0.3 Q4_K_M on one NVIDIA L4 GPU"), "longer than 32",
     "description"),
    (lambda: with_option(5, finetune={"steps": 3}), "needs at least a base model", "base:"),
    (lambda: build(tasks={"snips-intents": -3}), "not a whole number of at least 1", "null for the whole"),
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
