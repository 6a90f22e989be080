"""Tests for kit.decision: each rule of the decision matrix pinned by a case, and facts built from real tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit.economics import ApiPricing, LocalDeployment, ModelPrice, api_option, cost_table, local_option
from kit.decision import (API, BASE, HYBRID, TUNED, Constraints, Facts, OptionFacts, decide, facts_from_tables)
from kit.errors import ConfigError
from kit.privacy import pii_share, scan_items
from kit.cascade import choose_threshold, sweep_cascade
from kit.stats import compare_arms, latency_summary

VOL = 200_000


def opt(name, *, q, concl=None, cost, p95=0.2, n=1000, need=None, ops=0.0, lb=None, share=None, keeps=False,
        err=0.0):
    return OptionFacts(option=name, arm=name, n_items=n, quality=q, ci_low=q - 0.01, ci_high=min(1, q + 0.01),
                       conclusion=concl, lower_bound=lb if lb is not None else (-0.01 if concl in ("non-inferior",
                       "superior") else -0.04), n_needed=need, monthly_cost=cost, p95_latency_s=p95,
                       ops_hours_per_month=ops, share_local=share, keeps_pii_local=keeps, error_rate=err)


def facts(*options, pii=0.0, stand_in=False):
    return Facts(task="tickets", volume=VOL, options={o.option: o for o in options}, pii_share=pii,
                 api_is_stand_in=stand_in)


API_400 = opt(API, q=0.972, cost=400.0, p95=1.8)
TUNED_NI_31 = opt(TUNED, q=0.968, concl="non-inferior", cost=31.0, p95=0.15)
TUNED_INC_31 = opt(TUNED, q=0.93, concl="inconclusive", cost=31.0, n=120, need=800)
TUNED_INF_31 = opt(TUNED, q=0.80, concl="inferior", cost=31.0)
BASE_INF_25 = opt(BASE, q=0.70, concl="inferior", cost=25.0)
HYBRID_NI_150 = opt(HYBRID, q=0.965, concl="non-inferior", cost=150.0, share=0.7, p95=1.9)

CASES = [
    ("hybrid without a threshold is never chosen, even when the limits exclude the rest",
     facts(API_400, opt(BASE, q=0.7, concl="inferior", cost=600.0, p95=12.0),
           OptionFacts(option=HYBRID, n_items=1000, conclusion="inconclusive")),
     Constraints(monthly_volume=VOL, latency_target_s=2.0, budget_per_month=500), API, "api-only-feasible",
     "reference"),
    ("API out, hybrid without a threshold is not chosen",
     facts(API_400, BASE_INF_25, OptionFacts(option=HYBRID, n_items=1000, conclusion="inconclusive"), pii=0.12),
     Constraints(privacy_required=True, monthly_volume=VOL), BASE, "api-excluded-unproven", "inferior"),
    # id, facts, constraints, expected option, rule, conclusion
    ("seed: fine-tuned matches API at a tenth of the cost", facts(API_400, TUNED_NI_31, BASE_INF_25),
     Constraints(monthly_volume=VOL), TUNED, "cheapest-proven", "non-inferior"),
    ("low volume: API cheapest", facts(opt(API, q=0.97, cost=10.0), opt(TUNED, q=0.97, concl="non-inferior",
                                                                         cost=730.0)),
     Constraints(monthly_volume=VOL), API, "api-cheapest", "reference"),
    ("cheaper local unproven: stay on the API", facts(API_400, TUNED_INC_31),
     Constraints(monthly_volume=VOL), API, "api-only-proven", "reference"),
    ("cheaper local untested: never claimed", facts(API_400, opt(TUNED, q=0.97, concl=None, cost=31.0)),
     Constraints(monthly_volume=VOL), API, "api-only-proven", "reference"),
    ("hybrid keeps 70% local and is proven", facts(API_400, TUNED_INF_31, HYBRID_NI_150),
     Constraints(monthly_volume=VOL), HYBRID, "cheapest-proven", "non-inferior"),
    ("privacy + PII: API out, fine-tuned proven", facts(API_400, TUNED_NI_31, pii=0.12),
     Constraints(privacy_required=True, monthly_volume=VOL), TUNED, "cheapest-proven", "non-inferior"),
    ("privacy + PII: API out, local inconclusive", facts(API_400, TUNED_INC_31, BASE_INF_25, pii=0.12),
     Constraints(privacy_required=True, monthly_volume=VOL), TUNED, "api-excluded-unproven", "inconclusive"),
    ("privacy + PII: local inferior is said so", facts(API_400, TUNED_INF_31, pii=0.12),
     Constraints(privacy_required=True, monthly_volume=VOL), TUNED, "api-excluded-unproven", "inferior"),
    ("privacy without a scan: API out", facts(API_400, TUNED_NI_31, pii=None),
     Constraints(privacy_required=True, monthly_volume=VOL), TUNED, "cheapest-proven", "non-inferior"),
    ("privacy, no PII found: API allowed", facts(API_400, TUNED_INC_31, pii=0.0),
     Constraints(privacy_required=True, monthly_volume=VOL), API, "api-only-proven", "reference"),
    ("privacy + PII: hybrid escalating PII is out", facts(API_400, TUNED_INF_31, HYBRID_NI_150, pii=0.05),
     Constraints(privacy_required=True, monthly_volume=VOL), TUNED, "api-excluded-unproven", "inferior"),
    ("privacy + PII: hybrid keeping PII local is in",
     facts(API_400, TUNED_INF_31, opt(HYBRID, q=0.965, concl="non-inferior", cost=150.0, share=0.7, keeps=True),
           pii=0.05),
     Constraints(privacy_required=True, monthly_volume=VOL), HYBRID, "cheapest-proven", "non-inferior"),
    ("data residency: nothing leaves the machine", facts(API_400, TUNED_INC_31, HYBRID_NI_150, BASE_INF_25),
     Constraints(data_residency=True, monthly_volume=VOL), TUNED, "api-excluded-unproven", "inconclusive"),
    ("latency target rules out the API", facts(API_400, TUNED_NI_31, HYBRID_NI_150),
     Constraints(latency_target_s=0.5, monthly_volume=VOL), TUNED, "cheapest-proven", "non-inferior"),
    ("latency target rules out the API, local unproven", facts(API_400, TUNED_INC_31),
     Constraints(latency_target_s=0.5, monthly_volume=VOL), TUNED, "api-excluded-unproven", "inconclusive"),
    ("no ops capacity: local out", facts(API_400, opt(TUNED, q=0.97, concl="non-inferior", cost=31.0, ops=4)),
     Constraints(ops_capacity=0, monthly_volume=VOL), API, "api-only-feasible", "reference"),
    ("budget below every option", facts(API_400, TUNED_NI_31),
     Constraints(budget_per_month=20, monthly_volume=VOL), TUNED, "constraints-unmet", "non-inferior"),
    ("no API arm: nothing to test against", facts(TUNED_NI_31, BASE_INF_25),
     Constraints(monthly_volume=VOL), TUNED, "no-api-baseline", "inconclusive"),
    ("residency with only the API measured", facts(API_400),
     Constraints(data_residency=True, monthly_volume=VOL), BASE, "nothing-feasible", "inconclusive"),
]


@pytest.mark.parametrize("name, f, c, option, rule, conclusion", CASES, ids=[c[0] for c in CASES])
def test_decision_rules(name, f, c, option, rule, conclusion):
    d = decide(f, c)
    assert (d.recommended, d.rule, d.conclusion) == (option, rule, conclusion)
    assert ". " not in d.verdict and d.verdict.endswith(".")  # one sentence
    if conclusion not in ("non-inferior", "superior"):
        assert "is non-inferior" not in d.verdict  # never claimed without the test behind it
    assert list(d.checks["option"]) == [API, BASE, TUNED, HYBRID]


def test_verdicts_carry_the_numbers():
    d = decide(facts(API_400, TUNED_NI_31, BASE_INF_25), Constraints(monthly_volume=VOL))
    assert "$31/month" in d.verdict and "$400/month" in d.verdict and "96.8%" in d.verdict and "2-point" in d.verdict
    d = decide(facts(API_400, TUNED_INC_31), Constraints(monthly_volume=VOL))
    assert "inconclusive" in d.verdict and "800 items" in d.verdict
    d = decide(facts(API_400, TUNED_INF_31, HYBRID_NI_150), Constraints(monthly_volume=VOL))
    assert "keeping 70% of traffic local" in d.verdict
    d = decide(facts(API_400, TUNED_INC_31, pii=0.12), Constraints(privacy_required=True, monthly_volume=VOL))
    assert "personal data" in d.verdict and "not ruled out" in d.verdict
    assert any(r.startswith("hosted API excluded") for r in d.reasons)
    d = decide(facts(API_400, TUNED_NI_31), Constraints(budget_per_month=20, monthly_volume=VOL))
    assert "misses your limits" in d.verdict and "budget" in d.verdict


def test_caveats():
    d = decide(facts(API_400, TUNED_INC_31, stand_in=True), Constraints(monthly_volume=VOL))
    text = " ".join(d.caveats)
    assert "stand-in" in text and "Not measured: local base model, hybrid" in text
    assert "about 800 items would be needed" in text and "120 were run" in text
    d = decide(facts(API_400, opt(TUNED, q=0.97, concl="inconclusive", cost=31.0, n=50)), Constraints(monthly_volume=VOL))
    assert any(c.startswith("Only 50 items for local fine-tuned") for c in d.caveats)
    d = decide(facts(API_400, opt(TUNED, q=0.97, concl="inconclusive", cost=31.0, n=500, need=2400, err=0.12)),
               Constraints(monthly_volume=VOL))
    text = " ".join(d.caveats)
    assert "about 2,400 items would be needed" in text and "12% of calls failed" in text
    d = decide(facts(API_400, TUNED_INC_31, pii=0.0), Constraints(privacy_required=True, monthly_volume=VOL))
    assert any("does not detect bare names" in c for c in d.caveats)


def test_volume_mismatch_is_refused():
    with pytest.raises(ConfigError, match="items/month"):
        decide(facts(API_400), Constraints(monthly_volume=5))


# -- facts from the kit's own tables --------------------------------------------------------------------

def test_facts_from_tables_end_to_end():
    rng = np.random.default_rng(0)
    n = 600
    ids = [f"i{i:04d}" for i in range(n)]
    easy = rng.random(n) < 0.7
    texts = ["refund please"] * n
    texts[0], texts[1] = "mail me at jane@example.com", "call (415) 555-2671"
    frames = []
    for arm, ok, conf, lat, toks in [
        ("openai:gpt-4o-mini", np.where(easy, rng.random(n) < 0.98, rng.random(n) < 0.9), np.nan,
         rng.uniform(0.8, 2.0, n), 400),
        ("llama_cpp:ft", np.where(easy, rng.random(n) < 0.97, rng.random(n) < 0.45),
         np.where(easy, rng.uniform(0.8, 1, n), rng.uniform(0.2, 0.8, n)), rng.uniform(0.05, 0.2, n), 300),
    ]:
        frames.append(pd.DataFrame({"arm": arm, "item_id": ids, "epoch": 0, "correct": ok, "score": ok.astype(float),
                                    "confidence": conf, "latency_s": lat, "error": None, "parse_error": False,
                                    "prompt_tokens": toks, "completion_tokens": 3}))
    scores = pd.concat(frames, ignore_index=True)
    pricing = ApiPricing("gpt-4o-mini", price=ModelPrice(1.0, 2.0))
    gpu = LocalDeployment(price_per_hour=1.0, ops_hours_per_month=2, hourly_rate=0.0)
    costs = cost_table([api_option(API, scores, pricing=pricing, arm="openai:gpt-4o-mini"),
                        local_option(TUNED, scores, deployment=gpu, arm="llama_cpp:ft")], volume=VOL)
    flags = scan_items(pd.DataFrame({"item_id": ids, "text": texts}))
    sweep = sweep_cascade(scores, local_arm="llama_cpp:ft", hosted_arm="openai:gpt-4o-mini", pricing=pricing,
                          deployment=gpu, volume=VOL, keep_local=flags.loc[flags["has_pii"], "item_id"])
    f = facts_from_tables(
        task="tickets", volume=VOL, arms={API: "openai:gpt-4o-mini", TUNED: "llama_cpp:ft"}, scores=scores,
        comparison=compare_arms(scores, reference="openai:gpt-4o-mini", n_resamples=1000),
        costs=costs, latency=latency_summary(scores, n_resamples=200), pii=pii_share(flags),
        cascade=choose_threshold(sweep), cascade_keeps_pii_local=True, ops_hours={TUNED: 2},
        api_is_stand_in=True)
    assert set(f.options) == {API, TUNED, HYBRID}
    assert f.pii_share == pytest.approx(2 / n)
    assert f.options[TUNED].conclusion == "inferior" and f.options[TUNED].ops_hours_per_month == 2
    assert f.options[API].monthly_cost == pytest.approx(VOL * (400 + 6) / 1e6)
    assert f.options[HYBRID].keeps_pii_local and 0.4 < f.options[HYBRID].share_local < 0.75
    d = decide(f, Constraints(privacy_required=True, monthly_volume=VOL, margin=0.02))
    assert d.recommended == HYBRID and d.rule == "cheapest-proven"
    assert any("stand-in" in c for c in d.caveats)
    d2 = decide(f, Constraints(privacy_required=True, monthly_volume=VOL, ops_capacity=0))
    assert d2.recommended == HYBRID and d2.rule == "constraints-unmet"  # API excluded (PII); local options need ops
    assert "ops hours" in d2.verdict


def test_markdown_lists_rule_reasons_and_caveats():
    d = decide(facts(API_400, TUNED_INC_31, pii=0.12, stand_in=True),
               Constraints(privacy_required=True, monthly_volume=VOL))
    md = d.markdown()
    assert md.startswith("**local fine-tuned** — Choose local fine-tuned")
    assert "`api-excluded-unproven`" in md and "- hosted API excluded" in md and "stand-in" in md
