"""Labelling designs (kit.labels.design): the stratified design drawn from stored answers, design-weighted
comparisons, labels that are not a random sample kept out (skips, the disagreements queue, too few labels),
a second design after the answers changed, and the import/size messages of issue 26 — real SQLite, real
``kit label`` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from kit.columns import Col
from kit.errors import ConfigError

LABELS = ("billing", "bug", "other")
ARMS = ("api", "local")


def truth(item_id: str) -> str:
    return LABELS[int(item_id[1:]) % 3]


@pytest.fixture
def triage(tmp_path):
    """A 200-item classification task without gold answers in its data (100 test items)."""
    from kit.tasks import load_task

    rows = [{"id": f"t{i}", "text": f"ticket {i}"} for i in range(200)]
    (tmp_path / "triage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "triage.yaml").write_text(
        "name: triage\ntype: classification\ndata: triage.jsonl\nlabels: [billing, bug, other]\n"
        "instruction: 'Route this ticket: {text}'\nsplit: {test_fraction: 0.5, seed: 3}\n", encoding="utf-8")
    return load_task(tmp_path / "triage.yaml")


def _wrong(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % 3]


def answers_for(task, *, seed: int = 0, api_right: float = 0.85, disagree: float = 0.15) -> dict[str, dict[str, str]]:
    """The API right on ``api_right`` of the items; the local option gives another answer on ``disagree`` of them."""
    rng = np.random.default_rng(seed)
    api, local = {}, {}
    for item in task.test:
        api[item.id] = truth(item.id) if rng.random() < api_right else _wrong(truth(item.id))
        local[item.id] = api[item.id] if rng.random() > disagree else (
            truth(item.id) if api[item.id] != truth(item.id) else _wrong(truth(item.id)))
    return {"api": api, "local": local}


def store_answers(store, task, answers: dict[str, dict[str, str]], *, run: str = "logs") -> None:
    for arm, given in answers.items():
        for item_id, answer in given.items():
            store.write(f"{run}-{arm}-{item_id}", {"run_id": run, "task": task.name, "item_id": item_id, "arm": arm,
                                                   "model_identity": arm, "params": {}, "prompt_hash": "p",
                                                   "epoch": 0, "answer": answer, "kind": "answer"})


def scores_of(task, answers: dict[str, dict[str, str]]) -> pd.DataFrame:
    from kit.tasks.scoring import score_task

    rows = [{Col.OPTION: arm, Col.ITEM_ID: item_id, Col.EPOCH: 0, Col.ANSWER: answer, Col.ERROR: None,
             Col.PARSE_ERROR: False, Col.LATENCY_S: 0.1, Col.TTFT_S: None, Col.PROMPT_TOKENS: 10,
             Col.COMPLETION_TOKENS: 2, Col.CONFIDENCE: None}
            for arm, given in answers.items() for item_id, answer in given.items()]
    return score_task(task, pd.DataFrame(rows), reference="api")


def label_all(book, items, *, who: str = "ana") -> None:
    from kit.labels import Source

    for item_id in items:
        book.give(item_id, truth(item_id), who=who, source=Source.CLI)


def kit_label(*args: str, stdin: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "kit.cli", "label", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run_label(*args: str) -> tuple[int, str]:
    """``kit label ARGS`` through the CLI's entry point in this process (a subprocess only where processes must
    race): its exit code and what it printed."""
    import contextlib
    import io

    from kit.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["label", *args])
    return code, out.getvalue()


# the stratified design --------------------------------------------------------------------------------------
def test_the_stratified_design_needs_stored_answers_and_draws_where_they_disagree(store, triage):
    from kit.labels import LabelBook, draw_stratified, sampled_labels
    from kit.labels.design import ALL_AGREE
    from kit.stats.stratified import allocate

    with pytest.raises(ConfigError, match="needs the stored answers of at least two options"):
        draw_stratified(store, triage, 30)
    answers = answers_for(triage)
    store_answers(store, triage, answers)
    drawn = draw_stratified(store, triage, 30)
    split = {i for i in answers["api"] if answers["api"][i] != answers["local"][i]}
    sizes = drawn.design.sizes()
    assert sizes == {ALL_AGREE: 100 - len(split), "api | local": len(split)}
    want = allocate(sizes, {ALL_AGREE: 0.0, "api | local": 1.0}, total=30)
    drawn_by = {h: len(v) for h, v in drawn.design.drawn().items()}
    assert drawn_by == want and want["api | local"] > 30 * len(split) / 100  # labels go to the disagreements
    assert all(drawn.design.inclusion[i] == pytest.approx(want[drawn.design.strata[i]] / sizes[drawn.design.strata[i]])
               for i in drawn.design.order)
    more = draw_stratified(store, triage, 40)
    assert not more.new and more.design.order[:30] == drawn.design.order and len(more.design.order) == 40
    book = LabelBook(store, triage)
    assert book.next_item().id == more.design.order[0] and book.sample().design == "stratified"
    labels = sampled_labels(store, triage)
    table = labels.stratum_table().set_index(Col.STRATUM)
    assert table[Col.STRATUM_SIZE].to_dict() == sizes and table[Col.DRAWN].sum() == 40
    with pytest.raises(ConfigError, match="stratified design"):
        book.draw(50)  # a random draw would not add to the design


def test_the_design_weighted_difference_is_the_disagreement_share_times_the_labelled_mean(store, triage):
    """By hand: the paired difference = (disagreement share, exact) × (mean difference on the labelled
    disagreement items); the table keeps the random design's columns, so the verdict reads it alike."""
    from kit.labels import LabelBook, draw_stratified, sampled_labels
    from kit.tasks.ppi_compare import SampledLabels, ppi_compare, ppi_floor

    answers = answers_for(triage)
    store_answers(store, triage, answers)
    design = draw_stratified(store, triage, 30).design
    label_all(LabelBook(store, triage), design.order)
    labels = sampled_labels(store, triage)
    scores = scores_of(triage, answers)
    row = ppi_compare(triage, scores, labels, reference="api", margin=0.05).iloc[0]
    split = [i for i in answers["api"] if answers["api"][i] != answers["local"][i]]
    d = [float(answers["local"][i] == truth(i)) - float(answers["api"][i] == truth(i)) for i in split
         if i in labels.gold]
    assert row[Col.DIFFERENCE] == pytest.approx(len(split) / 100 * np.mean(d))
    assert row[Col.N_LABELLED] == 30 and "stratified" in row[Col.STATEMENT]
    every = {i.id: truth(i.id) for i in triage.test}
    truth_d = np.mean([float(answers["local"][i] == every[i]) - float(answers["api"][i] == every[i]) for i in every])
    assert row[Col.DIFF_CI_LOW] <= truth_d <= row[Col.DIFF_CI_HIGH]
    random = SampledLabels(order=tuple(sorted(every)), gold={i: every[i] for i in sorted(every)[:30]}, outside=0,
                           population=100, seed=1)
    assert list(ppi_compare(triage, scores, random, reference="api").columns) == list(
        ppi_compare(triage, scores, labels, reference="api").columns)
    assert list(ppi_floor(triage, scores, random, reference="api").columns) == list(
        ppi_floor(triage, scores, labels, reference="api").columns)


