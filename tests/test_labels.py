"""The labelling loop: the seeded random sample, labels with who and when, skip and undo, the labels an estimate
uses, CSV/JSONL files in and out (all or nothing), and ``kit label`` in a real terminal-like subprocess."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

LABELS = ("billing", "bug", "other")


@pytest.fixture
def support(tmp_path):
    """A 40-item classification task without gold answers (20 test items), and the labels a person would give."""
    from kit.tasks import load_task

    texts = ["my card was charged twice", "the app crashes on start", "where is my order"]
    rows = [{"id": f"t{i}", "text": f"ticket {i}: {texts[i % 3]}"} for i in range(40)]
    (tmp_path / "support.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "support.yaml").write_text(
        "name: support\ntype: classification\ndata: support.jsonl\nlabels: [billing, bug, other]\n"
        "instruction: 'Route this ticket: {text}'\nsplit: {test_fraction: 0.5, seed: 3}\n", encoding="utf-8")
    return load_task(tmp_path / "support.yaml")


def truth(item_id: str) -> str:
    return LABELS[int(item_id[1:]) % 3]


@pytest.fixture
def book(store, support):
    from kit.labels import LabelBook

    return LabelBook(store, support)


def kit_label(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "kit.cli", "label", *args], input=stdin, capture_output=True,
                          text=True, env=environ, timeout=120)


# the sample -------------------------------------------------------------------------------------------
def test_the_sample_is_a_seeded_permutation_of_the_test_items_recorded_and_extended_in_place(book, support, tmp_path):
    from kit.labels import LabelBook
    from kit.run.store import Store

    test_ids = [item.id for item in support.test]
    first = book.draw(5, seed=11)
    assert first.seed == 11 and len(first.order) == 5 and set(first.order) <= set(test_ids)
    assert list(first.order) == [test_ids[i] for i in np.random.default_rng(11).permutation(20)[:5]]
    grown = book.draw(12)  # the recorded seed; the first five keep their places
    assert grown.order[:5] == first.order and len(set(grown.order)) == 12
    assert book.draw(3) == grown  # a smaller size changes nothing
    with Store(tmp_path / "other.sqlite") as other:  # the same seed draws the same sample in one go
        assert LabelBook(other, support).draw(12, seed=11).order == grown.order
    rows = book.store.db.execute("SELECT position, item_id, seed FROM label_sample ORDER BY position").fetchall()
    assert [tuple(r) for r in rows] == [(n, i, 11) for n, i in enumerate(grown.order, start=1)]


def test_every_test_item_is_equally_likely_to_be_in_the_sample(support):
    """A uniformly random sample: over 400 seeds, each of the 20 test items is in a 5-item sample about 1/4 of
    the time (binomial sd 0.022; the bound is 4 sd)."""
    from kit.labels import LabelBook
    from kit.run.store import Store

    counts = dict.fromkeys((item.id for item in support.test), 0)
    with Store(":memory:") as store:
        for seed in range(400):
            store.db.execute("DELETE FROM label_sample")
            for item_id in LabelBook(store, support).draw(5, seed=seed).order:
                counts[item_id] += 1
    shares = np.array(list(counts.values())) / 400
    assert shares.sum() == pytest.approx(5.0)
    assert np.all(np.abs(shares - 0.25) < 0.087), shares


def test_bad_draws_say_what_to_do(book):
    from kit.errors import ConfigError

    with pytest.raises(ConfigError, match="more than the task's 20 test items") as err:
        book.draw(21)
    assert err.value.fix == "ask for at most 20 (--size 20)"
    book.draw(4, seed=2)
    with pytest.raises(ConfigError, match="drawn with seed 2, not 5") as err:
        book.draw(8, seed=5)
    assert "leave --seed out" in err.value.fix
    assert len(book.sample().order) == 4  # nothing changed


def test_only_classification_tasks_are_labelled_by_hand(store, hhs):
    from kit.errors import ConfigError
    from kit.labels import sampled_labels

    with pytest.raises(ConfigError, match="is of type 'extraction': labelling by hand supports classification"):
        sampled_labels(store, hhs)


# labels, skips, undo --------------------------------------------------------------------------------------
def test_labels_are_kept_with_who_and_when_and_the_next_item_follows_the_sample(book):
    from kit.labels import Source

    order = book.draw(6, seed=1).order
    assert book.next_item().id == order[0]
    given = book.give(order[0], "bug", who="ana", source=Source.CLI)
    assert (given.item_id, given.label, given.who, given.source) == (order[0], "bug", "ana", Source.CLI)
    assert given.at.endswith("+00:00")
    book.skip(order[1], who="ana", source=Source.CLI)
    assert book.next_item().id == order[2]
    assert str(book.progress()) == "1 / 6 labelled, 1 skipped"
    again = book.give(order[0], "bug", who="bo", source=Source.FORM)  # the label it has: nothing written
    assert again == given and len(book.history()) == 2


def test_undo_marks_the_last_label_of_that_person_undone_and_never_deletes(book):
    from kit.labels import Source

    order = book.draw(4, seed=1).order
    book.give(order[0], "bug", who="ana", source=Source.CLI)
    book.give(order[0], "billing", who="ana", source=Source.CLI)  # changes her mind
    book.give(order[1], "other", who="bo", source=Source.FORM)
    undone = book.undo(who="ana")
    assert (undone.item_id, undone.label) == (order[0], "billing") and undone.undone_at
    assert book.current()[order[0]].label == "bug"  # the earlier label is current again
    assert book.current()[order[1]].who == "bo"  # bo's label is not hers to undo
    assert book.undo(who="ana").label == "bug"
    assert book.undo(who="ana") is None
    assert book.next_item().id == order[0]
    assert len(book.history()) == 3 and [r.undone_at is None for r in book.history()] == [False, False, True]


def test_a_wrong_label_or_id_is_refused_with_the_fix(book, support):
    from kit.errors import ConfigError
    from kit.labels import Source

    order = book.draw(3, seed=1).order
    with pytest.raises(ConfigError, match="'biling' is not one of the task's labels — did you mean 'billing'") as err:
        book.give(order[0], "biling", who="ana", source=Source.CLI)
    assert err.value.fix == "give one of: billing, bug, other"
    with pytest.raises(ConfigError, match="did you mean 'bug'"):
        book.give(order[0], "BUG", who="ana", source=Source.CLI)
    with pytest.raises(ConfigError, match="'t1000' is not|unknown id 't1000'"):
        book.give("t1000", "bug", who="ana", source=Source.CLI)
    train_id = support.train[0].id
    with pytest.raises(ConfigError, match=f"'{train_id}' is a training item"):
        book.give(train_id, "bug", who="ana", source=Source.CLI)
    with pytest.raises(ConfigError, match="who labels is not known"):
        book.give(order[0], "bug", who="  ", source=Source.CLI)
    assert book.history() == []


def test_sampled_labels_holds_the_sample_s_current_labels_only(store, support, book, tmp_path):
    from kit.labels import SampledLabels, Source, sampled_labels
    from kit.labels.files import import_labels

    assert sampled_labels(store, support) == SampledLabels(order=(), gold={}, outside=0,
                                                           population=20, seed=1)
    order = book.draw(5, seed=4).order
    book.give(order[0], "bug", who="ana", source=Source.FORM)
    book.give(order[1], "other", who="ana", source=Source.FORM)
    book.skip(order[2], who="ana", source=Source.FORM)
    book.give(order[3], "billing", who="ana", source=Source.FORM)
    book.undo(who="ana")
    outside = [item.id for item in support.test if item.id not in order][:2]
    (tmp_path / "more.csv").write_text("id,label\n" + "".join(f"{i},bug\n" for i in outside), encoding="utf-8")
    assert import_labels(book, tmp_path / "more.csv", who="bo").outside == 2
    labels = sampled_labels(store, support)
    assert labels == SampledLabels(order=order, gold={order[0]: "bug", order[1]: "other"},
                                   outside=2, population=20, seed=4, skipped=1)
    book.give(order[3], "billing", who="ana", source=Source.FORM)  # after the skip: waits for it
    assert sampled_labels(store, support).waiting == 1 and len(sampled_labels(store, support).gold) == 2
    with pytest.raises(TypeError):
        labels.gold["x"] = "bug"  # read-only


# files -------------------------------------------------------------------------------------------------
def test_export_then_import_elsewhere_and_again_is_a_no_op(book, support, tmp_path):
    from kit.labels import LabelBook, Source, sampled_labels
    from kit.labels.files import Imported, export_labels, import_labels
    from kit.run.store import Store

    order = book.draw(6, seed=9).order
    book.give(order[0], truth(order[0]), who="ana", source=Source.FORM)
    assert export_labels(book, tmp_path / "out.jsonl") == 6
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == list(order) and [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["label"] == truth(order[0]) and rows[0]["who"] == "ana" and rows[1]["label"] is None
    assert rows[1]["text"] == support.item(order[1]).text
    for row in rows:
        row["label"] = truth(row["id"])
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with Store(tmp_path / "fresh.sqlite") as fresh:
        other = LabelBook(fresh, support)
        other.draw(6, seed=9)
        assert import_labels(other, tmp_path / "out.jsonl", who="bo") == Imported(added=6, unchanged=0, blank=0,
                                                                                  outside=0)
        assert import_labels(other, tmp_path / "out.jsonl", who="bo") == Imported(added=0, unchanged=6, blank=0,
                                                                                  outside=0)
        assert len(other.history()) == 6
        assert {r.item_id: r.who for r in other.history()}[order[0]] == "ana"  # the file's who wins
        assert dict(sampled_labels(fresh, support).gold) == {i: truth(i) for i in order}


def test_a_bad_file_names_every_bad_row_with_its_fix_and_writes_nothing(book, tmp_path):
    from kit.errors import ConfigError
    from kit.labels.files import import_labels

    order = book.draw(4, seed=1).order
    (tmp_path / "bad.csv").write_text(
        "id,label,who\n"
        f"{order[0]},bug,\n"          # line 2: fine
        f"{order[1]},biling,\n"       # line 3: not a label
        "t999,bug,\n"                 # line 4: unknown id
        f"{order[2]},other,\n"        # line 5
        f"{order[2]},bug,\n"          # line 6: conflicts with line 5
        f"{order[0]},bug,\n"          # line 7: the same label again is fine
        f"{order[3]},,\n",            # line 8: no label yet: left out
        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        import_labels(book, tmp_path / "bad.csv", who="ana")
    text = str(err.value)
    assert "3 rows of the label file cannot be imported, so nothing was written" in text
    assert "line 3: 'biling' is not one of the task's labels — did you mean 'billing'?" in text
    assert "line 4: unknown id 't999': not a test item of task 'support'" in text
    assert f"line 6: '{order[2]}' is labelled 'bug' here but 'other' on line 5 — keep one of the two rows" in text
    assert err.value.where == str(tmp_path / "bad.csv") and "import the file again" in err.value.fix
    assert book.history() == []


def test_a_file_without_the_label_column_or_of_another_type_is_refused(book, tmp_path):
    from kit.errors import ConfigError
    from kit.labels.files import import_labels

    (tmp_path / "nolabel.csv").write_text("id,answer\nt1,bug\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has no 'label' column \(it has \['answer', 'id'\]\)") as err:
        import_labels(book, tmp_path / "nolabel.csv", who="ana")
    assert "id,label" in err.value.fix
    (tmp_path / "labels.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown label file type '.xlsx'"):
        import_labels(book, tmp_path / "labels.xlsx", who="ana")


def test_labels_survive_in_the_store_file(tmp_path, support):
    """The tables are the store's (a migration): rows are plain SQLite, readable without the kit."""
    from kit.labels import LabelBook, Source
    from kit.run.store import Store

    with Store(tmp_path / "kit.sqlite") as store:
        book = LabelBook(store, support)
        item = book.draw(2, seed=1).order[0]
        book.give(item, "other", who="ana", source=Source.CLI)
    with sqlite3.connect(tmp_path / "kit.sqlite") as db:
        row = db.execute("SELECT task, item_id, label, who, source, undone_at FROM labels").fetchone()
    assert row == ("support", item, '"other"', "ana", "cli", None)


