"""Economics: what each option costs per item, per month at your volume, and where the lines cross.

Hosted APIs are priced from measured tokens and list prices (:mod:`kit.economics.prices`); self-hosted
options from measured throughput and what their machine costs (:mod:`kit.economics.options`); break-even
volumes come with a Monte Carlo band (:mod:`kit.economics.breakeven`); the cost of staying right — labelling fresh
items every window, retraining a fine-tune — is :mod:`kit.economics.upkeep`.
"""

from kit.economics.breakeven import break_even, cost_curve, monthly_band
from kit.economics.options import (HOURS_PER_MONTH, ApiPricing, CostOption, LocalDeployment, api_item_costs,
                                   api_option, cost_table, hybrid_option, local_option, measured_throughput)
from kit.economics.prices import (ModelPrice, clear_price_overrides, model_price, price_per_million,
                                  set_price_override)

__all__ = ["HOURS_PER_MONTH", "ApiPricing", "CostOption", "LocalDeployment", "ModelPrice", "api_item_costs",
           "api_option", "break_even", "clear_price_overrides", "cost_curve", "cost_table", "hybrid_option",
           "local_option", "measured_throughput", "model_price", "monthly_band", "price_per_million", "set_price_override"]