def test_a_second_design_after_the_answers_changed_keeps_the_first_s_labels_and_combines_them(store, triage):
    from kit.labels import LabelBook, draw_stratified, sampled_labels
    from kit.stats.stratified import combine_designs
    from kit.tasks.ppi_compare import ppi_compare

    first = answers_for(triage, seed=0)
    store_answers(store, triage, first)
    one = draw_stratified(store, triage, 20).design
    label_all(LabelBook(store, triage), one.order)
    second = {"api": first["api"], "local": answers_for(triage, seed=7)["local"]}  # the local option re-ran
    store_answers(store, triage, second, run="rerun")
    two = draw_stratified(store, triage, 20)
    assert two.new and two.design.id != one.id
    assert dict(two.design.strata) != dict(one.strata)
    label_all(LabelBook(store, triage), two.design.order, who="bo")
    labels = sampled_labels(store, triage)
    assert [e.design for e in labels.earlier] == ["stratified"] and labels.earlier[0].strata == one.strata
    assert set(labels.earlier[0].gold) == set(one.order)  # still valid under the strata they were drawn in
    scores = scores_of(triage, second)
    both = ppi_compare(triage, scores, labels, reference="api").iloc[0]
    alone = [ppi_compare(triage, scores, part, reference="api").iloc[0]
             for part in (labels.earlier[0], replace(labels, earlier=()))]
    # each design's labelling error weighs it; the items' own sampling error is the same for both, counted once
    lab = [_labelling_se(triage, scores, part) for part in (labels.earlier[0], replace(labels, earlier=()))]
    traffic = alone[1][Col.STD_ERROR] ** 2 - lab[1] ** 2
    expected = combine_designs([{"estimate": r[Col.DIFFERENCE], "std_error": se, "df": r[Col.DF]}
                                for r, se in zip(alone, lab)], shared_variance=traffic, shared_df=99)
    assert both[Col.DIFFERENCE] == pytest.approx(expected["estimate"])
    assert both[Col.STD_ERROR] == pytest.approx(expected["std_error"])
    assert both[Col.N_LABELLED] == len(set(one.order) | set(two.design.order))


