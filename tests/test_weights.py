"""Converted weights (kit.models.convert, the llama.cpp arms' ``weights`` option): real conversions of the
embedded SmolLM2 with llama.cpp's quantizer, real inference on the copy."""

from __future__ import annotations

import pytest
import yaml

from kit.arms import get_arm
from kit.errors import ConfigError, ModelError
from kit.models import file_sha256, resolve_model
from kit.models.convert import WeightType, converted
from kit.models.gguf import read_gguf_info
from kit.tasks.prompts import build_request

EMBEDDED = "llama_cpp:smollm2-135m-instruct"


def test_a_q8_0_copy_is_made_once_answers_as_the_original_and_has_its_own_identity(tmp_path, monkeypatch, smol_arm,
                                                                                 snips):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    with get_arm(EMBEDDED, n_ctx=2048, weights="q8_0") as arm:
        [copy] = (tmp_path / "converted").iterdir()  # no scratch file left beside it
        assert read_gguf_info(copy).quant == "Q8_0" and arm.model.path == copy
        ident, native = arm.identity(), smol_arm.identity()
        assert ident["sha256"] == file_sha256(copy) != native["sha256"]  # never served the original's answers
        assert ident["converted_from"] == native["sha256"] and ident["quant"] == "Q8_0"
        assert "Q8_0 (converted from Q4_1)" in arm.describe()
        for item in snips.test[:6]:
            request = build_request(snips, item)
            mine, theirs = arm.complete(request), smol_arm.complete(request)
            assert mine.error is None and mine.text == theirs.text
            # the copy's weights differ from Q4_1's by at most a tenth of a Q4_1 step, and both kernels round the
            # activations to 8 bits: the same label probabilities within a few points (reference: the original
            # file run by the same llama.cpp; measured on 20 SNIPS items, each strays at most 0.08 from the
            # exact float32 weights' probabilities: bench/bench_weights.py)
            for label, p in theirs.extra["label_probs"].items():
                assert mine.extra["label_probs"][label] == pytest.approx(p, abs=0.1)
    made = copy.stat().st_mtime_ns
    with get_arm(EMBEDDED, n_ctx=512, weights="q8_0") as again:
        assert again.model.path == copy and copy.stat().st_mtime_ns == made  # reused, not converted again


def test_native_and_an_already_matching_type_run_the_file_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    model = resolve_model("smollm2-135m-instruct")
    assert converted(model, WeightType.NATIVE) is model
    q8 = converted(model, WeightType.Q8_0)
    assert converted(q8, WeightType.Q8_0) is q8 and q8.id == model.id and q8.size > model.size


def test_bad_weights_and_an_unwritable_cache_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="option weights='q4'.*'native', 'q8_0', 'bf16' or 'f32'"):
        get_arm(EMBEDDED, weights="q4")
    model = resolve_model("smollm2-135m-instruct")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("KIT_HOME", str(blocker))
    with pytest.raises(ModelError, match="cannot write the converted weights.*KIT_HOME"):
        converted(model, WeightType.Q8_0)


def test_an_export_serves_the_weights_the_report_measured(tmp_path, monkeypatch):
    from kit.experiment import Experiment
    from kit.export.routing import _SERVING

    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    exp = Experiment.from_mapping(yaml.safe_load("""
tasks: {snips-intents: 20}
reference: API
options:
  - {name: API, arm: standin, price: {model: gpt-4o-mini}}
  - {name: SmolLM2, arm: "llama_cpp:smollm2-135m-instruct", options: {weights: q8_0}, machine: cpu}
machines: {cpu: {price_per_hour: 1.0}}
"""), source="test").resolved()
    local = _SERVING["llama_cpp"](exp.option("SmolLM2"), "llama_cpp:smollm2-135m-instruct", {}, 8082)
    [copy] = (tmp_path / "converted").iterdir()
    assert f"--model {copy} " in local.serve


def test_the_prepare_stage_makes_the_copy_and_lists_the_file_that_answers(tmp_path, monkeypatch):
    from kit.columns import Col
    from kit.experiment import Experiment
    from kit.pipeline import prepare
    from kit.pipeline.folder import RunFolder, Table

    monkeypatch.setenv("KIT_HOME", str(tmp_path / "home"))
    exp = Experiment.from_mapping(yaml.safe_load("""
tasks: {snips-intents: 20}
reference: Q4_1
options:
  - {name: Q4_1, arm: "llama_cpp:smollm2-135m-instruct", machine: cpu}
  - {name: Q8_0, arm: "llama_cpp:smollm2-135m-instruct", options: {weights: q8_0}, machine: cpu}
machines: {cpu: {price_per_hour: 1.0}}
"""), source="test")
    models = prepare.prepare_stage(exp, RunFolder(tmp_path / "run")).set_index("used by")
    [copy] = (tmp_path / "home" / "converted").iterdir()
    assert models.loc["Q8_0", Col.QUANTISATION] == "Q8_0 (converted from Q4_1)"
    assert models.loc["Q8_0", Col.SHA256] == file_sha256(copy) and models.loc["Q4_1", Col.QUANTISATION] == "Q4_1"
    assert models.loc["Q4_1", Col.SHA256] == resolve_model("smollm2-135m-instruct").sha256
