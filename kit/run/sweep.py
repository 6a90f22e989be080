"""Throughput as it would be served: the same items at increasing load, and the load worth paying for.

A load sweep runs the first ``items`` test items of a task through a self-hosted option at load 1, 2, 4,
8, 16 … — for an in-process llama.cpp arm the batch size (requests decoded together), for an
OpenAI-compatible endpoint you run (vLLM, llama.cpp's server, Ollama) the requests in flight — and
measures at each level items/s, tokens/s (all, and output alone), p50/p95 latency, time to first token,
inter-token latency and time per output token. It stops when throughput stops rising, when p95 passes the
latency target (unless ``every_level``), when the endpoint refuses or fails requests
(HTTP 429/503: the last good level stands, and the reason is said), when the context cannot hold the
batch, or when the time budget is spent.

Every response is a row of the store (``kind="sweep"``, ``load=level``) and every figure is computed from
those rows, so a re-run of the same sweep is served from the store without calling the model. An item's
latency is the time from the start of its request (at a batch level: of its batch) until its answer was
complete; items/s is the answered items over the level's wall time (first request sent → last answer).

:func:`choose_goodput` picks the level to price an option at: the highest measured throughput whose p95
latency stays under the target (the best one without a target).

>>> result = sweep(load_task("snips-intents"), get_arm("llama_cpp:smollm2-135m-instruct", n_ctx=8192),
...                store=store, levels=(1, 2, 4, 8, 16), items=32, latency_target_s=2.0)  # doctest: +SKIP
>>> result.goodput().statement                                                           # doctest: +SKIP
'batch 4: 3.91 items/s with p95 1.30 s (target 2 s) — the highest throughput under the target'
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from kit.arms.base import Arm
from kit.columns import Col
from kit.errors import ConfigError, KitError
from kit.progress import Progress
from kit.run.runner import run_arm
from kit.run.store import Store, cache_key
from kit.tasks import Task
from kit.tasks.prompts import build_request, prompt_hash

DEFAULT_LEVELS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
REFUSED = ("HTTP 429", "HTTP 503")


@dataclass(frozen=True)
class SweepLevel:
    """What one load level measured. ``status``: ok, over target (p95 above the latency target), failed."""

    load: int
    n_items: int
    n_ok: int
    errors: int
    refused: int  # requests the endpoint refused with 429/503 (also those a retry then got through)
    new_calls: int
    cached: int
    wall_s: float
    items_per_s: float
    tokens_per_s: float
    completion_tokens_per_s: float
    p50_latency_s: float
    p95_latency_s: float
    p50_ttft_s: float
    p95_ttft_s: float
    p50_itl_s: float  # inter-token latency: (latency - TTFT) / (output tokens - 1), per request
    p95_itl_s: float
    p50_tpot_s: float  # time per output token: latency / output tokens, per request
    p95_tpot_s: float
    status: str
    note: str = ""


@dataclass
class SweepResult:
    """A sweep's levels in order, why it stopped, and what it ran (``load_kind``: batch or concurrency)."""

    task: str
    arm: str
    option: str
    load_kind: str
    latency_target_s: float | None
    levels: list[SweepLevel] = field(default_factory=list)
    stopped: str = ""

    def table(self) -> pd.DataFrame:
        """One row per level: option, arm, task, load_kind, the :class:`SweepLevel` fields, latency_target_s."""
        rows = [{Col.OPTION: self.option, Col.ARM: self.arm, Col.TASK: self.task, Col.LOAD_KIND: self.load_kind,
                 **asdict(level), "latency_target_s": self.latency_target_s} for level in self.levels]
        return pd.DataFrame(rows, columns=[Col.OPTION, Col.ARM, Col.TASK, Col.LOAD_KIND, *SweepLevel.__dataclass_fields__,
                                           "latency_target_s"])

    def goodput(self) -> Goodput:
        """The level to price this option at (see :func:`choose_goodput`)."""
        return choose_goodput(self.table(), latency_target_s=self.latency_target_s)


@dataclass(frozen=True)
class Goodput:
    """The chosen load level: ``load`` is None when no measured level kept p95 under the target."""

    load: int | None
    load_kind: str
    items_per_s: float | None
    p95_latency_s: float | None
    latency_target_s: float | None
    n_items: int
    statement: str

    @property
    def basis(self) -> str:
        """Where the throughput comes from, in words (for ``local_option(..., basis=...)``)."""
        if self.load is None:
            return "no load level met the latency target"
        target = f" ≤ target {self.latency_target_s:g} s" if self.latency_target_s is not None else ", no target"
        return (f"at {self.load_kind} {self.load} (load sweep on {self.n_items} items: p95 "
                f"{self.p95_latency_s:.2f} s{target})")


