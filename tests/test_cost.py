"""Tests for kit.cost. Prices come from the genai-prices snapshot (offline)."""

from __future__ import annotations

import pytest

from kit.cost import ModelPrice, clear_price_overrides, model_price, price_per_million, set_price_override


@pytest.fixture(autouse=True)
def _no_overrides():
    clear_price_overrides()
    yield
    clear_price_overrides()


@pytest.mark.parametrize("model, expected", [
    # OpenAI's list price for gpt-4o-mini: $0.15 in / $0.60 out per million tokens
    ("gpt-4o-mini", (0.15, 0.60)),
    ("openai:gpt-4o-mini", (0.15, 0.60)),
    ("openai/gpt-4o-mini", (0.15, 0.60)),
    ("openai_compat:gpt-4o-mini", (0.15, 0.60)),
    # Anthropic's list price for Claude 3.5 Haiku: $0.80 / $4.00
    ("claude-3-5-haiku-latest", (0.80, 4.00)),
    ("anthropic:claude-3-5-haiku-latest", (0.80, 4.00)),
])
def test_price_per_million_known_models(model, expected):
    assert price_per_million(model) == pytest.approx(expected)


def test_price_per_million_mistral_and_unknown():
    inp, out = price_per_million("mistral-small-latest")
    assert 0 < inp < out
    assert price_per_million("no-such-model-xyz") is None
    assert price_per_million("llama_cpp:smollm2-135m-instruct") is None


def test_tiered_prices_use_base_rate():
    # claude-sonnet-4-5 has a >200k-token tier at $6; the base rate is $3 / $15
    assert price_per_million("claude-sonnet-4-5") == pytest.approx((3.0, 15.0))


def test_overrides_win_and_cover_unknown_models():
    set_price_override("acme:tiny", input_per_m=0.1, output_per_m=0.2, cached_input_per_m=0.01, batch_discount=0.5)
    assert price_per_million("acme:tiny") == (0.1, 0.2)
    assert model_price("ACME:tiny").batch_discount == 0.5
    assert price_per_million("gpt-4o-mini", overrides={"gpt-4o-mini": ModelPrice(1.0, 2.0)}) == (1.0, 2.0)
    assert model_price("gpt-4o-mini").source.startswith("genai-prices")
    assert model_price("gpt-4o-mini").cached_input_per_m == pytest.approx(0.075)