# the command line --------------------------------------------------------------------------------------
def test_kit_label_in_a_terminal_is_resumable_and_undoable(tmp_path, support):
    from kit.labels import LabelBook, sampled_labels
    from kit.run.store import Store

    store = str(tmp_path / "kit.sqlite")
    task = str(support.path)
    first = kit_label(task, "--store", store, "--size", "5", "--seed", "3", stdin="2\nbiling\n9\ns\nu\nbilin\ny\nq\n",
                      env={"KIT_LABELLER": "ana"})
    assert first.returncode == 0, first.stderr
    with Store(store) as s:
        order = LabelBook(s, support).sample().order
    out = first.stdout
    assert out.startswith("sample: 5 of 20 test items of support (seed 3)\n"
                          "support: 0 / 5 labelled · labelling as ana")
    assert f"[1 / 5] {order[0]}\n{support.item(order[0]).text}\n1) billing  2) bug  3) other\n> " in out
    assert f"{order[0]} → bug" in out
    assert "'biling' is not one of the task's labels — did you mean 'billing'?" in out
    assert "'9' is not one of the task's labels" in out
    assert "'bilin' is not one of the task's labels — did you mean 'billing'?" in out and "type y to take it" in out
    assert f"skipped {order[1]}" in out and f"undone: the skip for {order[1]}" in out
    assert f"{order[1]} → billing" in out and "stopped: 2 / 5 labelled; run again to go on" in out

    # resumed by someone else, until the end of input; then the last label is taken back from the command line
    second = kit_label(task, "--store", store, "--who", "bo", stdin="3\n1\n")
    assert second.returncode == 0, second.stderr
    assert f"[3 / 5] {order[2]}" in second.stdout and f"[5 / 5] {order[4]}" in second.stdout
    assert "stopped at the end of input; run again to go on" in second.stdout
    undone = kit_label(task, "--store", store, "--who", "bo", "--undo")
    assert undone.returncode == 0, undone.stderr
    assert re.fullmatch(rf"undone: 'billing' for {order[3]} \(given 20\S+\+00:00\)\nsupport: 3 / 5 labelled\n",
                        undone.stdout), undone.stdout
    with Store(store) as s:
        labels = sampled_labels(s, support)
        whos = [(r.who, str(r.source)) for r in LabelBook(s, support).history()]
    assert dict(labels.gold) == {order[0]: "bug", order[1]: "billing", order[2]: "other"}
    assert whos == [("ana", "cli")] * 3 + [("bo", "cli")] * 2