def _labelling_se(task, scores, labels) -> float:
    """The labelling share of the difference's standard error, as the compare table's estimator computes it."""
    from kit.tasks import ppi_compare

    it = ppi_compare._items(task, scores, labels, reference="api")
    agree = it.agree["local"].to_numpy()
    r = ppi_compare._difference(labels, it, it.right["local"], it.right["api"], agree, it.agree["api"].to_numpy(),
                                alpha=0.05, zero=agree == 1.0)
    return float(r[Col.LABELLING_SE])


# labels that are not a random sample --------------------------------------------------------------------------
def test_labelling_only_the_items_a_candidate_got_right_does_not_give_its_accuracy(store, triage):
    """Issue 25's audit: the sampled items a candidate got right labelled, the rest skipped. Only the sample's
    gap-free prefix is used — labels after the first skip wait — so the cherry-picked labels never make 99%."""
    from kit.labels import LabelBook, Source, sampled_labels
    from kit.tasks.ppi_compare import ppi_metrics, usable

    answers = answers_for(triage, api_right=0.75)
    book = LabelBook(store, triage)
    order = book.draw(49).order
    for item_id in order:
        if answers["local"][item_id] == truth(item_id):
            book.give(item_id, truth(item_id), who="ana", source=Source.CLI)
        else:
            book.skip(item_id, who="ana", source=Source.CLI)
    labels = sampled_labels(store, triage)
    first_gap = next(k for k, i in enumerate(order) if answers["local"][i] != truth(i))
    wrong = sum(answers["local"][i] != truth(i) for i in order)
    assert list(labels.gold) == list(order[:first_gap])
    assert labels.skipped == wrong and labels.waiting == 49 - wrong - first_gap > 0
    assert "wait for it" in str(book.progress())
    scores = scores_of(triage, answers)
    if not labels.measured:
        assert not usable(scores, labels)  # too few: the task stays an agreement decision
    else:  # a random prefix: its estimate is an honest one
        from kit.pipeline.quality import _metrics
        row = ppi_metrics(triage, scores, labels, _metrics(triage, scores, []), reference="api").set_index(Col.OPTION)
        truth_acc = np.mean([answers["local"][i] == truth(i) for i in answers["local"]])
        assert row.loc["local", Col.SCORE_CI_LOW] <= truth_acc


def test_labels_from_the_disagreements_queue_never_enter_a_later_draw(store, triage):
    """Issue 25's audit: labels given from --queue disagreements counted as sample labels once a later draw
    covered their items. Now the drawn item is asked again, and only a label given after its draw counts."""
    from kit.labels import LabelBook, Queue, Source, sampled_labels

    answers = answers_for(triage)
    store_answers(store, triage, answers)
    book = LabelBook(store, triage)
    queued = [item.id for item in book.disagreements()][:5]
    for item_id in queued:
        book.give(item_id, truth(item_id), who="ana", source=Source.QUEUE)
    assert book.next_item(Queue.DISAGREEMENTS).id not in queued
    order = book.draw(100).order  # covers every test item, the queued ones too
    labels = sampled_labels(store, triage)
    assert not set(queued) & set(labels.gold) and labels.outside == 5
    first = min(order.index(i) for i in queued)
    label_all(book, order[:first])
    assert book.next_item().id == order[first]  # asked again in the sample
    book.give(order[first], truth(order[first]), who="ana", source=Source.CLI)  # same label, now a sample label
    assert order[first] in sampled_labels(store, triage).gold


def test_three_labels_are_no_measurement(store, triage):
    """Issue 25's audit: with 3 labels the headline read "the best, Local at 99.7%". Below MIN_LABELS the record
    says so and the comparison stays on agreement (which says how many labels would decide)."""
    from kit.labels import LabelBook, sampled_labels
    from kit.tasks.ppi_compare import MIN_LABELS, usable

    answers = answers_for(triage)
    book = LabelBook(store, triage)
    order = book.draw(20).order
    label_all(book, order[:3])
    labels = sampled_labels(store, triage)
    scores = scores_of(triage, answers)
    assert len(labels.gold) == 3 and not labels.measured and not usable(scores, labels)
    label_all(book, order[3:MIN_LABELS])
    labels = sampled_labels(store, triage)
    assert labels.measured and usable(scores, labels)


