"""``kit plan EXPERIMENT``: items and labels the decision needs, from a pilot in a real store or from assumptions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from kit.arms import get_arm
from kit.cli import main
from kit.run.runner import run_arm
from kit.run.store import Store
from kit.stats import labels_for_agreement, sample_size_noninferiority
from kit.stats.label_designs import stratified_labels
from kit.tasks import load_task
from test_report_stages import write_tickets

N = 120  # 60 test items


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A three-label task, and a store holding the answers of an API and of a local model on 30 test items (a
    pilot); a second local model has no answers."""
    rng = np.random.default_rng(5)
    gold = rng.choice(["a", "b", "c"], size=N)
    write_tickets(tmp_path, gold, monkeypatch)
    answers = {}
    for name, right in (("api", 0.7), ("local", 0.85), ("unseen", 0.9)):
        out = {f"t{i}": (g if rng.random() < right else [x for x in "abc" if x != g][i % 2]) for i, g in enumerate(gold)}
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"item_id": k, "output": v, "latency_s": 0.1}) + "\n"
                                for k, v in out.items()))
        answers[name] = (str(path), out)
    task = load_task("tickets")
    pilot = list(task.test)[:30]
    with Store(tmp_path / "kit.sqlite") as store:
        for name in ("api", "local"):
            run_arm(task, get_arm(f"replay:{answers[name][0]}"), store=store, items=pilot)
    return tmp_path, answers, task, pilot