def choose_goodput(table: pd.DataFrame, *, latency_target_s: float | None = None) -> Goodput:
    """The highest measured items/s whose p95 latency is at most ``latency_target_s`` (the highest of all
    levels without a target); ties go to the lower load. Failed levels never count.

    ``table`` needs columns load, items_per_s, p95_latency_s; status, load_kind and n_items are read
    when present (one option's rows: :meth:`SweepResult.table`).

    >>> t = pd.DataFrame({"load": [1, 2, 4, 8], "items_per_s": [2.0, 3.8, 6.9, 7.2],
    ...                   "p95_latency_s": [0.5, 0.6, 0.9, 2.4]})
    >>> choose_goodput(t, latency_target_s=2.0).load
    4
    >>> choose_goodput(t).load
    8
    """
    where = "kit.run.sweep.choose_goodput"
    missing = {"load", "items_per_s", "p95_latency_s"} - set(table.columns)
    if missing:
        raise ConfigError(f"the sweep table lacks {sorted(missing)}", where=where,
                          fix="pass SweepResult.table() (one row per load level)")
    if latency_target_s is not None and not latency_target_s > 0:
        raise ConfigError(f"latency_target_s={latency_target_s!r}", where=where, fix="give seconds > 0, or None")
    kind = str(table[Col.LOAD_KIND].iloc[0]) if "load_kind" in table.columns and len(table) else "load"
    n_items = int(table[Col.N_ITEMS].max()) if "n_items" in table.columns and len(table) else 0
    good = table[table[Col.STATUS] != "failed"] if Col.STATUS in table.columns else table
    good = good[np.isfinite(pd.to_numeric(good[Col.ITEMS_PER_S], errors="coerce"))]
    under = good if latency_target_s is None else good[good[Col.P95_LATENCY_S] <= latency_target_s]
    target = f" (target {latency_target_s:g} s)" if latency_target_s is not None else ""
    if under.empty:
        if good.empty:
            text = "no load level was measured without failures"
        else:
            low = good.loc[good[Col.P95_LATENCY_S].idxmin()]
            text = (f"no load level kept p95 latency under {latency_target_s:g} s: the lowest was "
                    f"{low[Col.P95_LATENCY_S]:.2f} s at {kind} {int(low[Col.LOAD])}")
        return Goodput(None, kind, None, None, latency_target_s, n_items, text)
    best = under.sort_values([Col.ITEMS_PER_S, Col.LOAD], ascending=[False, True]).iloc[0]
    why = "the highest throughput under the target" if latency_target_s is not None else \
        "the highest throughput measured (no latency target)"
    text = (f"{kind} {int(best[Col.LOAD])}: {best[Col.ITEMS_PER_S]:.3g} items/s with p95 {best[Col.P95_LATENCY_S]:.2f} s"
            f"{target} — {why}")
    return Goodput(int(best[Col.LOAD]), kind, float(best[Col.ITEMS_PER_S]), float(best[Col.P95_LATENCY_S]),
                   latency_target_s, n_items, text)


def level_stats(rows: pd.DataFrame, *, load: int, new_calls: int = 0, cached: int = 0) -> SweepLevel:
    """A level's figures from its store rows (so a re-run served from the store gives the same figures).

    The wall time is, per run that wrote rows, from the earliest request start (``created_at - latency_s``)
    to the last answer (``created_at``), summed over runs (a level finished by a later run counts both parts).
    """
    n = len(rows)
    err = rows[Col.ERROR].notna() if n else pd.Series(dtype=bool)
    ok = rows[~err] if n else rows
    refused = int(sum(_refused(r) for r in rows.itertuples())) if n else 0
    wall = _wall_s(rows)
    lat = pd.to_numeric(ok[Col.LATENCY_S], errors="coerce").dropna().to_numpy(dtype=float) if n else np.array([])
    ttft = pd.to_numeric(ok[Col.TTFT_S], errors="coerce").dropna().to_numpy(dtype=float) if n else np.array([])
    p_tok = float(pd.to_numeric(ok[Col.PROMPT_TOKENS], errors="coerce").fillna(0).sum()) if n else 0.0
    c_tok = float(pd.to_numeric(ok[Col.COMPLETION_TOKENS], errors="coerce").fillna(0).sum()) if n else 0.0
    itl, tpot = per_token_latencies(ok) if n else (np.array([]), np.array([]))

    def rate(x: float) -> float:
        return x / wall if wall > 0 else float("nan")

    def q(x: np.ndarray, p: float) -> float:
        return float(np.quantile(x, p)) if x.size else float("nan")

    status = "failed" if (int(err.sum()) if n else 0) or refused else "ok"
    return SweepLevel(load=load, n_items=n, n_ok=len(ok), errors=int(err.sum()) if n else 0, refused=refused,
                      new_calls=new_calls, cached=cached, wall_s=wall, items_per_s=rate(len(ok)),
                      tokens_per_s=rate(p_tok + c_tok), completion_tokens_per_s=rate(c_tok),
                      p50_latency_s=q(lat, 0.5), p95_latency_s=q(lat, 0.95), p50_ttft_s=q(ttft, 0.5),
                      p95_ttft_s=q(ttft, 0.95), p50_itl_s=q(itl, 0.5), p95_itl_s=q(itl, 0.95),
                      p50_tpot_s=q(tpot, 0.5), p95_tpot_s=q(tpot, 0.95), status=status)


