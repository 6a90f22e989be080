"""Backends declare what the kit may ask of them; a new one needs only its own module (registered in process
here; a package declares an entry point: tests/test_arm_plugins.py).

A module written by the test registers an in-process backend (a small subclass of the llama.cpp arm under
another name). Without a line changed elsewhere, an experiment option that names it runs self-hosted, the
manifest stage finds its model, and it answers from the embedded SmolLM2.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from kit.arms import backend_of, get_arm, registered_backends
from kit.experiment import Experiment, Where
from kit.pipeline.arming import models_of
from kit.tasks.prompts import build_request

MODULE = '''
"""A new in-process backend: llama.cpp with a fixed small context, registered under its own name."""

from kit.arms import register_arm
from kit.arms.llama_cpp import LlamaCppArm, LlamaOptions


class TinyLlamaArm(LlamaCppArm):
    backend = "tiny_llama"

    def __init__(self, model, **options):
        super().__init__(model, **{"n_ctx": 2048, "n_threads": 1, "n_threads_batch": 1, **options})


register_arm("tiny_llama", TinyLlamaArm, options=LlamaOptions, in_process=True, models=lambda name: [name])
'''


@pytest.fixture
def tiny_backend(tmp_path, monkeypatch):
    from kit.arms import unregister_arm

    (tmp_path / "tiny_backend.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("tiny_backend")
    yield "tiny_llama"
    unregister_arm("tiny_llama")
    sys.modules.pop("tiny_backend", None)


def test_a_new_in_process_backend_needs_only_its_own_module(tiny_backend, snips):
    assert tiny_backend in registered_backends()
    exp = Experiment.from_mapping({
        "tasks": {"snips-intents": 4}, "reference": "API",
        "options": [{"name": "API", "arm": "openai:gpt-4o-mini", "runs": "third-party",
                     "price": {"model": "gpt-4o-mini"}},
                    {"name": "Tiny", "arm": "tiny_llama:smollm2-135m-instruct", "machine": {"price_per_hour": 0.1}}],
    }, source="test")
    tiny = exp.option("Tiny")
    assert tiny.where is Where.SELF_HOSTED  # no `runs:` needed: the backend says it runs in this process
    assert models_of(tiny) == ["smollm2-135m-instruct"]  # what the manifest stage hashes
    assert models_of(exp.option("API")) == []

    with get_arm("tiny_llama:smollm2-135m-instruct") as arm:
        done = arm.complete(build_request(snips, snips.test[0]))
        assert arm.spec == "tiny_llama:smollm2-135m-instruct" and arm.identity()["backend"] == "tiny_llama"
    assert done.error is None and done.text in snips.type.labels and 0 < done.confidence <= 1


def test_every_builtin_backend_declares_its_capabilities_and_options():
    """What the core asks of a backend without building an arm: in process, its options' schema, its models.
    (Whether answers carry a confidence is not declared: the cascade reads the confidences answers carry.)"""
    declared = {name: (b.in_process, b.options.__name__, b.models("m+a.gguf"))
                for name in registered_backends() for b in [backend_of(f"{name}:x")]}
    assert declared == {
        "llama_cpp": (True, "LlamaOptions", ["m+a.gguf"]),
        "lora": (True, "LoraOptions", ["m"]),
        "openai": (False, "OpenAIOptions", []),
        "anthropic": (False, "AnthropicOptions", []),
        "replay": (False, "NoOptions", []),
    }
