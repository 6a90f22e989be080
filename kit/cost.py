"""Cost: what each option costs per item, per month at your volume, and where the lines cross.

Hosted APIs are priced from measured tokens (``prompt_tokens``/``completion_tokens`` of the score
table) and the ``genai-prices`` database (it ships a snapshot and works offline), with overrides for
models it does not know. Local options are priced from measured throughput (items/s at the measured
concurrency, from ``latency_s``) and what the machine costs per hour, plus one-time costs amortised
over a horizon — never from an invented price per token.

>>> price_per_million("gpt-4o-mini")
(0.15, 0.6)
>>> api = api_option("api", scores, pricing=ApiPricing("gpt-4o-mini"), arm="openai:gpt-4o-mini")  # doctest: +SKIP
>>> gpu = local_option("7b", scores, deployment=LocalDeployment(price_per_hour=1.0), concurrency=8)  # doctest: +SKIP
>>> cost_table([api, gpu], volume=200_000)                                                           # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from kit.errors import ConfigError

HOURS_PER_MONTH = 730.0  # 365.25 * 24 / 12, rounded as cloud providers do

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
        raise ConfigError(f"invalid prices for {model!r}", where="kit.cost.set_price_override",
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

@dataclass(frozen=True)
class ApiPricing:
    """How a hosted arm is billed: the model whose prices apply, and discounts you get.

    ``price`` overrides the database; ``cached_share`` is the share of input tokens read from the
    provider's prompt cache (billed at ``price.cached_input_per_m``); ``batch=True`` applies
    ``price.batch_discount`` (set it, e.g. 0.5 for a batch API at half price).
    """

    model: str
    price: ModelPrice | None = None
    cached_share: float = 0.0
    batch: bool = False

    def resolve(self) -> ModelPrice:
        where = f"kit.cost.ApiPricing({self.model!r})"
        price = self.price or model_price(self.model)
        if price is None:
            raise ConfigError(f"no price known for model {self.model!r}", where=where,
                              fix="pass price=ModelPrice(input_per_m, output_per_m) or call "
                                  "kit.cost.set_price_override(model, input_per_m=..., output_per_m=...)")
        if not 0 <= self.cached_share <= 1:
            raise ConfigError(f"cached_share={self.cached_share} must be in [0, 1]", where=where, fix="e.g. 0.3")
        if self.cached_share > 0 and price.cached_input_per_m is None:
            raise ConfigError("cached_share is set but no cached-input price is known", where=where,
                              fix="pass price=ModelPrice(..., cached_input_per_m=...)")
        if self.batch and price.batch_discount <= 0:
            raise ConfigError("batch=True but the price has no batch discount", where=where,
                              fix="pass price=ModelPrice(..., batch_discount=0.5)")
        return price


@dataclass(frozen=True)
class LocalDeployment:
    """What running a model yourself costs, beyond the measured throughput.

    price_per_hour: GPU or CPU instance, USD per hour. utilisation: share of paid hours spent
    answering (batching gaps, idle time; 1.0 = always busy). always_on: pay ``hours_per_month`` per
    instance (as many instances as the volume needs) instead of only the hours the volume needs.
    setup_hours and ops_hours_per_month: people's time at ``hourly_rate``. finetune_gpu_hours: measured
    training time, billed at ``finetune_price_per_hour`` (default: ``price_per_hour``). One-time
    costs (setup, fine-tuning) are spread over ``horizon_months``.
    """

    price_per_hour: float
    utilisation: float = 1.0
    always_on: bool = False
    hours_per_month: float = HOURS_PER_MONTH
    setup_hours: float = 0.0
    ops_hours_per_month: float = 0.0
    hourly_rate: float = 0.0
    finetune_gpu_hours: float = 0.0
    finetune_price_per_hour: float | None = None
    horizon_months: float = 12.0

    def __post_init__(self) -> None:
        bad = [n for n in ("price_per_hour", "setup_hours", "ops_hours_per_month", "hourly_rate",
                           "finetune_gpu_hours") if getattr(self, n) < 0]
        if bad or not 0 < self.utilisation <= 1 or self.horizon_months <= 0 or self.hours_per_month <= 0:
            raise ConfigError(f"invalid LocalDeployment values ({', '.join(bad) or 'utilisation/horizon/hours'})",
                              where="kit.cost.LocalDeployment",
                              fix="costs and hours are >= 0; utilisation is in (0, 1]; horizon_months > 0")

    @property
    def fixed_monthly(self) -> float:
        """People's time each month plus one-time costs amortised over the horizon (USD/month)."""
        ft_price = self.price_per_hour if self.finetune_price_per_hour is None else self.finetune_price_per_hour
        one_time = self.setup_hours * self.hourly_rate + self.finetune_gpu_hours * ft_price
        return self.ops_hours_per_month * self.hourly_rate + one_time / self.horizon_months


