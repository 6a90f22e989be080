"""Load sweeps over real HTTP on loopback (and the in-process llama.cpp arm), the goodput choice, the
physical ceiling of decoding, and pricing a self-hosted option at a chosen throughput."""

from __future__ import annotations

import json
import threading
import time

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kit.arms import get_arm
from kit.errors import ConfigError
from kit.run.sweep import choose_goodput, level_stats, sweep
from kit.tasks import load_task

from conftest import EMBEDDED
from servers import OpenAIServer

matplotlib.use("Agg")


class Overloaded(OpenAIServer):
    """Answers after ``delay`` seconds, but refuses (``code``) any request beyond ``limit`` in flight."""

    def __init__(self, *, limit: int, code: int, delay: float = 0.15) -> None:
        super().__init__(plan=self._admit)
        self.limit, self.code, self.wait = limit, code, delay
        self.in_flight = self.peak = 0
        self._gate = threading.Lock()

    def _admit(self, body, seen):
        with self._gate:
            if self.in_flight >= self.limit:
                return ("status", self.code, {"Retry-After": "0"}, "server overloaded")
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return ("slow", self.wait)

    def respond(self, h, body, cut=False):
        try:
            super().respond(h, body, cut)
        finally:
            with self._gate:
                self.in_flight -= 1


def endpoint_arm(url: str, **options):
    return get_arm("openai:fake", base_url=url, max_attempts=1, timeout=10.0, logprobs=False, **options)


@pytest.mark.parametrize("code", [429, 503])
def test_a_sweep_stops_at_the_last_good_level_when_the_endpoint_refuses_load(task_dir, store, code):
    task = load_task("mini", folder=task_dir)  # 6 test items
    with Overloaded(limit=3, code=code) as server, endpoint_arm(server.base_url) as arm:
        result = sweep(task, arm, store=store, levels=(1, 2, 4), items=6, progress=False)
    table = result.table()
    assert table["load"].tolist() == [1, 2, 4]
    assert table["status"].tolist() == ["ok", "ok", "failed"]
    assert table["load_kind"].iloc[0] == "concurrency"
    failed = table.iloc[-1]
    assert failed["refused"] >= 1 and failed["errors"] >= 1
    assert "HTTP 429/503" in result.stopped and "the last good level was concurrency 2" in result.stopped
    # no lost rows: every request of every level, the refused ones too, is in the store
    rows = pd.read_sql_query("SELECT load, error FROM responses WHERE kind='sweep'", store.db)
    assert rows.groupby("load").size().to_dict() == {1: 6, 2: 6, 4: 6}
    assert rows.loc[rows["load"] == 4, "error"].str.contains(f"HTTP {code}").sum() == failed["errors"]
    choice = result.goodput()
    assert choice.load in (1, 2) and choice.load_kind == "concurrency"


def test_a_rerun_is_served_from_the_store(task_dir, store):
    task = load_task("mini", folder=task_dir)
    with OpenAIServer(delay=0.05) as server, endpoint_arm(server.base_url) as arm:
        first = sweep(task, arm, store=store, levels=(1, 2, 4), items=6, latency_target_s=5.0)
        calls = server.calls()
        again = sweep(task, arm, store=store, levels=(1, 2, 4), items=6, latency_target_s=5.0)
        assert server.calls() == calls  # no model call, no warm-up request
    a, b = first.table(), again.table()
    assert a["new_calls"].sum() == 6 * len(a) and b["new_calls"].sum() == 0 and (b["cached"] == 6).all()
    measured = ["items_per_s", "tokens_per_s", "p50_latency_s", "p95_latency_s", "p50_ttft_s", "wall_s"]
    pd.testing.assert_frame_equal(a[measured], b[measured])
    assert again.stopped == first.stopped and again.goodput() == first.goodput()
    # independent check of the level figures: items over (last answer - first request start)
    rows = pd.read_sql_query("SELECT created_at, latency_s FROM responses WHERE kind='sweep' AND load=2", store.db)
    done = pd.to_datetime(rows["created_at"], format="ISO8601")
    wall = (done.max() - (done - pd.to_timedelta(rows["latency_s"], unit="s")).min()).total_seconds()
    assert a.loc[a["load"] == 2, "items_per_s"].item() == pytest.approx(6 / wall)


