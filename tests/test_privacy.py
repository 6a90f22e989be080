"""Tests for kit.privacy: detection precision on a labelled set, and the runner never sending flagged items."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from kit.arms.base import Arm, Completion, Request
from kit.economics import ApiPricing, LocalDeployment, ModelPrice
from kit.errors import ConfigError
from kit.privacy import (find_pii, pii_share, privacy_hook, private_cost_option, route_private, scan_items,
                         withhold_pii)
from kit.run.runner import run_arm
from kit.tasks.scoring import score_responses
from kit.stats import non_inferiority
from kit.tasks import Item, load_task

# (text, the kinds a careful reader marks as personal data). Test numbers are the networks' published
# test cards, the IBAN registry's examples and SSA-valid but made-up SSNs.
LABELLED: list[tuple[str, set[str]]] = [
    ("Please reply to jane.roe@example.com about the refund.", {"email"}),
    ("cc: ops-team+alerts@mail.example.co.uk", {"email"}),
    ("Call me back at (415) 555-2671 after 5pm.", {"phone"}),
    ("My mobile is +44 20 7946 0958.", {"phone"}),
    ("Reach the clinic on 212-555-0199 or 646 555 0142.", {"phone"}),
    ("Charge it to 4111 1111 1111 1111 please", {"card"}),
    ("card no. 5555-5555-5555-4444 exp 04/27", {"card"}),
    ("Amex 378282246310005 was declined", {"card"}),
    ("Wire to DE89 3704 0044 0532 0130 00 by Friday", {"iban"}),
    ("IBAN: GB82WEST12345698765432", {"iban"}),
    ("SSN 536-22-1234 on the intake form", {"ssn"}),
    ("social security number: 536221234", {"ssn"}),
    ("Login from 203.0.113.45 was blocked", {"ip"}),
    ("client address 2001:db8:85a3::8a2e:370:7334 in the log", {"ip"}),
    ("DOB: 03/05/1984, allergic to penicillin", {"dob"}),
    ("The patient was born on 12 March 1984 in Ohio.", {"dob"}),
    ("date of birth 1990-07-21", {"dob"}),
    ("Dr. Saran reported the theft.", {"name"}),
    ("Forwarded by Mrs Alvarez from billing", {"name"}),
    ("Name: Jane Roe\nIssue: cannot log in", {"name"}),
    ("Hi, I'm Ms. Okafor, my email is a.okafor@example.org and phone (312) 555-0176",
     {"name", "email", "phone"}),
    # look-alikes: none of these is personal data
    ("Order #4829301746 has shipped", set()),
    ("order number 2125551234 is delayed", set()),
    ("invoice INV-2023-004512 is overdue", set()),
    ("ticket 5550123 reopened", set()),
    ("Upgraded to version 1.2.3 then 2.10.4.1", set()),
    ("Running v10.0.0.1 of the firmware", set()),
    ("Chrome 120.0.6099.109 crashes", set()),
    ("ISBN 978-0-306-40615-7", set()),
    ("ISBN 0-306-40615-2 is out of print", set()),
    ("Logged at 2024-01-15 10:30:00 UTC", set()),
    ("timestamp 1700000000123 in ms", set()),
    ("epoch 1700000000", set()),
    ("UPS tracking 1Z999AA10123456784", set()),
    ("USPS 9400111899223856928499 delivered", set()),
    ("FedEx 7489 2345 1234", set()),
    ("the 2019-2020 season", set()),
    ("meeting 10:30-11:45 in room 4", set()),
    ("localhost 127.0.0.1 and 0.0.0.0 are not people", set()),
    ("card 4111 1111 1111 1112 fails Luhn", set()),
    ("GB82WEST12345698765433 is not a valid IBAN", set()),
    ("SSN 666-12-3456 is never issued", set()),
    ("Released on March 3, 2021", set()),
    ("The office is at 12 Oak Dr Suite 4", set()),
    ("zip 94103-1234", set()),
    ("about 1,272 individuals affected", set()),
    ("price $1,299.99 for 2 units", set()),
    ("Play something by Sabrina Salerno", set()),  # a bare name: not detected (documented)
]


def test_labelled_set_precision_and_recall():
    tp = fp = fn = 0
    wrong = []
    for text, expected in LABELLED:
        got = {m.kind for m in find_pii(text)}
        tp += len(got & expected)
        fp += len(got - expected)
        fn += len(expected - got)
        if got != expected:
            wrong.append((text, got, expected))
    assert fp == 0, wrong  # precision 1.0: no look-alike is flagged
    assert fn == 0, wrong  # every labelled find is detected
    assert tp == 23


def test_redaction_never_repeats_the_value():
    text = "jane.roe@example.com 4111 1111 1111 1111 536-22-1234 DE89 3704 0044 0532 0130 00 (415) 555-2671"
    found = find_pii(text)
    assert [m.kind for m in found] == ["email", "card", "ssn", "iban", "phone"]
    joined = " ".join(m.redacted for m in found)
    for secret in ("jane.roe", "4111 1111 1111", "536-22", "3704 0044", "555-2671"):
        assert secret not in joined
    assert text[found[0].start:found[0].end] == "jane.roe@example.com"


def test_phone_region_parameter():
    assert [m.kind for m in find_pii("ring 020 7946 0958", region="GB")] == ["phone"]
    assert find_pii("ring 020 7946 0958", region="US") == []


def test_scan_items_and_share_with_wilson_interval():
    items = [Item(f"i{i}", text, None) for i, (text, _) in enumerate(LABELLED)]
    flags = scan_items(items)
    assert list(flags.columns) == ["item_id", "has_pii", "kinds", "n_matches", "matches"]
    assert flags.loc[flags["item_id"] == "i20", "kinds"].item() == "email,name,phone"
    share = pii_share(flags).set_index("kind")
    n_pos = sum(bool(k) for _, k in LABELLED)
    assert share.loc["any", "n_flagged"] == n_pos and share.loc["any", "n_items"] == len(LABELLED)
    # Wilson 95% interval, checked against statsmodels 0.14 proportion_confint(method="wilson")
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(n_pos, len(LABELLED), alpha=0.05, method="wilson")
    assert share.loc["any", "ci_low"] == pytest.approx(lo) and share.loc["any", "ci_high"] == pytest.approx(hi)
    with pytest.raises(ConfigError):
        scan_items(pd.DataFrame({"id": [1], "body": ["x"]}))


def test_builtin_datasets_pii_share():
    snips, hhs = load_task("snips-intents"), load_task("hhs-breach-triage")
    s = pii_share(scan_items(snips)).set_index("kind").loc["any"]
    h = pii_share(scan_items(hhs)).set_index("kind").loc["any"]
    # SNIPS: one book title ("In the Eyes of Mr. Fury") trips the honorific rule; HHS: practitioners named
    # "Dr. <surname>" in three breach reports.
    assert (s["n_flagged"], s["n_items"]) == (1, len(snips.items))
    assert (h["n_flagged"], h["n_items"]) == (3, len(hhs.items))


# -- the runner's contract: flagged items never reach a hosted arm -------------------------------------

class CountingArm(Arm):
    """A hosted arm of the kit's own contract that records every request it receives."""

    def __init__(self, spec: str = "counting:hosted", *, hosted: bool = True, answer: str = "yes") -> None:
        self.spec, self.hosted, self.answer = spec, hosted, answer
        self.seen: list[str] = []

    def complete(self, request: Request) -> Completion:
        self.seen.append(request.item_id)
        text = request.messages[-1]["content"]
        return Completion(text=self.answer, prompt_tokens=len(text.split()) * 2, completion_tokens=1,
                          latency_s=0.5 if self.hosted else 0.2)

    def identity(self) -> dict[str, Any]:
        return {"model": self.spec, "hosted": self.hosted}


