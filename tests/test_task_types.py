"""The task-type contract: each type chooses its comparison and its agreement measure; Item is part of it."""

from __future__ import annotations

import ast

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from conftest import ROOT
from kit import stats
from kit.tasks import load_task
from kit.tasks.compare import compare_options
from kit.tasks.scoring import score_responses, score_unlabelled


def _rows(task, n=30):
    """An "api" arm that always gives the gold answer and a "local" one wrong on every third item."""
    items = task.test[:n]
    wrong = {"classification": "play_music", "extraction": {"breach_type": [], "location": [], "individuals_affected": 0}}
    return pd.DataFrame([{"option": arm, "item_id": i.id, "epoch": 0, "error": None, "parse_error": False,
                          "answer": i.gold if (arm == "api" or k % 3) else wrong[task.kind]}
                         for arm in ("api", "local") for k, i in enumerate(items)])


@pytest.mark.parametrize("name", ["snips-intents", "hhs-breach-triage"])
def test_label_and_field_types_compare_paired_accuracy_or_agreement(name):
    task = load_task(name, folder=ROOT / "datasets")
    rows = _rows(task)
    local = rows[rows["option"] == "local"]
    right = sum(a == task.item(i).gold for a, i in zip(local["answer"], local["item_id"]))
    assert 0 < right < 30
    scores = score_responses(task, rows)
    got = task.type.compare(scores, reference="api", margin=0.05, n_resamples=500)
    want = stats.compare_arms(scores, reference="api", margin=0.05, n_resamples=500)
    assert got.kind == "paired accuracy"
    pd.testing.assert_frame_equal(got.table, want)
    assert got.table["candidate_value"].item() == pytest.approx(right / 30)

    blind = load_task(name, folder=ROOT / "datasets", ignore_labels=True)
    agree = blind.type.compare(score_unlabelled(blind, rows, reference="api"), reference="api", labelled=False,
                               agreement_target=0.6)
    assert agree.kind == "agreement" and agree.table["n_disagreements"].item() == 30 - right
    table = compare_options(blind, score_unlabelled(blind, rows, reference="api"), reference="api",
                            agreement_target=0.6)
    assert list(table.columns[:2]) == ["task", "kind"] and table["kind"].item() == "agreement"


def test_free_text_compares_scores_with_or_without_references(tmp_path):
    task = load_task("aclsum-outcomes", folder=ROOT / "datasets")
    items = task.test[:12]
    scores = pd.DataFrame([{"option": arm, "item_id": i.id, "epoch": 0, "score": 0.8 if arm == "api" else 0.6 + k % 2 * 0.3,
                            "correct": True, "error": None, "parse_error": False, "gap": None}
                           for arm in ("api", "local") for k, i in enumerate(items)])
    for labelled in (True, False):
        got = task.type.compare(scores, reference="api", labelled=labelled, n_resamples=500)
        assert got.kind == "paired scores" and got.table["metric"].item() == "chrF"
        assert got.table["candidate_value"].item() == pytest.approx(0.75)


def test_agreement_is_the_type_s_own(snips, hhs):
    """One-label tasks: Cohen's kappa of each candidate with the reference (checked against scikit-learn);
    field and free-text tasks have none."""
    items = snips.test[:40]
    labels = snips.type.labels
    ref = [i.gold for i in items]
    cand = [labels[(k * 5) % 7] if k % 4 == 0 else g for k, g in enumerate(ref)]
    rows = pd.DataFrame([{"option": arm, "item_id": i.id, "answer": a}
                         for arm, answers in (("api", ref), ("local", cand), ("copy", ref))
                         for i, a in zip(items, answers)])
    table = snips.type.agreement(rows, reference="api").set_index("option")
    assert sorted(table.index) == ["copy", "local"] and set(table["level"]) == {"overall"}
    assert table.loc["local", "kappa"] == pytest.approx(cohen_kappa_score(cand, ref))
    assert table.loc["copy", "kappa"] == pytest.approx(1.0)
    assert snips.type.agreement(rows, reference="nobody").empty
    assert hhs.type.agreement(rows, reference="api").empty
    assert load_task("aclsum-outcomes", folder=ROOT / "datasets").type.agreement(rows, reference="api").empty


def test_every_type_says_what_a_judge_is_asked(snips, hhs):
    assert snips.type.judge_modes == () and hhs.type.judge_modes == ()
    assert load_task("aclsum-outcomes", folder=ROOT / "datasets").type.judge_modes == ("rubric", "pairwise")


def _imports_within_kit_tasks() -> dict[str, set[str]]:
    """Module -> the kit.tasks modules it imports anywhere in its source (TYPE_CHECKING blocks included)."""
    graph = {}
    for path in (ROOT / "kit" / "tasks").glob("*.py"):
        name = "kit.tasks" if path.stem == "__init__" else f"kit.tasks.{path.stem}"
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kit.tasks"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("kit.tasks")}
        graph[name] = found
    return graph


def test_item_belongs_to_the_contract_and_kit_tasks_has_no_import_circle():
    from kit.tasks import Item
    from kit.tasks.loading import Task
    from kit.tasks.types import Item as TypesItem

    assert Item is TypesItem and Task.__annotations__["items"] == "tuple[Item, ...]"
    graph = _imports_within_kit_tasks()
    assert graph["kit.tasks.types"] == set() and graph["kit.tasks.fields"] == {"kit.tasks.types"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    circles = sorted(m for m in graph if m != "kit.tasks" and reaches(m, m, set()))
    assert circles == []
