"""Hosted model prices per million tokens: your overrides, else the ``genai-prices`` snapshot (offline).

>>> price_per_million("gpt-4o-mini")
(0.15, 0.6)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


from kit.errors import ConfigError

# Provider prefixes people write before a model name, mapped to genai-prices provider ids.
_PROVIDER_ALIASES = {
    "openai": "openai", "anthropic": "anthropic", "mistral": "mistral", "google": "google",
    "gemini": "google", "groq": "groq", "deepseek": "deepseek", "cohere": "cohere", "azure": "azure",
    "bedrock": "aws", "aws": "aws", "together": "together", "fireworks": "fireworks", "x-ai": "x-ai",
    "xai": "x-ai", "openrouter": "openrouter",
}


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one hosted model, and where the figure came from.

    ``cached_input_per_m`` is the price of input tokens served from the provider's prompt cache
    (``None``: no cache discount known); ``batch_discount`` is the share taken off by a batch API
    (0.5 = half price).
    """

    input_per_m: float
    output_per_m: float
    cached_input_per_m: float | None = None
    batch_discount: float = 0.0
    source: str = "override"


_OVERRIDES: dict[str, ModelPrice] = {}


def set_price_override(model: str, *, input_per_m: float, output_per_m: float,
                       cached_input_per_m: float | None = None, batch_discount: float = 0.0) -> ModelPrice:
    """Record your own prices for a model (it wins over the database), e.g. a negotiated rate.

    >>> set_price_override("acme:tiny", input_per_m=0.1, output_per_m=0.2).input_per_m
    0.1
    """
    if input_per_m < 0 or output_per_m < 0 or not 0 <= batch_discount < 1:
        raise ConfigError(f"invalid prices for {model!r}", where="kit.economics.set_price_override",
                          fix="prices are USD per million tokens (>= 0); batch_discount is in [0, 1)")
    price = ModelPrice(float(input_per_m), float(output_per_m),
                       None if cached_input_per_m is None else float(cached_input_per_m),
                       float(batch_discount), source="override")
    _OVERRIDES[_norm(model)] = price
    return price


def clear_price_overrides() -> None:
    """Forget every override set with :func:`set_price_override`."""
    _OVERRIDES.clear()


def _norm(model: str) -> str:
    return model.strip().lower()


def _split(model: str) -> tuple[str | None, str]:
    """'openai:gpt-4o-mini' -> ('openai', 'gpt-4o-mini'); an arm spec's backend is not a provider."""
    name = model.strip()
    for sep in (":", "/"):
        head, found, tail = name.partition(sep)
        if found and head.lower() in _PROVIDER_ALIASES:
            return _PROVIDER_ALIASES[head.lower()], tail
    return None, name


def model_price(model: str, *, overrides: dict[str, ModelPrice] | None = None) -> ModelPrice | None:
    """Prices for a hosted model: your overrides first, then the genai-prices snapshot; None if unknown.

    Accepts 'gpt-4o-mini', 'openai:gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest' and arm specs such
    as 'openai_compat:gpt-4o-mini' (the backend prefix is dropped when it is not a provider).

    >>> model_price("claude-3-5-haiku-latest").output_per_m
    4.0
    """
    table = {**_OVERRIDES, **{_norm(k): v for k, v in (overrides or {}).items()}}
    provider, name = _split(model)
    candidates = [_norm(model), _norm(name)]
    if ":" in name:  # an arm spec 'backend:model' whose backend is not a provider
        candidates.append(_norm(name.partition(":")[2]))
    for key in candidates:
        if key in table:
            return table[key]
    for key in candidates[1:] or candidates:
        found = _from_database(key, provider)
        if found is not None:
            return found
    return None


def price_per_million(model: str, *, overrides: dict[str, ModelPrice] | None = None) -> tuple[float, float] | None:
    """USD per million (input, output) tokens for a hosted model, offline; None if it is unknown.

    >>> price_per_million("mistral-small-latest") is not None
    True
    >>> price_per_million("no-such-model") is None
    True
    """
    price = model_price(model, overrides=overrides)
    return None if price is None else (price.input_per_m, price.output_per_m)


def _from_database(name: str, provider: str | None) -> ModelPrice | None:
    try:
        import genai_prices
        from genai_prices import Usage
    except ImportError:  # pragma: no cover - a dependency of the kit
        return None
    per = 1000  # price 1,000 tokens and scale: stays below tiered thresholds (e.g. >200k-token prompts)

    def calc(**usage: int) -> Decimal | None:
        for pid in ([provider, None] if provider else [None]):
            try:
                return genai_prices.calc_price(Usage(**usage), name, provider_id=pid).total_price
            except (LookupError, ValueError):
                continue
        return None

    inp, out = calc(input_tokens=per, output_tokens=0), calc(input_tokens=0, output_tokens=per)
    if inp is None or out is None:
        return None
    cached = calc(input_tokens=per, cache_read_tokens=per)
    cached_f = float(cached * 1000) if cached is not None and cached != inp else None
    return ModelPrice(float(inp * 1000), float(out * 1000), cached_f, 0.0,
                      source=f"genai-prices {getattr(genai_prices, '__version__', '')}".strip())


# -- options ---------------------------------------------------------------------------------------
