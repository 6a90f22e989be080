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


def test_a_reference_that_never_parses_is_a_counted_gap_and_no_verdict(tmp_path, monkeypatch):
    """Issue 26, case 3: an unlabelled task whose reference gives no usable answer on any item runs through
    quality, costs and the verdict (nothing crashes after the calls were paid) and says why there is no verdict."""
    from kit.experiment import Experiment
    from kit.pipeline import runner
    from kit.pipeline.folder import Doc, RunFolder, Table
    from kit.report import views
    from test_report_stages import write_tickets

    write_tickets(tmp_path, ["a", "b", "c"] * 20, monkeypatch)

    def replay(name: str, answer) -> str:
        rows = [{"item_id": f"t{i}", "output": answer(i), "latency_s": 0.1, "prompt_tokens": 40,
                 "completion_tokens": 2} for i in range(60)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / f"{name}.jsonl")

    exp = Experiment.from_mapping({
        "tasks": {"tickets": None}, "reference": "API", "ignore_labels": True,
        "options": [{"name": "API", "arm": f"replay:{replay('api', lambda i: 'I cannot help with that')}",
                     "runs": "third-party", "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
                    {"name": "Local", "arm": f"replay:{replay('local', lambda i: 'abc'[i % 3])}",
                     "runs": "self-hosted", "machine": "box"}],
        "machines": {"box": {"price_per_hour": 0.5}}, "store": str(tmp_path / "kit.sqlite")}, source="gap.yaml")
    folder = RunFolder(tmp_path / "run")
    made = runner.run_all(exp, folder)["tickets"]
    test_items = len(load_task("tickets", ignore_labels=True).test)
    assert made.recommended is None
    assert made.verdict.startswith(f"No verdict: the reference API gave no usable answer on {test_items} items")
    errors = folder.table(Table.ERRORS, task="tickets").set_index("option")
    assert errors.loc["API", "n_parse_errors"] == test_items  # counted, reported
    assert folder.table(Table.COMPARE, task="tickets").empty
    assert folder.doc(Doc.DECISION, task="tickets")["verdict"] == made.verdict
    assert "No verdict" in views.headline(folder)