def test_an_in_process_sweep_varies_the_batch_and_stops_when_the_context_is_full(store, snips):
    # batch 2 holds 1024 cells per SNIPS sequence, batch 4 only 512; one thread (see tests/test_batch.py)
    with get_arm(EMBEDDED, n_ctx=2048, n_threads=1, n_threads_batch=1) as arm:
        result = sweep(snips, arm, store=store, levels=(1, 2, 4), items=4, min_gain=-1.0)
    table = result.table()
    assert table["load"].tolist() == [1, 2] and table["load_kind"].iloc[0] == "batch"
    assert (table["status"] == "ok").all() and (table["n_ok"] == 4).all()
    assert "at batch 4" in result.stopped and "raise n_ctx to at least" in result.stopped
    # the label's tokens are the output: time per output token and output tokens/s at every level
    assert (table["p50_tpot_s"] > 0).all() and (table["completion_tokens_per_s"] > 0).all()
    assert (table["p95_ttft_s"] <= table["p95_latency_s"]).all()
    assert result.goodput().load in (1, 2)


def test_sweep_input_is_checked(task_dir, store):
    task = load_task("mini", folder=task_dir)
    with OpenAIServer() as server, endpoint_arm(server.base_url) as arm:
        with pytest.raises(ConfigError, match="increasing whole numbers"):
            sweep(task, arm, store=store, levels=(4, 2))
        with pytest.raises(ConfigError, match="latency_target_s"):
            sweep(task, arm, store=store, latency_target_s=0)
        with get_arm("anthropic:fake", base_url=server.base_url) as other:  # an arm with no load to vary
            with pytest.raises(ConfigError, match="no load to vary"):
                sweep(task, other, store=store)


def test_goodput_on_a_hand_made_table():
    table = pd.DataFrame({"load": [1, 2, 4, 8, 16], "items_per_s": [2.0, 3.9, 6.8, 9.1, 9.1],
                          "p95_latency_s": [0.4, 0.5, 0.9, 1.7, 3.2],
                          "status": ["ok", "ok", "ok", "ok", "over target"], "load_kind": "batch", "n_items": 32})
    assert choose_goodput(table, latency_target_s=2.0).load == 8
    assert choose_goodput(table, latency_target_s=1.0).load == 4
    tied = choose_goodput(table)  # no target: the best throughput, ties to the lower load
    assert tied.load == 8 and tied.items_per_s == 9.1 and "no latency target" in tied.statement
    choice = choose_goodput(table, latency_target_s=2.0)
    assert choice.statement.startswith("batch 8: 9.1 items/s with p95 1.70 s (target 2 s)")
    assert choice.basis == "at batch 8 (load sweep on 32 items: p95 1.70 s ≤ target 2 s)"
    none = choose_goodput(table, latency_target_s=0.3)
    assert none.load is None and none.items_per_s is None and "lowest was 0.40 s at batch 1" in none.statement
    failed = table.assign(status=["ok", "ok", "ok", "failed", "failed"])
    assert choose_goodput(failed).load == 4  # a level that failed never counts, however fast
    with pytest.raises(ConfigError, match="lacks"):
        choose_goodput(table.drop(columns="p95_latency_s"))


