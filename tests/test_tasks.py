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
    assert len(snips.train) + len(snips.dev) + len(snips.test) == 693 and len(snips.dev) == 68  # 20% of the 341 non-test, non-shot items
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


def test_more_shots_than_non_test_items_are_refused_at_load(task_dir):
    """Issue 26 case 9: `shots: 1000` on a small task sent what there was and the report said 1000; now loading
    stops and names the most it can send (12 rows, half for test: 6)."""
    _write(task_dir, yaml_extra="shots: 1000\n")
    with pytest.raises(TaskError, match=r"`shots: 1000` asks for more k-shot examples than the 6 non-test items") \
            as err:
        load_task(task_dir / "mini.yaml")
    assert "at most 6" in err.value.fix
    text = (task_dir / "mini.yaml").read_text().replace("shots: 1000", "shots: 6")
    (task_dir / "mini.yaml").write_text(text)
    assert len(load_task(task_dir / "mini.yaml").shot_items()) == 6  # exactly as many as there are is fine


@pytest.mark.parametrize("instruction, unknown, hint", [
    ("'Answer {lables}: {text}'", "{lables}", "did you mean {labels}?"),
    ("'{foo} {text}'", "{foo}", "The placeholders filled in are {labels}, {text}"),
    ("'{txt} or {text} in {labelz}'", "{labelz}, {txt}", "{labelz} → {labels}? {txt} → {text}?"),
])
def test_unknown_placeholders_are_refused_at_load_with_the_nearest(task_dir, instruction, unknown, hint):
    """An unknown placeholder used to reach the model literally; now loading stops before any call."""
    text = (task_dir / "mini.yaml").read_text().replace("'Answer yes or no: {text}'", instruction)
    (task_dir / "mini.yaml").write_text(text)
    with pytest.raises(TaskError) as err:
        load_task(task_dir / "mini.yaml")
    assert f"`instruction:` has the unknown placeholder{'s' if ',' in unknown else ''} {unknown}" in err.value.problem
    assert hint in err.value.fix and str(err.value.where).endswith("mini.yaml")


def test_placeholders_in_the_system_message_are_refused(task_dir):
    """The system message is sent as written, so a `{labels}` there would reach the model literally."""
    _write(task_dir, yaml_extra="system: 'You pick one of {labels}.'\n")
    with pytest.raises(TaskError, match=r"`system:` has the unknown placeholder \{labels\}") as err:
        load_task(task_dir / "mini.yaml")
    assert "placeholders are filled in the instruction only" in err.value.fix
    text = (task_dir / "mini.yaml").read_text().replace("{labels}", 'a label; JSON such as {"a": 1} is fine')
    (task_dir / "mini.yaml").write_text(text)
    assert load_task(task_dir / "mini.yaml").system.startswith("You pick one of a label")


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


# --- gold answers: a row without one is an error or a declared choice, never a guess from row 1 ---------------

LABEL_FIX = ("labels_missing: skip", "ignore_labels: true")


