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
    assert rows["Local"]["basis"] == "pilot: 30 stored items"
    assert rows["Local"]["items needed"] == expected and rows["Local"]["items planned"] == 60
    assert rows["Local"]["discordance"] == pytest.approx(p10 + p01)
    # no answers of this option in the store: the stated assumptions (10% discordant, no true difference)
    assert rows["Unseen"]["basis"].startswith("assumed: 10% discordant")
    assert rows["Unseen"]["items needed"] == 1578  # Nam (1997) at p10 = p01 = 0.05, margin 2 points


def test_plan_for_an_unlabelled_task_gives_random_labels_from_the_observed_agreement(project, capsys):
    tmp_path, answers, task, pilot = project
    assert main(["plan", _experiment(tmp_path, answers, ignore_labels=True), "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out)}
    # an unlabelled task's split cannot be stratified by gold: the pilot is the stored items in its test split
    test = {i.id for i in load_task("tickets", ignore_labels=True).test}
    shared = [i for i in pilot if i.id in test]
    agreement = np.mean([answers["local"][1][i.id] == answers["api"][1][i.id] for i in shared])
    assert rows["Local"]["basis"] == f"pilot: {len(shared)} stored items" and len(shared) >= 10
    assert rows["Local"]["decides on"] == f"agreement ({100 * agreement:.1f}%)"
    assert rows["Local"]["labels needed"] == labels_for_agreement(agreement)["n_required"].item()
    assert rows["Unseen"]["labels needed"] == labels_for_agreement(0.9)["n_required"].item() == 1578


def test_plan_prints_a_table_and_its_assumptions(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers, sequential={"round_items": 20}),
                 "--assume-discordance", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "items needed" in out and "pilot: 30 stored items" in out and "assumed: 20% discordant" in out
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
    assert rows["Local"]["sequential items (median)"] == sim.median_items
    assert rows["Local"]["settled by the cap"] == sim.settled_share


def test_a_bad_assumption_is_a_clear_error(project, capsys):
    tmp_path, answers, _, _ = project
    assert main(["plan", _experiment(tmp_path, answers), "--assume-discordance", "1.5"]) == 2
    assert "not a share of items" in capsys.readouterr().err