@dataclass(frozen=True)
class CostOption:
    """One way of answering, with the measurements its cost is computed from.

    Build with :func:`api_option`, :func:`local_option` or :func:`hybrid_option`. ``item_costs``
    (API, USD per item) and ``latencies`` (local, seconds per item) are the measured per-item values;
    a hybrid is a list of (option, share of traffic it answers).
    """

    name: str
    kind: str  # "api" | "local" | "hybrid"
    item_costs: np.ndarray | None = None
    latencies: np.ndarray | None = None
    concurrency: int = 1
    deployment: LocalDeployment | None = None
    parts: tuple[tuple[CostOption, float], ...] = ()
    basis: str = ""

    def point(self) -> Any:
        """Parameters at the measured values: mean USD per item (API), items/s (local)."""
        if self.kind == "api":
            return float(self.item_costs.mean())
        if self.kind == "local":
            return self.concurrency / float(self.latencies.mean())
        return tuple(p.point() for p, _ in self.parts)

    def sample(self, n: int, *, seed: int = 0) -> Any:
        """``n`` bootstrap draws of the parameters (items resampled: token lengths, latencies).

        The resampled rows depend only on ``seed`` and the number of items, so options measured on
        the same items are resampled alike (paired draws, common random numbers).
        """
        if self.kind == "hybrid":
            return tuple(p.sample(n, seed=seed) for p, _ in self.parts)
        values = self.item_costs if self.kind == "api" else self.latencies
        rng = np.random.default_rng([seed, values.size])
        means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
        return means if self.kind == "api" else self.concurrency / means

    def monthly(self, volume: Any, params: Any = None) -> np.ndarray:
        """USD per month at ``volume`` items/month (arrays broadcast against the parameters)."""
        params = self.point() if params is None else params
        v = np.asarray(volume, dtype=float)
        if self.kind == "api":
            return v * params
        if self.kind == "local":
            return self.compute_monthly(v, params) + self.deployment.fixed_monthly
        return sum(p.monthly(v * share, q) for (p, share), q in zip(self.parts, params))

    def compute_monthly(self, volume: Any, items_per_s: Any) -> np.ndarray:
        """Machine cost per month: hours the volume needs, or whole always-on instances."""
        d = self.deployment
        hours = np.asarray(volume, dtype=float) / (np.asarray(items_per_s) * 3600.0 * d.utilisation)
        if d.always_on:
            instances = np.maximum(1.0, np.ceil(hours / d.hours_per_month - 1e-9))
            return instances * d.hours_per_month * d.price_per_hour
        return hours * d.price_per_hour


def _rows(scores: pd.DataFrame, arm: str | None, where: str) -> pd.DataFrame:
    if arm is None:
        arms = scores["arm"].unique() if "arm" in scores.columns else []
        if len(arms) > 1:
            raise ConfigError(f"the score table holds several arms {sorted(arms)}", where=where,
                              fix="pass arm=... to choose one")
        return scores
    rows = scores[scores["arm"] == arm]
    if rows.empty:
        raise ConfigError(f"no rows for arm {arm!r}", where=where, fix=f"choose among {sorted(scores['arm'].unique())}")
    return rows


def _withheld(rows: pd.DataFrame) -> pd.Series:
    err = rows["error"] if "error" in rows.columns else pd.Series(None, index=rows.index)
    return err.astype("string").str.startswith("withheld:").fillna(False).astype(bool)


