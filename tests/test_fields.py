"""Extraction field types: the registry, and the `strings` type (a set of free strings) end to end —
loading from CSV and JSONL, normalised set-F1 scoring checked by hand, the JSON schema a grammar is built from."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kit.errors import TaskError
from kit.tasks import load_task
from kit.tasks.fields import StringsField, field_types, norm_name
from kit.tasks.prompts import build_request
from kit.tasks.scoring import metrics, score_responses

YAML = ("name: loans\ntype: extraction\ndata: loans.{ext}\ninstruction: 'Fields:\\n{{fields}}\\n\\nAgreement: {{text}}'\n"
        "split: {{test_fraction: 1.0, seed: 1}}\nfields:\n  parties: {{type: strings{extra}}}\n  amount: {{type: integer}}\n")


def _task(tmp_path, ext, body, extra=""):
    (tmp_path / f"loans.{ext}").write_text(body, encoding="utf-8")
    (tmp_path / "loans.yaml").write_text(YAML.format(ext=ext, extra=extra), encoding="utf-8")
    return load_task(tmp_path / "loans.yaml")


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_strings_is_a_registered_field_type():
    assert field_types()["strings"] is StringsField
    assert sorted(field_types()) == ["integer", "labels", "string", "strings"]


def test_strings_from_csv_split_on_the_separator(tmp_path):
    body = ('id,text,parties,amount\n'
            'l1,"Acme Corp lends to Bank of Springfield.","Acme Corp; Bank of Springfield",5000\n'
            'l2,"No one named.",,100\n'
            'l3,"Acme, Inc. and ACME INC again.","Acme, Inc.;ACME INC",7\n')
    task = _task(tmp_path, "csv", body)
    gold = {i.id: i.gold for i in task.items}
    assert gold["l1"] == {"parties": ["Acme Corp", "Bank of Springfield"], "amount": 5000}
    assert gold["l2"]["parties"] == []  # an empty cell is the empty set
    assert gold["l3"]["parties"] == ["Acme, Inc."]  # the same name twice (as normalised) counts once
    piped = _task(tmp_path, "csv", body.replace("Acme Corp; Bank", "Acme Corp | Bank"), extra=", separator: '|'")
    assert piped.item("l1").gold["parties"] == ["Acme Corp", "Bank of Springfield"]


def test_strings_from_jsonl_lists(tmp_path):
    rows = [{"id": "j1", "text": "t", "parties": ["Acme Corp", " Jane Doe "], "amount": 1},
            {"id": "j2", "text": "t", "parties": [], "amount": 2}]
    task = _task(tmp_path, "jsonl", _jsonl(rows))
    assert [i.gold["parties"] for i in task.items] == [["Acme Corp", "Jane Doe"], []]
    with pytest.raises(TaskError, match=r"loans.jsonl:1.*field 'parties' should be a list of strings"):
        _task(tmp_path, "jsonl", _jsonl([dict(rows[0], parties=[{"name": "Acme"}])]))
    with pytest.raises(TaskError, match=r"loans.jsonl:2: id 'j2' has no gold answer: empty field 'parties'"):
        _task(tmp_path, "jsonl", _jsonl([rows[0], dict(rows[1], parties=None)]))
    with pytest.raises(TaskError, match=r"field 'parties' of type strings has unknown keys \['labels'\]"):
        _task(tmp_path, "jsonl", _jsonl(rows), extra=", labels: [a]")


def test_strings_normalise_and_score_set_f1_by_hand(tmp_path):
    assert norm_name("ACME Corp.") == norm_name("acme corp") == "acme corp"
    rows = [{"id": "j1", "text": "t", "parties": ["Acme Corp", "Bank of Springfield", "John Smith"], "amount": 10}]
    task = _task(tmp_path, "jsonl", _jsonl(rows))
    parsed = task.type.parse('{"parties": ["ACME corp.", "john  smith", "Jane Doe", "Foo Ltd", "acme corp"], '
                             '"amount": 10}')
    assert parsed["parties"] == ["ACME corp.", "john  smith", "Jane Doe", "Foo Ltd"]  # duplicate dropped
    answers = [parsed, {"parties": ["acme corp", "BANK OF SPRINGFIELD!", "John Smith."], "amount": 11}]
    frame = pd.DataFrame([{"option": f"a:{n}", "item_id": "j1", "epoch": 0, "answer": a, "error": None,
                           "parse_error": False, "latency_s": 0.1} for n, a in enumerate(answers)])
    scores = score_responses(task, frame).set_index("option")
    # 2 of 4 answered names are right (precision 1/2), 2 of 3 gold names found (recall 2/3):
    # F1 = 2 * (1/2) * (2/3) / (1/2 + 2/3) = 4/7
    assert scores.loc["a:0", "part_parties"] == pytest.approx(4 / 7)
    assert scores.loc["a:0", "score"] == pytest.approx((4 / 7 + 1) / 2) and not scores.loc["a:0", "correct"]
    assert scores.loc["a:1", "part_parties"] == 1.0 and scores.loc["a:1", "part_amount"] == 0.0
    table = metrics(task, scores.reset_index()).set_index("option")
    assert table.loc["a:0", "parties"] == pytest.approx(4 / 7)
    assert task.type.score({"parties": [], "amount": 10}, {"parties": [], "amount": 10}).correct  # both empty


def test_strings_schema_and_prompt(tmp_path):
    task = _task(tmp_path, "jsonl", _jsonl([{"id": "j1", "text": "Acme lends.", "parties": ["Acme"], "amount": 3}]))
    schema = build_request(task, task.items[0]).json_schema
    assert schema == {"type": "object", "required": ["parties", "amount"],
                      "properties": {"parties": {"type": "array", "items": {"type": "string"}},
                                     "amount": {"type": "integer"}}}
    assert task.type.prompt_vars() == {"fields": '- "parties": a list of strings\n- "amount": an integer'}


def test_strings_grammar_constrains_a_real_model(tmp_path, smol_arm):
    """llama.cpp builds its grammar from the schema; the small model's answer parses into the field's type."""
    rows = [{"id": "j1", "text": "Acme Corp lends 5000 dollars to Bank of Springfield.",
             "parties": ["Acme Corp", "Bank of Springfield"], "amount": 5000}]
    task = _task(tmp_path, "jsonl", _jsonl(rows))
    done = smol_arm.complete(build_request(task, task.items[0], max_tokens=64))
    assert done.error is None, done.error
    parsed = task.type.parse(done.text)
    assert set(parsed) == {"parties", "amount"} and isinstance(parsed["amount"], int)
    assert isinstance(parsed["parties"], list) and all(isinstance(v, str) for v in parsed["parties"])
