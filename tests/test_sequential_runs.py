"""Sequential runs (experiment key ``sequential:``) on a small project of their own: replayed outputs (a real arm)
answer a real task through the real store in rounds; the rounds stop when the verdict is settled, and the quality
stage decides on the confidence sequences."""

from __future__ import annotations


import numpy as np
import pytest

from kit.columns import Col
from kit.experiment import Experiment
from kit.pipeline.folder import Doc, Table
from kit.pipeline.looks import Question, Questions, round_looks, settled_options
from kit.report import views
from kit.stats.sequential import METHOD
from kit.tasks import load_task
from test_report_stages import run_all, write_replay, write_tickets

N = 400  # 201 test items


@pytest.fixture
def project(tmp_path, monkeypatch):
    """One three-label task with balanced labels and the recorded outputs of an API (80 % right) and of a
    self-hosted model (97 % right), both fast."""
    rng = np.random.default_rng(11)
    gold = rng.choice(["a", "b", "c"], size=N)
    write_tickets(tmp_path, gold, monkeypatch)

    return tmp_path, {"api": write_replay(tmp_path, "api", gold, 0.80, rng),
                      "good": write_replay(tmp_path, "good", gold, 0.97, rng)}


def experiment(tmp_path, files, **changes) -> Experiment:
    data = {
        "tasks": {"tickets": None}, "reference": "API",
        "options": [
            {"name": "API", "arm": f"replay:{files['api']}", "runs": "third-party",
             "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
            {"name": "Good", "arm": f"replay:{files['good']}", "runs": "self-hosted", "machine": "box"},
        ],
        "machines": {"box": {"price_per_hour": 0.5, "utilisation": 0.6}},
        "latency_target_s": 2.0, "store": str(tmp_path / "kit.sqlite"), **changes}
    return Experiment.from_mapping(data, source="test.yaml")


def test_a_sequential_run_stops_when_settled_with_the_fixed_runs_verdict(project):
    tmp_path, files = project
    fixed = run_all(tmp_path, experiment(tmp_path, files), "fixed")
    seq = run_all(tmp_path, experiment(tmp_path, files, sequential={"round_items": 40}), "seq")

    doc = seq.doc(Doc.SEQUENTIAL, task="tickets")
    assert doc["stopped"] == "settled" and doc["fixed_items"] == 201 and doc["method"] == METHOD
    assert doc["items"] == 40 * doc["round"] and doc["items"] < 201
    assert doc["settled"] == {"API": True, "Good": True}
    # every option answered the same first items of the test split, in its order
    first = [i.id for i in load_task("tickets").test][:doc["items"]]
    assert all(sorted(r.keys) == sorted(first) and r.items == doc["items"] for r in seq.runs(task="tickets"))
    # spent against the fixed plan: priced per item as answered, the plan is the same price for 200 items
    assert doc["spent_usd"]["API"] == pytest.approx(doc["items"] * (40 * 0.15 + 2 * 0.6) / 1e6)
    assert doc["planned_usd"]["API"] == pytest.approx(201 * (40 * 0.15 + 2 * 0.6) / 1e6)
    assert 0 < doc["spent_usd"]["Good"] < doc["planned_usd"]["Good"]

    looks = seq.table(Table.SEQUENTIAL, task="tickets")
    assert looks[Col.ROUND].max() == doc["round"] and set(looks[Col.N_ITEMS]) == {40 * k for k in
                                                                                range(1, doc["round"] + 1)}
    last = looks[looks[Col.ROUND] == doc["round"]]
    assert last.groupby(Col.OPTION)[Col.SPENT_USD].first().to_dict() == pytest.approx(doc["spent_usd"])
    bar = last[last[Col.QUESTION] == Question.BAR.value].iloc[0]
    assert bar[Col.OPTION] == "Good" and bar[Col.STATUS] == "passes" and bar[Col.CS_LOW] > -0.02
    assert bar["alpha"] == pytest.approx(0.05)  # one candidate: Bonferroni leaves alpha whole
    assert set(last[Col.QUESTION]) == {"bar", "floor", "latency", "vs leader"}
    lead = last[last[Col.QUESTION] == "vs leader"].iloc[0]  # Good passes everything: it leads, API is tested on it
    assert (lead[Col.OPTION], lead[Col.BASELINE]) == ("API", "Good") and lead[Col.CS_HIGH] < 0
    # earlier rounds left something open (else the run would have stopped there)
    assert (looks[looks[Col.ROUND] < doc["round"]][Col.STATUS] == "open").any() or doc["round"] == 1

    compare = seq.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    assert compare.loc["Good", Col.CONCLUSION_ADJUSTED] in ("superior", "non-inferior")
    assert compare.loc["Good", Col.LOWER_BOUND] == pytest.approx(bar[Col.CS_LOW])
    assert compare.loc["Good", Col.STATEMENT].startswith("Sequential run, stopped after")
    assert seq.doc(Doc.DECISION, task="tickets")["recommended"] == fixed.doc(Doc.DECISION, task="tickets")[
        "recommended"] == "Good"
    floor = seq.table(Table.FLOOR, task="tickets")
    assert floor[Col.PASSES].all() and floor[Col.STATEMENT].str.startswith("Sequential run").all()

    # the report says where it stopped, what it spent against the fixed plan, and names the method
    text = views.sequential(seq)
    assert f"stopped after **{doc['items']} of 201 items** (round {doc['round']}, 40 items a round: every " \
           "option settled)" in text
    assert f"{2 * doc['items']:,} answers against the fixed plan's" in text and "402 answers" in text
    spent, planned = sum(doc["spent_usd"].values()), sum(doc["planned_usd"].values())
    assert f"Spent **&#36;{spent:.4f}**" in text and f"fixed plan's &#36;{planned:.4f}" in text  # $ kept out of LaTeX
    assert "API is shown below Good" in text
    assert "Good passes the bar" in text and "Waudby-Smith" in text and "JRSS-B 2024" in text
    assert views.sequential(fixed).startswith("- a fixed run")


def test_the_cost_cap_holds_every_call_priced_at_its_most_before_it_starts(project):
    """Issue 26, case 5: a round never starts a call that could take the spend over ``max_cost_usd`` (rounds
    shrink to what the cap allows), and the report states the spend against the cap."""
    tmp_path, files = project
    cap = 4e-4
    folder = run_all(tmp_path, experiment(tmp_path, files, sequential={"round_items": 30, "max_cost_usd": cap}))
    doc = folder.doc(Doc.SEQUENTIAL, task="tickets")
    assert doc["stopped"] == "cost cap" and doc["max_cost_usd"] == cap and 0 < doc["items"] < 201
    assert sum(doc["spent_usd"].values()) <= cap
    assert doc["round"] >= 2 and doc["items"] < 30 * doc["round"]  # a single item first, then rounds cut to the cap
    assert f"cost cap &#36;{cap:.4f}" in views.sequential(folder)
    # a question still open after stopping counts as not shown
    compare = folder.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    looks = folder.table(Table.SEQUENTIAL, task="tickets")
    bar = looks[(looks[Col.QUESTION] == "bar") & (looks[Col.ROUND] == doc["round"])].iloc[0]
    expected = {"open": "inconclusive", "passes": compare.loc["Good", Col.CONCLUSION_ADJUSTED]}[bar[Col.STATUS]]
    assert compare.loc["Good", Col.CONCLUSION_ADJUSTED] == expected


def test_a_cost_cap_below_one_items_calls_is_refused_before_any_call(project):
    import sqlite3

    from kit.errors import ConfigError

    tmp_path, files = project
    with pytest.raises(ConfigError, match="below what one item's calls can cost") as err:
        run_all(tmp_path, experiment(tmp_path, files, sequential={"round_items": 30, "max_cost_usd": 1e-9}))
    assert "raise max_cost_usd" in err.value.fix
    with sqlite3.connect(tmp_path / "kit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0


def test_the_item_cap_stops_a_run_whose_questions_stay_open(project):
    tmp_path, files = project
    folder = run_all(tmp_path, experiment(tmp_path, files, sequential={"round_items": 10, "max_items": 20}))
    doc = folder.doc(Doc.SEQUENTIAL, task="tickets")
    assert (doc["stopped"], doc["round"], doc["items"], doc["max_items"]) == ("item cap", 2, 20, 20)
    assert not all(doc["settled"].values())


def test_an_option_is_settled_when_a_question_fails_or_all_pass():
    import pandas as pd

    looks = pd.DataFrame({Col.OPTION: ["A", "A", "B", "B", "C"],
                          Col.STATUS: ["passes", "passes", "fails", "open", "open"]})
    assert settled_options(looks, ["A", "B", "C", "D"]) == {"A": True, "B": True, "C": False, "D": True}


def test_a_candidate_identical_to_the_reference_stays_open(project):
    # the same answers as the reference: the difference is 0 on every item; non-inferiority at 2 points is not
    # shown after 40 items (the sequence does not collapse to a point) — the question stays open
    import pandas as pd

    tmp_path, files = project
    task = load_task("tickets")
    exp = experiment(tmp_path, files, sequential={"round_items": 40})
    ids = [i.id for i in task.test][:40]
    scores = pd.DataFrame({Col.OPTION: ["API"] * 40 + ["Twin"] * 40, Col.ITEM_ID: ids * 2,
                           Col.SCORE: [1.0, 0.0] * 40, Col.LATENCY_S: 0.1})
    looks = round_looks(task, scores, questions=Questions.of(exp), round_no=1, items=40, planned_n=201)
    bar = looks[looks[Col.QUESTION] == "bar"].iloc[0]
    assert (bar[Col.OPTION], bar[Col.ESTIMATE], bar[Col.STATUS]) == ("Twin", 0.0, "open")
    assert bar[Col.CS_LOW] < -0.02 < 0.02 < bar[Col.CS_HIGH]


def test_an_option_shown_below_the_leader_is_settled_though_its_floor_stays_open(project):
    # the reference answers exactly as the majority-class baseline (its floor can never be shown: difference 0 on
    # every item), a candidate answers everything right: it leads, the reference is shown below it, the task stops
    import pandas as pd

    tmp_path, files = project
    task = load_task("tickets")
    exp = experiment(tmp_path, files, sequential={"round_items": 40})
    majority = next(b for b in task.type.baselines(task.train, task.test) if b.name == "majority class")
    ids = [i.id for i in task.test][:120]
    scores = pd.DataFrame({Col.OPTION: ["API"] * 120 + ["Good"] * 120, Col.ITEM_ID: ids * 2,
                           Col.SCORE: [s.score for s in majority.scores[:120]] + [1.0] * 120, Col.LATENCY_S: 0.1})
    looks = round_looks(task, scores, questions=Questions.of(exp), round_no=3, items=120, planned_n=201)
    api = looks[looks[Col.OPTION] == "API"].set_index([Col.QUESTION, Col.BASELINE])[Col.STATUS]
    assert api[("floor", "majority class")] == "open" and api[("vs leader", "Good")] == "fails"
    assert settled_options(looks, ["API", "Good"]) == {"API": True, "Good": True}


def test_the_latency_question_leaves_out_warm_up_answers(project):
    # as the latency table does: a model's first answer (loading it) is not a served item's latency
    import pandas as pd

    tmp_path, files = project
    task = load_task("tickets")
    exp = experiment(tmp_path, files, sequential={"round_items": 40})
    ids = [i.id for i in task.test][:40]
    scores = pd.DataFrame({Col.OPTION: "API", Col.ITEM_ID: ids, Col.SCORE: 1.0,
                           Col.LATENCY_S: [9.0, 9.0] + [0.1] * 38, Col.WARMUP: [True, False] + [False] * 38})
    lat = round_looks(task, scores, questions=Questions.of(exp), round_no=1, items=40, planned_n=201)
    lat = lat[lat[Col.QUESTION] == "latency"].iloc[0]
    assert lat[Col.ESTIMATE] == pytest.approx(1 / 39)  # one slow item of the 39 served; the warm-up left out


def test_with_a_cost_per_error_no_option_is_settled_by_a_leader(project):
    # a cheaper option shown worse may still be the pick when errors have a price: the leader rule is off
    import pandas as pd

    tmp_path, files = project
    task = load_task("tickets")
    exp = experiment(tmp_path, files, sequential={"round_items": 40}, cost_per_error=0.001)
    majority = next(b for b in task.type.baselines(task.train, task.test) if b.name == "majority class")
    ids = [i.id for i in task.test][:120]
    scores = pd.DataFrame({Col.OPTION: ["API"] * 120 + ["Good"] * 120, Col.ITEM_ID: ids * 2,
                           Col.SCORE: [s.score for s in majority.scores[:120]] + [1.0] * 120, Col.LATENCY_S: 0.1})
    looks = round_looks(task, scores, questions=Questions.of(exp), round_no=3, items=120, planned_n=201)
    assert "vs leader" not in set(looks[Col.QUESTION])
    assert settled_options(looks, ["API", "Good"]) == {"API": False, "Good": True}


def test_a_judged_free_text_task_answers_its_items_in_one_round(monkeypatch):
    # a judge grades free text after the answers: there are no scores between rounds, so one round of all items
    from kit.paths import project_root
    from kit.pipeline.sequential import plan_for

    monkeypatch.setenv("KIT_PROJECT", str(project_root()))
    exp = Experiment.load(project_root() / "notebooks" / "params" / "default.yaml",
                          overrides={"tasks": {"aclsum-outcomes": 30, "snips-intents": 100},
                                     "sequential": {"round_items": 10, "max_cost_usd": 2.0}})
    free, labels = plan_for(exp, load_task("aclsum-outcomes")), plan_for(exp, load_task("snips-intents"))
    assert (free.round_items, free.max_items, free.fixed_items, free.max_cost_usd) == (30, 30, 30, 2.0)
    assert (labels.round_items, labels.max_items, labels.fixed_items) == (10, 100, 100)


def test_a_sequential_run_chooses_each_options_prompt_on_dev_items_first(project):
    """`prompts:` with `sequential:`: every option's variants answer the dev items before the first round, and the
    rounds ask the test items with the chosen variant only."""
    import sqlite3

    from kit.tasks.prompts import build_request, prompt_hash

    tmp_path, files = project
    variants = [{"name": "wordy", "instruction": "Please read this ticket with care, then route it: {text}"},
                {"name": "own"}]
    exp = experiment(tmp_path, files, sequential={"round_items": 40}, prompts=variants)
    folder = run_all(tmp_path, exp)
    table = folder.table(Table.PROMPTS, task="tickets")
    dev = folder.doc(Doc.SPLITS)["tickets"]["dev"]
    assert sorted(zip(table[Col.OPTION], table[Col.VARIANT])) == [("API", "own"), ("API", "wordy"),
                                                                  ("Good", "own"), ("Good", "wordy")]
    chosen = dict(zip(table.loc[table[Col.CHOSEN].astype(bool), Col.OPTION],
                      table.loc[table[Col.CHOSEN].astype(bool), Col.VARIANT]))
    task = load_task("tickets")
    with sqlite3.connect(exp.store) as db:
        asked = dict(db.execute("SELECT cache_key, prompt_hash FROM responses").fetchall())
    for record in folder.runs(task="tickets"):
        assert record.prompt == chosen[record.option] and set(record.dev_keys) == set(dev)
        assert not set(record.keys) & set(dev)
        assert len(record.keys) == folder.doc(Doc.SEQUENTIAL, task="tickets")["items"]
        variant = next(v for v in exp.option(record.option).prompts if v.name == record.prompt)
        for item_id, key in record.keys.items():
            assert asked[key] == prompt_hash(build_request(task, task.item(item_id), variant=variant))
