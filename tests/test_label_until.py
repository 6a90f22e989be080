"""Label until settled (issue 25, item 4): ``kit label --design stratified`` and the notebook form re-test each
candidate against the reference after every label and stop asking once the verdict is settled — the real CLI in
a subprocess, the form through a real kernel (as tests/test_label_form.py drives it), real SQLite.

The oracle is the settle rule itself (kit.stats.settle, checked against its own references in
tests/test_settle.py) applied by hand to the design's disagreement stratum in its random order: the loop must
stop exactly where that rule first settles, with the same interval."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from test_labels_design import _wrong, run_label, store_answers, triage, truth  # noqa: F401  (triage: a fixture)

API, LOCAL = "openai:gpt-4o-mini", "llama_cpp:smollm2-135m-instruct"


def _answers(task, *, api_wrong_every: int = 7) -> dict[str, dict[str, str]]:
    """The API wrong on every 7th test item; the local option right everywhere: they disagree exactly where the
    API is wrong, and the local option is better there."""
    api = {i.id: _wrong(truth(i.id)) if k % api_wrong_every == 0 else truth(i.id) for k, i in enumerate(task.test)}
    return {API: api, LOCAL: {i.id: truth(i.id) for i in task.test}}


def _kit(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "kit.cli", "label", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def _oracle(store, task, answers, *, margin: float):
    """Where the settle rule, applied by hand, first settles on the design's presentation order: the number of
    design labels given by then, and the look at that point."""
    from kit.labels.design import designs
    from kit.stats.settle import PairedQuestion, first_settled, look

    design = designs(store, task)[-1]
    split = [i for i in design.strata if answers[API][i] != answers[LOCAL][i]]
    stratum = {design.strata[i] for i in split}
    assert len(stratum) == 1  # two options: one disagreement stratum
    in_rank = sorted((i for i in design.strata if design.strata[i] in stratum), key=lambda i: design.ranks[i])
    diffs = [float(answers[LOCAL][i] == truth(i)) - float(answers[API][i] == truth(i)) for i in in_rank]
    q = PairedQuestion(disagreements=len(in_rank), items=len(design.strata), margin=margin)
    k = first_settled(q, diffs)
    assert k is not None
    kth = in_rank[k - 1]
    return design.order.index(kth) + 1, look(q, diffs[:k])


def test_kit_label_stops_asking_once_the_verdict_is_settled(tmp_path, triage):  # noqa: F811
    from kit.labels import LabelBook, sampled_labels
    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    answers = _answers(triage)
    with Store(db) as s:
        store_answers(s, triage, answers)
    rc, out = run_label(str(triage.path), "--store", db, "--design", "stratified", "--size", "40", "--status")
    assert rc == 0, out
    with Store(db) as s:
        order = LabelBook(s, triage).sample().order
        stop, expected = _oracle(s, triage, answers, margin=0.05)
    assert 1 < stop < len(order)  # it settles before the sample is used up, and not before any label
    stdin = "".join(f"{truth(i)}\n" for i in order)  # a labeller who would label the whole sample
    done = _kit(str(triage.path), "--store", db, "--reference", API, "--candidate", LOCAL, "--margin", "0.05",
                stdin=stdin)
    assert done.returncode == 0, done.stderr
    want = (f"enough: {LOCAL} is within 5 points of {API} after {stop} labels "
            f"(difference {100 * expected.estimate:+.1f} points, always-valid interval "
            f"{100 * expected.low:+.1f} to {100 * expected.high:+.1f})")
    assert want in done.stdout
    assert "settled: every open question is answered" in done.stdout
    assert done.stdout.count("> ") == stop  # it asked for exactly the labels the rule needed, no more
    with Store(db) as s:
        assert len(sampled_labels(s, triage).gold) == stop
    rc, again = run_label(str(triage.path), "--store", db, "--reference", API, "--candidate", LOCAL, "--margin",
                          "0.05")  # in process: reading the (captured) stdin would fail the test
    assert rc == 0 and "settled:" in again and "> " not in again  # a settled question asks nothing more


def test_an_imported_file_is_the_same_question_asked_once(tmp_path, triage):  # noqa: F811
    import csv

    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    answers = _answers(triage)
    with Store(db) as s:
        store_answers(s, triage, answers)
    assert run_label(str(triage.path), "--store", db, "--design", "stratified", "--size", "40",
                     "--export", str(tmp_path / "s.csv"))[0] == 0
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:3]:  # three labels: not yet settled
        row["label"] = truth(row["id"])
    with open(tmp_path / "s.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    rc, few = run_label(str(triage.path), "--store", db, "--import", str(tmp_path / "s.csv"), "--reference", API,
                        "--candidate", LOCAL, "--margin", "0.05")
    assert rc == 0, few
    with Store(db) as s:
        stop, _ = _oracle(s, triage, answers, margin=0.05)
    line = [x for x in few.splitlines() if x.startswith(("open after", "enough:"))]
    assert len(line) == 1
    assert line[0].startswith("open after 3 labels") if stop > 3 else line[0].startswith("enough:")
    for row in rows:
        row["label"] = truth(row["id"])
    with open(tmp_path / "s.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    rc, full = run_label(str(triage.path), "--store", db, "--import", str(tmp_path / "s.csv"), "--reference", API,
                         "--candidate", LOCAL, "--margin", "0.05")
    assert rc == 0 and f"enough: {LOCAL} is within 5 points of {API} after 40 labels" in full


def test_an_option_the_store_does_not_know_is_a_one_line_error(tmp_path, triage):  # noqa: F811
    from kit.run.store import Store

    db = str(tmp_path / "kit.sqlite")
    with Store(db) as s:
        store_answers(s, triage, _answers(triage))
    rc, out = run_label(str(triage.path), "--store", db, "--design", "stratified", "--size", "20", "--reference",
                        API, "--candidate", "nobody", "--status")
    assert rc != 0 and "'nobody' is not one of the stored answers' arms" in out and "Traceback" not in out


def test_the_form_stops_asking_once_settled(tmp_path, triage):  # noqa: F811
    from jupyter_client.manager import KernelManager
    from test_label_form import Browser, _run_notebook

    from kit.labels import LabelBook
    from kit.run.store import Store

    db = tmp_path / "kit.sqlite"
    answers = _answers(triage)
    with Store(db) as s:
        store_answers(s, triage, answers)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(json.dumps({
        "tasks": {str(triage.path): None}, "reference": "API", "margin": 0.05,
        "options": [{"name": "API", "arm": API, "runs": "third-party"},
                    {"name": "Local", "arm": LOCAL, "machine": {"price_per_hour": 1.0}},
                    # an option with no stored answers on this task: left out of the questions, not an error
                    {"name": "Unrun", "arm": "llama_cpp:qwen2.5-0.5b-instruct", "machine": {"price_per_hour": 1.0}}]}),
        encoding="utf-8")
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(ROOT)})
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        browser = Browser(client)
        _run_notebook(browser, task=str(triage.path), store=str(db), who="ana", size=40, design="stratified",
                      experiment=str(experiment))
        form = browser.shown[-1]
        header, text, buttons, _, _, settle, _, _ = browser.children(form)
        by_label = {browser.models[b]["description"]: b for b in browser.children(buttons)}
        with Store(db) as s:
            stop, expected = _oracle(s, triage, answers, margin=0.05)
            order = LabelBook(s, triage).sample().order
        for item_id in order[:stop]:
            assert item_id in browser.value(header)
            browser.click(by_label[truth(item_id)])
        assert f"enough: Local is within 5 points of API after {stop} labels" in browser.value(settle)
        assert "Settled" in browser.value(header) and "Unrun" not in browser.value(settle)
        assert all(browser.models[b].get("disabled") for b in browser.children(buttons))
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize("wrong_every", [7])
def test_three_options_use_each_disagreement_stratum_at_a_share_of_alpha(tmp_path, triage, wrong_every):  # noqa: F811
    """With a third option the local option's disagreements with the API fall in several strata: the interval is
    the sum of each stratum's settle interval at alpha / K (Bonferroni) — checked here against that sum."""
    from kit.labels import LabelBook, Source, sampled_labels
    from kit.labels.design import designs, draw_stratified
    from kit.labels.until import standings
    from kit.run.store import Store
    from kit.stats.settle import PairedQuestion, look

    answers = _answers(triage, api_wrong_every=wrong_every)
    third = {i.id: (_wrong(truth(i.id)) if k % 5 == 0 else truth(i.id)) for k, i in enumerate(triage.test)}
    answers["third"] = third
    with Store(tmp_path / "kit.sqlite") as s:
        store_answers(s, triage, answers)
        draw_stratified(s, triage, 40)
        book = LabelBook(s, triage)
        for item_id in book.sample().order[:25]:
            book.give(item_id, truth(item_id), who="ana", source=Source.CLI)
        (got,) = standings(s, triage, reference=API, candidates=[LOCAL], margin=0.05)
        design, gold = designs(s, triage)[-1], sampled_labels(s, triage).gold
    split = sorted({design.strata[i] for i in design.strata if answers[API][i] != answers[LOCAL][i]})
    assert len(split) >= 2 and got.strata == tuple(split)
    low = high = 0.0
    for h in split:
        members = sorted((i for i in design.strata if design.strata[i] == h), key=lambda i: design.ranks[i])
        diffs = [float(answers[LOCAL][i] == truth(i)) - float(answers[API][i] == truth(i))
                 for i in members if i in gold]
        part = look(PairedQuestion(disagreements=len(members), items=100, margin=0.05, alpha=0.05 / len(split)),
                    diffs)
        low, high = low + part.low, high + part.high
    assert got.low == pytest.approx(low) and got.high == pytest.approx(high)
    assert got.labels == 25
