"""What an option's answers cost: how a third-party option is billed, how a self-hosted one's machine is paid.

A helper below the stages: the costs stage prices the options at the volume, the answer stage prices prompt
selection's dev answers, and the rounds driver prices each round's spend against ``max_cost_usd`` — all with
these functions, so stored answers are priced one way — and sizes each round so that no call it starts can take
the spend over the cap (:func:`call_bound_usd`).

>>> answers_usd(exp.option("API"), scores[scores["option"] == "API"])        # doctest: +SKIP
0.0029565
"""

from __future__ import annotations

import pandas as pd

from kit.columns import Col
from kit.arms.base import Request
from kit.economics import ApiPricing, LocalDeployment, ModelPrice, api_item_costs
from kit.errors import ConfigError
from kit.experiment import Experiment, Option


def pricing_of(option: Option) -> ApiPricing:
    """How a third-party option is billed (the stand-in: as the model it stands in for)."""
    price = option.price
    if price is None:
        raise ConfigError(f"option {option.name!r} has no price", where="kit.pipeline.costs",
                          fix="declare price: {model: ...} for a third-party option")
    if price.input_per_m is not None:
        return ApiPricing(model=option.name, price=ModelPrice(price.input_per_m, float(price.output_per_m or 0.0)),
                          cached_share=0.0)
    return ApiPricing(model=str(price.model), cached_share=price.cached_share)


def answers_usd(option: Option, answers: pd.DataFrame) -> float:
    """What an option's stored answers cost as the costs stage prices them: a third-party option's measured tokens at
    its price; a self-hosted one's paid machine hours (its answering seconds over the machine's utilisation, at its
    price per hour; 0 without a declared machine). Answers served from the store are priced as if answered.

    >>> answers_usd(exp.option("API"), scores[scores["option"] == "API"])        # doctest: +SKIP
    0.0029565
    """
    if answers.empty:
        return 0.0
    if not option.self_hosted:
        return float(api_item_costs(answers, pricing=pricing_of(option))[Col.COST_USD].sum())
    machine = option.machine
    seconds = float(pd.to_numeric(answers[Col.LATENCY_S], errors="coerce").fillna(0.0).clip(lower=0).sum())
    return seconds / 3600 / machine.utilisation * machine.price_per_hour if machine is not None else 0.0


def deployment_of(option: Option, exp: Experiment, *, train_seconds: float = 0.0,
                  upkeep_monthly: float = 0.0) -> LocalDeployment:
    """What running a self-hosted option costs besides its throughput (``upkeep_monthly``: labelling and
    retraining once deployed, USD a month)."""
    m = option.machine
    if m is None:
        raise ConfigError(f"option {option.name!r} has no machine", where="kit.pipeline.costs",
                          fix="declare machine: NAME for a self-hosted option")
    return LocalDeployment(price_per_hour=m.price_per_hour, utilisation=m.utilisation, always_on=m.always_on,
                           setup_hours=m.setup_hours, ops_hours_per_month=m.ops_hours_per_month,
                           hourly_rate=exp.hourly_rate, finetune_gpu_hours=train_seconds / 3600,
                           horizon_months=exp.horizon_months, upkeep_monthly=upkeep_monthly)


TEMPLATE_TOKENS = 16  # a chat template's own tokens around each message, at most (role markers, separators)


def call_bound_usd(option: Option, request: Request, *, seconds: float = 0.0) -> float:
    """The most one call of ``option`` with ``request`` can cost, priced as :func:`answers_usd` prices answers: a
    third-party option billed for every byte of the prompt as a token (a token is at least one byte) plus the
    chat template's tokens, and for ``max_tokens`` answer tokens; a self-hosted one for ``seconds`` of its
    machine (the slowest answer seen so far: a machine's time has no bound before it answers).

    >>> call_bound_usd(exp.option("API"), build_request(task, task.test[0]))          # doctest: +SKIP
    0.000178
    """
    prompt = sum(len(m["content"].encode("utf-8")) + TEMPLATE_TOKENS for m in request.messages) + TEMPLATE_TOKENS
    worst = pd.DataFrame({Col.OPTION: [option.name], Col.ITEM_ID: [request.item_id], Col.EPOCH: [0],
                          Col.PROMPT_TOKENS: [float(prompt)], Col.COMPLETION_TOKENS: [float(request.max_tokens)],
                          Col.LATENCY_S: [float(seconds)]})
    return answers_usd(option, worst)
