"""A report's run folder made through the real stages (prepare, answers, quality, costs, verdict) on the built-in
snips-intents task, for the export and monitor tests and bench/bench_monitor.py.

The options answer through the ``replay:`` arm — recorded outputs, the kit's real arm — written here with known
properties, so the run takes seconds, not the default report's minutes of llama.cpp: a third-party reference
``API`` right on about 85% of the test items, and a self-hosted ``SmolLM2`` that gives the API's answer where
the API is right (99% of those) and is right on 70% of the rest, with a confidence per answer (0.95 right, 0.45
wrong) so that the costs stage fits a cascade. At a million items a month — the volume where the local
option's labelling upkeep is outweighed by the API's tokens — the verdict then recommends a self-hosted option.

>>> folder = build_report_run(Path("/tmp/run"))          # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kit.experiment import Experiment
from kit.pipeline import answers, costs, prepare, quality, verdict
from kit.pipeline.folder import RunFolder
from kit.tasks import load_task

TASK = "snips-intents"


def _outputs(items, seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    labels = sorted({i.gold for i in items})
    api, local = [], []
    for item in items:
        wrong = [x for x in labels if x != item.gold]
        api_right = rng.random() < 0.85
        api_answer = item.gold if api_right else wrong[rng.integers(len(wrong))]
        local_right = rng.random() < (0.99 if api_right else 0.70)
        local_answer = item.gold if local_right else wrong[rng.integers(len(wrong))]
        api.append({"item_id": item.id, "output": api_answer, "latency_s": float(rng.gamma(4.0, 0.2)),
                    "prompt_tokens": 60, "completion_tokens": 3, "model": "recorded-api"})
        local.append({"item_id": item.id, "output": local_answer, "latency_s": float(rng.gamma(4.0, 0.075)),
                      "prompt_tokens": 60, "completion_tokens": 3, "confidence": 0.95 if local_right else 0.45})
    return api, local


def build_report_run(path: Path, *, items: int = 200, seed: int = 0, upkeep: dict | None = None) -> RunFolder:
    """Build the run folder at ``path / "run"`` (its store and replay files beside it) and return it (``upkeep``:
    the experiment's ``upkeep:`` key, its defaults when None)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    task = load_task(TASK)
    api, local = _outputs(task.test[:items], seed)
    files = {}
    for name, rows in (("api", api), ("local", local)):
        files[name] = path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    exp = Experiment.from_mapping({
        "tasks": {TASK: items}, "reference": "API",
        "options": [
            {"name": "API", "arm": f"replay:{files['api']}", "runs": "third-party",
             "price": {"input_per_m": 2.5, "output_per_m": 10.0}},
            {"name": "SmolLM2", "arm": f"replay:{files['local']}", "runs": "self-hosted", "machine": "box"},
        ],
        "machines": {"box": {"price_per_hour": 0.2, "utilisation": 0.6}},
        "monthly_volume": 1_000_000, "latency_target_s": 2.0, "store": str(path / "kit.sqlite"),
        **({"upkeep": upkeep} if upkeep is not None else {})},
        source="tests/report_run.py")
    folder = RunFolder(path / "run")
    prepare.prepare_stage(exp, folder)
    prepare.finetune_stage(folder, progress=False)
    answers.answer_stage(folder, progress=False)
    quality.quality_stage(folder)
    costs.costs_stage(folder)
    verdict.verdict_stage(folder)
    return folder