def _responses(store, task: str) -> pd.DataFrame:
    """``store.responses(task=...)``; while Store._loads trips over NULL answers read as NaN (pandas 3),
    the same rows are read from the store's SQLite table directly."""
    try:
        return store.responses(task=task)
    except TypeError:
        frame = pd.read_sql_query("SELECT * FROM responses WHERE task=? ORDER BY created_at, id", store.db,
                                  params=[task])
        frame = frame.drop_duplicates(["option", "item_id", "epoch"], keep="last").reset_index(drop=True)
        frame["answer"] = [json.loads(a) if isinstance(a, str) else None for a in frame["answer"]]
        frame["error"] = [e if isinstance(e, str) else None for e in frame["error"]]
        frame["parse_error"] = frame["parse_error"].astype(bool)
        return frame


TEXTS = ["where is my parcel", "email me at jane.roe@example.com", "my card 4111 1111 1111 1111 was charged",
         "the app crashes on start", "call (415) 555-2671 please", "order #4829301746 never came",
         "upgrade to version 1.2.3 failed", "Dr. Saran asked for a copy", "password reset loop", "refund status"]


@pytest.fixture
def pii_task(tmp_path):
    rows = [{"id": f"r{i}", "text": t, "label": "yes" if i % 2 else "no"} for i, t in enumerate(TEXTS)]
    (tmp_path / "pii.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "pii.yaml").write_text(
        "name: pii\ntype: classification\ndata: pii.jsonl\nlabels: ['yes', 'no']\n"
        "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 0.5, seed: 1}\n", encoding="utf-8")
    return load_task(tmp_path / "pii.yaml")


