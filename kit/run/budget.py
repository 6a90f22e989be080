"""Spending caps for a run: ``--max-calls N`` and ``--max-cost USD``, estimated from prices and tokens.

Before each new call the next call's cost is bounded from above (prompt tokens estimated from its
characters, calibrated by the tokens measured so far; output at its ``max_tokens``), and calls still in
flight count with their bounds, so a run stops *before* the cap would be passed. Finished calls count
with their measured tokens. Prices are USD per million input / output tokens: ``-o price_in=..``
``-o price_out=..`` on the arm, else the price table (:func:`kit.economics.price_per_million`). Arms that
run on this machine (llama.cpp, the loopback stand-in, replay) cost nothing per token.

>>> budget = make_budget(arm, max_cost=0.50)                      # doctest: +SKIP
>>> run_arm(task, arm, store=store, budget=budget).stopped        # doctest: +SKIP
'stopped before call 1201: $0.4998 spent ...'
"""

from __future__ import annotations

from collections.abc import Callable

from kit.arms.base import Arm, Completion, Request
from kit.errors import BudgetExceeded, ConfigError

class Budget:
    """Stops a run before a cap would be passed: ``max_calls`` new calls, or ``max_cost`` dollars.

    ``cost_of(request)`` estimates a call's cost before it is made; ``spent`` adds measured costs.
    """

    def __init__(self, *, max_calls: int | None = None, max_cost: float | None = None,
                 cost_of: Callable[[Request], float] | None = None,
                 measured_cost: Callable[[Completion], float] | None = None) -> None:
        self.max_calls, self.max_cost = max_calls, max_cost
        self.cost_of, self.measured_cost = cost_of, measured_cost
        self.calls, self.spent = 0, 0.0

    def reserve(self, request: Request) -> None:
        if self.max_calls is not None and self.calls + 1 > self.max_calls:
            raise BudgetExceeded(f"stopped after {self.calls} new calls: the cap is --max-calls {self.max_calls}",
                                 fix="raise --max-calls to go on; answers so far are kept in the store")
        if self.max_cost is not None and self.cost_of is not None:
            estimate = self.cost_of(request)
            if self.spent + estimate > self.max_cost:
                raise BudgetExceeded(
                    f"stopped at ${self.spent:.4f} spent: the next call (about ${estimate:.4f}) would pass "
                    f"--max-cost {self.max_cost}", fix="raise --max-cost to go on; answers so far are kept")
        self.calls += 1

    def record(self, completion: Completion) -> None:
        if self.measured_cost is not None:
            self.spent += self.measured_cost(completion)


PriceFn = Callable[[str], "tuple[float, float] | None"]


def _table_price(model: str) -> tuple[float, float] | None:
    try:
        from kit.economics import price_per_million
    except ImportError:
        return None
    return price_per_million(model)


def arm_prices(arm: Arm, *, price: PriceFn | None = None) -> tuple[float, float] | None:
    """USD per million (input, output) tokens for an arm: its overrides, 0 for local arms, else the table."""
    override = getattr(arm, "price_overrides", None)
    if override is not None:
        return override
    if not arm.hosted:
        return 0.0, 0.0
    model = str(arm.identity().get("model", ""))
    return (price or _table_price)(model)


class CostBudget(Budget):
    """A :class:`kit.run.runner.Budget` that bounds each call's cost before it is made."""

    def __init__(self, *, price_in: float, price_out: float, model: str, max_calls: int | None = None,
                 max_cost: float | None = None) -> None:
        super().__init__(max_calls=max_calls, max_cost=max_cost)
        self.price_in, self.price_out, self.model = price_in, price_out, model
        self.pending: list[float] = []  # cost bounds of calls in flight
        self._chars = self._reserved = self._measured = self._tokens = 0

    def call_cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6

    def bound(self, request: Request) -> float:
        """An upper bound on the cost of answering ``request``."""
        chars = sum(len(str(m.get("content", ""))) for m in request.messages)
        per_char = 1 / 2  # before any measurement: generous (English runs near 1/4)
        if self._measured:
            mean_chars = self._chars / max(1, self._reserved)
            per_char = max(1 / 3, self._tokens / max(1.0, mean_chars * self._measured))
        prompt = chars * per_char + 8 * len(request.messages)
        return self.call_cost(prompt, request.max_tokens)

    def reserve(self, request: Request) -> None:
        if self.max_calls is not None and self.calls + 1 > self.max_calls:
            raise BudgetExceeded(
                f"stopped before call {self.calls + 1}: {self.calls} new calls made, the cap is --max-calls "
                f"{self.max_calls}", fix="raise --max-calls to go on; the answers so far are kept in the store")
        if self.max_cost is not None:
            bound = self.bound(request)
            committed = self.spent + sum(self.pending)
            if committed + bound > self.max_cost:
                raise BudgetExceeded(
                    f"stopped before call {self.calls + 1}: ${self.spent:.4f} spent on {self.calls} new calls "
                    f"({self.model} at ${self.price_in:g}/${self.price_out:g} per million input/output tokens, "
                    f"measured tokens); the next call could cost up to ${bound:.4f}, which would pass "
                    f"--max-cost {self.max_cost:g}",
                    fix="raise --max-cost to go on; the answers so far are kept in the store and are not paid again")
            self.pending.append(bound)
        self._chars += sum(len(str(m.get("content", ""))) for m in request.messages)
        self._reserved += 1
        self.calls += 1

    def record(self, completion: Completion) -> None:
        if self.pending:
            self.pending.remove(min(self.pending))  # keeps the in-flight bound on the safe side
        prompt, out = completion.prompt_tokens or 0, completion.completion_tokens or 0
        self.spent += self.call_cost(prompt, out)
        if completion.prompt_tokens:
            self._measured += 1
            self._tokens += completion.prompt_tokens


def make_budget(arm: Arm, *, max_calls: int | None = None, max_cost: float | None = None,
                price: PriceFn | None = None) -> Budget | None:
    """The runner's Budget for ``kit run --max-calls/--max-cost``; None when neither is set.

    Raises ConfigError when ``max_cost`` is set and the arm's model has no known price.
    """
    if max_calls is None and max_cost is None:
        return None
    if max_calls is not None and (isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0):
        raise ConfigError(f"--max-calls {max_calls!r} is not a number of calls",
                          fix="give a whole number of at least 0, e.g. --max-calls 100")
    if max_cost is None:
        return Budget(max_calls=max_calls)
    if max_cost <= 0:
        raise ConfigError(f"--max-cost {max_cost:g} must be above zero", fix="give a dollar amount, e.g. --max-cost 2.50")
    prices = arm_prices(arm, price=price)
    model = str(arm.identity().get("model", arm.spec))
    if prices is None:
        raise ConfigError(
            f"no known price for model '{model}', so --max-cost cannot be enforced", where=arm.spec,
            fix="give the prices in USD per million tokens: -o price_in=0.15 -o price_out=0.60 "
                "(input, output), or drop --max-cost and cap with --max-calls N")
    return CostBudget(price_in=prices[0], price_out=prices[1], model=model, max_calls=max_calls, max_cost=max_cost)


def describe_budget(budget: Budget | None) -> str | None:
    """One line on what a budget spent, for the CLI."""
    if budget is None:
        return None
    text = f"{budget.calls} new calls"
    if isinstance(budget, CostBudget):
        text += f", about ${budget.spent:.4f} ({budget.model})"
    return text

