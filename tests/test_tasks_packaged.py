"""The task files made from packaged data (datasets/PROVENANCE.md): they load, with the label sets, sizes,
splits and grouping column their provenance states."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from kit.tasks import load_task

DATASETS = Path(__file__).resolve().parents[1] / "datasets"

NACE_SECTORS = ("administrative_support", "agriculture_forestry_fishing", "arts_entertainment_recreation",
                "construction", "finance_insurance", "information_communication", "manufacturing",
                "mining_quarrying", "other_services", "professional_scientific_technical", "transport_storage",
                "wholesale_retail_trade")


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATASETS / name).read_text(encoding="utf-8").splitlines()]


def test_nace_topic_task_loads_with_its_twelve_sectors():
    task = load_task("nace-activities", folder=DATASETS)
    assert task.kind == "classification"
    assert task.type.labels == NACE_SECTORS
    assert len(task.items) == 349
    assert len(task.train) + len(task.dev) == 173 and len(task.test) == 176
    assert {i.id for i in task.train}.isdisjoint({i.id for i in task.test})
    counts = Counter(i.gold for i in task.items)
    assert counts["manufacturing"] == 60 and counts["wholesale_retail_trade"] == 63
    assert min(counts.values()) == 15                       # sections with fewer classes were left out
    assert set(Counter(i.gold for i in task.test)) == set(NACE_SECTORS)   # stratified: every sector is tested
    growing_rice = task.item("nace-01.12")
    assert growing_rice.gold == "agriculture_forestry_fishing" and "growing of rice" in growing_rice.text
    assert "\r" not in "".join(i.text for i in task.items)


def test_nace_rows_keep_their_division_as_a_grouping_column():
    rows = _rows("nace_activities.jsonl")
    assert all(r["division"] == r["id"][len("nace-"):][:2] for r in rows)
    assert len({r["division"] for r in rows}) == 68
    assert (DATASETS / "nace_activities.jsonl").stat().st_size < 300_000


def test_fine_food_binary_task_loads_with_its_two_labels():
    task = load_task("fine-food-reviews", folder=DATASETS)
    assert task.kind == "classification"
    assert task.type.labels == ("great", "other")
    assert len(task.items) == 764
    assert Counter(i.gold for i in task.items) == {"great": 519, "other": 245}
    assert Counter(i.gold for i in task.test) == {"great": 260, "other": 122}
    assert {i.id for i in task.train}.isdisjoint({i.id for i in task.test})
    assert max(len(i.text) for i in task.items) <= 500
    assert not any("<br" in i.text for i in task.items)
    assert (DATASETS / "fine_food_reviews.jsonl").stat().st_size < 300_000
