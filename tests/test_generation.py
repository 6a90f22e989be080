"""Free-text tasks: loading and bad input, chrF / ROUGE-L against their libraries, real llama.cpp generation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sacrebleu.metrics import CHRF

from conftest import ROOT
from kit.errors import TaskError
from kit.run.runner import run_arm
from kit.tasks import load_task
from kit.tasks.generation import chrf, rouge_l
from kit.tasks.scoring import metrics, score_generation


def _task(tmp_path, rows, extra="", name="gen"):
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(
        f"name: {name}\ntype: generation\ndata: {name}.jsonl\ninstruction: 'Summarise: {{text}}'\n"
        f"split: {{test_fraction: 1.0, seed: 1}}\n{extra}", encoding="utf-8")
    return tmp_path / f"{name}.yaml"


ROWS = [{"id": f"g{i}", "text": f"Report {i}: the system handled {i} requests without loss.",
         "reference": f"It handled {i} requests."} for i in range(6)]


def test_builtin_free_text_task_loads():
    task = load_task("aclsum-outcomes", folder=ROOT / "datasets")
    assert task.kind == "generation" and task.labelled and len(task.items) == 111
    assert task.metrics[:2] == ("chrf", "rouge_l") and task.type.judge_modes == ("rubric", "pairwise")
    assert task.type.rubric.low == 1 and task.type.rubric.high == 5 and task.type.max_tokens == 64
    assert all(isinstance(i.gold, tuple) and i.gold[0] for i in task.items)
    lead = task.type.baselines(task.train, task.test)
    assert lead[0].name == "lead-1" and len(lead[0].scores) == len(task.test)
    assert not load_task("aclsum-outcomes", folder=ROOT / "datasets", ignore_labels=True).labelled


def test_several_references_and_separator(tmp_path):
    rows = [dict(r, reference=[r["reference"], "Another reference."]) for r in ROWS]
    task = load_task(_task(tmp_path, rows))
    assert task.items[0].gold == ("It handled 0 requests.", "Another reference.")
    csvish = [dict(r, refs=r["reference"] + " || Second one.") for r in ROWS]
    task = load_task(_task(tmp_path, csvish, "references: {column: refs, separator: ' || '}\n", name="sep"))
    assert task.items[1].gold == ("It handled 1 requests.", "Second one.")


@pytest.mark.parametrize("extra, rows, message", [
    ("rubric: {criteria: 'be right'}\n", ROWS, "the rubric has no `scale:`"),
    ("rubric: {scale: [5, 1]}\n", ROWS, "lowest first"),
    ("metric: judge\n", ROWS, "needs a rubric"),
    ("judge: sometimes\n", ROWS, "`judge:` must be"),
    ("metric: chrf\nreferences: summary\n", ROWS, "'summary' is not in the data"),
    ("", [dict(r, reference="" if r["id"] == "g3" else r["reference"]) for r in ROWS], "no reference answer"),
    ("max_tokens: 0\n", ROWS, "max_tokens"),
])
def test_bad_free_text_input_is_a_clear_error(tmp_path, extra, rows, message):
    with pytest.raises(TaskError, match=message) as err:
        load_task(_task(tmp_path, rows, extra))
    assert "Fix:" in str(err.value)
    if "no reference" in message:
        assert "gen.jsonl:4" in str(err.value)  # names the row


def test_without_references_the_judge_is_the_measure(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "reference"} for r in ROWS]
    task = load_task(_task(tmp_path, rows, "rubric: {scale: [1, 5], criteria: 'faithful'}\n"))
    assert not task.labelled and task.type.metric == "judge" and task.type.judge_modes == ("rubric",)
    plain = load_task(_task(tmp_path, rows, name="plain"))
    assert plain.type.metric == "preference" and plain.type.judge_modes == ("pairwise",)


def test_reference_metrics_match_their_libraries():
    hyp = "The model outperforms the baseline by two points."
    refs = ["The proposed model beats the baseline by 2 BLEU.", "Results improve over the baseline."]
    # sacrebleu 2.6: one segment's corpus chrF is its sentence chrF; with several references the best one counts
    per_ref = [CHRF().corpus_score([hyp], [[r]]).score / 100 for r in refs]
    assert chrf(hyp, refs) == pytest.approx(max(per_ref))
    # ROUGE-L F1 by hand: LCS("the cat sat on the mat", "the cat lay on the mat") = 5 of 6 tokens each
    assert rouge_l("the cat sat on the mat", ["the cat lay on the mat"]) == pytest.approx(5 / 6)
    assert rouge_l("", ["anything"]) == 0.0 and chrf("abc", ["abc"]) == 1.0


def _rows(task, answers, arm="x:y"):
    return pd.DataFrame([{"option": arm, "item_id": i.id, "epoch": 0, "answer": a, "output": a or "",
                          "error": None, "parse_error": a is None, "latency_s": 0.1, "ttft_s": 0.05,
                          "prompt_tokens": 10, "completion_tokens": 3, "confidence": None}
                         for i, a in zip(task.test, answers)])


def test_empty_answers_are_counted_and_scored_zero(tmp_path):
    task = load_task(_task(tmp_path, ROWS))
    answers = [i.gold[0] for i in task.test]
    answers[2] = task.type.parse("   ")  # an empty answer parses to None
    scores = score_generation(task, _rows(task, answers))
    assert len(scores) == len(task.test)
    empty = scores[scores["item_id"] == task.test[2].id].iloc[0]
    assert empty["parse_error"] and empty["score"] == 0 and empty["words"] == 0 and not empty["correct"]
    table = metrics(task, scores).iloc[0]
    assert table["parse_errors"] == 1 and table["chrf"] == pytest.approx(5 / 6)


def test_real_llama_cpp_generation_is_scored(smol_arm, store):
    task = load_task("aclsum-outcomes", folder=ROOT / "datasets")
    summary = run_arm(task, smol_arm, store=store, limit=2, max_tokens=16)
    rows = store.rows(summary.keys.values())
    assert summary.new_calls == 2 and rows["output"].str.len().gt(0).all()
    assert (rows["completion_tokens"] <= 16).all()
    scores = score_generation(task, rows)
    assert scores["part_chrf"].between(0, 1).all() and scores["part_rouge_l"].between(0, 1).all()
    assert (scores["score"] == scores["part_chrf"]).all() and (scores["words"] > 0).all()
    again = run_arm(task, smol_arm, store=store, limit=2, max_tokens=16)
    assert again.new_calls == 0 and again.cached == 2


def test_scoring_refuses_what_it_cannot_score(tmp_path):
    from kit.errors import ConfigError

    task = load_task("aclsum-outcomes", folder=ROOT / "datasets", ignore_labels=True)
    with pytest.raises(ConfigError, match="needs reference answers"):
        score_generation(task, _rows(task, ["x"] * 3))
    judged = load_task(_task(tmp_path, ROWS, "metric: preference\njudge: pairwise\n"))
    with pytest.raises(ConfigError, match="no verdicts"):
        score_generation(judged, _rows(judged, ["x"] * 3))
    verdicts = pd.DataFrame([{"mode": "pairwise", "option": "x:y", "item_id": judged.test[0].id, "epoch": 0,
                              "value": 1.0, "judge_error": False, "note": ""}])
    with pytest.raises(ConfigError, match="reference="):
        score_generation(judged, _rows(judged, ["x"] * 3), verdicts=verdicts)
