"""Tests for kit.cascade: the local-first cascade simulated from stored per-item scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit.economics import ApiPricing, LocalDeployment, ModelPrice
from kit.errors import ConfigError
from kit.cascade import cascade_scores, choose_threshold, default_thresholds, escalated, sweep_cascade
from kit.stats import non_inferiority

LOCAL, API = "llama_cpp:ft", "openai:gpt-4o-mini"
PRICING = ApiPricing("gpt-4o-mini", price=ModelPrice(1.0, 2.0))  # $1 / $2 per million tokens: easy sums
GPU = LocalDeployment(price_per_hour=3.6)  # $0.001 per second of machine time


def synth(n: int = 1000, seed: int = 0, easy_share: float = 0.7) -> pd.DataFrame:
    """Easy items: the local model is confident and right; hard items: unsure and often wrong."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < easy_share
    conf = np.where(easy, rng.uniform(0.8, 1.0, n), rng.uniform(0.2, 0.8, n))
    local_ok = np.where(easy, rng.random(n) < 0.97, rng.random(n) < 0.45)
    api_ok = np.where(easy, rng.random(n) < 0.98, rng.random(n) < 0.90)
    ids = [f"i{i:04d}" for i in range(n)]
    local = pd.DataFrame({"option": LOCAL, "item_id": ids, "epoch": 0, "correct": local_ok,
                          "score": local_ok.astype(float), "confidence": conf, "latency_s": rng.uniform(0.05, 0.2, n),
                          "error": None, "prompt_tokens": 300, "completion_tokens": 3})
    api = pd.DataFrame({"option": API, "item_id": ids, "epoch": 0, "correct": api_ok, "score": api_ok.astype(float),
                        "confidence": np.nan, "latency_s": rng.uniform(0.8, 2.0, n), "error": None,
                        "prompt_tokens": rng.integers(300, 500, n), "completion_tokens": 3})
    return pd.concat([local, api], ignore_index=True)


def tiny() -> pd.DataFrame:
    ids = ["a", "b", "c", "d", "e"]
    local = pd.DataFrame({"option": LOCAL, "item_id": ids, "epoch": 0, "correct": [True, True, False, False, True],
                          "confidence": [0.95, 0.7, 0.4, None, 0.9], "latency_s": [0.1, 0.2, 0.3, 0.4, 0.5],
                          "error": [None, None, None, "timeout", None]})
    api = pd.DataFrame({"option": API, "item_id": ids, "epoch": 0, "correct": [False, True, True, True, True],
                        "confidence": None, "latency_s": [1.0, 2.0, 3.0, 4.0, 5.0], "error": None,
                        "prompt_tokens": [1000, 2000, 3000, 4000, 5000], "completion_tokens": 500})
    df = pd.concat([local, api], ignore_index=True)
    df["score"] = df["correct"].astype(float)
    return df


def test_escalation_rule_and_thresholds():
    assert escalated(np.array([0.9, 0.5, 0.49, np.nan]), 0.5).tolist() == [False, False, True, True]
    taus = default_thresholds(np.array([0.3, 0.9, np.nan, 0.9]))
    assert taus.tolist() == [0.0, 0.3, 0.9, np.inf]


def test_sweep_by_hand_on_five_items():
    sweep = sweep_cascade(tiny(), local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU,
                          volume=1000, thresholds=[0.8], margin=0.02)
    row = sweep.iloc[0]
    # τ=0.8: a (0.95) and e (0.9) stay local; b (0.7), c (0.4) and d (no confidence: an error) escalate
    assert row["n_local"] == 2 and row["share_local"] == pytest.approx(0.4)
    # correctness: a local right, e local right, b/c/d from the API: right, right, right -> 5/5
    assert row["accuracy"] == pytest.approx(1.0) and row["api_accuracy"] == pytest.approx(0.8)
    # latency: local for a, e; local + API for b, c, d -> [0.1, 2.2, 3.3, 4.4, 0.5]; numpy linear p95
    assert row["p95_latency_s"] == pytest.approx(np.quantile([0.1, 2.2, 3.3, 4.4, 0.5], 0.95))
    # cost at 1,000 items/month: local machine answers all (mean latency 0.3 s -> 3.33 items/s at $3.6/h
    # = $0.0003 per item); the API bills b, c, d (2000+3000+4000 in, 500 out each) = 60% of traffic
    api_per_sent = np.mean([(p * 1.0 + 500 * 2.0) / 1e6 for p in (2000, 3000, 4000)])
    assert row["monthly_cost"] == pytest.approx(1000 * 0.3 / 3600 * 3.6 + 1000 * 0.6 * api_per_sent)
    # its non-inferiority figures are kit.stats' on the cascade's per-item vector
    ref = non_inferiority([1, 1, 1, 1, 1], [0, 1, 1, 1, 1], margin=0.02).iloc[0]
    assert row["lower_bound"] == pytest.approx(ref["lower_bound"]) and row["conclusion"] == ref["conclusion"]