def test_kit_label_errors_are_one_clear_line(tmp_path, support):
    store = str(tmp_path / "kit.sqlite")
    no_sample = kit_label(str(support.path), "--store", store, stdin="1\n")
    assert no_sample.returncode == 2
    assert no_sample.stderr.strip().endswith("Fix: draw one: kit label " + str(support.path) + " --size 50")
    seed_alone = kit_label(str(support.path), "--store", store, "--seed", "4")
    assert seed_alone.returncode == 2 and "--seed is recorded when the sample is drawn" in seed_alone.stderr
    (tmp_path / "bad.csv").write_text("id,label\nt1,nope\n", encoding="utf-8")
    bad = kit_label(str(support.path), "--store", store, "--size", "3", "--import", str(tmp_path / "bad.csv"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "1 rows of the label file cannot be imported" in bad.stderr and "line 2:" in bad.stderr
    status = kit_label(str(support.path), "--store", store, "--status")
    assert status.stdout == ("support: 0 / 3 labelled\n"
                             "  0 labels used: below 10, no estimate is shown as a measurement yet\n")


def test_the_disagreements_queue_is_for_reading_and_stays_out_of_the_estimate(tmp_path, support):
    """Items the options answered differently come first (three answers before two); labels given there are
    stored as the queue's and never used as gold — not even on a sampled item: the queue chose the item by its
    answers (issue 25), so the sample asks it again."""
    from kit.labels import LabelBook, Queue, sampled_labels
    from kit.run.store import Store

    store = str(tmp_path / "kit.sqlite")
    with Store(store) as s:
        book = LabelBook(s, support)
        order = book.draw(3, seed=5).order
        outside = [item.id for item in support.test if item.id not in order]
        answered = {outside[0]: ("bug", "bug"), outside[1]: ("bug", "other"), order[0]: ("bug", "billing"),
                    outside[2]: ("bug", "other", "billing")}
        for item_id, answers in answered.items():
            for n, answer in enumerate(answers):
                s.write(f"{item_id}-{n}", {"run_id": "logs", "task": "support", "item_id": item_id,
                                           "arm": f"openai:model{n}", "model_identity": f"m{n}", "params": {},
                                           "prompt_hash": "p", "epoch": 0, "answer": answer, "kind": "answer"})
        queue = [item.id for item in book.disagreements()]
        expected = [outside[2], *[i for i in (item.id for item in support.test) if i in (outside[1], order[0])]]
        assert queue == expected
    done = kit_label(str(support.path), "--store", store, "--who", "ana", "--queue", "disagreements",
                     stdin="other\nbug\nbilling\n")
    assert done.returncode == 0, done.stderr
    assert "for reading — labels outside the random sample never enter the estimates" in done.stdout
    assert f"[outside the sample] {queue[0]}" in done.stdout and "no disagreement left unlabelled" in done.stdout
    with Store(store) as s:
        labels = sampled_labels(s, support)
        history = LabelBook(s, support).history()
        assert LabelBook(s, support).next_item(Queue.DISAGREEMENTS) is None
    assert {str(row.source) for row in history} == {"queue"} and len(history) == 3
    assert dict(labels.gold) == {} and labels.outside == 3
    with Store(store) as s:
        assert LabelBook(s, support).next_item().id == order[0]
