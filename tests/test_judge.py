"""The model judge: exact grade sequences from a protocol-level fake, position bias, resume, caps, the stand-in."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from kit import stats
from kit.arms import get_arm
from kit.errors import ConfigError
from kit.judge import judge_human_agreement, judge_task, same_model
from kit.run.budget import Budget
from kit.run.runner import run_arm
from kit.tasks import load_task
from kit.tasks.scoring import score_generation
from servers import OpenAIServer, last_user

ITEMS = 4


def _task(tmp_path, extra=""):
    rows = [{"id": f"t{i}", "text": f"Incident {i}: the service recovered after {i + 1} minutes.",
             "reference": f"Recovered after {i + 1} minutes."} for i in range(ITEMS)]
    (tmp_path / "inc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "inc.yaml").write_text(
        "name: inc\ntype: generation\ndata: inc.jsonl\ninstruction: 'Summarise: {text}'\n"
        "rubric: {scale: [1, 5], criteria: 'faithful and short'}\nsplit: {test_fraction: 1.0, seed: 1}\n" + extra,
        encoding="utf-8")
    return load_task(tmp_path / "inc.yaml")


def _options(task, store, tmp_path, *, model="vendor-model"):
    """Two options replayed from files, through the runner and the store: api (all GOOD) and local."""
    ids = sorted(i.id for i in task.test)
    local_text = {ids[0]: "GOOD summary 0", ids[1]: "OKAY summary", ids[2]: "GARBLED summary", ids[3]: ""}
    rows = {}
    for name, texts in (("api", {i: f"GOOD summary {n}" for n, i in enumerate(ids)}), ("local", local_text)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"item_id": i, "output": t, "model": model if name == "api" else "small"})
                                + "\n" for i, t in texts.items()), encoding="utf-8")
        summary = run_arm(task, get_arm(f"replay:{path}"), store=store)
        rows[name] = store.rows(summary.keys.values()).assign(arm=name)
    return rows


def _graded(answer: str) -> str:
    if "GOOD" in answer:
        return "5"
    if "OKAY" in answer:
        return "3"
    return "I cannot decide"  # no grade in it: retried once, then a judge error


def judge_answer(*, pairwise):
    def answer(body):
        text = last_user(body)
        if "Reply with one whole number" in text:
            return _graded(re.search(r"Answer to grade:\n(.*?)\n\nReply", text, re.S).group(1))
        return pairwise(re.search(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\nReply", text, re.S).groups())
    return answer


def sees_quality(pair):
    a, b = ("GOOD" in x for x in pair)
    return "A" if a and not b else "B" if b and not a else "tie"


def test_rubric_grades_retry_once_then_judge_error_and_resume_repeats_no_call(tmp_path, store):
    task = _task(tmp_path, "metric: judge\n")
    options = _options(task, store, tmp_path)
    with OpenAIServer(answer=judge_answer(pairwise=sees_quality), model="judge-model") as srv:
        judge = get_arm("openai:judge-model", base_url=srv.base_url)
        result = judge_task(task, store, options, judge, reference="api", modes=["rubric"])
        # api: 4 questions; local: GOOD 0 is api's answer to t0 (the same question, asked once), OKAY,
        # GARBLED (asked, retried once), and the empty answer (not sent)
        assert srv.calls() == 7 and result.new_calls == 7 and result.retries == 1
        assert result.judge_errors == 1 and result.skipped == 1 and len(result.keys) == 6
        v = result.verdicts.set_index(["option", "item_id"])
        assert (v.loc["api", "value"] == 1.0).all()
        assert list(v.loc["local", "value"].iloc[:2]) == [1.0, 0.5]
        assert v.loc[("local", "t2"), "judge_error"] and math.isnan(v.loc[("local", "t2"), "value"])
        assert v.loc[("local", "t3"), "value"] == 0.0 and "no answer" in v.loc[("local", "t3"), "note"]

        stored = store.rows(result.keys)
        assert set(stored["kind"]) == {"judge"} and len(stored) == 6 and stored["error"].isna().all()
        garbled = stored[stored["parse_error"]].iloc[0]
        assert json.loads(garbled["extra"])["outputs"] == ["I cannot decide"] * 2

        human = pd.DataFrame({"option": ["api"] * 4 + ["local"] * 3, "item_id": ["t0", "t1", "t2", "t3", "t0", "t1", "t2"],
                              "grade": [5, 5, 5, 5, 4, 3, 1]})
        people = judge_human_agreement(result.verdicts, human).iloc[0]
        assert people["n"] == 6 and people["n_unmatched"] == 1 and people["agreement"] == pytest.approx(5 / 6)

        again = judge_task(task, store, options, judge, reference="api", modes=["rubric"])
        assert srv.calls() == 7 and again.new_calls == 0 and again.cached == 6  # a resumed run repeats no call
        assert again.verdicts["value"].equals(result.verdicts["value"])

    rows = score_generation(task, pd.concat(options.values()), verdicts=result.verdicts)
    gap = rows[(rows["option"] == "local") & (rows["item_id"] == "t2")].iloc[0]
    assert math.isnan(gap["score"]) and gap["judge_error"] and "judge error" in gap["gap"]
    table = stats.compare_scores(rows, reference="api", n_resamples=500)
    assert table.iloc[0]["n_gaps"] == 1 and table.iloc[0]["n_items"] == ITEMS - 1


def test_a_judge_that_always_prefers_position_a_declares_no_winner(tmp_path, store):
    task = _task(tmp_path, "metric: preference\njudge: pairwise\n")
    options = _options(task, store, tmp_path)
    with OpenAIServer(answer=judge_answer(pairwise=lambda pair: "A")) as srv:
        judge = get_arm("openai:fake", base_url=srv.base_url)
        result = judge_task(task, store, options, judge, reference="api")
        # both orders of 2 items, and one question for t0 (both options gave the same answer: A and B are
        # the same text, so the two orders are one prompt); the empty answer is not sent
        assert srv.calls() == 5
    pairs = result.verdicts[result.verdicts["note"] == ""]
    assert set(pairs["outcome"]) == {"tie"} and not pairs["orders_agree"].any()
    c = result.consistency().iloc[0]
    assert c["orders_agree"] == 0 and c["first_position_share"] == 1.0 and c["wins"] == 0
    assert "leans strongly" in c["statement"]


def test_pairwise_wins_only_when_both_orders_agree(tmp_path, store):
    task = _task(tmp_path, "judge: [rubric, pairwise]\n")
    options = _options(task, store, tmp_path)
    with OpenAIServer(answer=judge_answer(pairwise=sees_quality)) as srv:
        judge = get_arm("openai:fake", base_url=srv.base_url)
        result = judge_task(task, store, options, judge, reference="api", modes=["pairwise"])
    v = result.verdicts.set_index("item_id")
    assert list(v["outcome"]) == ["tie", "loss", "loss", "loss"]  # same answer; worse; worse; no answer
    assert v.loc["t1", "orders_agree"] and v.loc["t1", "grade"] == "B/A"
    assert result.consistency().iloc[0]["orders_agree"] == 1.0


def test_judge_calls_count_against_the_cap_and_self_preference_is_flagged(tmp_path, store):
    task = _task(tmp_path)
    options = _options(task, store, tmp_path, model="judge-model")
    with OpenAIServer(answer=judge_answer(pairwise=sees_quality), model="judge-model") as srv:
        judge = get_arm("openai:judge-model", base_url=srv.base_url)
        result = judge_task(task, store, options, judge, reference="api", modes=["rubric"],
                            budget=Budget(max_calls=2))
        assert srv.calls() == 2 and result.stopped and "max-calls 2" in result.stopped
        assert (result.verdicts["note"] == "not asked (the run stopped at a cap)").sum() == 4
        flags = result.self_preference.set_index("option")
        assert flags.loc["api", "same_model"] and not flags.loc["local", "same_model"]
        assert "prefer their own answers" in flags.loc["api", "note"]
        resumed = judge_task(task, store, options, judge, reference="api", modes=["rubric"])
        assert resumed.cached == 2 and resumed.new_calls == 5 and srv.calls() == 7  # 4 questions, 1 retry
        with pytest.raises(ConfigError, match="reference option's answers"):
            judge_task(task, store, options, judge, reference="nobody", modes=["pairwise"])
    assert same_model({"model": "gemma-3-270m", "endpoint": "127.0.0.1"}, {"model": "gemma-3-270m", "sha256": "f"})
    assert not same_model({"model": "a", "sha256": "1"}, {"model": "a", "sha256": "2"})


def test_the_stand_in_judges_through_the_store(tmp_path, store):
    from kit.arms.standin import standin_arm_options, standin_server

    task = _task(tmp_path)
    options = {k: v[v["item_id"].isin(["t0", "t1"])] for k, v in _options(task, store, tmp_path).items()}
    with standin_server("gemma-3-270m") as url:
        judge = get_arm("openai:gemma-3-270m", base_url=url, **standin_arm_options())
        result = judge_task(task, store, options, judge, reference="api", modes=["rubric", "pairwise"])
        asked = len(result.keys)
        assert result.new_calls >= asked == 3 + 3  # api t0, t1 and local t1 graded; t0's pair is one prompt
        graded = result.verdicts[result.verdicts["note"] == ""]
        assert graded["value"].between(0, 1).all() and not graded["judge_error"].any()
        again = judge_task(task, store, options, judge, reference="api", modes=["rubric", "pairwise"])
        assert again.new_calls == 0 and again.cached == asked
    assert set(store.rows(result.keys)["kind"]) == {"judge"}


def test_two_judges_at_once_on_one_store_ask_each_question_once(tmp_path, store):
    import threading

    from kit.run.store import Store

    task = _task(tmp_path, "metric: judge\n")
    options = _options(task, store, tmp_path)
    results = []
    with OpenAIServer(answer=judge_answer(pairwise=sees_quality), model="judge-model", delay=0.05) as srv:
        def judge_once():
            with Store(store.path) as own:  # a connection of its own, as another process would have
                judge = get_arm("openai:judge-model", base_url=srv.base_url, concurrency=2)
                results.append(judge_task(task, own, options, judge, reference="api", modes=["rubric"]))

        threads = [threading.Thread(target=judge_once) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert srv.calls() == 7  # as one judge alone: 6 questions, one asked again
    assert len(results) == 2 and sum(r.new_calls for r in results) == 7
    assert results[0].verdicts["value"].equals(results[1].verdicts["value"])
    assert [r.judge_errors for r in results] == [1, 1]