def _experiment(tmp_path, answers, **changes) -> str:
    data = {"tasks": {"tickets": None}, "reference": "API",
            "options": [{"name": "API", "arm": f"replay:{answers['api'][0]}", "runs": "third-party",
                         "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
                        {"name": "Local", "arm": f"replay:{answers['local'][0]}", "runs": "self-hosted",
                         "machine": {"price_per_hour": 0.5}},
                        {"name": "Unseen", "arm": f"replay:{answers['unseen'][0]}", "runs": "self-hosted",
                         "machine": {"price_per_hour": 0.5}}],
            "store": str(tmp_path / "kit.sqlite"), **changes}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_plan_from_a_pilot_in_the_store_and_from_assumptions(project, capsys):
    tmp_path, answers, task, pilot = project
    assert main(["plan", _experiment(tmp_path, answers), "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    # the pilot: discordance counted here from the recorded answers and gold, independently of the kit's scoring
    api, local = answers["api"][1], answers["local"][1]
    p10 = np.mean([local[i.id] == i.gold and api[i.id] != i.gold for i in pilot])
    p01 = np.mean([api[i.id] == i.gold and local[i.id] != i.gold for i in pilot])
    expected = sample_size_noninferiority(p10=p10, p01=p01, margin=0.02)["n_required"].item()
    assert rows["Local"]["basis_words"] == "pilot: 30 stored items" and rows["Local"]["basis"]["source"] == "pilot"
    assert rows["Local"]["items_needed"] == expected and rows["Local"]["items_planned"] == 60
    assert rows["Local"]["discordance"] == pytest.approx(p10 + p01)
    assert rows["Local"]["decides_on"] == "paired correctness"
    # no answers of this option in the store: the stated assumptions (10% discordant, no true difference)
    assert rows["Unseen"]["basis_words"].startswith("assumed: 10% discordant")
    assert rows["Unseen"]["items_needed"] == 1578  # Nam (1997) at p10 = p01 = 0.05, margin 2 points


def test_plan_for_an_unlabelled_task_gives_random_labels_from_the_observed_agreement(project, capsys):
    tmp_path, answers, task, pilot = project
    assert main(["plan", _experiment(tmp_path, answers, ignore_labels=True), "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    # an unlabelled task's split cannot be stratified by gold: the pilot is the stored items in its test split
    test = {i.id for i in load_task("tickets", ignore_labels=True).test}
    shared = [i for i in pilot if i.id in test]
    agreement = np.mean([answers["local"][1][i.id] == answers["api"][1][i.id] for i in shared])
    assert rows["Local"]["basis_words"].startswith(f"pilot: {len(shared)} stored items") and len(shared) >= 10
    assert rows["Local"]["decides_on"] == "agreement" and rows["Local"]["agreement"] == pytest.approx(agreement)
    assert rows["Local"]["random_labels"] == labels_for_agreement(agreement)["n_required"].item()
    assert rows["Unseen"]["random_labels"] == labels_for_agreement(0.9)["n_required"].item() == 1578
    # the stratified design labels only disagreements: d = 0.1 of the 60 test items (6), Cochran with z-table
    # quantiles: (1.644854 + 0.841621)^2 * 0.1^2 / 0.02^2 = 154.6 -> 155, more than the 6 the task has
    local = stratified_labels(disagreement=1 - agreement, n_items=60, margin=0.02)
    assert rows["Local"]["stratified_labels"] == local.labels and rows["Local"]["disagreement_items"] == local.population
    unseen = rows["Unseen"]
    assert unseen["stratified_labels"] == 155 and unseen["disagreement_items"] == 6
    assert any(f.startswith("more than the task has: 1,578 random labels, its test split has 60") for f in unseen["flags"])
    assert any("155 labels on disagreements" in f for f in unseen["flags"])


def test_plan_prints_a_table_and_its_assumptions(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers, sequential={"round_items": 20}),
                 "--assume-discordance", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "items needed" in out and "pilot: 30 stored items" in out and "assumed: 20% discordant" in out
    assert "not used: --assume-discordance" in out  # the pilot measured it for Local
    assert "Nam 1997" in out and "rounds of 20 items" in out and "sequential items (median)" in out


def test_a_sequential_plan_simulates_the_stop_from_the_pilots_discordance(project, capsys):
    from kit.stats.sequential import simulate_noninferiority

    tmp_path, answers, _, pilot = project
    assert main(["plan", _experiment(tmp_path, answers, sequential={"round_items": 20}), "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    api, local = answers["api"][1], answers["local"][1]
    p10 = np.mean([local[i.id] == i.gold and api[i.id] != i.gold for i in pilot])
    p01 = np.mean([api[i.id] == i.gold and local[i.id] != i.gold for i in pilot])
    # two candidates: the bar's alpha is split (Bonferroni); rounds of 20 up to the task's 60 test items
    sim = simulate_noninferiority(p10=p10, p01=p01, margin=0.02, alpha=0.025, round_items=20, max_items=60)
    assert rows["Local"]["sequential"] == {"median_items": sim.median_items, "settled_share": sim.settled_share}


def test_a_bad_assumption_is_a_clear_error(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers), "--assume-discordance", "1.5"]) == 2
    assert "not a share of items" in capsys.readouterr().err


# -- issue 26, case 10: assumptions that cannot hold, inputs said, plans larger than the task, mean scores ---------


def test_a_difference_larger_than_the_discordance_is_refused_not_silently_widened(project, capsys):
    tmp_path, answers, _, _ = project
    code = main(["plan", _experiment(tmp_path, answers), "--assume-discordance", "0.05", "--assume-difference", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "impossible with 5% of items discordant" in err and "|difference| <= discordance" in err
    assert "--assume-discordance to at least 0.5" in err


def test_a_difference_outside_minus_one_to_one_is_a_clear_error(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers), "--assume-difference", "2"]) == 2
    err = capsys.readouterr().err
    assert "--assume-difference 2 is not a difference of two shares" in err and "p10=" not in err
    assert len(err.strip().splitlines()) <= 2  # one error line (and its fix), no traceback


def test_with_a_pilot_the_plan_says_which_input_it_used(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers), "--json", "--assume-discordance", "0.3",
                 "--assume-difference", "0.01"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Local"]["basis_words"] == ("pilot: 30 stored items — not used: --assume-discordance, "
                                            "--assume-difference")
    assert rows["Local"]["basis"]["ignored"] == ["discordance", "difference"]
    assert rows["Unseen"]["basis_words"] == "assumed: 30% discordant, true difference +1 pts"
    assert rows["Unseen"]["basis"]["ignored"] == [] and rows["Unseen"]["difference"] == pytest.approx(0.01)


def test_items_needed_beyond_the_test_split_are_flagged(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers)]) == 0
    out = capsys.readouterr().out
    # Unseen, assumed 10% discordant: 1,578 paired items against the 60 test items of the task
    assert "This is more than the task has: 1,578 paired items needed, its test split has 60." in out
    table = out.split("\n\n")[0].splitlines()
    assert "flag" in table[0] and [line.split()[1] for line in table if "more than the task has" in line][-1] == "Unseen"


def write_breaches(tmp_path, monkeypatch, *, clusters: bool = False) -> list[dict]:
    """An extraction task (three fields: the score is the share of fields right, not right/wrong) of 80 items."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    rng = np.random.default_rng(2)
    rows = [{"id": f"b{i}", "text": f"report {i}", "kind": str(rng.choice(["theft", "loss", "hack"])),
             "place": str(rng.choice(["paper", "laptop", "email"])), "count": int(rng.integers(500, 5000)),
             "customer": f"c{i // 4}"} for i in range(80)]
    (tmp_path / "datasets" / "breaches.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "datasets" / "breaches.yaml").write_text(
        "name: breaches\ntype: extraction\ndata: breaches.jsonl\n"
        "fields:\n  kind: {type: labels, labels: [theft, loss, hack]}\n"
        "  place: {type: labels, labels: [paper, laptop, email]}\n  count: {type: integer}\n"
        "instruction: 'Extract {fields} from: {text}'\nsplit: {test_fraction: 0.5, seed: 1}\n"
        + ("cluster: customer\n" if clusters else ""))
    monkeypatch.setenv("KIT_PROJECT", str(tmp_path))
    return rows


def _breach_answers(tmp_path, rows, better=lambda i: i % 2 == 0):
    """The reference gets 'kind' wrong everywhere (2 of 3 fields right: score 2/3, never all right); the candidate
    answers every field right on the items ``better`` picks (by position) and as the reference on the others."""
    other = {"theft": "loss", "loss": "hack", "hack": "theft"}
    ref = {r["id"]: {"kind": other[r["kind"]], "place": r["place"], "count": r["count"]} for r in rows}
    cand = {r["id"]: ({"kind": r["kind"], "place": r["place"], "count": r["count"]} if better(i) else ref[r["id"]])
            for i, r in enumerate(rows)}
    paths = {}
    for name, out in (("api", ref), ("local", cand)):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({"item_id": k, "output": json.dumps(v), "latency_s": 0.1}) + "\n"
                                       for k, v in out.items()))
    task = load_task("breaches")
    with Store(tmp_path / "kit.sqlite") as store:
        for name in ("api", "local"):
            run_arm(task, get_arm(f"replay:{paths[name]}"), store=store, items=list(task.test))
    data = {"tasks": {"breaches": None}, "reference": "API", "margin": 0.05,
            "options": [{"name": "API", "arm": f"replay:{paths['api']}", "runs": "third-party",
                         "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
                        {"name": "Local", "arm": f"replay:{paths['local']}", "runs": "self-hosted",
                         "machine": {"price_per_hour": 0.5}}],
            "store": str(tmp_path / "kit.sqlite")}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(data))
    return task, str(tmp_path / "exp.yaml")


def test_a_mean_score_task_is_planned_on_its_scores(tmp_path, monkeypatch, capsys):
    rows = write_breaches(tmp_path, monkeypatch)
    task, exp = _breach_answers(tmp_path, rows)
    assert main(["plan", exp, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)[0]
    # per test item, counted here: the candidate scores 1 on even items (the reference 2/3), equal on odd ones
    index = {r["id"]: i for i, r in enumerate(rows)}
    cand = np.array([1.0 if index[i.id] % 2 == 0 else 2 / 3 for i in task.test])
    ref = np.full(cand.size, 2 / 3)
    assert plan["decides_on"] == "paired mean score"
    assert plan["difference"] == pytest.approx((cand - ref).mean()) and plan["difference"] > 0.1  # not +0.0
    assert plan["discordance"] == pytest.approx(np.mean(cand != ref))  # the share scored differently, not 0%
    # the comparison runs Tango's test on these scores: Nam (1997) on the per-item score differences
    assert plan["items_needed"] == sample_size_noninferiority(cand, ref, margin=0.05)["n_required"].item()
    assert "paired mean score" in plan["statement"]
    # and it is the count the report's comparison gives on the same answers (its n_needed)
    from kit.columns import Col
    from kit.tasks.scoring import score_responses

    with Store(tmp_path / "kit.sqlite") as store:
        stored = store.responses(task="breaches", epoch=0)
    stored = stored.assign(**{Col.OPTION: stored[Col.ARM].map(lambda a: "Local" if "local" in a else "API")})
    table = task.type.compare(score_responses(task, stored), reference="API", margin=0.05).table
    assert table[Col.N_NEEDED].item() == plan["items_needed"]


def test_a_clustered_task_scales_the_plan_by_the_pilots_design_effect(tmp_path, monkeypatch, capsys):
    rows = write_breaches(tmp_path, monkeypatch, clusters=True)
    task, exp = _breach_answers(tmp_path, rows, better=lambda i: (i // 4) % 2 == 0)  # whole customers better
    assert main(["plan", exp, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)[0]
    index = {r["id"]: i for i, r in enumerate(rows)}
    d = np.array([1 / 3 if (index[i.id] // 4) % 2 == 0 else 0.0 for i in task.test])
    groups = np.array([f"c{index[i.id] // 4}" for i in task.test])
    # design effect by hand: the CR1 variance of the mean (G/(G-1) * sum over clusters of the summed residuals
    # squared / n^2; Cameron & Miller 2015) over the item-level one (sample variance / n)
    g, n = len(set(groups)), d.size
    cr1 = g / (g - 1) * sum(((d - d.mean())[groups == c].sum()) ** 2 for c in set(groups)) / n ** 2
    deff = max(1.0, cr1 / (d.var(ddof=1) / n))
    nam = sample_size_noninferiority(d + 2 / 3, np.full(n, 2 / 3), margin=0.05)["n_required"].item()
    assert plan["design_effect"] == pytest.approx(deff) and deff > 1
    assert plan["items_needed"] == np.ceil(nam * deff)
    assert "design effect" in plan["statement"]


def test_a_fine_tunes_pilot_is_found_under_the_adapter_its_report_trained(project, capsys):
    """The plan finds each option's answers under the arm the answer stage stores them under
    (kit.pipeline.answers.arm_for): a fine-tune's is the adapter recorded in the report folder that trained it."""
    from kit.pipeline.folder import Doc, RunFolder

    tmp_path, answers, task, pilot = project
    # the trained adapter's answers: stored under its arm spec (a replay stands in for the LoRA arm here)
    spec = f"replay:{answers['local'][0]}"
    folder = RunFolder(tmp_path / "runs" / "report-1")
    folder.save_doc(Doc.FINETUNES, {"Tuned": {"tickets": {"arm_spec": spec, "adapter_sha256": "ab" * 32}}})
    path = _experiment(tmp_path, answers)
    data = yaml.safe_load(open(path))
    data["options"][2] = {"name": "Tuned", "finetune": {"base": "smollm2-135m-instruct"}, "runs": "self-hosted",
                          "machine": {"price_per_hour": 0.5}}
    open(path, "w").write(yaml.safe_dump(data))
    for how in ([], ["--run-dir", str(folder.path)]):  # found under runs/ by default, or named
        assert main(["plan", path, "--json", *how]) == 0
        rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["Tuned"]["basis_words"] == "pilot: 30 stored items"
        assert rows["Tuned"]["items_needed"] == rows["Local"]["items_needed"]
    # without the folder that trained it (no runs/ under this project holds one): assumptions, said so
    (tmp_path / "runs" / "report-1" / "finetunes.json").unlink()
    assert main(["plan", path, "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Tuned"]["basis_words"].startswith("assumed: 10% discordant")
    assert main(["plan", path, "--run-dir", str(tmp_path / "nowhere")]) == 2
    assert "--run-dir" in capsys.readouterr().err


def test_an_unlabelled_clustered_task_scales_both_label_counts_by_the_disagreements_design_effect(
        tmp_path, monkeypatch, capsys):
    from kit.stats.label_designs import random_labels

    rows = write_breaches(tmp_path, monkeypatch, clusters=True)
    _, exp = _breach_answers(tmp_path, rows, better=lambda i: (i // 4) % 2 == 0)  # disagree on whole customers
    data = yaml.safe_load(open(exp))
    open(exp, "w").write(yaml.safe_dump({**data, "ignore_labels": True}))
    assert main(["plan", exp, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)[0]
    test = load_task("breaches", ignore_labels=True).test
    index = {r["id"]: i for i, r in enumerate(rows)}
    x = np.array([1.0 if (index[i.id] // 4) % 2 == 0 else 0.0 for i in test])  # where the two disagree
    groups = np.array([f"c{index[i.id] // 4}" for i in test])
    g, n = len(set(groups)), x.size
    cr1 = g / (g - 1) * sum(((x - x.mean())[groups == c].sum()) ** 2 for c in set(groups)) / n ** 2  # CR1
    deff = cr1 / (x.var(ddof=1) / n)
    assert plan["decides_on"] == "agreement" and plan["agreement"] == pytest.approx(1 - x.mean())
    assert plan["design_effect"] == pytest.approx(deff) and deff > 1
    assert plan["random_labels"] == np.ceil(random_labels(agreement=1 - x.mean(), margin=0.05).labels * deff)
    strat = stratified_labels(disagreement=x.mean(), n_items=n, margin=0.05)
    assert plan["stratified_labels"] == np.ceil(strat.labels * deff)
    assert "design effect of the disagreements" in plan["statement"]


def test_a_plan_beyond_the_experiments_item_limit_says_so(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers, tasks={"tickets": 20}, margin=0.15), "--json"]) == 0
    unseen = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}["Unseen"]
    assert 20 < unseen["items_needed"] <= 60 and unseen["flags"] == []  # Nam (1997): 10% discordant, 15-point margin
    assert "asks only 20 of its 60 test items" in unseen["statement"]
