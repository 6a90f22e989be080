"""A partly labelled task through the report stages: gold on a random sample (the run folder's labels doc), the
reference's answers as the proxy on every item, PPI++ in the compare table, the floor and the verdict; and with
no labels, the agreement decision says how many labels would make it a correctness one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kit.columns import Col
from kit.errors import ConfigError
from kit.pipeline import answers, costs, prepare, quality, verdict
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.report import views
from kit.stats import ppi_mean, ppi_mean_difference
from kit.stats.power import labels_for_agreement
from kit.tasks import load_task
from test_report_stages import experiment, project  # noqa: F401  (the fixture: a three-label task, four replays)

N_LABELS = 40


def _stages(tmp_path, exp, labels=None) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    prepare.prepare_stage(exp, folder)
    prepare.finetune_stage(folder, progress=False)
    answers.answer_stage(folder, progress=False)
    if labels is not None:  # what the lead's glue snapshots from the store's label book
        folder.save_doc(Doc.LABELS, labels, task="tickets")
    quality.quality_stage(folder)
    costs.costs_stage(folder)
    verdict.verdict_stage(folder)
    return folder


def _gold(tmp_path) -> dict[str, str]:
    rows = [json.loads(line) for line in (tmp_path / "datasets" / "tickets.jsonl").read_text().splitlines()]
    return {r["id"]: r["label"] for r in rows}


def _outputs(path) -> dict[str, str]:
    return {r["item_id"]: r["output"] for r in map(json.loads, open(path).read().splitlines())}


def _sample(tmp_path, *, outside: int = 0) -> dict:
    test = [i.id for i in load_task("tickets", ignore_labels=True).test]
    order = [test[i] for i in np.random.default_rng(7).permutation(len(test))]
    gold = _gold(tmp_path)
    return {"order": order, "gold": {i: gold[i] for i in order[:N_LABELS]}, "outside": outside,
            "population": len(test), "seed": 7}


def test_a_partly_labelled_task_is_decided_on_ppi_intervals(project):
    tmp_path, files = project
    labels = _sample(tmp_path, outside=3)
    folder = _stages(tmp_path, experiment(tmp_path, files, ignore_labels=True), labels)

    compare = folder.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    assert set(compare[Col.KIND]) == {"prediction-powered accuracy"}
    assert set(compare.index) == {"Good", "Majority", "<img src=x onerror=alert(1)>"}

    # by hand, from the task's data and the replay files: Y against gold on the 40 labels, the proxy against
    # the API's answers on all 60 test items
    test = [i.id for i in load_task("tickets", ignore_labels=True).test]
    gold = _gold(tmp_path)
    api, good = _outputs(files["api"]), _outputs(files["good"])
    lab = np.array([i in labels["gold"] for i in test])
    y_good = np.array([good[i] == gold[i] for i in test], dtype=float)[lab]
    y_api = np.array([api[i] == gold[i] for i in test], dtype=float)[lab]
    f_good = np.array([good[i] == api[i] for i in test], dtype=float)
    ones = np.ones(len(test))
    direct = ppi_mean_difference(y_good, y_api, f_good[lab], ones[lab], f_good[~lab], ones[~lab]).iloc[0]
    row = compare.loc["Good"]
    assert row[Col.N_ITEMS] == 60 and row[Col.N_LABELLED] == N_LABELS and row[Col.N_UNLABELLED] == 20
    assert row[Col.DIFFERENCE] == pytest.approx(direct[Col.ESTIMATE])
    assert (row[Col.DIFF_CI_LOW], row[Col.DIFF_CI_HIGH]) == pytest.approx((direct[Col.CI_LOW], direct[Col.CI_HIGH]))
    assert -1 < direct[Col.CI_LOW] and direct[Col.CI_HIGH] < 1  # inside [-1, 1]: nothing to cut
    assert (row[Col.LABELS_ONLY_CI_LOW], row[Col.LABELS_ONLY_CI_HIGH]) == pytest.approx(
        (direct[Col.LABELS_ONLY_CI_LOW], direct[Col.LABELS_ONLY_CI_HIGH]))
    assert row[Col.EFFECTIVE_LABELS] == pytest.approx(direct[Col.EFFECTIVE_LABELS])
    # one-sided 95% lower bound: estimate - t_{0.95, 39} * se (scipy.stats.t.ppf(0.95, 39) = 1.6848751)
    assert row[Col.LOWER_BOUND] == pytest.approx(direct[Col.ESTIMATE] - 1.6848751 * direct[Col.STD_ERROR], abs=1e-6)
    assert row[Col.CONCLUSION_ADJUSTED] == "superior" and row[Col.QUALIFIES]
    assert "3 label(s) given outside the random sample are not used" in row[Col.STATEMENT]
    assert "worth about" in row[Col.STATEMENT]

    metrics = folder.table(Table.METRICS, task="tickets").set_index(Col.OPTION)
    alone = ppi_mean(y_api, ones[lab], ones[~lab]).iloc[0]  # the reference: proxy constant 1 -> labels only
    assert metrics.loc["API", Col.LAMBDA] == 0.0
    assert metrics.loc["API", Col.MEAN_SCORE] == pytest.approx(y_api.mean())
    assert metrics.loc["API", Col.SCORE_CI_LOW] == pytest.approx(alone[Col.LABELS_ONLY_CI_LOW])
    assert metrics.loc["Good", Col.AGREEMENT] == pytest.approx(f_good.mean())
    good_alone = ppi_mean(y_good, f_good[lab], f_good[~lab]).iloc[0]
    assert good_alone[Col.CI_HIGH] > 1  # Good is right on 95%: the raw PPI++ interval passes 100% ...
    assert metrics.loc["Good", Col.SCORE_CI_HIGH] == 1.0  # ... the report's stops there
    assert metrics.loc["Good", Col.SCORE_CI_LOW] == pytest.approx(good_alone[Col.CI_LOW])

    floor = folder.table(Table.FLOOR, task="tickets").set_index(Col.OPTION)
    assert floor.loc["Majority", Col.ANSWER] == "a" and not floor.loc["Majority", Col.PASSES]
    assert floor.loc["Good", Col.PASSES]

    decision = folder.doc(Doc.DECISION, task="tickets")
    assert decision["recommended"] == "Good"
    assert not any("agreement with the reference" in c for c in decision["caveats"])
    ranking = folder.table(Table.RANKING, task="tickets").set_index(Col.OPTION)
    assert ranking.loc["Majority", "status"] == "below the floor"

    from kit.report import plots

    plots.quality_grid(folder)
    assert "nan" not in views.summary(folder).to_html().lower()
    html = views.quality(folder).to_html()
    assert "labels only" in html and "effective labels" in html
    html = views.comparison(folder).to_html()
    assert "labels only 95% CI" in html and "effective labels" in html and "nan" not in html.lower()
    text = views.prediction_powered(folder)
    assert "Angelopoulos" in text and "PPI++" in text and "40 labelled" in text and "20 unlabelled" in text
    assert "3 labels outside the random sample" in text and "small-sample" in text


def test_with_no_labels_the_decision_is_about_agreement_and_says_what_labels_would_decide(project):
    """A sample drawn but nothing labelled yet (a run with no labels doc at all takes the same path:
    test_report_stages' unlabelled run)."""
    tmp_path, files = project
    labels = {**_sample(tmp_path), "gold": {}}
    folder = _stages(tmp_path, experiment(tmp_path, files, ignore_labels=True, agreement_target=0.5), labels)
    compare = folder.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    assert set(compare[Col.KIND]) == {"agreement"}
    good = compare.loc["Good"]
    expected = labels_for_agreement(good[Col.CANDIDATE_VALUE], margin=0.02, alpha=0.05)["n_required"].item()
    assert good[Col.LABELS_NEEDED] == expected and expected > 100 and good[Col.N_LABELLED] == 0
    assert f"about {expected:,.0f} random gold labels would be needed" in good[Col.STATEMENT]
    text = views.prediction_powered(folder)
    assert "about agreement with the reference, not correctness" in text and f"{expected:,.0f}" in text


def test_labels_outside_the_sample_are_refused_with_a_fix(project):
    tmp_path, files = project
    labels = _sample(tmp_path)
    labels["gold"]["not-in-sample"] = "a"
    with pytest.raises(ConfigError, match="not in the random sample") as err:
        _stages(tmp_path, experiment(tmp_path, files, ignore_labels=True), labels)
    assert "outside" in err.value.fix


def test_a_labels_record_missing_a_key_is_refused_with_a_fix():
    from kit.tasks.ppi_compare import SampledLabels

    with pytest.raises(ConfigError, match=r"lacks \['seed'\]") as err:
        SampledLabels.from_doc({"order": ["a"], "gold": {"a": "x"}, "outside": 0, "population": 3}, where="labels.json")
    assert "kit label" in err.value.fix and err.value.where == "labels.json"
    doc = {"order": ["a", "b"], "gold": {"b": "y"}, "outside": 2, "population": 3, "seed": 4}
    assert SampledLabels.from_doc(doc, where="x").to_doc() == doc


def test_labels_drawn_from_another_split_are_refused(project):
    """A sample drawn when the task file split its items otherwise (another seed, another test_fraction) is not a
    random sample of the items this run asks: the quality stage refuses it, naming the fix."""
    tmp_path, files = project
    task = load_task("tickets", ignore_labels=True)
    other = [i.id for i in task.train] + [i.id for i in task.test][:10]  # e.g. the split before the file changed
    gold = _gold(tmp_path)
    labels = {"order": other, "gold": {i: gold[i] for i in other[:N_LABELS]}, "outside": 0,
              "population": len(other), "seed": 7}
    with pytest.raises(ConfigError, match="drawn from another split") as err:
        _stages(tmp_path, experiment(tmp_path, files, ignore_labels=True), labels)
    assert "ignore_labels" in err.value.fix


def test_labels_given_in_the_store_reach_the_report_through_the_run_folder(project):
    """The labelling loop's labels (drawn and given through the label book in the experiment's store) are
    snapshotted by the quality stage into the run folder, decide the comparison, and the report says how many
    of them lie among the items the run asked."""
    from kit.labels import LabelBook, Source, sampled_labels
    from kit.run.store import Store

    tmp_path, files = project
    exp = experiment(tmp_path, files, ignore_labels=True, tasks={"tickets": 45})
    task = load_task("tickets", ignore_labels=True)
    gold = _gold(tmp_path)
    with Store(exp.store) as store:
        book = LabelBook(store, task)
        order = book.draw(N_LABELS).order
        for item_id in order:
            book.give(item_id, gold[item_id], who="ana", source=Source.IMPORT)
        expected = sampled_labels(store, task)
    folder = _stages(tmp_path, exp)

    assert folder.doc(Doc.LABELS, task="tickets") == expected.to_doc()
    asked = {i.id for i in task.test[:45]}
    used = sum(i in asked for i in order)
    compare = folder.table(Table.COMPARE, task="tickets")
    assert set(compare[Col.KIND]) == {"prediction-powered accuracy"}
    assert set(compare[Col.N_LABELLED]) == {used} and used < N_LABELS
    assert (f"Only {used} of the sample's {N_LABELS} labels lie among the 45 items this run asked"
            in views.prediction_powered(folder))


# ------------------------------------------- issue 25: a partly labelled verdict reads correctness, never agreement
@pytest.fixture
def audit(tmp_path, monkeypatch):
    """The audit's setting: a cheap API right on about 70% of the items, a dearer local model right on almost all
    of them; 60 test items of a three-label task. Returns the project folder and the experiment's options."""
    from test_report_stages import write_replay, write_tickets

    rng = np.random.default_rng(25)
    gold = rng.choice(["a", "b", "c"], size=120)
    write_tickets(tmp_path, gold, monkeypatch)

    def replay(name: str, right: float) -> str:
        return write_replay(tmp_path, name, gold, right, rng)

    options = [{"name": "API", "arm": f"replay:{replay('api', 0.72)}", "runs": "third-party",
                "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
               {"name": "Local", "arm": f"replay:{replay('local', 0.98)}", "runs": "self-hosted", "machine": "box"}]
    return tmp_path, options


def _audit_experiment(tmp_path, options, name: str, **changes):
    from kit.experiment import Experiment

    return Experiment.from_mapping({
        "tasks": {"tickets": None}, "reference": "API", "options": options,
        "machines": {"box": {"price_per_hour": 0.5, "utilisation": 0.6}}, "latency_target_s": 2.0,
        "store": str(tmp_path / f"{name}.sqlite"), **changes}, source="audit.yaml")


def _label_a_random_sample(tmp_path, exp, size: int) -> None:
    """Draw the kit's random sample of the test items in the experiment's store and give each its gold label."""
    from kit.labels import LabelBook, Source
    from kit.run.store import Store

    gold = _gold(tmp_path)
    with Store(exp.store) as store:
        book = LabelBook(store, load_task("tickets", ignore_labels=True))
        for item_id in book.draw(size, seed=5).order:
            book.give(item_id, gold[item_id], who="ana", source=Source.IMPORT)


def _verdict(tmp_path, exp, name: str):
    from kit.pipeline import runner

    folder = RunFolder(tmp_path / name)
    return folder, runner.run_all(exp, folder)["tickets"]


def test_a_better_option_the_labels_prove_better_is_chosen_as_with_every_label(audit):
    """Audit case "the verdict ignored a better option that the labels proved better": 40 random labels show Local
    superior to the cheaper API (+30 points), and the verdict chose the API — "not significantly worse than the
    best" by a test of agreement with the API itself. The oracle is the verdict on the same answers with every
    label."""
    tmp_path, options = audit
    _, oracle = _verdict(tmp_path, _audit_experiment(tmp_path, options, "all"), "all")
    assert oracle.recommended == "Local"

    partly = _audit_experiment(tmp_path, options, "partly", ignore_labels=True)
    _label_a_random_sample(tmp_path, partly, 40)
    folder, made = _verdict(tmp_path, partly, "partly")
    compare = folder.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    assert set(compare[Col.KIND]) == {"prediction-powered accuracy"} and compare.loc["Local", Col.N_LABELLED] == 40
    assert compare.loc["Local", Col.CONCLUSION_ADJUSTED] == "superior"
    # every pair, too, is compared in correctness (PPI++), not in agreement with the reference
    pairs = folder.table(Table.PAIRS, task="tickets").iloc[0]
    diff = pairs[Col.DIFFERENCE] if pairs[Col.A] == "Local" else -pairs[Col.DIFFERENCE]
    assert diff > 0.2 and pairs[Col.P_HOLM] < 0.05 and "accuracy (PPI++" in pairs[Col.STATEMENT]
    assert made.recommended == oracle.recommended == "Local" and made.verdict.startswith("Choose Local:")
    assert "superior to the reference API" in made.verdict and made.runner_up == oracle.runner_up == "API"
    assert not any("agreement with the reference" in c for c in made.caveats)


def test_a_sequential_run_on_a_partly_labelled_task_tests_correctness(audit):
    """Audit case "`sequential:` on a partly labelled task tested agreement": the rounds' bar is the paired
    difference in correctness on the labelled items answered so far, never the agreement target; the verdict is
    the one every label gives on the same answers, in rounds too."""
    tmp_path, options = audit
    rounds = {"sequential": {"round_items": 10}}
    _, oracle = _verdict(tmp_path, _audit_experiment(tmp_path, options, "all", **rounds), "all")
    assert oracle.recommended == "Local"

    partly = _audit_experiment(tmp_path, options, "partly", ignore_labels=True, **rounds)
    _label_a_random_sample(tmp_path, partly, 50)  # a betting sequence is valid at every n: it needs more labels
    folder, made = _verdict(tmp_path, partly, "partly")
    looks = folder.table(Table.SEQUENTIAL, task="tickets")
    bars = looks[looks[Col.QUESTION] == "bar"]
    assert set(bars[Col.METRIC]) == {"paired difference in correctness"}
    assert set(bars[Col.THRESHOLD]) == {-0.02} and "fails" not in set(bars[Col.STATUS])
    # Local's edge in correctness (about +0.3), not its agreement with the API (about 0.7)
    assert bars[Col.ESTIMATE].dropna().between(0.0, 0.5).all()
    # the bar is settled on correctness (the latency question, 0 slow answers in 60, stays open: a finite-sample
    # sequence cannot show a share under 5% from 60 items)
    assert bars[Col.STATUS].iloc[-1] == "passes"
    compare = folder.table(Table.COMPARE, task="tickets").set_index(Col.OPTION)
    assert "difference in correctness" in compare.loc["Local", Col.STATEMENT]
    assert made.recommended == oracle.recommended == "Local"


# ------------------------------------------- issue 25, item 6: the report shows the stratified design it decided on
def _stratified_labels(tmp_path, exp, size: int, *, labelled: int | None = None, skip: int | None = None):
    """Draw a stratified design from the stored answers and label its first ``labelled`` items in presentation
    order (all by default), skipping the one at position ``skip``; the labels the estimates may use."""
    from kit.labels import LabelBook, Source, draw_stratified, sampled_labels
    from kit.run.store import Store

    task, gold = load_task("tickets", ignore_labels=True), _gold(tmp_path)
    with Store(exp.store) as store:
        order = draw_stratified(store, task, size).design.order
        book = LabelBook(store, task)
        for k, item_id in enumerate(order[:labelled]):
            if k == skip:
                book.skip(item_id, who="ana", source=Source.CLI)
            else:
                book.give(item_id, gold[item_id], who="ana", source=Source.CLI)
        return sampled_labels(store, task)


def _sentences(folder, made) -> list[str]:
    compare = folder.table(Table.COMPARE, task="tickets")
    return [made.verdict, *made.reasons, *made.caveats, *made.trade, *compare[Col.STATEMENT]]


def test_the_report_shows_the_stratified_design_its_strata_and_what_its_labels_are_worth(audit):
    tmp_path, options = audit
    exp = _audit_experiment(tmp_path, options, "strat", ignore_labels=True)
    _verdict(tmp_path, exp, "first")  # the options answer: the design's strata come from their stored answers
    labels = _stratified_labels(tmp_path, exp, 30, skip=25)
    assert labels.design == "stratified" and labels.skipped == 1 and labels.measured
    folder, made = _verdict(tmp_path, exp, "second")
    text = views.prediction_powered(folder)
    assert "gold on a **stratified** random sample" in text and "Design-weighted estimates" in text
    for r in labels.stratum_table().to_dict("records"):
        name = views.STRATUM_WORDS.get(r[Col.STRATUM], r[Col.STRATUM])
        for o in options:  # the report names each arm by its option
            name = name.replace(o["arm"], o["name"])
        assert f"{name}: {r[Col.STRATUM_SIZE]} items, {r[Col.DRAWN]} drawn, {r[Col.N_LABELLED]} labels used" in text
    compare = folder.table(Table.COMPARE, task="tickets")
    assert set(compare[Col.KIND]) == {"prediction-powered accuracy"}
    worth = "; ".join(f"{o} about {e:,.0f}" for o, e in zip(compare[Col.OPTION], compare[Col.EFFECTIVE_LABELS])
                      if pd.notna(e))
    assert f"this design is worth, for the difference from the reference): {worth}." in text
    assert f"1 sampled item(s) skipped; {labels.waiting} label(s) after a skipped item held back" in text
    assert "PPI++ estimates" not in text  # the random design's method text is not this design's
    # decided on correctness: no sentence of the labels' section or the verdict speaks of agreement
    for sentence in [text, *_sentences(folder, made)]:
        assert "agree" not in sentence.lower(), sentence


def test_fewer_than_ten_design_labels_give_no_point_estimate_and_say_so(audit):
    tmp_path, options = audit
    exp = _audit_experiment(tmp_path, options, "few", ignore_labels=True)
    _verdict(tmp_path, exp, "first")
    labels = _stratified_labels(tmp_path, exp, 30, labelled=6)
    assert len(labels.gold) == 6 and not labels.measured
    folder, made = _verdict(tmp_path, exp, "second")
    text = views.prediction_powered(folder)
    assert "6 labels of the stratified design: fewer than 10, so no point estimate" in text
    assert "so this decision is about agreement with the reference" in text  # and it says so: not correctness
    for r in labels.stratum_table().to_dict("records"):
        name = views.STRATUM_WORDS.get(r[Col.STRATUM], r[Col.STRATUM])
        for o in options:  # the report names each arm by its option
            name = name.replace(o["arm"], o["name"])
        assert f"{name}: {r[Col.STRATUM_SIZE]} items, {r[Col.N_LABELLED]} labels used" in text

