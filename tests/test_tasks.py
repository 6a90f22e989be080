"""Task loading: the built-in tasks, splits, prompts, and a clear TaskError for each kind of bad input."""

from __future__ import annotations

import json

import pytest

from kit.errors import TaskError
from kit.tasks.prompts import build_request, prompt_hash
from kit.tasks import list_tasks, load_task


def test_builtin_snips(snips):
    assert snips.kind == "classification"
    assert len(snips.items) == 693
    assert len(snips.type.labels) == 7
    assert {i.id for i in snips.train}.isdisjoint({i.id for i in snips.test})
    assert len(snips.train) + len(snips.test) == 693
    # stratified: every intent appears in the test split in about its share
    per_label = {label: sum(i.gold == label for i in snips.test) for label in snips.type.labels}
    assert min(per_label.values()) >= 40


def test_builtin_hhs(hhs):
    assert hhs.kind == "extraction"
    assert len(hhs.items) == 209
    first = hhs.item("hhs-0001")
    assert first.gold == {"breach_type": ["Theft"], "location": ["Paper/Films"], "individuals_affected": 1000}
    multi = [i for i in hhs.items if len(i.gold["location"]) > 1]
    assert multi, "multi-label locations are read as sets"


def test_split_is_seeded_and_stable(snips, task_dir):
    again = load_task(snips.path)
    assert [i.id for i in again.test] == [i.id for i in snips.test]
    assert snips.shot_items() == again.shot_items()
    assert set(snips.shot_items()) <= set(snips.train)


def test_prompt_shares_prefix_and_hash_changes_with_text(snips):
    a, b = (build_request(snips, item) for item in snips.test[:2])
    assert a.messages[:-1] == b.messages[:-1]  # system + 5 shots: the same prefix for every item
    assert len(a.messages) == 1 + 2 * 5 + 1
    assert snips.test[0].text in a.messages[-1]["content"]
    assert "add_to_playlist" in a.messages[-1]["content"]
    assert a.choices == snips.type.labels
    assert prompt_hash(a) != prompt_hash(b)


def test_list_tasks_counts(monkeypatch, tmp_path):
    names = {row["task"]: row for row in list_tasks()}
    assert names["snips-intents"]["items"] == 693
    assert names["hhs-breach-triage"]["items"] == 209


