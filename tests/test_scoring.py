"""Scoring against independent references: scikit-learn for macro-F1, hand-computed set F1."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import f1_score

from kit.tasks.scoring import macro_f1, metrics, score_responses


def _responses(task, answers, arm="x:y", errors=None):
    rows = []
    for n, (item, answer) in enumerate(answers):
        rows.append({"option": arm, "item_id": item.id, "epoch": 0, "answer": answer,
                     "error": (errors or {}).get(n), "parse_error": answer is None and not (errors or {}).get(n),
                     "latency_s": 0.1, "ttft_s": 0.05, "prompt_tokens": 10, "completion_tokens": 2,
                     "confidence": None})
    return pd.DataFrame(rows)


def test_classification_accuracy_and_macro_f1_match_sklearn(snips):
    items = snips.test[:40]
    labels = snips.type.labels
    answers = [labels[(n * 3) % 7] if n % 4 else item.gold for n, item in enumerate(items)]
    answers[5] = None  # unparseable: kept, scored wrong
    scores = score_responses(snips, _responses(snips, list(zip(items, answers)), errors={7: "HTTP 500"}))
    assert len(scores) == 40  # nothing dropped
    by_id = scores.set_index("item_id")
    assert not by_id.loc[items[5].id, "correct"] and not by_id.loc[items[7].id, "correct"]
    assert by_id.loc[items[7].id, "error"] == "HTTP 500" and by_id.loc[items[5].id, "parse_error"]
    table = metrics(snips, scores).iloc[0]
    golds = [i.gold for i in items]
    used = [a if (n != 7 and a is not None) else "<none>" for n, a in enumerate(answers)]
    # scikit-learn 1.x f1_score(average="macro") over the labels seen in gold or predictions
    seen = sorted(set(golds) | {a for a in used if a != "<none>"})
    assert table["macro_f1"] == pytest.approx(f1_score(golds, used, labels=seen, average="macro"))
    assert table["accuracy"] == pytest.approx(sum(u == g for u, g in zip(used, golds)) / 40)
    assert table["errors"] == 1 and table["parse_errors"] == 1 and table["n"] == 40


def test_macro_f1_small_example():
    assert macro_f1(["a", "b", "a"], ["a", "b", "b"]) == pytest.approx(f1_score(["a", "b", "b"], ["a", "b", "a"],
                                                                                average="macro"))


def test_extraction_field_scores(hhs):
    item = hhs.item("hhs-0001")  # gold: Theft / Paper/Films / 1000
    answers = [
        (item, {"breach_type": ["Theft"], "location": ["Paper/Films"], "individuals_affected": 1000}),
        (item, {"breach_type": ["Theft", "Loss"], "location": ["Laptop"], "individuals_affected": 1272}),
        (item, None),
    ]
    frames = [score_responses(hhs, _responses(hhs, [a], arm=f"a:{n}")) for n, a in enumerate(answers)]
    exact, partial, missing = (f.iloc[0] for f in frames)
    assert exact["correct"] and exact["score"] == 1.0
    # set F1 of {Theft, Loss} vs {Theft} = 2*1/(2+1); location 0; integer 0 → mean over three fields
    assert partial["part_breach_type"] == pytest.approx(2 / 3)
    assert partial["part_location"] == 0 and partial["part_individuals_affected"] == 0
    assert partial["score"] == pytest.approx((2 / 3) / 3) and not partial["correct"]
    assert missing["score"] == 0 and not missing["correct"]
    table = metrics(hhs, pd.concat(frames))
    assert set(table.columns) >= {"exact_match", "field_score", "breach_type", "location", "individuals_affected"}


def test_parsers_are_robust(snips, hhs):
    assert snips.type.parse("Intent: GET WEATHER.") == "get_weather"
    assert snips.type.parse("play_music") == "play_music"
    assert snips.type.parse("I am not sure") is None
    parsed = hhs.type.parse('Sure! {"breach_type": "theft", "location": ["laptop", "Moon"], '
                            '"individuals_affected": "1,272"} done')
    assert parsed == {"breach_type": ["Theft"], "location": ["Laptop"], "individuals_affected": 1272}
    assert hhs.type.parse("no json here {oops") is None