def per_token_latencies(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per request: the inter-token latency, (latency − TTFT) / (output tokens − 1), for requests with a
    TTFT and at least 2 output tokens; and the time per output token, latency / output tokens, for
    requests with at least 1 (GuideLLM's definitions of ITL and TPOT).

    >>> rows = pd.DataFrame({"latency_s": [1.0, 0.5], "ttft_s": [0.1, None], "completion_tokens": [10, 5]})
    >>> itl, tpot = per_token_latencies(rows)
    >>> itl.round(3).tolist(), tpot.round(3).tolist()
    ([0.1], [0.1, 0.1])
    """
    lat = pd.to_numeric(rows[Col.LATENCY_S], errors="coerce").to_numpy(dtype=float)
    ttft = pd.to_numeric(rows[Col.TTFT_S], errors="coerce").to_numpy(dtype=float)
    out = pd.to_numeric(rows[Col.COMPLETION_TOKENS], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        itl = (lat - ttft) / (out - 1)
        tpot = lat / out
    itl = itl[np.isfinite(itl) & (out >= 2)]
    tpot = tpot[np.isfinite(tpot) & (out >= 1)]
    return itl, tpot


def _refused(row: Any) -> bool:
    texts = [str(row.error or "")]
    extra = row.extra if isinstance(row.extra, dict) else {}
    texts += [str(f) for f in extra.get("faults") or []]
    return any(code in text for text in texts for code in REFUSED)


def _wall_s(rows: pd.DataFrame) -> float:
    if rows.empty:
        return 0.0
    done = pd.to_datetime(rows[Col.CREATED_AT], utc=True, format="ISO8601")
    lat = pd.to_numeric(rows[Col.LATENCY_S], errors="coerce").fillna(0.0)
    began = done - pd.to_timedelta(lat, unit="s")
    frame = pd.DataFrame({"run": rows[Col.RUN_ID].to_numpy(), "began": began.to_numpy(), "done": done.to_numpy()})
    spans = frame.groupby("run").agg(began=("began", "min"), done=("done", "max"))
    return float((spans["done"] - spans["began"]).dt.total_seconds().sum())


def sweep(task: Task, arm: Arm, *, store: Store, levels: Sequence[int] = DEFAULT_LEVELS, items: int = 32,
          latency_target_s: float | None = None, max_seconds: float | None = 600.0, min_gain: float = 0.05,
          max_tokens: int = 256, epoch: int = 0, progress: bool = False, label: str | None = None,
          warmup: bool = True, every_level: bool = False) -> SweepResult:
    """Run the first ``items`` test items at each load level in turn; see the module's docstring.

    ``min_gain``: the sweep goes on only while a level's items/s beats the best so far by this share.
    ``every_level``: measure every level asked for — neither a throughput that stops rising nor a p95
    past the target ends the sweep (such levels are still marked, and never chosen past the target); a
    level that fails, a context too small or the time budget still do.
    ``max_seconds``: no new level starts once the sweep has run this long (levels served from the store
    take no time). ``label`` names the option (default: the arm's spec). ``warmup``: before a level that
    calls the model, one unrecorded request fills the prefix cache (a served model has it warm), so the
    first item does not pay for the shared prompt prefix alone.
    """
    where = f"sweep · {arm.spec} · {task.name}"
    if arm.load_kind is None:
        raise ConfigError(f"{arm.spec} has no load to vary", where=where,
                          fix="sweep a self-hosted option: llama_cpp:/lora: (batch sizes) or openai: with "
                              "--base-url of the server you run (requests in flight)")
    steps = _check_levels(levels, where=where)
    if isinstance(items, bool) or not isinstance(items, int) or items < 1:
        raise ConfigError(f"items={items!r}", where=where, fix="give the number of items per level, e.g. 32")
    if latency_target_s is not None and not latency_target_s > 0:
        raise ConfigError(f"latency_target_s={latency_target_s!r}", where=where, fix="give seconds > 0, or None")
    chosen = list(task.test[:items])
    label = label or arm.spec
    result = SweepResult(task=task.name, arm=arm.spec, option=label, load_kind=arm.load_kind,
                         latency_target_s=latency_target_s)
    began = time.monotonic()
    best: SweepLevel | None = None
    with Progress(f"{label} · {task.name} · load sweep", total=len(steps) * len(chosen), stage="sweep",
                  show=progress) as bar:
        for number, level in enumerate(steps):
            if level > len(chosen):
                result.stopped = (f"{arm.load_kind} {level} needs at least {level} items; the sweep has "
                                  f"{len(chosen)} (raise items)")
                break
            if max_seconds is not None and time.monotonic() - began > max_seconds:
                result.stopped = f"the time budget of {max_seconds:g} s was spent before {arm.load_kind} {level}"
                break
            try:
                arm.set_load(level)
                if warmup:
                    _warm(task, arm, store, chosen, level=level, epoch=epoch, max_tokens=max_tokens)
                summary = run_arm(task, arm, store=store, items=chosen, epoch=epoch, max_tokens=max_tokens,
                                  kind="sweep", load=level, label=f"{label} · {arm.load_kind} {level}")
            except KitError as exc:
                if not result.levels:
                    raise
                result.stopped = f"at {arm.load_kind} {level}: {exc}"
                break
            stats = level_stats(store.rows(summary.keys.values()), load=level, new_calls=summary.new_calls,
                                cached=summary.cached)
            stats, stop = _judge(stats, best, latency_target_s, arm.load_kind, last=result.levels, min_gain=min_gain)
            if every_level and stats.status != "failed":
                stop = ""
            result.levels.append(stats)
            bar.advance(len(chosen), detail=f"{arm.load_kind} {level}: {stats.items_per_s:.3g} items/s, "
                                            f"p95 {stats.p95_latency_s:.2f} s")
            if stats.status == "ok" and (best is None or stats.items_per_s > best.items_per_s):
                best = stats
            if stop:
                result.stopped = stop
                break
            if number == len(steps) - 1:
                result.stopped = f"every level asked for was measured (up to {arm.load_kind} {level})"
    return result


def _warm(task: Task, arm: Arm, store: Store, chosen: list[Any], *, level: int, epoch: int, max_tokens: int) -> None:
    """One unrecorded request, unless every answer of this level is in the store already."""
    requests = [build_request(task, item, max_tokens=max_tokens) for item in chosen]
    identity = arm.identity()
    keys = [cache_key(task=task.name, item_id=r.item_id, identity=identity, prompt_hash=prompt_hash(r), epoch=epoch,
                      kind="sweep", load=level) for r in requests]
    if requests and len(store.cached(keys)) < len(keys):
        arm.complete(requests[0])


def _judge(stats: SweepLevel, best: SweepLevel | None, target: float | None, kind: str,
           last: list[SweepLevel], min_gain: float) -> tuple[SweepLevel, str]:
    """The level with its status and note, and why the sweep stops after it ('' to go on)."""
    good = [lv for lv in last if lv.status != "failed"]
    after = f"; the last good level was {kind} {good[-1].load}" if good else "; no level before it succeeded"
    if stats.status == "failed":
        what = []
        if stats.refused:
            what.append(f"{stats.refused} of {stats.n_items} requests were refused (HTTP 429/503)")
        if stats.errors:
            what.append(f"{stats.errors} of {stats.n_items} requests failed")
        note = " and ".join(what)
        return replace(stats, note=note), f"failed under load at {kind} {stats.load}: {note}{after}"
    if target is not None and stats.p95_latency_s > target:
        note = f"p95 {stats.p95_latency_s:.2f} s passed the target {target:g} s"
        return replace(stats, status="over target", note=note), f"{note} at {kind} {stats.load}"
    if best is not None and stats.items_per_s < best.items_per_s * (1 + min_gain):
        note = (f"throughput stopped rising: {stats.items_per_s:.3g} items/s against {best.items_per_s:.3g} at "
                f"{kind} {best.load}")
        return replace(stats, note=note), note
    return stats, ""


def _check_levels(levels: Sequence[int], *, where: str) -> list[int]:
    steps = list(levels)
    if not steps or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in steps) \
            or steps != sorted(set(steps)):
        raise ConfigError(f"load levels {levels!r} are not increasing whole numbers >= 1", where=where,
                          fix="e.g. levels=(1, 2, 4, 8, 16) (--levels 1,2,4,8,16)")
    return steps