def api_item_costs(scores: pd.DataFrame, *, pricing: ApiPricing, arm: str | None = None) -> pd.DataFrame:
    """USD per item from measured tokens. Columns: arm, item_id, epoch, prompt_tokens, completion_tokens, cost_usd, sent.

    Withheld items were never sent and cost nothing; a call without token counts (a failed call)
    is counted at zero cost.

    >>> df = pd.DataFrame({"arm": "a", "item_id": ["1"], "epoch": 0, "prompt_tokens": [1000], "completion_tokens": [100]})
    >>> round(api_item_costs(df, pricing=ApiPricing("gpt-4o-mini"))["cost_usd"].item(), 6)
    0.00021
    """
    rows = _rows(scores, arm, "kit.cost.api_item_costs")
    price = pricing.resolve()
    cached_price = price.cached_input_per_m if price.cached_input_per_m is not None else price.input_per_m
    in_per_m = (1 - pricing.cached_share) * price.input_per_m + pricing.cached_share * cached_price
    factor = (1 - price.batch_discount) if pricing.batch else 1.0
    p_tok = pd.to_numeric(rows.get("prompt_tokens"), errors="coerce").fillna(0.0)
    c_tok = pd.to_numeric(rows.get("completion_tokens"), errors="coerce").fillna(0.0)
    sent = ~_withheld(rows)
    cost = (p_tok * in_per_m + c_tok * price.output_per_m) / 1e6 * factor * sent
    return pd.DataFrame({"arm": rows["arm"].to_numpy(), "item_id": rows["item_id"].to_numpy(),
                         "epoch": rows["epoch"].to_numpy() if "epoch" in rows else 0,
                         "prompt_tokens": p_tok.to_numpy(), "completion_tokens": c_tok.to_numpy(),
                         "cost_usd": cost.to_numpy(dtype=float), "sent": sent.to_numpy()})


def api_option(name: str, scores: pd.DataFrame, *, pricing: ApiPricing, arm: str | None = None) -> CostOption:
    """A hosted option priced from the measured tokens of ``arm``'s score rows."""
    costs = api_item_costs(scores, pricing=pricing, arm=arm)
    if costs.empty:
        raise ConfigError("no items to price", where="kit.cost.api_option", fix="score the hosted arm first")
    price = pricing.resolve()
    return CostOption(name, "api", item_costs=costs["cost_usd"].to_numpy(dtype=float),
                      basis=f"{pricing.model} at ${price.input_per_m:g}/${price.output_per_m:g} per million "
                            f"tokens in/out ({price.source}), measured tokens of {len(costs)} items")


def measured_throughput(scores: pd.DataFrame, *, arm: str | None = None, concurrency: int = 1) -> pd.DataFrame:
    """Items per second at the measured concurrency: ``concurrency / mean(latency_s)`` (Little's law).

    Columns: arm, n, concurrency, mean_latency_s, items_per_s, items_per_hour.

    >>> df = pd.DataFrame({"arm": "a", "item_id": range(4), "latency_s": [0.5, 0.5, 1.5, 1.5]})
    >>> measured_throughput(df, concurrency=2)["items_per_s"].item()
    2.0
    """
    lat = _latencies(scores, arm, "kit.cost.measured_throughput")
    rate = concurrency / float(lat.mean())
    return pd.DataFrame([{"arm": arm if arm is not None else str(scores["arm"].iloc[0]), "n": lat.size,
                          "concurrency": concurrency, "mean_latency_s": float(lat.mean()),
                          "items_per_s": rate, "items_per_hour": rate * 3600}])


def _latencies(scores: pd.DataFrame, arm: str | None, where: str) -> np.ndarray:
    rows = _rows(scores, arm, where)
    lat = pd.to_numeric(rows.get("latency_s"), errors="coerce").to_numpy(dtype=float)
    lat = lat[np.isfinite(lat) & (lat > 0)]
    if lat.size == 0:
        raise ConfigError("no measured latencies", where=where,
                          fix="run the local arm on some items first (latency_s is what throughput comes from)")
    return lat


def local_option(name: str, scores: pd.DataFrame, *, deployment: LocalDeployment, arm: str | None = None,
                 concurrency: int = 1) -> CostOption:
    """A local option priced from measured throughput and ``deployment`` (no price per token)."""
    if concurrency < 1:
        raise ConfigError(f"concurrency={concurrency}", where="kit.cost.local_option", fix="pass the concurrency measured")
    lat = _latencies(scores, arm, "kit.cost.local_option")
    mode = "always on" if deployment.always_on else "on demand"
    return CostOption(name, "local", latencies=lat, concurrency=concurrency, deployment=deployment,
                      basis=f"${deployment.price_per_hour:g}/hour {mode}, {concurrency / lat.mean():.3g} items/s "
                            f"measured at concurrency {concurrency} on {lat.size} items, utilisation "
                            f"{deployment.utilisation:.0%}, fixed ${deployment.fixed_monthly:,.2f}/month")


