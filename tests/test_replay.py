"""The replay arm: outputs recorded elsewhere, through the runner and the store; nothing invented."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from kit.arms import get_arm
from kit.cli import main
from kit.errors import ArmError
from kit.run.runner import run_arm
from kit.tasks.scoring import metrics, score_responses
from kit.tasks import load_task


@pytest.fixture
def mini(task_dir):
    return load_task(task_dir / "mini.yaml")  # test items r0 r4 r5 r7 r8 r11; gold yes for odd numbers


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_replay_jsonl_through_runner_and_store(mini, store, tmp_path):
    test_ids = sorted(i.id for i in mini.test)
    gold = {i.id: i.gold for i in mini.test}
    rows = [{"item_id": i, "output": gold[i], "latency_s": 0.25, "prompt_tokens": 30, "completion_tokens": 2,
             "model": "vendor-model-1"} for i in test_ids if i != "r4"]
    rows[0]["output"] = "cannot tell"  # unparseable: kept, scored wrong
    rows.append({"item_id": "zz-foreign", "output": "yes", "model": "vendor-model-1"})
    path = _write_jsonl(tmp_path / "outputs.jsonl", rows)

    arm = get_arm(f"replay:{path}")
    cov = arm.coverage(mini)
    assert cov == {"answered": 5, "missing": ["r4"], "foreign": ["zz-foreign"], "rows": 6}
    note = arm.coverage_note(mini)
    assert "5 of 6" in note and "r4" in note and "zz-foreign" in note
    assert arm.identity()["model"] == "vendor-model-1" and len(arm.identity()["sha256"]) == 64

    summary = run_arm(mini, arm, store=store)
    assert summary.new_calls == 6 and summary.errors == 1
    stored = store.responses(task="mini", arms=[arm.spec]).set_index("item_id")
    assert set(stored.index) == set(test_ids)  # the foreign id is not invented into the task
    assert stored.loc["r4", "error"] == "not in replay file" and stored.loc["r4", "output"] == ""
    first = rows[0]["item_id"]
    assert bool(stored.loc[first, "parse_error"]) and pd.isna(stored.loc[first, "error"])
    assert stored.loc["r5", "latency_s"] == 0.25 and stored.loc["r5", "completion_tokens"] == 2
    scores = score_responses(mini, store.responses(task="mini"))
    table = metrics(mini, scores)
    assert table.iloc[0]["n"] == 6 and table.iloc[0]["errors"] == 1
    assert table.iloc[0]["accuracy"] == pytest.approx(4 / 6)  # 4 right, 1 unparseable, 1 missing


def test_replay_csv_with_id_column(mini, store, tmp_path):
    path = tmp_path / "outputs.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "output", "latency_s", "prompt_tokens", "completion_tokens"])
        writer.writeheader()
        for item in mini.test:
            writer.writerow({"id": item.id, "output": item.gold, "latency_s": "0.5", "prompt_tokens": "",
                             "completion_tokens": "3"})
    arm = get_arm(f"replay:{path}")
    assert arm.coverage(mini)["missing"] == []
    summary = run_arm(mini, arm, store=store)
    assert summary.errors == 0
    rows = store.responses(task="mini")
    assert rows["answer"].tolist() == [next(i.gold for i in mini.test if i.id == r) for r in rows["item_id"]]
    assert rows["prompt_tokens"].isna().all() and (rows["completion_tokens"] == 3).all()
    # a second run is served from the store; an edited file is a new identity and is replayed again
    assert run_arm(mini, arm, store=store).cached == 6


def test_replay_rejects_bad_files(tmp_path):
    with pytest.raises(ArmError, match="no such replay file"):
        get_arm(f"replay:{tmp_path / 'nope.jsonl'}")
    dup = _write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "output": "x"}, {"id": "a", "output": "y"}])
    with pytest.raises(ArmError, match="appears twice"):
        get_arm(f"replay:{dup}")
    no_out = _write_jsonl(tmp_path / "noout.jsonl", [{"id": "a", "answer": "x"}])
    with pytest.raises(ArmError, match="output"):
        get_arm(f"replay:{no_out}")
    bad_num = _write_jsonl(tmp_path / "num.jsonl", [{"id": "a", "output": "x", "latency_s": "fast"}])
    with pytest.raises(ArmError, match="latency_s"):
        get_arm(f"replay:{bad_num}")
    (tmp_path / "x.txt").write_text("id,output\n")
    with pytest.raises(ArmError, match="unknown replay file type"):
        get_arm(f"replay:{tmp_path / 'x.txt'}")


def test_replay_cli_reports_coverage(task_dir, tmp_path, capsys):
    task = load_task(task_dir / "mini.yaml")
    path = _write_jsonl(tmp_path / "o.jsonl", [{"id": i.id, "output": i.gold} for i in task.test[:4]])
    code = main(["run", "--task", str(task_dir / "mini.yaml"), "--arm", f"replay:{path}", "--store",
                 str(tmp_path / "k.sqlite"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "replay: 4 of 6 items answered; 2 missing from the file" in err
    summary = json.loads(out)[0]
    assert summary["errors"] == 2 and summary["accuracy"] == pytest.approx(4 / 6)


def test_replay_file_not_utf8_is_a_clear_error(tmp_path):
    bad = tmp_path / "out.jsonl"
    bad.write_bytes(b'{"item_id": "r1", "output": "ok"}\n{"item_id": "r2", "output": "caf\xe9"}\n')
    with pytest.raises(ArmError, match=r"not UTF-8 at line 2.*re-save the file as UTF-8"):
        get_arm(f"replay:{bad}")