def test_keep_local_items_are_never_escalated():
    table = cascade_scores(tiny(), local_arm=LOCAL, hosted_arm=API, tau=0.8, keep_local={"c"})
    by = table.set_index("item_id")
    assert by.loc["c", "source_arm"] == LOCAL and not by.loc["c", "escalated"]
    assert by.loc["d", "source_arm"] == API and by.loc["d", "latency_s"] == pytest.approx(4.4)
    sweep = sweep_cascade(tiny(), local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU, volume=1000,
                          thresholds=[np.inf], keep_local={"c"})
    assert sweep["n_local"].item() == 1 and sweep["policy"].item() == "cascade"


def test_choose_cheapest_non_inferior_threshold_keeps_most_traffic_local():
    scores = synth()
    sweep = sweep_cascade(scores, local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU,
                          volume=1_000_000, margin=0.02)
    assert sweep["tau"].is_monotonic_decreasing  # the fixed sequence: most escalation first
    seq = sweep["in_sequence"].tolist()
    assert seq == sorted(seq, reverse=True)  # once a threshold fails, none after it counts
    assert sweep["monthly_cost"].is_monotonic_decreasing
    choice = choose_threshold(sweep)
    passed = sweep[sweep["in_sequence"] & (sweep["policy"] != "all API")]
    assert choice.tau == pytest.approx(passed["tau"].min())
    assert choice.monthly_cost == pytest.approx(passed["monthly_cost"].min())
    assert choice.conclusion in ("non-inferior", "superior")
    assert 0.6 < choice.share_local < 0.75  # most easy items (70% of traffic) stay local
    assert "keeps" in choice.statement and "non-inferior" in choice.statement
    # the per-item table at the chosen τ gives the same quality as the sweep row
    table = cascade_scores(scores, local_arm=LOCAL, hosted_arm=API, tau=choice.tau)
    assert table["score"].mean() == pytest.approx(choice.accuracy)
    assert (1 - table["escalated"].mean()) == pytest.approx(choice.share_local)
    # local-only is worse than the API by more than the margin
    assert sweep.iloc[-1]["policy"] == "all local" and sweep.iloc[-1]["conclusion"] == "inferior"


def test_too_few_items_is_inconclusive_and_recommends_nothing():
    scores = synth(n=60, seed=3)
    sweep = sweep_cascade(scores, local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU, volume=1000)
    choice = choose_threshold(sweep)
    assert choice.tau is None and choice.conclusion == "inconclusive"
    assert choice.statement.startswith("No cascade recommended")


def test_unknown_arm_is_refused():
    with pytest.raises(ConfigError, match="not in the score table"):
        sweep_cascade(tiny(), local_arm="nope", hosted_arm=API, pricing=PRICING, deployment=GPU, volume=1)


# -- from a real store: the embedded llama.cpp model first, a hosted arm of the kit's contract behind it ----

def test_sweep_from_real_llama_cpp_responses(smol_arm, snips, store):
    from kit.arms.base import Arm, Completion
    from kit.run.runner import run_arm
    from kit.tasks.scoring import score_responses

    gold = {i.id: i.gold for i in snips.items}

    class Oracle(Arm):
        """A hosted arm of the kit's contract that answers each item's gold label."""

        spec, hosted = "oracle:gold", True

        def complete(self, request):
            return Completion(text=gold[request.item_id], prompt_tokens=400, completion_tokens=3, latency_s=1.0)

        def identity(self):
            return {"model": "oracle"}

    items = snips.test[:4]  # what the checks need: real confidences and both ends of the sweep
    run_arm(snips, smol_arm, store=store, items=items)
    run_arm(snips, Oracle(), store=store, items=items)
    scores = score_responses(snips, store.responses(task=snips.name))
    local_rows = scores[scores["option"] == smol_arm.spec]
    assert local_rows["confidence"].between(0, 1).all()  # llama.cpp gives the chosen label's probability
    sweep = sweep_cascade(scores, local_arm=smol_arm.spec, hosted_arm="oracle:gold", pricing=PRICING,
                          deployment=GPU, volume=10_000)
    assert sweep.iloc[0]["policy"] == "all API" and sweep.iloc[0]["accuracy"] == 1.0
    assert sweep.iloc[-1]["policy"] == "all local"
    assert sweep.iloc[-1]["accuracy"] == pytest.approx(local_rows["correct"].mean())
    assert (sweep["p95_latency_s"] > 0).all() and sweep["share_local"].is_monotonic_increasing
    choice = choose_threshold(sweep)
    assert choice.tau is None and choice.conclusion in ("inconclusive", "inferior")  # 4 items prove nothing


def test_api_only_row_does_not_stop_the_sequence_when_local_is_better():
    # 100 items: API-only against itself cannot be shown non-inferior at 2 points (too few items), but
    # it is the reference, not a candidate; a clearly better local model must still be recommended.
    rng = np.random.default_rng(3)
    scores = synth(n=100, seed=3)
    local = scores["option"] == LOCAL
    scores.loc[local, "correct"] = rng.random(100) < 0.95
    scores.loc[~local, "correct"] = rng.random(100) < 0.5
    scores["score"] = scores["correct"].astype(float)
    sweep = sweep_cascade(scores, local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU,
                          volume=1_000_000, margin=0.02)
    api_only = sweep[sweep["policy"] == "all API"].iloc[0]
    assert api_only["conclusion"] == "inconclusive"  # the reference compared with itself, 100 items
    choice = choose_threshold(sweep)
    assert choice.tau is not None and choice.conclusion == "superior"
    assert choice.share_local > 0.9