def test_level_figures_come_from_rows():
    """Three answers of one run: the first request started at t=0 (created 1.0 s in, latency 1.0 s), the last
    answer came at t=2.0 s: 3 items / 2 s = 1.5 items/s; numpy's quantiles are the reference for p50/p95."""
    t0 = pd.Timestamp("2025-01-01T00:00:00", tz="UTC")
    rows = pd.DataFrame({
        "run_id": "r", "created_at": [(t0 + pd.Timedelta(seconds=s)).isoformat() for s in (1.0, 1.5, 2.0)],
        "latency_s": [1.0, 1.2, 0.9], "ttft_s": [0.1, 0.2, 0.3], "prompt_tokens": [10, 10, 10],
        "completion_tokens": [2, 3, 4], "error": [None, None, None], "extra": [None, None, {"faults": ["HTTP 429"]}]})
    level = level_stats(rows, load=2)
    assert level.wall_s == pytest.approx(2.0) and level.items_per_s == pytest.approx(1.5)
    assert level.tokens_per_s == pytest.approx(39 / 2.0) and level.completion_tokens_per_s == pytest.approx(4.5)
    assert level.p95_latency_s == pytest.approx(np.quantile([1.0, 1.2, 0.9], 0.95))
    assert level.refused == 1 and level.status == "failed"  # a 429 that a retry got through still counts
    # by hand, GuideLLM's definitions: ITL = (latency - ttft) / (tokens - 1) = 0.9/1, 1.0/2, 0.6/3;
    # TPOT = latency / tokens = 1.0/2, 1.2/3, 0.9/4
    assert level.p50_itl_s == pytest.approx(0.5) and level.p95_itl_s == pytest.approx(np.quantile([0.9, 0.5, 0.2], 0.95))
    assert level.p50_tpot_s == pytest.approx(0.4) and level.p95_tpot_s == pytest.approx(np.quantile([0.5, 0.4, 0.225], 0.95))
    one = level_stats(rows.assign(completion_tokens=[1, 1, 0]), load=2)  # no second token: no ITL
    assert np.isnan(one.p50_itl_s) and one.p50_tpot_s == pytest.approx(1.1)  # tpot over the two with a token


class Serial(OpenAIServer):
    """Answers one request at a time (``delay`` each): more load adds waiting, never throughput."""

    def __init__(self, delay: float) -> None:
        super().__init__(answer=lambda body: "yes it is")
        self.wait, self._one = delay, threading.Lock()

    def respond(self, h, body, cut=False):
        with self._one:
            time.sleep(self.wait)
            super().respond(h, body, cut)


def test_every_level_sweeps_past_flat_throughput_and_the_latency_target(task_dir, store):
    task = load_task("mini", folder=task_dir)  # 6 test items
    # one request at a time: doubling the requests in flight cannot quadruple throughput (min_gain 3), and no
    # answer comes within 1 ms
    with Serial(delay=0.02) as server, endpoint_arm(server.base_url) as arm:
        early = sweep(task, arm, store=store, levels=(1, 2, 4), items=4, min_gain=3.0, warmup=False)
        short = sweep(task, arm, store=store, levels=(1, 2, 4), items=4, latency_target_s=0.001, warmup=False)
        full = sweep(task, arm, store=store, levels=(1, 2, 4), items=4, min_gain=3.0, latency_target_s=0.001,
                     warmup=False, every_level=True)
    assert early.table()["load"].tolist() == [1, 2] and "stopped rising" in early.stopped
    assert short.table()["load"].tolist() == [1] and "passed the target" in short.stopped
    table = full.table()
    assert table["load"].tolist() == [1, 2, 4] and full.stopped.startswith("every level asked for was measured")
    assert (table["status"] == "over target").all() and full.goodput().load is None  # measured, never chosen
    # the streamed answer '"yes it is"' is 3 tokens: ITL and TPOT are measured at every level
    assert (table["p50_itl_s"] > 0).all() and (table["p95_tpot_s"] >= table["p50_tpot_s"]).all()
    assert (table["completion_tokens_per_s"] > 0).all() and (table["p95_ttft_s"] >= table["p50_ttft_s"]).all()