# issue 26: messages -----------------------------------------------------------------------------------------
def test_two_concurrent_imports_say_whose_labels_they_replaced_and_can_keep_them(tmp_path, triage):
    from kit.labels import LabelBook, sampled_labels
    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    with Store(db) as s:
        order = LabelBook(s, triage).draw(44).order
    for who, shift in (("A", 0), ("B", 1)):
        (tmp_path / f"{who}.csv").write_text("id,label\n" + "".join(
            f"{i},{LABELS[(LABELS.index(truth(i)) + shift) % 3]}\n" for i in order), encoding="utf-8")
    procs = {who: kit_label(str(triage.path), "--store", db, "--who", who, "--import", str(tmp_path / f"{who}.csv"))
             for who in ("A", "B")}
    outs = {who: p.communicate(timeout=120) for who, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), outs
    said = [who for who, (out, _) in outs.items() if "replaced 44 labels given by" in out]
    assert len(said) == 1  # the second to write names the first
    other = "A" if said[0] == "B" else "B"
    assert f"replaced 44 labels given by {other}" in outs[said[0]][0]
    rc, out = run_label(str(triage.path), "--store", db, "--who", other, "--import", str(tmp_path / f"{other}.csv"),
                        "--no-overwrite")
    assert rc == 0 and "44 items labelled differently by someone else kept their label" in out
    with Store(db) as s:
        kept = {row.who for row in LabelBook(s, triage).current().values()}
        assert kept == {said[0]} and len(sampled_labels(s, triage).gold) == 44


def test_import_messages_name_a_dev_item_and_a_file_without_rows(tmp_path, triage):
    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    with Store(db):
        pass
    assert triage.dev, "the task needs a dev split for this case"
    (tmp_path / "dev.csv").write_text(f"id,label\n{triage.dev[0].id},bug\n", encoding="utf-8")
    rc, out = run_label(str(triage.path), "--store", db, "--who", "ana", "--import", str(tmp_path / "dev.csv"))
    assert rc != 0 and f"'{triage.dev[0].id}' is a dev item" in out and "did you mean" not in out
    (tmp_path / "empty.csv").write_text("id,label\n", encoding="utf-8")
    rc, out = run_label(str(triage.path), "--store", db, "--who", "ana", "--import", str(tmp_path / "empty.csv"))
    assert rc != 0 and "has no rows" in out and "no 'id'" not in out


def test_a_smaller_size_than_drawn_says_it_changes_nothing(tmp_path, triage):
    db = str(tmp_path / "kit.sqlite")
    rc, out = run_label(str(triage.path), "--store", db, "--size", "20", "--status")
    assert rc == 0 and "20 of 100" in out and "changes nothing" not in out
    rc, out = run_label(str(triage.path), "--store", db, "--size", "10", "--status")
    assert rc == 0 and "the sample already holds 20 items, so --size 10 changes nothing" in out


def test_kit_label_draws_the_stratified_design_and_shows_its_strata(tmp_path, triage):
    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    rc, out = run_label(str(triage.path), "--store", db, "--design", "stratified", "--size", "30", "--status")
    assert rc != 0 and "needs the stored answers of at least two options" in out
    with Store(db) as s:
        store_answers(s, triage, answers_for(triage))
    rc, out = run_label(str(triage.path), "--store", db, "--design", "stratified", "--size", "30", "--status")
    assert rc == 0 and "sample (stratified): 30 of 100" in out and "api | local:" in out and "all agree:" in out
    assert "below 10, no estimate is shown as a measurement" in out


def test_the_form_and_the_csv_round_trip_serve_the_stratified_design(store, triage, tmp_path):
    """The notebook's form draws the stratified design and presents its items; an exported file lists the design's
    items, and importing it back fills the design (labels given after the draw count)."""
    from kit.labels import LabelBook, sampled_labels
    from kit.labels.files import export_labels, import_labels
    from kit.labels.form import label_form

    store_answers(store, triage, answers_for(triage))
    form = label_form(triage, store=store, who="ana", size=20, design="stratified")
    book = LabelBook(store, triage)
    sample = book.sample()
    assert sample.design == "stratified" and len(sample.order) == 20
    assert sample.order[0] in form.header.value
    form.buttons[0].click()  # the first item labelled in the form
    assert book.next_item().id == sample.order[1]
    export_labels(book, tmp_path / "design.csv")
    rows = (tmp_path / "design.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == list(sample.order)
    (tmp_path / "back.csv").write_text("id,label\n" + "".join(f"{i},{truth(i)}\n" for i in sample.order[1:]),
                                       encoding="utf-8")
    done = import_labels(book, tmp_path / "back.csv", who="bo")
    assert done.added == 19 and done.outside == 0
    labels = sampled_labels(store, triage)
    assert len(labels.gold) == 20 and labels.design == "stratified" and labels.measured
    with pytest.raises(ConfigError, match="unknown design"):
        label_form(triage, store=store, who="ana", size=20, design="clustered")
