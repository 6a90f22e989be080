"""Batched decoding in the llama.cpp arm (real inference on the embedded SmolLM2-135M): the same answers as one
at a time, a clear error when the context cannot hold the batch, and a store identity that ignores the batch."""

from __future__ import annotations

import pytest

from kit.arms import Request, get_arm
from kit.errors import ArmError, ConfigError, KitError
from kit.run.runner import run_arm
from kit.tasks.prompts import build_request

from conftest import EMBEDDED


# one llama.cpp thread for single tokens and batches alike: on a machine shared with other jobs, threads that
# wait for each other at every step make a run many times slower
THREADS = {"n_threads": 1, "n_threads_batch": 1}


@pytest.fixture(scope="module")
def one_arm():
    arm = get_arm(EMBEDDED, n_ctx=2048, **THREADS)
    yield arm
    arm.close()


@pytest.fixture(scope="module")
def batch_arm():
    # 4 sequences of 1024 cells: an HHS prompt (up to ~700 tokens) and 48 answer tokens fit
    arm = get_arm(EMBEDDED, n_ctx=4096, batch=4, **THREADS)
    yield arm
    arm.close()


def test_batched_answers_agree_with_one_at_a_time(one_arm, batch_arm, snips, hhs):
    """Measured on 48 SNIPS and 16 HHS items (bench/bench_batch.py, CPU): every answer identical at batch 8 and
    1, and every label probability identical to the 6 decimals stored. (Evaluating the items' prompts in one
    joint batch, as on a GPU, moved label probabilities by up to 0.026 and changed no answer.) The test asks
    for identical answers, token counts and generated text, and probabilities within 2e-3, the tolerance
    the prefix-cache test allows."""
    labelled = [build_request(snips, item) for item in snips.test[:8]]
    one = [one_arm.complete(r) for r in labelled]
    many = batch_arm.complete_many(labelled[:4]) + batch_arm.complete_many(labelled[4:])
    assert [c.error for c in many] == [None] * 8
    assert [c.text for c in many] == [c.text for c in one]
    for a, b in zip(one, many):
        assert set(a.extra["label_probs"]) == set(b.extra["label_probs"])
        for label, p in a.extra["label_probs"].items():
            assert b.extra["label_probs"][label] == pytest.approx(p, abs=2e-3)
        assert b.confidence == pytest.approx(max(b.extra["label_probs"].values()), abs=1e-6)
        assert 0 < b.ttft_s <= b.latency_s and b.prompt_tokens == a.prompt_tokens
    extraction = [build_request(hhs, item, max_tokens=48) for item in hhs.test[:2]]
    one = [one_arm.complete(r) for r in extraction]
    many = batch_arm.complete_many(extraction)
    assert [c.text for c in many] == [c.text for c in one]
    assert all(hhs.type.parse(c.text) is not None for c in many if c.completion_tokens < 48)
    assert [c.completion_tokens for c in many] == [c.completion_tokens for c in one]
    # each item's latency is its own: the time until its answer was complete, within its batch
    assert all(0 < c.ttft_s <= c.latency_s for c in many)
    free = [Request(item_id=str(i), messages=({"role": "user", "content": text},), max_tokens=12)
            for i, text in enumerate(["Name three colours.", "What is the capital of France?"])]
    one = [one_arm.complete(r) for r in free]
    many = batch_arm.complete_many(free)  # free text: no grammar, greedy
    assert [c.text for c in many] == [c.text for c in one] and all(c.text for c in many)


def test_a_batch_the_context_cannot_hold_is_a_clear_error(snips):
    requests = [build_request(snips, item) for item in snips.test[:8]]
    with get_arm(EMBEDDED, n_ctx=2048, batch=8, **THREADS) as arm:  # 256 cells per sequence; a SNIPS prompt needs ~530
        with pytest.raises(ArmError) as err:
            arm.complete_many(requests)
    text = str(err.value)
    assert "batch=8 gives each sequence n_ctx / 8 = 256 KV cells" in text
    assert "raise n_ctx to at least" in text and "--n-ctx" in text and "lower the batch to" in text
    for bad in (0, -2, "8", 2.5, True):  # the arm's option check names the option and the fix
        with pytest.raises((ArmError, ConfigError), match="batch"):
            get_arm(EMBEDDED, batch=bad)


def test_run_stops_with_the_error_and_keeps_what_was_answered(store, snips):
    with get_arm(EMBEDDED, n_ctx=2048, batch=8, **THREADS) as arm:
        with pytest.raises(KitError, match="raise n_ctx"):
            run_arm(snips, arm, store=store, limit=8)
    assert store.runs()["status"].tolist() == ["interrupted"]


def test_runner_batches_and_the_store_identity_ignores_the_batch(store, one_arm, batch_arm, snips):
    """Answers agree at every batch size (above), so the identity leaves the batch out: rows answered at batch 4
    serve a one-at-a-time run of the same model without calling it."""
    assert batch_arm.identity() == one_arm.identity()
    batched = run_arm(snips, batch_arm, store=store, limit=6)
    assert batched.new_calls == 6 and batched.errors == 0
    rows = store.rows(batched.keys.values())
    assert rows["error"].isna().all() and (rows["ttft_s"] <= rows["latency_s"]).all()
    options = store.runs()["options"].iloc[0]
    assert '"batch": 4' in options
    again = run_arm(snips, one_arm, store=store, limit=6)
    assert again.new_calls == 0 and again.cached == 6 and again.keys == batched.keys