def test_sweep_plot_draws_one_line_per_option():
    from kit.report.plots import sweep_plot

    table = pd.DataFrame({"option": ["a"] * 3 + ["b"] * 2, "load": [1, 2, 4, 1, 2], "load_kind": "batch",
                          "items_per_s": [1.0, 1.8, 2.0, 3.0, 2.0], "p95_latency_s": [0.5, 0.8, 1.9, 0.2, 0.1],
                          "status": ["ok", "ok", "ok", "ok", "failed"]})
    ax = sweep_plot(table, latency_target_s=1.5, chosen={"a": 2})
    assert len(ax.get_lines()) == 3  # two options and the target line
    assert ax.get_xlabel() == "p95 latency per item (s)"


def test_a_local_option_is_priced_at_the_goodput_throughput():
    from kit.economics.options import LocalDeployment, cost_table, local_option

    scores = pd.DataFrame({"arm": "local", "item_id": [str(i) for i in range(4)], "latency_s": [0.5, 0.5, 1.5, 1.5]})
    sweep_table = pd.DataFrame({"load": [1, 2, 4, 8], "items_per_s": [1.0, 1.9, 3.6, 4.0],
                                "p95_latency_s": [1.4, 1.5, 1.9, 2.6], "load_kind": "batch", "n_items": 32})
    choice = choose_goodput(sweep_table, latency_target_s=2.0)
    deployment = LocalDeployment(price_per_hour=1.0)
    at_one = local_option("local", scores, deployment=deployment)  # 1 / mean latency = 1 item/s
    served = local_option("local", scores, deployment=deployment, items_per_s=choice.items_per_s, basis=choice.basis)
    assert at_one.point() == pytest.approx(1.0) and served.point() == pytest.approx(3.6)
    assert "3.6 items/s at batch 4 (load sweep on 32 items: p95 1.90 s ≤ target 2 s)" in served.basis
    # 100,000 items at 3.6 items/s on demand: 100000 / 3.6 / 3600 h at $1/h (and 3.6x less than at 1 item/s)
    table = cost_table([served], volume=100_000)
    assert table["monthly_cost"].item() == pytest.approx(100_000 / 3.6 / 3600)
    assert table["items_per_s"].item() == pytest.approx(3.6)
    draws = served.sample(2000, seed=1)  # the items' variation around the measured throughput
    assert np.median(draws) == pytest.approx(3.6, rel=0.1) and draws.std() > 0
    with pytest.raises(ConfigError, match="items_per_s"):
        local_option("local", scores, deployment=deployment, items_per_s=0.0)


def test_kit_sweep_prints_the_curve_and_the_chosen_level(task_dir, tmp_path, capsys):
    from kit.cli import main

    with OpenAIServer(delay=0.02) as server:
        code = main(["sweep", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url",
                     server.base_url, "--levels", "1,2", "--items", "4", "--latency-target", "5",
                     "--store", str(tmp_path / "kit.sqlite"), "-o", "max_attempts=1", "-o", "logprobs=false"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "concurrency" in captured.out.splitlines()[0] and "items_per_s" in captured.out
        assert "chosen: concurrency " in captured.out and "stopped:" in captured.err
        code = main(["sweep", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url",
                     server.base_url, "--levels", "1,2", "--items", "4", "--every-level", "--json",
                     "--store", str(tmp_path / "kit.sqlite"), "-o", "max_attempts=1", "-o", "logprobs=false"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        levels = json.loads(captured.out[:captured.out.rindex("]") + 1])
        assert [lv["concurrency"] for lv in levels] == [1, 2] and "every level asked for" in captured.err
        for key in ("output_tokens_per_s", "p95_ttft_s", "p50_itl_s", "p95_itl_s", "p50_tpot_s", "p95_tpot_s"):
            assert all(key in lv for lv in levels), key
        assert all(lv["output_tokens_per_s"] > 0 and lv["p50_tpot_s"] > 0 for lv in levels)
        assert main(["sweep", "--task", str(task_dir / "mini.yaml"), "--arm", "openai:fake", "--base-url",
                     server.base_url, "--levels", "1,two"]) == 2
    assert "--levels 1,2,4,8,16" in capsys.readouterr().err