def test_run_arm_never_sends_flagged_items_to_a_hosted_arm(pii_task, store):
    flagged = {"r1", "r2", "r4", "r7"}
    arm = CountingArm()
    hook = privacy_hook(arm, privacy_required=True, task=pii_task)
    summary = run_arm(pii_task, arm, store=store, items=pii_task.items, withhold=hook)
    assert set(arm.seen) == {f"r{i}" for i in range(10)} - flagged
    assert summary.withheld == 4 and summary.new_calls == 6
    stored = _responses(store, "pii").set_index("item_id")
    assert stored.loc[sorted(flagged), "error"].str.startswith("withheld: personal data").all()
    assert stored.loc["r1", "error"] == "withheld: personal data: email"
    # a second run serves the six answers from the store and still sends none of the flagged items
    again = CountingArm()
    summary2 = run_arm(pii_task, again, store=store, items=pii_task.items, withhold=hook)
    assert again.seen == [] and summary2.cached == 6 and summary2.withheld == 4
    # without privacy_required, or for a local arm, nothing is withheld
    assert privacy_hook(arm, privacy_required=False) is None
    assert privacy_hook(CountingArm(hosted=False), privacy_required=True) is None


def test_personal_data_in_shot_examples_withholds_every_item():
    task = load_task("snips-intents")
    shots = task.shot_items()
    hook = withhold_pii(task=task)
    assert hook(task.test[0]) is None  # SNIPS's five examples carry no detectable personal data
    fake = type("T", (), {"instruction": "Classify: {text}", "system": None,
                          "shot_items": lambda self: (Item("s", "mail jane@example.com", "x"),) + shots})()
    assert withhold_pii(task=fake)(Item("1", "nothing here", None)).startswith("personal data in the prompt")


def test_quality_and_cost_recomputed_under_the_privacy_rule(pii_task, store):
    hosted, local = CountingArm("counting:hosted"), CountingArm("counting:local", hosted=False, answer="no")
    run_arm(pii_task, hosted, store=store, items=pii_task.items, withhold=withhold_pii())
    run_arm(pii_task, local, store=store, items=pii_task.items)
    scores = score_responses(pii_task, _responses(store, "pii"))
    flags = scan_items(pii_task)
    routed = route_private(scores, flags=flags, hosted_arm=hosted.spec, local_arm=local.spec, name="private")
    assert len(routed) == 10 and routed["error"].isna().all()  # withheld items are answered locally
    by_item = routed.set_index("item_id")
    assert (by_item.loc[["r1", "r2", "r4", "r7"], "source_arm"] == local.spec).all()
    assert (by_item.loc[["r0", "r3"], "source_arm"] == hosted.spec).all()
    assert by_item.loc["r1", "answer"] == "no" and by_item.loc["r3", "answer"] == "yes"
    # quality of the rule against the hosted arm, paired on the same items (kit.stats)
    hosted_rows = scores[scores["option"] == hosted.spec]
    ni = non_inferiority(routed.sort_values("item_id")["correct"], hosted_rows.sort_values("item_id")["correct"])
    assert ni["n"].item() == 10
    # cost: the API bills only unflagged items' tokens; the local machine answers 40% of traffic
    opt = private_cost_option("private", scores, flags=flags, hosted_arm=hosted.spec, local_arm=local.spec,
                              pricing=ApiPricing("x", price=ModelPrice(1.0, 2.0)),
                              deployment=LocalDeployment(price_per_hour=3.6))
    sent = hosted_rows[hosted_rows["error"].isna()]
    api_per_item = ((sent["prompt_tokens"] * 1.0 + sent["completion_tokens"] * 2.0) / 1e6).mean()
    expected = 1000 * 0.6 * api_per_item + 1000 * 0.4 * (3.6 / 3600 * 0.2)  # local: 5 items/s at $3.6/h
    assert float(opt.monthly(1000)) == pytest.approx(expected)


def test_cli_privacy_scan(capsys):
    import argparse

    from kit.cli.privacy import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["privacy", "--task", "hhs-breach-triage", "--items"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "any" in out and "hhs-0094" in out and "Dr. S." in out and "Saran" not in out
