"""The report stages on a small project of their own: replayed outputs (a real arm) answer a real task through
the real store; quality, costs and the verdict are computed and rendered as the report would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.pipeline import answers, costs, prepare, quality, runner, verdict
from kit.report import views
from kit.experiment import Experiment
from kit.pipeline.folder import Doc, RunFolder, Table

N = 120
XSS = "<img src=x onerror=alert(1)>"


def write_tickets(tmp_path, gold, monkeypatch) -> None:
    """A project folder with one three-label task, ``tickets`` (ids t0, t1, ...; half the items for test,
    stratified), whose gold answers are ``gold``; the kit pointed at it."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    rows = [{"id": f"t{i}", "text": f"ticket number {i}", "label": g} for i, g in enumerate(gold)]
    (tmp_path / "datasets" / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "datasets" / "tickets.yaml").write_text(
        "name: tickets\ntype: classification\ndata: tickets.jsonl\nlabels: [a, b, c]\n"
        "instruction: 'Route: {text}'\nsplit: {test_fraction: 0.5, seed: 1, stratify: true}\n")
    monkeypatch.setenv("KIT_PROJECT", str(tmp_path))


def write_replay(folder, name: str, gold, right: float, rng) -> str:
    """A replay file ``folder/name.jsonl`` of recorded answers to the tickets: right on about ``right`` of the items
    (a draw of ``rng`` per item), else another label; fast latencies. Returns its path."""
    rows = []
    for i, g in enumerate(gold):
        answer = g if rng.random() < right else [x for x in "abc" if x != g][i % 2]
        rows.append({"item_id": f"t{i}", "output": answer, "latency_s": float(rng.gamma(4, 0.05)),
                     "prompt_tokens": 40, "completion_tokens": 2})
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with one three-label task (label 'a' is the majority) and recorded outputs of four systems."""
    rng = np.random.default_rng(3)
    gold = rng.choice(["a", "b", "c"], size=N, p=[0.6, 0.2, 0.2])
    write_tickets(tmp_path, gold, monkeypatch)

    def replay(name, right, latency, *, confidence=False):
        out = []
        for i, g in enumerate(gold):
            wrong = [x for x in "abc" if x != g][i % 2]
            ok = rng.random() < right if right is not None else g == "a"
            answer = g if ok else wrong
            if right is None:
                answer = "a"  # always the majority class
            row = {"item_id": f"t{i}", "output": answer, "latency_s": float(rng.gamma(4, latency / 4)),
                   "prompt_tokens": 40, "completion_tokens": 2}
            if confidence:
                row["confidence"] = 0.95 if ok else 0.4
            out.append(row)
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in out))
        return str(path)

    files = {"api": replay("api", 0.75, 0.8), "good": replay("good", 0.93, 0.3, confidence=True),
             "majority": replay("majority", None, 0.05), "xss": replay("xss", 0.70, 0.3)}
    return tmp_path, files


def experiment(tmp_path, files, **changes) -> Experiment:
    data = {
        "tasks": {"tickets": None}, "reference": "API",
        "options": [
            {"name": "API", "arm": f"replay:{files['api']}", "runs": "third-party",
             "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
            {"name": "Good", "arm": f"replay:{files['good']}", "runs": "self-hosted", "machine": "box"},
            {"name": "Majority", "arm": f"replay:{files['majority']}", "runs": "self-hosted", "machine": "box"},
            {"name": XSS, "arm": f"replay:{files['xss']}", "runs": "self-hosted", "machine": "box"},
        ],
        "machines": {"box": {"price_per_hour": 0.5, "utilisation": 0.6, "ops_hours_per_month": 2}},
        "monthly_volume": 50000, "latency_target_s": 2.0, "store": str(tmp_path / "kit.sqlite"), **changes}
    return Experiment.from_mapping(data, source="test.yaml")


def run_all(tmp_path, exp, name: str = "run") -> RunFolder:
    """Every stage in the graph's order, through the experiment's driver (kit.pipeline.runner)."""
    folder = RunFolder(tmp_path / name)
    runner.run_all(exp, folder)
    return folder


def test_stages_end_to_end_on_replayed_outputs(project):
    tmp_path, files = project
    folder = run_all(tmp_path, experiment(tmp_path, files))
    runs = folder.runs(task="tickets")
    assert [r.option for r in runs] == ["API", "Good", "Majority", XSS] and all(r.items == 60 for r in runs)

    floor = folder.table(Table.FLOOR, task="tickets")
    majority_row = floor[(floor["option"] == "Majority") & (floor["baseline"] == "majority class")].iloc[0]
    assert not majority_row["passes"] and majority_row["p_value"] == 1.0  # it *is* the majority answer
    assert floor[(floor["option"] == "Good")]["passes"].all()

    compare = folder.table(Table.COMPARE, task="tickets").set_index("option")
    assert compare.loc["Good", "qualifies"] and compare.loc["Good", "conclusion_adjusted"] == "superior"

    decision = folder.doc(Doc.DECISION, task="tickets")
    assert decision["recommended"] == "Good" and decision["runner_up"]
    ranking = folder.table(Table.RANKING, task="tickets").set_index("option")
    assert ranking.loc["Majority", "status"] == "below the floor"

    cost_table = folder.table(Table.COSTS, task="tickets").set_index("option")
    assert cost_table.loc["Good", "cost_low"] <= cost_table.loc["Good", "monthly_cost"] <= cost_table.loc["Good",
                                                                                                          "cost_high"]
    assert "box" not in cost_table.loc["API", "basis"] and "$0.5/hour" in cost_table.loc["Good", "basis"]
    # the self-hosted candidate with confidences was simulated as a cascade in front of the reference
    assert "Good" in folder.doc(Doc.CASCADES, task="tickets")


def test_a_rerun_is_served_from_the_store_and_reads_only_the_questions_asked(project):
    tmp_path, files = project
    exp = experiment(tmp_path, files)
    run_all(tmp_path, exp)
    folder = RunFolder(tmp_path / "run2")
    prepare.prepare_stage(exp, folder)
    answers.answer_stage(folder, progress=False)
    assert all(r.new_calls == 0 and r.from_store == 60 for r in folder.runs())


def test_baselines_are_scored_on_the_items_the_options_answered(project):
    tmp_path, files = project
    folder = run_all(tmp_path, experiment(tmp_path, files, tasks={"tickets": 25}))
    metrics = folder.table(Table.METRICS, task="tickets").set_index("option")
    floor = folder.table(Table.FLOOR, task="tickets")
    majority = floor[(floor["option"] == "Good") & (floor["baseline"] == "majority class")].iloc[0]
    assert metrics.loc["Good", "n_items"] == 25 and metrics.loc["majority class", "n_items"] == 25
    # the summary's baseline row is the score the floor test used, not the whole test split's
    assert metrics.loc["majority class", "mean_score"] == pytest.approx(majority["baseline_mean"])


def test_a_cascade_must_clear_the_floor_like_any_option(project):
    """The reference always answers the majority label; the self-hosted candidate too, but for three test items it
    gets right: their cascade is non-inferior to the reference and cheaper, and still not significantly better
    than always answering the majority label (3 wins, 0 losses: sign test p = 0.125), so never recommended."""
    from kit.tasks import load_task

    tmp_path, files = project
    test = load_task("tickets").test
    wins = {i.id: i.gold for i in test if i.gold != "a"}
    wins = dict(list(wins.items())[:3])
    unsure = {i.id for i in test if i.gold == "a"}
    rows = [json.loads(line) for line in Path(files["majority"]).read_text().splitlines()]
    weak = tmp_path / "weak.jsonl"
    weak.write_text("".join(json.dumps({**r, "output": wins.get(r["item_id"], r["output"]),
                                        "confidence": 0.3 if r["item_id"] in unsure and n % 3 == 0 else 0.9}) + "\n"
                            for n, r in enumerate(rows)))
    options = [{"name": "API", "arm": f"replay:{files['majority']}", "runs": "third-party",
                "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
               {"name": "Weak", "arm": f"replay:{weak}", "runs": "self-hosted", "machine": "box"}]
    folder = run_all(tmp_path, experiment(tmp_path, files, options=options))
    choice = folder.doc(Doc.CASCADES, task="tickets")["Weak"]
    assert choice["tau"] is not None and choice["floor"], choice["statement"]  # the cascade passed its own test against the reference
    decision = folder.doc(Doc.DECISION, task="tickets")
    assert decision["recommended"] is None and "no option does this task yet" in decision["verdict"].lower()
    ranking = folder.table(Table.RANKING, task="tickets").set_index("option")
    assert ranking.loc["Weak ⇢ API", "status"] == "below the floor"


def test_every_view_escapes_names_and_has_no_nan(project):
    tmp_path, files = project
    folder = run_all(tmp_path, experiment(tmp_path, files))
    html = "".join(v(folder).to_html() for v in (views.summary, views.ranking, views.options_table, views.quality,
                                                 views.comparison, views.floor, views.latency, views.costs,
                                                 views.personal_data, views.examples, views.runs, views.manifest))
    text = "".join([views.headline(folder), views.caveats(folder), views.break_even(folder), views.cascades(folder),
                    views.statements(folder, Table.COMPARE)])
    assert XSS not in html and XSS not in text and "&lt;img src=x" in html
    # Markdown: two dollar signs in one line open a LaTeX span, where "p &lt; 0.001" showed as typed
    assert "$" not in text and "&#36;" in text
    said = views.statements(folder, Table.COMPARE)  # the kit's own conclusions stay bold, names stay escaped
    assert "&#42;&#42;" not in said and ("**non-inferior**" in said or "**superior**" in said or "**inferior**" in said
                                         or "**inconclusive**" in said)
    assert "NaN" not in html and "nan%" not in html and "e-1" not in html
    assert "<th" in html and "blank level0" not in html  # no index column


def test_unpriced_self_hosted_option_is_named_not_a_crash(project):
    """Recorded outputs without latencies give no throughput: the cost is unknown and said so."""
    tmp_path, files = project
    path = tmp_path / "nolat.jsonl"
    rows = [json.loads(line) for line in open(files["good"])]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "latency_s"}) + "\n" for r in rows))
    exp = experiment(tmp_path, {**files, "good": str(path)})
    folder = run_all(tmp_path, exp)
    costs_table = folder.table(Table.COSTS, task="tickets").set_index("option")
    assert "not priced" in costs_table.loc["Good", "basis"]
    assert pd.isna(costs_table.loc["Good", "monthly_cost"])


def test_unlabelled_run_uses_the_reference_answers_as_the_bar(project):
    """Without gold labels the reference's answers are the bar: agreement against a target, the disagreements
    listed, no trivial baseline, and the report says that quality means agreement."""
    tmp_path, files = project
    exp = experiment(tmp_path, files, ignore_labels=True, agreement_target=0.5)
    folder = run_all(tmp_path, exp)
    compare = folder.table(Table.COMPARE, task="tickets").set_index("option")
    assert set(compare["kind"]) == {"agreement"}
    assert compare.loc["Good", "metric"].startswith("agreement")
    assert folder.table(Table.FLOOR, task="tickets").empty
    disagree = folder.table(Table.DISAGREEMENTS, task="tickets")
    assert len(disagree) > 0 and set(disagree["option"]) <= {"Good", "Majority", XSS}
    decision = folder.doc(Doc.DECISION, task="tickets")
    assert any("agreement with the reference" in c for c in decision["caveats"])
    assert decision["recommended"] is not None
    assert XSS not in views.disagreements(folder).to_html()


def test_every_artefact_has_its_own_file_name():
    from kit.pipeline.folder import Doc

    names = [t.file for t in Table] + [d.value for d in Doc]  # the experiment and the runs are Docs too
    assert len(names) == len(set(names))


def test_the_cold_start_is_reported_apart_from_steady_state_latency(project):
    """Seen: the first in-process item took ~9 s (model load); in a short run that one item decided the p95 and
    helped exclude an option. The first call of each run is a warm-up, reported apart."""
    from kit.tasks import load_task

    tmp_path, files = project
    first = load_task("tickets").test[0].id
    good = Path(files["good"])
    rows = [json.loads(line) for line in good.read_text().splitlines()]
    for r in rows:
        r["latency_s"] = 9.0 if r["item_id"] == first else 0.3
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = run_all(tmp_path, experiment(tmp_path, files, latency_target_s=1.0))
    latency = folder.table(Table.LATENCY, task="tickets").set_index("option")
    assert latency.loc["Good", "n_warmup"] == 1 and latency.loc["Good", "warmup_s"] == pytest.approx(9.0)
    assert latency.loc["Good", "p95_s"] == pytest.approx(0.3) and latency.loc["Good", "n"] == N // 2 - 1
    assert "warm-up" in latency.loc["Good", "statement"]
    scores = folder.table(Table.SCORES, task="tickets")
    assert scores.loc[scores["warmup"], "option"].value_counts().to_dict() == {o: 1 for o in set(scores["option"])}
    ranking = folder.table(Table.RANKING, task="tickets").set_index("option")
    assert ranking.loc["Good", "p95_s"] == pytest.approx(0.3) and "p95 latency" not in ranking.loc["Good", "why"]


def test_the_stages_form_a_declared_graph_that_the_notebooks_follow():
    """Each stage declares what it reads and writes; the order comes from those declarations (listed backwards,
    the same order), every artefact read is written by exactly one stage, and the report runs its notebooks
    in that order."""
    from kit.pipeline.runner import STAGES, flow_order, notebooks
    from kit.report.render import NOTEBOOKS

    assert [s.name for s in flow_order()] == ["prepare", "finetune", "answers", "quality", "costs", "verdict"]
    assert flow_order(tuple(reversed(STAGES))) == flow_order()
    assert notebooks() == NOTEBOOKS
    written = [kind for s in STAGES for kind in s.writes]
    assert len(written) == len(set(written))  # one writer each: the compare table is written by quality alone
    assert Table.COMPARE in quality.STAGE.writes and not any(Table.COMPARE in s.writes for s in STAGES
                                                             if s is not quality.STAGE)


def test_a_stage_is_refused_an_artefact_it_does_not_declare(tmp_path):
    from kit.errors import KitError

    folder = RunFolder(tmp_path / "run")
    folder.save_table(Table.COMPARE, pd.DataFrame(), task="t")
    with pytest.raises(KitError, match="stage costs writes the compare table, which it does not declare"):
        folder.scoped(costs.STAGE).save_table(Table.COMPARE, pd.DataFrame(), task="t")
    with pytest.raises(KitError, match="stage costs reads the compare table, which it does not declare") as err:
        folder.scoped(costs.STAGE).table(Table.COMPARE, task="t")
    assert "kit.pipeline.runner" in err.value.fix
    assert folder.scoped(verdict.STAGE).table(Table.COMPARE, task="t").empty  # declared: read as before
