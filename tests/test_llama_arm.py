"""The llama.cpp arm on the embedded SmolLM2-135M: real inference, constrained answers, identity."""

from __future__ import annotations

import math

import pytest

from kit.arms import get_arm
from kit.errors import ArmError
from kit.tasks.prompts import build_request


def test_classification_always_parses_with_label_probabilities(smol_arm, snips):
    for item in snips.test[:8]:
        done = smol_arm.complete(build_request(snips, item))
        assert done.error is None
        assert done.text in snips.type.labels and snips.type.parse(done.text) == done.text
        probs = done.extra["label_probs"]
        assert set(probs) == set(snips.type.labels)
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
        assert done.confidence == pytest.approx(max(probs.values()), abs=1e-6)
        assert done.prompt_tokens > 100 and done.completion_tokens >= 1
        assert 0 < done.ttft_s <= done.latency_s


def test_prefix_cache_gives_identical_answers(snips):
    requests = [build_request(snips, item) for item in snips.test[:4]]
    with get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=2048, prefix_cache=False) as cold:
        cold_out = [cold.complete(r).extra["label_probs"] for r in requests]
    with get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=2048, prefix_cache=True) as warm:
        warm_out = [warm.complete(r).extra["label_probs"] for r in requests]
    for a, b in zip(cold_out, warm_out):
        for label in a:
            assert a[label] == pytest.approx(b[label], abs=2e-3)


def test_extraction_is_schema_constrained_json(smol_arm, hhs):
    item = hhs.test[0]
    done = smol_arm.complete(build_request(hhs, item, max_tokens=96))
    assert done.error is None, done.error
    parsed = hhs.type.parse(done.text)
    assert parsed is not None and set(parsed) == {"breach_type", "location", "individuals_affected"}
    assert isinstance(parsed["individuals_affected"], int)
    assert set(parsed["location"]) <= set(hhs.type.fields[1].labels)


def test_prompt_too_long_is_an_error_not_a_crash(snips):
    with get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=256) as small:
        done = small.complete(build_request(snips, snips.test[0]))
    assert done.error and "does not fit n_ctx=256" in done.error and "raise n_ctx" in done.error


def test_identity_holds_hash_and_generation_parameters(smol_arm):
    ident = smol_arm.identity()
    assert len(ident["sha256"]) == 64 and ident["quant"] == "Q4_1"
    assert ident["temperature"] == 0.0 and ident["seed"] == 0 and ident["n_gpu_layers"] == 0
    assert "smollm2" in smol_arm.describe()


def test_registry_errors_are_clear():
    with pytest.raises(ArmError, match="did you mean 'llama_cpp:x'"):
        get_arm("llama_cp:x")
    with pytest.raises(ArmError, match="no backend prefix"):
        get_arm("smollm2")
    with pytest.raises(ArmError, match="unknown llama_cpp option n_ctxx.*did you mean n_ctx"):
        get_arm("llama_cpp:smollm2-135m-instruct", n_ctxx=3)
