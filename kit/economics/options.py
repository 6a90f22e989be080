"""Options and what they cost: hosted APIs priced from measured tokens, self-hosted models from measured
throughput and the machine's price per hour, hybrids as shares of traffic.

Local options never get a price per token: the kit measures items per second and you say what the machine
costs (:class:`LocalDeployment`). One-time costs (setup, fine-tuning) are spread over a horizon.

>>> api = CostOption("api", "api", item_costs=np.array([0.002]))
>>> cost_table([api], volume=200_000)["monthly_cost"].item()
400.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError
from kit.economics.prices import ModelPrice, model_price

HOURS_PER_MONTH = 730.0  # 365.25 * 24 / 12, rounded as cloud providers do

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
        where = f"kit.economics.ApiPricing({self.model!r})"
        price = self.price or model_price(self.model)
        if price is None:
            raise ConfigError(f"no price known for model {self.model!r}", where=where,
                              fix="pass price=ModelPrice(input_per_m, output_per_m) or call "
                                  "kit.economics.set_price_override(model, input_per_m=..., output_per_m=...)")
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
    costs (setup, fine-tuning) are spread over ``horizon_months``. ``upkeep_monthly``: the cost of keeping
    the verdict true once deployed — labelling and retraining (:mod:`kit.economics.upkeep`), USD a month.
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
    upkeep_monthly: float = 0.0

    def __post_init__(self) -> None:
        bad = [n for n in ("price_per_hour", "setup_hours", "ops_hours_per_month", "hourly_rate",
                           "finetune_gpu_hours", "upkeep_monthly") if getattr(self, n) < 0]
        if bad or not 0 < self.utilisation <= 1 or self.horizon_months <= 0 or self.hours_per_month <= 0:
            raise ConfigError(f"invalid LocalDeployment values ({', '.join(bad) or 'utilisation/horizon/hours'})",
                              where="kit.economics.LocalDeployment",
                              fix="costs and hours are >= 0; utilisation is in (0, 1]; horizon_months > 0")

    @property
    def fixed_monthly(self) -> float:
        """People's time each month, the upkeep (labelling, retraining), and one-time costs amortised over the
        horizon (USD/month)."""
        ft_price = self.price_per_hour if self.finetune_price_per_hour is None else self.finetune_price_per_hour
        one_time = self.setup_hours * self.hourly_rate + self.finetune_gpu_hours * ft_price
        return self.ops_hours_per_month * self.hourly_rate + self.upkeep_monthly + one_time / self.horizon_months


@dataclass(frozen=True)
class CostOption:
    """One way of answering, with the measurements its cost is computed from.

    Build with :func:`api_option`, :func:`local_option` or :func:`hybrid_option`. ``item_costs``
    (API, USD per item) and ``latencies`` (local, seconds per item) are the measured per-item values;
    a hybrid is a list of (option, share of traffic it answers). ``throughput`` (local, items/s), when
    set, is the throughput measured at a chosen load (a load sweep's goodput) instead of
    ``concurrency / mean(latencies)``.
    """

    name: str
    kind: str  # "api" | "local" | "hybrid"
    item_costs: np.ndarray | None = None
    latencies: np.ndarray | None = None
    concurrency: int = 1
    deployment: LocalDeployment | None = None
    parts: tuple[tuple[CostOption, float], ...] = ()
    basis: str = ""
    throughput: float | None = None

    def point(self) -> Any:
        """Parameters at the measured values: mean USD per item (API), items/s (local)."""
        if self.kind == "api":
            return float(self.item_costs.mean())
        if self.kind == "local":
            if self.throughput is not None:
                return float(self.throughput)
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
        if self.kind == "api":
            return means
        if self.throughput is not None:  # resampled items change the work per item by the same ratio
            return self.throughput * float(values.mean()) / means
        return self.concurrency / means

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
        arms = scores[Col.OPTION].unique() if Col.OPTION in scores.columns else []
        if len(arms) > 1:
            raise ConfigError(f"the score table holds several arms {sorted(arms)}", where=where,
                              fix="pass arm=... to choose one")
        return scores
    rows = scores[scores[Col.OPTION] == arm]
    if rows.empty:
        raise ConfigError(f"no rows for arm {arm!r}", where=where, fix=f"choose among {sorted(scores[Col.OPTION].unique())}")
    return rows


def _withheld(rows: pd.DataFrame) -> pd.Series:
    err = rows[Col.ERROR] if Col.ERROR in rows.columns else pd.Series(None, index=rows.index)
    return err.astype("string").str.startswith("withheld:").fillna(False).astype(bool)


def api_item_costs(scores: pd.DataFrame, *, pricing: ApiPricing, arm: str | None = None) -> pd.DataFrame:
    """USD per item from measured tokens. Columns: arm, item_id, epoch, prompt_tokens, completion_tokens, cost_usd, sent.

    Withheld items were never sent and cost nothing; a call without token counts (a failed call)
    is counted at zero cost.

    >>> df = pd.DataFrame({"option": "a", "item_id": ["1"], "epoch": 0, "prompt_tokens": [1000], "completion_tokens": [100]})
    >>> round(api_item_costs(df, pricing=ApiPricing("gpt-4o-mini"))["cost_usd"].item(), 6)
    0.00021
    """
    rows = _rows(scores, arm, "kit.economics.api_item_costs")
    price = pricing.resolve()
    cached_price = price.cached_input_per_m if price.cached_input_per_m is not None else price.input_per_m
    in_per_m = (1 - pricing.cached_share) * price.input_per_m + pricing.cached_share * cached_price
    factor = (1 - price.batch_discount) if pricing.batch else 1.0
    p_tok = pd.to_numeric(rows.get(Col.PROMPT_TOKENS), errors="coerce").fillna(0.0)
    c_tok = pd.to_numeric(rows.get(Col.COMPLETION_TOKENS), errors="coerce").fillna(0.0)
    sent = ~_withheld(rows)
    cost = (p_tok * in_per_m + c_tok * price.output_per_m) / 1e6 * factor * sent
    return pd.DataFrame({Col.OPTION: rows[Col.OPTION].to_numpy(), Col.ITEM_ID: rows[Col.ITEM_ID].to_numpy(),
                         Col.EPOCH: rows[Col.EPOCH].to_numpy() if "epoch" in rows else 0,
                         Col.PROMPT_TOKENS: p_tok.to_numpy(), Col.COMPLETION_TOKENS: c_tok.to_numpy(),
                         Col.COST_USD: cost.to_numpy(dtype=float), "sent": sent.to_numpy()})


def api_option(name: str, scores: pd.DataFrame, *, pricing: ApiPricing, arm: str | None = None) -> CostOption:
    """A hosted option priced from the measured tokens of ``arm``'s score rows."""
    costs = api_item_costs(scores, pricing=pricing, arm=arm)
    if costs.empty:
        raise ConfigError("no items to price", where="kit.economics.api_option", fix="score the hosted arm first")
    price = pricing.resolve()
    return CostOption(name, "api", item_costs=costs[Col.COST_USD].to_numpy(dtype=float),
                      basis=f"{pricing.model} at ${price.input_per_m:g}/${price.output_per_m:g} per million "
                            f"tokens in/out ({price.source}), measured tokens of {len(costs)} items")


def measured_throughput(scores: pd.DataFrame, *, arm: str | None = None, concurrency: int = 1) -> pd.DataFrame:
    """Items per second at the measured concurrency: ``concurrency / mean(latency_s)`` (Little's law).

    Columns: arm, n, concurrency, mean_latency_s, items_per_s, items_per_hour.

    >>> df = pd.DataFrame({"option": "a", "item_id": range(4), "latency_s": [0.5, 0.5, 1.5, 1.5]})
    >>> measured_throughput(df, concurrency=2)["items_per_s"].item()
    2.0
    """
    lat = _latencies(scores, arm, "kit.economics.measured_throughput")
    rate = concurrency / float(lat.mean())
    return pd.DataFrame([{Col.OPTION: arm if arm is not None else str(scores[Col.OPTION].iloc[0]), Col.N: lat.size,
                          "concurrency": concurrency, "mean_latency_s": float(lat.mean()),
                          Col.ITEMS_PER_S: rate, "items_per_hour": rate * 3600}])


def _latencies(scores: pd.DataFrame, arm: str | None, where: str) -> np.ndarray:
    rows = _rows(scores, arm, where)
    lat = pd.to_numeric(rows.get(Col.LATENCY_S), errors="coerce").to_numpy(dtype=float)
    lat = lat[np.isfinite(lat) & (lat > 0)]
    if lat.size == 0:
        raise ConfigError("no measured latencies", where=where,
                          fix="run the local arm on some items first (latency_s is what throughput comes from)")
    return lat


def local_option(name: str, scores: pd.DataFrame, *, deployment: LocalDeployment, arm: str | None = None,
                 concurrency: int = 1, items_per_s: float | None = None, basis: str | None = None) -> CostOption:
    """A local option priced from measured throughput and ``deployment`` (no price per token).

    By default the throughput is ``concurrency / mean(latency)`` of the score rows (Little's law).
    ``items_per_s`` prices it at a throughput measured at a chosen load instead — a load sweep's goodput
    (:func:`kit.run.sweep.choose_goodput`: ``items_per_s=goodput.items_per_s, basis=goodput.basis``);
    the rows' latencies then only carry the items' variation into the bootstrap.

    >>> rows = pd.DataFrame({"option": "a", "item_id": range(4), "latency_s": [0.5, 0.5, 1.5, 1.5]})
    >>> local_option("local", rows, deployment=LocalDeployment(1.0), items_per_s=7.5,
    ...              basis="at batch 8").point()
    7.5
    """
    where = "kit.economics.local_option"
    if concurrency < 1:
        raise ConfigError(f"concurrency={concurrency}", where=where, fix="pass the concurrency measured")
    lat = _latencies(scores, arm, where)
    mode = "always on" if deployment.always_on else "on demand"
    tail = (f"utilisation {deployment.utilisation:.0%}, fixed ${deployment.fixed_monthly:,.2f}/month")
    if items_per_s is None:
        return CostOption(name, "local", latencies=lat, concurrency=concurrency, deployment=deployment,
                          basis=f"${deployment.price_per_hour:g}/hour {mode}, {concurrency / lat.mean():.3g} items/s "
                                f"measured at concurrency {concurrency} on {lat.size} items, {tail}")
    if isinstance(items_per_s, bool) or not np.isfinite(items_per_s) or items_per_s <= 0:
        raise ConfigError(f"items_per_s={items_per_s!r}", where=where,
                          fix="pass the measured items per second (> 0), e.g. goodput.items_per_s")
    return CostOption(name, "local", latencies=lat, concurrency=concurrency, deployment=deployment,
                      throughput=float(items_per_s),
                      basis=f"${deployment.price_per_hour:g}/hour {mode}, {items_per_s:.3g} items/s "
                            f"{basis or 'measured at a chosen load'}, {tail}")


def hybrid_option(name: str, parts: Sequence[tuple[CostOption, float]], *, basis: str = "") -> CostOption:
    """An option whose traffic is split: each part answers ``share`` of the items (shares may sum above 1:
    in a cascade the local model sees every item and the API the escalated share)."""
    if not parts or any(s < 0 for _, s in parts):
        raise ConfigError("a hybrid needs parts with shares >= 0", where="kit.economics.hybrid_option",
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
        rows.append({Col.OPTION: opt.name, Col.KIND: opt.kind, Col.MONTHLY_VOLUME: float(volume), Col.MONTHLY_COST: total,
                     Col.FIXED_COST: sum(p.deployment.fixed_monthly for p, _ in local), Col.COST_PER_ITEM: per_item,
                     Col.ACCURACY: acc, Col.COST_PER_1K_CORRECT: 1000 * per_item / acc if acc else float("nan"),
                     Col.ITEMS_PER_S: rate, Col.MACHINE_HOURS: hours, Col.BASIS: opt.basis})
    return pd.DataFrame(rows)


def _locals(opt: CostOption, share: float = 1.0) -> list[tuple[CostOption, float]]:
    """The local options inside ``opt`` with the share of traffic each answers."""
    if opt.kind == "local":
        return [(opt, share)]
    return [found for part, s in opt.parts for found in _locals(part, share * s)]