def _rows_without_label(n: int, lacking: set[int]) -> list[dict]:
    rows = [{"id": f"r{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(n)]
    for i in lacking:
        del rows[i]["label"]
    return rows


@pytest.mark.parametrize("lacking, line", [({0}, 1), ({29}, 30)])
def test_jsonl_row_without_its_label_is_an_error_naming_the_row(task_dir, lacking, line):
    """Row 1 without the key used to make the whole task silently unlabelled (the other 59 labels ignored)."""
    path = _write(task_dir, rows=_rows_without_label(60, lacking))
    with pytest.raises(TaskError) as err:
        load_task(path)
    text = str(err.value)
    assert f"mini.jsonl:{line}" in text and f"id 'r{line - 1}' has no gold answer: no 'label' column" in text
    assert "1 of 60 rows lack one" in text
    assert all(words in text.split("Fix:")[1] for words in LABEL_FIX)


def test_csv_empty_label_cell_is_an_error_naming_the_row(tmp_path):
    body = "".join(f"t{i},ticket {i},{'' if i == 4 else 'bug'}\n" for i in range(8))
    (tmp_path / "t.csv").write_text("id,text,label\n" + body, encoding="utf-8")
    (tmp_path / "t.yaml").write_text("name: t\ntype: classification\ndata: t.csv\nlabels: [bug, billing]\n"
                                     "instruction: '{text}'\n", encoding="utf-8")
    with pytest.raises(TaskError) as err:
        load_task(tmp_path / "t.yaml")
    text = str(err.value)
    assert "t.csv:6" in text and "id 't4' has no gold answer: empty label in column 'label'" in text
    assert "1 of 8 rows lack one" in text and all(words in text for words in LABEL_FIX)


def test_declared_skip_leaves_rows_without_labels_out_and_counts_them(task_dir):
    path = _write(task_dir, rows=_rows_without_label(60, {0, 29}), yaml_extra="labels_missing: skip\n")
    task = load_task(path)
    assert task.labelled and len(task.items) == 58 and task.skipped == ("r0", "r29")
    assert {i.id for i in task.items}.isdisjoint({"r0", "r29"}) and all(i.gold in ("yes", "no") for i in task.items)
    row = next(r for r in list_tasks(task_dir) if r["task"] == "mini")
    assert row["items"] == 58 and row["skipped"] == 2 and not row["error"]


def test_asked_or_label_free_data_is_unlabelled(task_dir):
    path = _write(task_dir, rows=_rows_without_label(12, {0, 5}))
    task = load_task(path, ignore_labels=True)  # the experiment's ignore_labels: asked for
    assert not task.labelled and len(task.items) == 12 and all(i.gold is None for i in task.items)
    _write(task_dir, rows=_rows_without_label(12, set(range(12))))  # no row has a label column at all
    assert not load_task(path).labelled


def test_every_row_skipped_and_bad_choice_are_errors(task_dir):
    path = _write(task_dir, rows=[{"id": "a", "text": "x", "label": ""}], yaml_extra="labels_missing: skip\n")
    with pytest.raises(TaskError, match="every row lacks its gold answer"):
        load_task(path)
    text = (task_dir / "mini.yaml").read_text().replace("labels_missing: skip", "labels_missing: guess")
    (task_dir / "mini.yaml").write_text(text)
    with pytest.raises(TaskError, match=r"`labels_missing:` must be one of \['error', 'skip'\]"):
        load_task(path)


def test_extraction_field_missing_in_a_row_is_an_error(tmp_path):
    rows = [{"id": f"e{i}", "text": f"report {i}", "n": i, "kind": ["a"]} for i in range(10)]
    del rows[0]["n"]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "e.yaml").write_text("name: e\ntype: extraction\ndata: e.jsonl\ninstruction: '{text}'\n"
                                     "fields: {n: {type: integer}, kind: {type: labels, labels: [a, b]}}\n")
    with pytest.raises(TaskError) as err:
        load_task(tmp_path / "e.yaml")
    assert "e.jsonl:1" in str(err.value) and "id 'e0' has no gold answer: no 'n' column (field n" in str(err.value)
    # CSV: an empty integer cell lacks its value; an empty labels cell is the empty set
    (tmp_path / "c.csv").write_text("id,text,n,kind\nc0,one,1,a\nc1,two,,\nc2,three,3,\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text((tmp_path / "e.yaml").read_text().replace("e.jsonl", "c.csv"))
    with pytest.raises(TaskError) as err:
        load_task(tmp_path / "c.yaml")
    assert "c.csv:3" in str(err.value) and "empty field 'n' (column 'n')" in str(err.value)
    (tmp_path / "c.csv").write_text("id,text,n,kind\nc0,one,1,a\nc1,two,2,\n", encoding="utf-8")
    assert [i.gold for i in load_task(tmp_path / "c.yaml").items] == [{"n": 1, "kind": ["a"]}, {"n": 2, "kind": []}]


def test_free_text_first_row_without_reference_is_an_error(tmp_path):
    """The references column was looked for in row 1 only: without it there, the task became judge-only."""
    rows = [{"id": f"g{i}", "text": f"report {i}", "reference": f"summary {i}"} for i in range(6)]
    del rows[0]["reference"]
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "g.yaml").write_text("name: g\ntype: generation\ndata: g.jsonl\ninstruction: '{text}'\n")
    with pytest.raises(TaskError, match=r"g.jsonl:1: id 'g0' has no gold answer: no reference answer"):
        load_task(tmp_path / "g.yaml")


# --- labels with commas: quoted in the prompt's list only when some label needs it -----------------------------

def test_labels_with_a_comma_are_quoted_in_the_prompt(task_dir):
    labels = ["yes, fully", "no", 'say "hi"']
    rows = [{"id": f"r{i}", "text": f"request {i}", "label": labels[i % 3]} for i in range(9)]
    (task_dir / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (task_dir / "c.yaml").write_text("name: c\ntype: classification\ndata: c.jsonl\nlabels: ['yes, fully', 'no', "
                                     "'say \"hi\"']\ninstruction: 'One of: {labels}. {text}'\n", encoding="utf-8")
    task = load_task(task_dir / "c.yaml")
    assert task.type.labels == tuple(labels)
    prompt = build_request(task, task.item("r0")).messages[-1]["content"]
    assert prompt == 'One of: "yes, fully", "no", "say \\"hi\\"". request 0'
    assert task.type.parse('"yes, fully"') == "yes, fully" and task.type.parse("Yes, fully.") == "yes, fully"
    assert load_task(task_dir / "mini.yaml").type.prompt_vars() == {"labels": "yes, no"}  # bare, as before


# --- the built-in tasks' prompts are byte-identical to those before the restructuring (they are cache keys) ---

# sha256 over every item's prompt_hash, in item order, computed on the code before the change (2edac2c)
PROMPT_HASHES = {
    ("snips-intents", False): "f5d9a59e86f9bfa2082e37b83dd06ad85dbd311c7758ce5e74efc3e72483417d",
    ("snips-intents", True): "4e8202397a02e10f1a9324a9cbc43055e4e6b9f05d423f2d919ec7dc46b05007",
    ("hhs-breach-triage", False): "b52d9c4340dea13256787c17fc789f6b3d964d0c514744f453e7fe8b4bcab08e",
    ("hhs-breach-triage", True): "2a347e30cd0088ae1c7724b5be0c53539103f8f80c81efe4387c98ea0abecfc0",
    ("aclsum-outcomes", False): "de896395307b8abf906822718add802cc56f54db3ecae608177f4467d00383e8",
}


@pytest.mark.parametrize("name, ignore_labels", list(PROMPT_HASHES))
def test_builtin_prompts_are_unchanged(name, ignore_labels):
    import hashlib

    from conftest import ROOT

    task = load_task(name, folder=ROOT / "datasets", ignore_labels=ignore_labels)
    joined = "".join(prompt_hash(build_request(task, item)) for item in task.items)
    assert hashlib.sha256(joined.encode()).hexdigest() == PROMPT_HASHES[(name, ignore_labels)]


def test_ignoring_labels_keeps_the_stratified_test_items():
    """A stratified task run with ``ignore_labels`` asks the same test items, in the same order, as the labelled
    task — so a label sample drawn under one way of loading is a random sample of the items the other asks."""
    from kit.tasks import load_task

    labelled, ignored = load_task("snips-intents"), load_task("snips-intents", ignore_labels=True)
    assert labelled.spec["split"]["stratify"] is True
    assert [i.id for i in ignored.test] == [i.id for i in labelled.test]
    assert [i.id for i in ignored.dev] == [i.id for i in labelled.dev]
    assert not ignored.labelled and all(i.gold is None for i in ignored.items)
    assert {i.id for i in ignored.train} == {i.id for i in labelled.train}
