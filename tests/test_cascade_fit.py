"""The cascade's threshold fitted on items it is not tested on: on dev answers, or cross-fitted over folds of
the test items, so that no test item's route depends on its own answers (issue 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.cascade import (CROSS_FIT_FOLDS, Fit, choose_threshold, escalated, fit_cascade, folds_of, routed_scores,
                         sweep_cascade)
from kit.errors import ConfigError
from kit.stats import accuracy_ci, non_inferiority

from test_report_stages import project  # noqa: F401  (the fixture: a small project of replayed outputs)
from test_routing import API, GPU, LOCAL, PRICING, synth, tiny

ROOT = Path(__file__).resolve().parents[1]
KW = dict(local_arm=LOCAL, hosted_arm=API, pricing=PRICING, deployment=GPU, volume=1_000_000)


def flipped(scores: pd.DataFrame, item: str) -> pd.DataFrame:
    """The same answers, but the local answer to ``item`` right where it was wrong and wrong where it was right."""
    out = scores.copy()
    at = (out["option"] == LOCAL) & (out["item_id"] == item)
    out.loc[at, "correct"] = ~out.loc[at, "correct"].astype(bool)
    out["score"] = out["correct"].astype(float)
    return out


def own_route(fit, item: str) -> tuple[float, bool]:
    row = fit.routes.set_index("item_id").loc[item]
    return float(row["tau"]), bool(row["escalated"])


def test_folds_come_from_the_ids_alone_and_are_balanced():
    ids = [f"i{i:03d}" for i in range(103)]
    folds = folds_of(ids)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21] and CROSS_FIT_FOLDS == 5
    again = folds_of(list(reversed(ids)))  # the same item lands in the same fold whatever the order given
    assert dict(zip(reversed(ids), again.tolist())) == dict(zip(ids, folds.tolist()))
    assert folds_of(ids, seed=21).tolist() != folds.tolist()


def test_no_items_route_depends_on_its_own_outcome():
    """Chosen in-sample, τ moves when one item near it changes outcome, and with it that item's own route; cross-fitted,
    the item's route is decided by a τ fitted on the other folds only, so it stays put (while other folds' τ move)."""
    scores = synth(n=300, seed=1)
    base = fit_cascade(scores, **KW)
    assert base.choice.fit is Fit.CROSS_FITTED and len(base.choice.fold_taus) == 5
    in_sample = choose_threshold(sweep_cascade(scores, **KW)).tau
    conf = scores[scores["option"] == LOCAL].set_index("item_id")["confidence"]
    for item in ("i0005", "i0012"):  # right, and confident just above the in-sample τ
        other = flipped(scores, item)
        # in-sample, the item's own outcome moves τ over its own confidence: its route flips (the old way's flaw)
        moved = choose_threshold(sweep_cascade(other, **KW)).tau
        assert escalated(np.array([conf[item]]), in_sample)[0] != escalated(np.array([conf[item]]), moved)[0]
        # cross-fitted: its own route and τ do not change, nor does any route in its fold
        refit = fit_cascade(other, **KW)
        assert own_route(refit, item) == own_route(base, item)
        fold = int(base.routes.set_index("item_id").loc[item, "fold"])
        assert refit.choice.fold_taus[fold] == base.choice.fold_taus[fold]
        same_fold = base.routes["fold"] == fold
        assert refit.routes[same_fold].equals(base.routes[same_fold])
        assert refit.choice.fold_taus != base.choice.fold_taus  # the flip did count where the item was fitted on


def test_cross_fitted_figures_are_the_out_of_fold_routes():
    scores = synth(n=1000, seed=0)
    fit = fit_cascade(scores, **KW)
    choice, routes = fit.choice, fit.routes
    # each fold's τ is the one chosen on the other folds' items
    for f, tau in enumerate(choice.fold_taus):
        others = routes.loc[routes["fold"] != f, "item_id"]
        assert tau == choose_threshold(sweep_cascade(scores[scores["item_id"].isin(others)], **KW)).tau
        assert (routes.loc[routes["fold"] == f, "tau"] == tau).all()
    # the figures are those of the routed items: by hand from the per-item table
    table = routed_scores(scores, routes, local_arm=LOCAL, hosted_arm=API, name="h").set_index("item_id")
    api = scores[scores["option"] == API].set_index("item_id").loc[table.index, "score"]
    assert choice.accuracy == pytest.approx(table["score"].mean())
    assert choice.share_local == pytest.approx(1 - table["escalated"].mean())
    ci = accuracy_ci(table["score"].to_numpy()).iloc[0]
    assert (choice.ci_low, choice.ci_high) == pytest.approx((ci["ci_low"], ci["ci_high"]))
    ni = non_inferiority(table["score"].to_numpy(), api.to_numpy(), margin=0.02, alpha=0.05).iloc[0]
    assert choice.conclusion == ni["conclusion"] == "non-inferior"
    # the τ to deploy is fitted on all items; the statement says so and gives each fold's τ
    assert choice.tau == choose_threshold(sweep_cascade(scores, **KW)).tau
    assert choice.n_fit == choice.n_tested == 1000
    assert "the τ to deploy is fitted on all items; its figures are out-of-fold estimates" in choice.statement
    assert all(f"{t:.3g}" in choice.statement for t in choice.fold_taus)


def test_an_in_sample_pass_that_does_not_hold_out_of_fold_is_not_recommended():
    """300 items: in-sample the cheapest passing τ scrapes through; out of fold the same procedure is inconclusive."""
    scores = synth(n=300, seed=1)
    in_sample = choose_threshold(sweep_cascade(scores, **KW))
    assert in_sample.tau is not None and in_sample.conclusion == "non-inferior"
    fit = fit_cascade(scores, **KW)
    assert fit.choice.tau is None and fit.choice.conclusion == "inconclusive"
    assert fit.choice.accuracy < in_sample.accuracy
    assert fit.choice.statement.startswith("No cascade recommended: τ=")
    assert "not on items it never saw" in fit.choice.statement


def test_dev_answers_fit_tau_and_the_test_items_only_measure_it():
    dev = synth(n=1000, seed=5)
    dev["item_id"] = "dev-" + dev["item_id"]
    test = synth(n=1000, seed=6)
    fit = fit_cascade(test, dev_scores=dev, **KW)
    tau = choose_threshold(sweep_cascade(dev, **KW)).tau
    choice = fit.choice
    assert choice.fit is Fit.DEV and choice.n_fit == 1000 and choice.n_tested == 1000
    assert choice.fold_taus == (tau,) and choice.tau == tau
    # every test item routed by the dev τ; the figures are the test items' at that τ
    at_tau = sweep_cascade(test, thresholds=[tau], **KW).iloc[0]
    assert choice.accuracy == pytest.approx(at_tau["accuracy"])
    assert choice.share_local == pytest.approx(at_tau["share_local"])
    assert choice.monthly_cost == pytest.approx(at_tau["monthly_cost"])
    assert choice.conclusion == at_tau["conclusion"]
    assert f"τ fitted on 1000 dev items and applied to the 1000 test items" in choice.statement
    # the test items' outcomes cannot move τ: turn every local answer on test wrong, τ stays
    worse = test.copy()
    worse.loc[worse["option"] == LOCAL, "score"] = 0.0
    assert fit_cascade(worse, dev_scores=dev, **KW).choice.fold_taus == (tau,)


def test_dev_answers_without_both_options_fall_back_to_cross_fitting():
    test = synth(n=40, seed=6)
    dev = synth(n=40, seed=5)
    only_local = dev[dev["option"] == LOCAL]
    no_confidence = dev.assign(confidence=np.nan)
    for unusable in (None, only_local, no_confidence, dev.iloc[0:0]):
        assert fit_cascade(test, dev_scores=unusable, **KW).choice.fit is Fit.CROSS_FITTED


def test_one_shared_item_or_one_fold_cannot_be_cross_fitted():
    one = tiny()[lambda f: f["item_id"] == "a"]
    with pytest.raises(ConfigError, match="too few to fit a threshold") as err:
        fit_cascade(one, **KW)
    assert "dev answers" in err.value.fix
    with pytest.raises(ConfigError, match="at least 2 folds") as err:
        fit_cascade(tiny(), folds=1, **KW)
    assert "folds=5" in err.value.fix


def test_the_in_sample_sentence_is_gone():
    old = "τ was picked on these items"
    for path in [*(ROOT / "kit").rglob("*.py"), ROOT / "README.md"]:
        assert old not in path.read_text(encoding="utf-8"), path
    assert "on the same items they were tested on" not in (ROOT / "kit" / "decision.py").read_text(encoding="utf-8")
    assert "It was picked on\nthe same items" not in (ROOT / "README.md").read_text(encoding="utf-8")
    assert old not in fit_cascade(synth(n=1000), **KW).choice.statement


# -- in the run folder: the costs stage fits each cascade apart from the test items, the report says how ----------

def test_the_report_stages_cross_fit_then_use_dev_answers(project):
    from kit.pipeline import costs, verdict
    from kit.pipeline.folder import Doc, Table
    from kit.report import views

    from test_report_stages import experiment, run_all

    tmp_path, files = project
    folder = run_all(tmp_path, experiment(tmp_path, files))
    good = folder.doc(Doc.CASCADES, task="tickets")["Good"]
    assert good["fit"] == "cross-fitted" and good["n_tested"] == 60 and len(good["fold_taus"]) == 5
    routes = folder.table(Table.CASCADE_ROUTES, task="tickets")
    good_routes = routes[routes["candidate"] == "Good"]
    assert len(good_routes) == 60 and sorted(good_routes["fold"].unique()) == [0, 1, 2, 3, 4]
    assert good["share_local"] == pytest.approx(1 - good_routes["escalated"].mean())
    text = views.cascades(folder)
    assert "τ cross-fitted over 5 folds of the 60 test items" in text and "τ per fold: " in text
    assert "picked on these items" not in text

    # dev answers for both options (here: the test answers under other ids, so τ is the same as all items')
    scores = folder.table(Table.SCORES, task="tickets")
    dev = scores[scores["option"].isin(["Good", "API"])].assign(item_id=lambda f: "dev-" + f["item_id"])
    folder.save_table(Table.DEV_SCORES, dev, task="tickets")
    costs.costs_stage(folder)
    verdict.verdict_stage(folder)
    good = folder.doc(Doc.CASCADES, task="tickets")["Good"]
    assert good["fit"] == "dev" and good["n_fit"] == 60 and good["n_tested"] == 60
    assert "τ fitted on 60 dev items and applied to the 60 test items" in views.cascades(folder)
    routes = folder.table(Table.CASCADE_ROUTES, task="tickets")
    assert (routes.loc[routes["candidate"] == "Good", "tau"] == good["fold_taus"][0]).all()


def test_the_cascade_plot_marks_the_held_out_figures_not_the_in_sample_curve():
    from dataclasses import asdict

    from kit.report.plots import cascade_plot

    scores = synth(n=1000, seed=0)
    choice = fit_cascade(scores, **KW).choice
    sweep = sweep_cascade(scores, **KW).assign(candidate=LOCAL)
    ax = cascade_plot(sweep, choices={LOCAL: asdict(choice)})
    (note,) = [t.get_text() for t in ax.texts]
    assert note == f"τ={choice.tau:.2f}, held out: {choice.share_local:.0%} self-hosted, {choice.accuracy:.0%} right"
    assert "all test items" in ax.get_xlabel()