def _write(task_dir, rows=None, yaml_extra="", raw: bytes | None = None):
    if raw is not None:
        (task_dir / "mini.jsonl").write_bytes(raw)
    elif rows is not None:
        (task_dir / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if yaml_extra:
        text = (task_dir / "mini.yaml").read_text()
        (task_dir / "mini.yaml").write_text(text + yaml_extra)
    return task_dir / "mini.yaml"


@pytest.mark.parametrize(
    "rows, raw, message, fix",
    [
        ([{"id": "a", "text": "x", "label": "yes"}, {"id": "a", "text": "y", "label": "no"}], None,
         "duplicate id 'a' (first at line 1)", "make ids unique"),
        ([{"id": "a", "text": "  ", "label": "yes"}], None, "empty text for id 'a'", "fill in the text"),
        ([{"id": "a", "text": "x", "label": "maybe"}], None, "label 'maybe' is not in the label set",
         "add the label to `labels:`"),
        ([{"id": "a", "txt": "x", "label": "yes"}], None, "column 'text' missing", "map it under `columns:`"),
        (None, b'{"id": "a", "text": "caf\xe9", "label": "yes"}\n', "not UTF-8 at line 1", "re-save the file as UTF-8"),
        (None, b'{"id": "a", "text": \n', "invalid JSON", "one JSON object per line"),
    ],
)
def test_bad_data_names_file_row_and_fix(task_dir, rows, raw, message, fix):
    path = _write(task_dir, rows=rows, raw=raw)
    with pytest.raises(TaskError) as err:
        load_task(path)
    text = str(err.value)
    assert message in text and fix in text
    assert "mini.jsonl" in text


def test_missing_data_file(task_dir):
    (task_dir / "mini.jsonl").unlink()
    with pytest.raises(TaskError, match="data file not found.*correct `data:`"):
        load_task(task_dir / "mini.yaml")


def test_unknown_task_suggests(task_dir):
    with pytest.raises(TaskError, match="did you mean mini"):
        load_task("mnii", folder=task_dir)


def test_wrong_integer_type(tmp_path):
    (tmp_path / "e.csv").write_text("id,text,n\n1,hello,12\n2,world,twelve\n", encoding="utf-8")
    (tmp_path / "e.yaml").write_text(
        "name: e\ntype: extraction\ndata: e.csv\nfields: {n: {type: integer}}\ninstruction: '{text}'\n")
    with pytest.raises(TaskError) as err:
        load_task(tmp_path / "e.yaml")
    assert "e.csv:3" in str(err.value) and "should be an integer, got 'twelve'" in str(err.value)


def test_instruction_needs_text_placeholder(task_dir):
    (task_dir / "mini.yaml").write_text("name: mini\ntype: classification\ndata: mini.jsonl\ninstruction: hi\n")
    with pytest.raises(TaskError, match=r"no \{text\} placeholder"):
        load_task(task_dir / "mini.yaml")


def test_labels_derived_when_not_given(task_dir):
    text = (task_dir / "mini.yaml").read_text().replace("labels: ['yes', 'no']\n", "")
    (task_dir / "mini.yaml").write_text(text)
    assert load_task(task_dir / "mini.yaml").type.labels == ("no", "yes")


def test_unquoted_boolean_labels_explained(task_dir):
    text = (task_dir / "mini.yaml").read_text().replace("labels: ['yes', 'no']", "labels: [yes, no]")
    (task_dir / "mini.yaml").write_text(text)
    with pytest.raises(TaskError, match="quote labels"):
        load_task(task_dir / "mini.yaml")


def test_kit_tasks_names_each_broken_file_and_lists_the_rest(task_dir, monkeypatch, capsys):
    """The bad-input audit of task files: each broken one is a row with its file and fix, never a traceback that
    hides the others; a CSV field longer than the csv module's default limit (131,072 characters) is read."""
    from kit.cli import main

    data = task_dir / "datasets"
    data.mkdir()
    for name in ("mini.yaml", "mini.jsonl"):
        (data / name).write_text((task_dir / name).read_text())
    head = "type: classification\ndata: mini.jsonl\ninstruction: 'Answer: {text}'\n"
    broken = {
        "shots": (head + "labels: ['yes', 'no']\nshots: many\n", "`shots:` must be a whole number"),
        "cols": (head + "labels: ['yes', 'no']\ncolumns: [id, text]\n", "`columns:` must map roles to column names"),
        "pos": (head + "labels: pos\n", "a single string is not a list"),
        "fields": ("type: extraction\ndata: mini.jsonl\ninstruction: 'Answer: {text}'\nfields: [amount]\n",
                   "`fields:` must map each field name to its type"),
    }
    for name, (text, _) in broken.items():
        (data / f"{name}.yaml").write_text(f"name: {name}\n{text}")
    with (data / "long.csv").open("w", encoding="utf-8") as fh:
        fh.write("id,text,label\n" + f"a,{'x' * 200_000},yes\n" + "".join(f"b{i},t{i},{'no' if i % 2 else 'yes'}\n"
                                                                           for i in range(11)))
    (data / "long.yaml").write_text("name: long\n" + head.replace("mini.jsonl", "long.csv") + "labels: ['yes', 'no']\n")
    monkeypatch.setenv("KIT_PROJECT", str(task_dir))
    main(["tasks", "--json"])
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mini"]["items"] == 12 and not rows["mini"]["error"]
    assert rows["long"]["items"] == 12 and not rows["long"]["error"]  # the 200,000-character text was read
    assert load_task("long", folder=data).items[0].text == "x" * 200_000
    for name, (_, words) in broken.items():
        assert words in rows[name]["error"] and f"{name}.yaml" in rows[name]["error"] and "Fix:" in rows[name]["error"]
