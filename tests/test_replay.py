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
    # an empty prompt_tokens is estimated from the prompt sent (4 characters per token), and said so
    assert (rows["prompt_tokens"] > 0).all() and (rows["completion_tokens"] == 3).all()
    assert rows["extra"].str.contains('"usage": "estimated"').all()
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


def test_a_log_without_token_counts_is_priced_on_estimated_tokens_never_zero(mini, store, tmp_path):
    """Issue 26, case 12: real logs often lack prompt_tokens/completion_tokens. The replay arm estimates them —
    the prompt from the request the kit would send, the completion from the recorded output, at 4 characters per
    token — marks each such answer as estimated and says so in its description; the price is never $0."""
    from kit.arms.base import CHARS_PER_TOKEN, estimate_text_tokens, estimate_tokens
    from kit.economics import ApiPricing, api_item_costs
    from kit.tasks.prompts import build_request

    gold = {i.id: i.gold for i in mini.test}
    path = _write_jsonl(tmp_path / "log.jsonl", [{"item_id": i, "output": g} for i, g in gold.items()])
    arm = get_arm(f"replay:{path}")
    assert f"token counts of 6 rows estimated at {CHARS_PER_TOKEN} characters per token" in arm.describe()
    summary = run_arm(mini, arm, store=store)
    rows = store.rows(summary.keys.values()).set_index("item_id")
    for item in mini.test:  # what the kit would have sent for this item, counted the stated way
        sent = build_request(mini, item)
        assert rows.loc[item.id, "prompt_tokens"] == estimate_tokens(sent) > 10
        assert rows.loc[item.id, "completion_tokens"] == estimate_text_tokens(gold[item.id]) >= 1
        assert json.loads(rows.loc[item.id, "extra"])["usage"] == "estimated"
    costs = api_item_costs(rows.reset_index().assign(option="Logs"), pricing=ApiPricing("gpt-4o-mini"))
    assert (costs["cost_usd"] > 0).all()  # gpt-4o-mini: $0.15 / $0.60 per million tokens (genai-prices)
    expected = sum(estimate_tokens(build_request(mini, i)) * 0.15 + estimate_text_tokens(gold[i.id]) * 0.60
                   for i in mini.test) / 1e6
    assert costs["cost_usd"].sum() == pytest.approx(expected)


def test_token_counts_in_the_log_are_used_as_they_are(mini, store, tmp_path):
    rows = [{"item_id": i.id, "output": i.gold, "prompt_tokens": 30, "completion_tokens": 2} for i in mini.test]
    arm = get_arm(f"replay:{_write_jsonl(tmp_path / 'log.jsonl', rows)}")
    assert "estimated" not in arm.describe()
    summary = run_arm(mini, arm, store=store)
    stored = store.rows(summary.keys.values())
    assert stored["prompt_tokens"].tolist() == [30] * 6 and stored["completion_tokens"].tolist() == [2] * 6
    assert not stored["extra"].fillna("").str.contains("estimated").any()
