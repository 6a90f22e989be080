"""Unlabelled tasks: the reference option's answers are the bar, tested on the built-in SNIPS task."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import ROOT
from kit.arms import get_arm
from kit.errors import ConfigError
from kit.tasks.compare import compare_options, disagreements
from kit.run.runner import run_arm
from kit.tasks import load_task
from kit.tasks.scoring import score_responses, score_unlabelled

N = 20


@pytest.fixture(scope="module")
def snips_unlabelled():
    return load_task("snips-intents", folder=ROOT / "datasets", ignore_labels=True)


def _replay(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return get_arm(f"replay:{path}")


def test_agreement_bar_on_snips_without_labels(snips_unlabelled, snips, smol_arm, store, tmp_path):
    task = snips_unlabelled
    assert not task.labelled and all(i.gold is None for i in task.items) and task.shot_items() == ()
    items = task.test[:N]
    gold = {i.id: i.gold for i in snips.items}  # the labelled copy stands in for an API's recorded answers
    missing = {items[3].id, items[11].id}  # the API log lacks two items: a counted gap
    api = _replay(tmp_path / "api.jsonl", [{"item_id": i.id, "output": gold[i.id], "model": "api-model"}
                                           for i in items if i.id not in missing])
    copy = _replay(tmp_path / "copy.jsonl", [{"item_id": i.id, "output": gold[i.id]} for i in items])
    keys = []
    for arm in (api, copy, smol_arm):
        keys += run_arm(task, arm, store=store, items=items).keys.values()
    rows = store.rows(keys)

    scores = score_unlabelled(task, rows, reference=api.spec)
    assert len(scores) == 3 * N  # nothing dropped: the gaps stay, marked
    gaps = scores[scores["gap"].notna()]
    assert set(gaps["item_id"]) == missing and set(gaps["gap"]) == {"error: not in replay file"}

    table = compare_options(task, scores, reference=api.spec, agreement_target=0.8).set_index("option")
    assert set(table["kind"]) == {"agreement"}
    good, small = table.loc[copy.spec], table.loc[smol_arm.spec]
    # 18 of 18 agree: the one-sided exact 95% lower bound is 0.05 ** (1 / 18) = 0.847 > 0.8
    assert good["n_items"] == N - 2 and good["n_gaps"] == 2 and good["candidate_value"] == 1.0
    assert good["agreement_lower_bound"] == pytest.approx(0.05 ** (1 / 18))
    assert good["qualifies"] and good["conclusion_adjusted"] == "meets the bar" and not good["better"]
    assert not small["qualifies"] and small["n_disagreements"] > 0
    assert "not correctness" in small["statement"] and "2 item(s) have no reference answer" in small["statement"]
    assert -1 <= small["kappa"] <= 1

    table_at_95 = compare_options(task, scores, reference=api.spec).set_index("option")
    assert table_at_95.loc[copy.spec, "conclusion_adjusted"] == "inconclusive"  # 18 items cannot show 95%
    assert table_at_95.loc[copy.spec, "n_needed"] > N

    dis = disagreements(task, scores, reference=api.spec)
    first = dis[dis["option"] == smol_arm.spec]
    assert len(first) == small["n_disagreements"] and (first["answer"] != first["reference_answer"]).all()
    assert first["text"].str.len().gt(0).all()
    tail = dis[dis["option"] == "(every option)"]
    assert set(tail["item_id"]) == missing and dis.index[-1] == tail.index[-1]


def test_unlabelled_extraction_scores_against_the_reference(hhs):
    task = load_task("hhs-breach-triage", folder=ROOT / "datasets", ignore_labels=True)
    items = task.test[:3]
    ans = [{"breach_type": ["Theft"], "location": ["Laptop"], "individuals_affected": 500 + n} for n in range(3)]
    rows = [{"option": "api", "item_id": i.id, "epoch": 0, "answer": a, "error": None, "parse_error": False}
            for i, a in zip(items, ans)]
    rows += [{"option": "local", "item_id": i.id, "epoch": 0, "answer": dict(a, individuals_affected=500),
              "error": None, "parse_error": False} for i, a in zip(items, ans)]
    scores = score_unlabelled(task, pd.DataFrame(rows), reference="api").set_index(["option", "item_id"])
    local = scores.loc["local"]
    assert [local.loc[i.id, "correct"] for i in items] == [True, False, False]  # only the first count matches
    assert local.loc[items[1].id, "score"] == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="no answers of the reference"):
        score_unlabelled(task, pd.DataFrame(rows), reference="nobody")


def test_compare_options_dispatches_and_refuses_gold_scores_without_labels(snips_unlabelled, snips):
    items = snips.test[:30]
    rows = [{"option": arm, "item_id": i.id, "epoch": 0, "answer": i.gold if (arm == "api" or n % 3) else "play_music",
             "error": None, "parse_error": False} for arm in ("api", "local") for n, i in enumerate(items)]
    labelled = compare_options(snips, score_responses(snips, pd.DataFrame(rows)), reference="api", n_resamples=500)
    assert labelled["kind"].item() == "paired accuracy" and "b10" in labelled
    with pytest.raises(ConfigError, match="score_unlabelled"):
        compare_options(snips_unlabelled, score_responses(snips, pd.DataFrame(rows)), reference="api")
