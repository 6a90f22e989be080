"""The monitor: drift tests checked against scikit-learn and scipy, the error budget spent across windows, and the
advice on logs in the router's format (a steady stream holds; a shifted one is flagged; open questions are sized)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kit.cli import main
from kit.errors import ConfigError
from kit.monitor import Advice, Question, Windows, c2st, length_test, read_log, spent, watch
from kit.monitor.drift import fit_logistic, hashed_counts, tfidf
from kit.stats.sequential import Settled


def test_tfidf_and_logistic_match_scikit_learn(snips):
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    texts = [i.text for i in snips.items[:80]]
    y = np.array([i.gold == "play_music" for i in snips.items[:80]], dtype=float)
    counts = hashed_counts(texts)
    (mine,) = tfidf(counts)
    # scikit-learn 1.x TfidfTransformer(smooth_idf=True, norm="l2"): the same idf formula and row norm
    ref = TfidfTransformer(smooth_idf=True, norm="l2").fit_transform(counts)
    assert np.allclose(mine.toarray(), ref.toarray(), atol=1e-10)
    w, b = fit_logistic(mine, y, c=1.0)
    # scikit-learn 1.x LogisticRegression(C=1, lbfgs): L2 on the weights, the intercept unpenalised
    # (fitted on the columns the texts use: an unused column's weight is 0 in both)
    used = np.unique(mine.indices)
    sk = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-12, max_iter=10_000).fit(mine[:, used], y)
    assert np.allclose(w[used], sk.coef_.ravel(), atol=1e-4) and abs(b - sk.intercept_[0]) < 1e-4
    assert not np.delete(w, used).any()


def test_c2st_p_value_is_the_exact_binomial_and_sees_a_new_phrasing(snips):
    from scipy.stats import binomtest

    base = [i.text for i in snips.items[:120]]
    same = c2st(base[:60], base[60:], seed=1)
    n = 60  # 30 held out from each side
    correct = round(same.accuracy * n)
    # scipy.stats.binomtest(k, n, 1/2, alternative="greater"): the exact one-sided p-value
    assert same.p_value == pytest.approx(binomtest(correct, n, 0.5, alternative="greater").pvalue, rel=1e-9)
    assert same.p_value > 0.01
    reworded = [f"hey assistant, could you please {t.lower()} thanks a lot" for t in base[60:]]
    shifted = c2st(base[:60], reworded, seed=1)
    assert shifted.accuracy > 0.9 and shifted.p_value < 1e-6
    assert length_test(base[:60], reworded).p_value < 1e-6 and length_test(base[:60], base[60:]).p_value > 0.01
    with pytest.raises(ConfigError, match="too few"):
        c2st(["a", "b"], ["c", "d"])


def test_the_levels_of_all_windows_sum_to_at_most_alpha():
    levels = [spent(k, alpha=0.05, horizon=12) for k in range(1, 100_001)]
    assert sum(levels) <= 0.05 and sum(levels[:12]) == pytest.approx(0.05 * 0.9)
    assert levels[12] < levels[11]


def _route(**expect):
    base = {"agreement": 0.9, "n_items": 100, "majority": "book_restaurant", "majority_share": 0.2, "accuracy": 0.8,
            "latency_target_s": 2.0, "margin": 0.02, "alpha": 0.05, "finetuned": True}
    return {"task": "snips-intents", "option": "SmolLM2 + LoRA", "first": "SmolLM2 + LoRA", "fallback": "API",
            "tau": None, "escalate_to": None, "expect": {**base, **expect}}


def _stream(tmp_path, snips, months, *, agree, shift_month=None, seed=0):
    """Logs as the router writes them: per month 150 requests drawn from the task's items; the deployed option
    agrees with the shadowed reference on a share ``agree`` of them. From ``shift_month`` on, the requests are
    a new phrasing and the deployed option agrees on half."""
    rng = np.random.default_rng(seed)
    items = list(snips.items)
    requests, shadow = [], []
    for m in range(months):
        for j in range(150):
            item = items[rng.integers(len(items))]
            shifted = shift_month is not None and m >= shift_month
            text = f"hey assistant, could you please {item.text.lower()} thanks" if shifted else item.text
            ok = rng.random() < (0.5 if shifted else agree)
            ref = item.gold
            mine = ref if ok else ("get_weather" if ref != "get_weather" else "play_music")
            row = {"item_id": f"m{m}-{j}", "output": mine, "latency_s": float(rng.uniform(0.2, 1.0)),
                   "task": "snips-intents", "time": f"2026-{m + 1:02d}-{1 + j % 28:02d}T12:00:00+00:00",
                   "text": text, "option": "SmolLM2 + LoRA", "route": "chosen"}
            requests.append(row)
            shadow.append({**row, "output": ref, "option": "API", "route": "shadow"})
    log, side = tmp_path / "requests.jsonl", tmp_path / "shadow.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in requests))
    side.write_text("".join(json.dumps(r) + "\n" for r in shadow))
    return log, side


def test_a_steady_stream_still_holds_and_a_shifted_one_is_flagged(tmp_path, snips):
    log, side = _stream(tmp_path, snips, 4, agree=0.95)
    report = watch(_route(), read_log(log, shadow=side), Windows(by_month=True), sizes=False)
    assert [w.window for w in report.advice] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert all(w.advice is Advice.STILL_HOLDS for w in report.advice)
    assert {k.question for k in report.looks} == {Question.AGREEMENT, Question.LATENCY}

    log, side = _stream(tmp_path, snips, 4, agree=0.95, shift_month=3)
    report = watch(_route(), read_log(log, shadow=side), Windows(by_month=True), sizes=False)
    assert [w.advice for w in report.advice[:3]] == [Advice.STILL_HOLDS] * 3
    last = report.advice[-1]
    assert last.advice is Advice.RETRAIN  # a fine-tune whose agreement fell while its inputs drifted
    assert any("agreement" in e and "broken" in e for e in last.evidence)
    assert any("input drift" in e for e in last.evidence)
    looks = report.table()
    assert looks[(looks["window"] == "2026-04") & (looks["question"] == str(Question.AGREEMENT))]["status"].item() \
        == str(Settled.FAILS)
    # not a fine-tune: the same evidence says fall back to the reference
    plain = watch(_route(finetuned=False), read_log(log, shadow=side), Windows(by_month=True), sizes=False)
    assert plain.advice[-1].advice is Advice.FALL_BACK


def test_labels_test_the_bar_and_floor_and_open_questions_are_sized(tmp_path, snips):
    log, side = _stream(tmp_path, snips, 1, agree=0.9)
    rows = [json.loads(line) for line in side.read_text().splitlines()][:40]
    labels = tmp_path / "labels.csv"
    labels.write_text("item_id,label\n" + "".join(f"{r['item_id']},{r['output']}\n" for r in rows))
    report = watch(_route(), read_log(log, shadow=side, labels=labels), Windows(every=150))
    questions = {k.question: k for k in report.looks}
    assert {Question.BAR, Question.FLOOR} <= set(questions) and questions[Question.BAR].n == 40
    open_ = [k for k in report.looks if k.status is Settled.OPEN]
    assert open_, "40 labels at a strict level leave something open"
    for k in open_:
        assert k.more_needed is not None and (math.isinf(k.more_needed) or k.more_needed > 0)
    assert any("more labels at this mix would settle it" in e for e in report.advice[0].evidence)


def test_monitor_cli(tmp_path, snips, capsys):
    log, side = _stream(tmp_path, snips, 3, agree=0.95, shift_month=2)
    (tmp_path / "routing.json").write_text(json.dumps({"kit_routing": 1, "tasks": {"snips-intents": _route()},
                                                       "log": "requests.jsonl", "shadow_log": "shadow.jsonl"}))
    assert main(["monitor", str(tmp_path), "--windows", "month"]) == 1
    out = capsys.readouterr().out
    assert "[2026-03] 150 items — retrain the LoRA" in out and "[2026-01] 150 items — still holds" in out
    assert main(["monitor", str(tmp_path), "--every", "150", "--task", "nope"]) == 2
    assert "not routed" in capsys.readouterr().err
    assert main(["monitor", str(tmp_path / "missing")]) == 2
    assert main(["monitor", str(tmp_path), "--alpha", "0.9"]) == 2
    (tmp_path / "requests.jsonl").write_text('{"item_id": "a", "output": "x", "time": "later"}\n')
    assert main(["monitor", str(tmp_path)]) == 2
    assert "no readable time" in capsys.readouterr().err


def test_a_hybrid_window_says_how_much_stayed_local(tmp_path, snips):
    log, side = _stream(tmp_path, snips, 1, agree=0.95)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    for n, r in enumerate(rows):
        r["route"] = "escalated" if n % 10 < 3 else "local"  # 70% kept local
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    route = {**_route(), "tau": 0.6, "escalate_to": "API", "share_local": 0.8}
    report = watch(route, read_log(log, shadow=side), Windows(every=150), sizes=False)
    assert any(e == "kept local: 70.0% of 150 requests (the report's cascade: 80.0%)" for e in report.advice[0].evidence)