def hybrid_option(name: str, parts: Sequence[tuple[CostOption, float]], *, basis: str = "") -> CostOption:
    """An option whose traffic is split: each part answers ``share`` of the items (shares may sum above 1:
    in a cascade the local model sees every item and the API the escalated share)."""
    if not parts or any(s < 0 for _, s in parts):
        raise ConfigError("a hybrid needs parts with shares >= 0", where="kit.cost.hybrid_option",
                          fix="pass [(local, 1.0), (api_on_escalated_items, 0.3)]")
    return CostOption(name, "hybrid", parts=tuple((p, float(s)) for p, s in parts), basis=basis)


# -- tables ----------------------------------------------------------------------------------------

def cost_table(options: Sequence[CostOption], *, volume: float,
               accuracy: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Monthly cost of each option at ``volume`` items per month, and per 1,000 correct answers.

    Columns: option, kind, monthly_volume, monthly_cost, fixed_cost, cost_per_item, accuracy,
    cost_per_1k_correct, items_per_s, machine_hours, basis.

    >>> api = CostOption("api", "api", item_costs=np.array([0.002]))
    >>> cost_table([api], volume=200_000, accuracy={"api": 0.97})["monthly_cost"].item()
    400.0
    """
    rows = []
    for opt in options:
        total = float(opt.monthly(volume))
        local = _locals(opt)
        acc = (accuracy or {}).get(opt.name)
        rate = local[0][0].point() if local else None
        hours = (volume * local[0][1] / (rate * 3600 * local[0][0].deployment.utilisation)) if local else None
        per_item = total / volume if volume > 0 else float("nan")
        rows.append({"option": opt.name, "kind": opt.kind, "monthly_volume": float(volume), "monthly_cost": total,
                     "fixed_cost": sum(p.deployment.fixed_monthly for p, _ in local), "cost_per_item": per_item,
                     "accuracy": acc, "cost_per_1k_correct": 1000 * per_item / acc if acc else float("nan"),
                     "items_per_s": rate, "machine_hours": hours, "basis": opt.basis})
    return pd.DataFrame(rows)


def _locals(opt: CostOption, share: float = 1.0) -> list[tuple[CostOption, float]]:
    """The local options inside ``opt`` with the share of traffic each answers."""
    if opt.kind == "local":
        return [(opt, share)]
    return [found for part, s in opt.parts for found in _locals(part, share * s)]


def _crossing(a: CostOption, b: CostOption, pa: Any, pb: Any, grid: np.ndarray) -> np.ndarray:
    """First volume on ``grid`` (refined by bisection) where the cheaper of a and b changes; NaN if none."""
    pa_, pb_ = _col(pa), _col(pb)
    diff = a.monthly(grid[None, :], pa_) - b.monthly(grid[None, :], pb_)
    sign = np.sign(diff)
    change = (sign[:, 1:] != sign[:, :-1]) & (sign[:, :-1] != 0)
    has = change.any(axis=1)
    idx = np.where(has, change.argmax(axis=1), 0)
    lo, hi = np.log(grid[idx]), np.log(grid[idx + 1])
    s_lo = sign[np.arange(sign.shape[0]), idx]
    for _ in range(60):
        mid = (lo + hi) / 2
        d = a.monthly(np.exp(mid)[:, None], pa_) - b.monthly(np.exp(mid)[:, None], pb_)
        same = np.sign(d[:, 0]) == s_lo
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    out = np.exp(hi)
    out[~has] = np.nan
    return out


def _col(params: Any) -> Any:
    """Parameters shaped as a column (draws x 1) so they broadcast against a volume grid."""
    if isinstance(params, tuple):
        return tuple(_col(p) for p in params)
    return np.asarray(params, dtype=float).reshape(-1, 1)


def _n(params: Any) -> int:
    return _n(params[0]) if isinstance(params, tuple) else np.asarray(params).size


def _repeat(params: Any, n: int) -> Any:
    return tuple(_repeat(p, n) for p in params) if isinstance(params, tuple) else np.full(n, float(params))


def break_even(options: Sequence[CostOption], *, max_volume: float = 1e10, n_draws: int = 2000, seed: int = 0,
               ci: float = 0.9) -> pd.DataFrame:
    """Volume (items/month) where each pair of options costs the same, with a Monte Carlo band.

    The band comes from ``n_draws`` bootstrap draws of the measurements (API token lengths, local
    latencies), seeded. Columns: option_a, option_b, break_even_volume, low, high, ci_level,
    share_of_draws_crossing, cheaper_below, cheaper_above, statement.
    """
    grid = np.logspace(0, math.log10(max_volume), 400)
    draws = {o.name: o.sample(n_draws, seed=seed) for o in options}
    rows = []
    for i, a in enumerate(options):
        for b in options[i + 1:]:
            point = float(_crossing(a, b, _repeat(a.point(), 1), _repeat(b.point(), 1), grid)[0])
            mc = _crossing(a, b, draws[a.name], draws[b.name], grid)
            ok = mc[np.isfinite(mc)]
            lo, hi = (np.quantile(ok, [(1 - ci) / 2, (1 + ci) / 2]) if ok.size else (np.nan, np.nan))
            below_v = point / 2 if np.isfinite(point) else 1000.0
            cheaper_low = a.name if a.monthly(below_v) < b.monthly(below_v) else b.name
            other = b.name if cheaper_low == a.name else a.name
            if np.isfinite(point):
                words = (f"{cheaper_low} is cheaper below about {point:,.0f} items/month and {other} above "
                         f"({100 * ci:g}% band {lo:,.0f} to {hi:,.0f}; {ok.size / n_draws:.0%} of draws cross).")
            else:
                words = (f"{cheaper_low} is cheaper at every volume up to {max_volume:,.0f} items/month "
                         f"({ok.size / n_draws:.0%} of draws cross).")
            rows.append({"option_a": a.name, "option_b": b.name, "break_even_volume": point, "low": float(lo),
                         "high": float(hi), "ci_level": ci, "share_of_draws_crossing": ok.size / n_draws,
                         "cheaper_below": cheaper_low, "cheaper_above": other if np.isfinite(point) else cheaper_low,
                         "statement": words})
    return pd.DataFrame(rows, columns=["option_a", "option_b", "break_even_volume", "low", "high", "ci_level",
                                       "share_of_draws_crossing", "cheaper_below", "cheaper_above", "statement"])


def cost_curve(options: Sequence[CostOption], *, volumes: Sequence[float] | None = None, n_draws: int = 500,
               seed: int = 0, ci: float = 0.9) -> pd.DataFrame:
    """Cost against volume for plotting: one row per volume and option with a Monte Carlo band.

    Columns: volume, option, kind, monthly_cost, cost_low, cost_high.
    """
    vols = np.asarray(volumes if volumes is not None else np.logspace(2, 8, 61), dtype=float)
    frames = []
    for opt in options:
        draws = opt.monthly(vols[None, :], _col(opt.sample(n_draws, seed=seed)))
        lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        frames.append(pd.DataFrame({"volume": vols, "option": opt.name, "kind": opt.kind,
                                    "monthly_cost": opt.monthly(vols), "cost_low": lo, "cost_high": hi}))
    return pd.concat(frames, ignore_index=True)


def _cmd_price(args: Any) -> int:
    from kit.cli import print_table

    rows = []
    for model in args.models:
        p = model_price(model)
        rows.append({"model": model, "input_per_m": p.input_per_m if p else None,
                     "output_per_m": p.output_per_m if p else None,
                     "cached_input_per_m": p.cached_input_per_m if p else None,
                     "source": p.source if p else "unknown: set a price override"})
    print_table(rows, as_json=args.json)
    return 0 if all(r["input_per_m"] is not None for r in rows) else 1


def register_cli(sub: Any) -> None:
    """``kit price MODEL...``: USD per million tokens from the offline genai-prices snapshot."""
    p = sub.add_parser("price", help="hosted model prices per million tokens (offline genai-prices snapshot)")
    p.add_argument("models", nargs="+", help="e.g. gpt-4o-mini openai:gpt-4o-mini claude-3-5-haiku-latest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_price)
