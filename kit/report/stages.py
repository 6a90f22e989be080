"""The stages the report notebooks call, one function per stage, each reading what the last one wrote.

A report run has a folder (``run_dir``) where every stage leaves its tables (JSON) for the next; the
responses themselves live in the store. Notebooks stay a few lines per cell; the work is here.

>>> plans = plan_arms(local_model="smollm2-135m-instruct", api_arm="standin")   # doctest: +SKIP
>>> [p.role for p in plans]                                                      # doctest: +SKIP
['api', 'local']
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from kit.errors import ConfigError

STANDIN = "standin"
STANDIN_MODEL = "gemma-3-270m"
REAL_API_SWITCH = "export OPENAI_API_KEY=…  and set api_arm: openai:gpt-4o-mini in the parameter file"
KEYED_DEFAULTS = (("OPENAI_API_KEY", "openai:gpt-4o-mini"), ("ANTHROPIC_API_KEY", "anthropic:claude-3-5-haiku-latest"),
                  ("MISTRAL_API_KEY", "openai:mistral-small-latest"))
MISTRAL_URL = "https://api.mistral.ai/v1"


@dataclass
class ArmPlan:
    """One option of the comparison: its role (api, local, finetuned), spec and options."""

    role: str
    spec: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    standin: bool = False
    hosted: bool = False
    pricing_model: str | None = None


# artifacts --------------------------------------------------------------------------------------------
def save_table(run_dir: str | Path, name: str, table: pd.DataFrame) -> Path:
    path = Path(run_dir) / f"{name}.json"
    path.write_text(table.to_json(orient="records", default_handler=str), encoding="utf-8")
    return path


def load_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    path = Path(run_dir) / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"'{name}' has not been computed in this run", where=str(path),
                          fix="run the notebooks in order (kit report does)")
    return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))


def save_json(run_dir: str | Path, name: str, data: Any) -> Path:
    path = Path(run_dir) / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    return path


def load_json(run_dir: str | Path, name: str, default: Any = None) -> Any:
    path = Path(run_dir) / f"{name}.json"
    if not path.is_file():
        if default is not None:
            return default
        raise ConfigError(f"'{name}' has not been computed in this run", where=str(path),
                          fix="run the notebooks in order (kit report does)")
    return json.loads(path.read_text(encoding="utf-8"))


def ensure_run_dir(run_dir: str | None) -> Path:
    """The run folder a notebook writes to: the given one, or ``runs/interactive`` in JupyterLab."""
    from kit.paths import runs_dir

    folder = Path(run_dir) if run_dir else runs_dir() / "interactive"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# stage 1: models ---------------------------------------------------------------------------------------
def models_stage(*, local_model: str, run_dir: str | Path, pull: bool = True) -> pd.DataFrame:
    """Resolve (and pull, for hub models) the local model and the stand-in's; a table of what they are."""
    from kit.models.gguf import read_gguf_info
    from kit.models.hardware import fingerprint
    from kit.models import resolve_model

    rows = []
    for model in dict.fromkeys([local_model, STANDIN_MODEL]):
        mf = resolve_model(model, pull=pull)
        info = read_gguf_info(mf.path)
        rows.append({"model": mf.id, "quantisation": mf.quant or info.quant, "architecture": info.architecture,
                     "parameters": info.parameter_count, "context_length": info.context_length,
                     "size_mb": round(mf.size / 1e6, 1), "sha256": mf.sha256})
    table = pd.DataFrame(rows)
    save_table(run_dir, "models", table)
    save_json(run_dir, "hardware", fingerprint())
    return table


def hardware_table(run_dir: str | Path) -> pd.DataFrame:
    """The machine's fingerprint as two columns (what, value), for people."""
    flat = pd.json_normalize(load_json(run_dir, "hardware"), sep=" · ").iloc[0].to_dict()
    return pd.DataFrame({"what": list(flat), "value": [str(v) for v in flat.values()]})


# stage 2: fine-tuning ------------------------------------------------------------------------------------
def finetune_stage(*, enabled: bool, task: str, base: str, steps: int, run_dir: str | Path) -> dict[str, Any] | None:
    """Train (or reuse) the LoRA adapter; its manifest goes into the run folder. None when disabled."""
    if not enabled:
        save_json(run_dir, "finetune", {"enabled": False})
        return None
    from kit.finetune import finetune

    result = finetune(task, base=base, max_steps=steps, progress=True)
    data = {"enabled": True, "task": task, **result.to_dict(), "arm_spec": result.arm_spec}
    data.pop("train_item_ids", None)
    save_json(run_dir, "finetune", data)
    return data


def finetune_table(trained: dict[str, Any] | None) -> pd.DataFrame:
    """What the fine-tune did: steps, loss, time, device, adapter hash (one row; empty when disabled)."""
    if not trained:
        return pd.DataFrame([{"fine-tuning": "disabled (finetune: false)"}])
    hyper = trained.get("hyperparameters", {})
    return pd.DataFrame([{
        "task": trained["task"], "base": trained["base"], "steps": trained["steps"],
        "train items": trained["n_train_items"], "final loss": round(trained["final_loss"], 4),
        "training seconds": round(trained["train_seconds"], 1), "device": trained["device"],
        "rank": hyper.get("rank"), "learning rate": hyper.get("lr"), "reused": trained["reused"],
        "adapter sha256": trained["adapter_sha256"][:16] + "…",
    }])


# stage 3: arms -----------------------------------------------------------------------------------------
def choose_api_arm(api_arm: str) -> str:
    """``auto``: a hosted API whose key is set in the environment, else the loopback stand-in."""
    if api_arm != "auto":
        return api_arm
    return next((spec for var, spec in KEYED_DEFAULTS if os.environ.get(var)), STANDIN)


def plan_arms(*, local_model: str, api_arm: str = "auto", api_base_url: str | None = None,
              api_key_env: str | None = None, finetune: dict[str, Any] | None = None,
              concurrency: int = 4) -> list[ArmPlan]:
    """The options to compare: a hosted API (or its stand-in), the local base model, the fine-tune."""
    api = choose_api_arm(api_arm)
    plans: list[ArmPlan] = []
    if api == STANDIN:
        from kit.report.standin import standin_arm_options

        plans.append(ArmPlan(role="api", spec=f"openai:{STANDIN_MODEL}", options=standin_arm_options(),
                             label="Hosted API — stand-in (Gemma 3 270M on a loopback llama.cpp server)",
                             standin=True, hosted=True, pricing_model="gpt-4o-mini"))
    else:
        options: dict[str, Any] = {"concurrency": concurrency}
        if api_base_url:
            options["base_url"] = api_base_url
        if api_key_env:
            options["api_key_env"] = api_key_env
        if api.startswith("openai:mistral") and "base_url" not in options:
            options.update(base_url=MISTRAL_URL, api_key_env=api_key_env or "MISTRAL_API_KEY")
        plans.append(ArmPlan(role="api", spec=api, options=options, label=f"Hosted API ({api})", hosted=True,
                             pricing_model=api.split(":", 1)[1]))
    plans.append(ArmPlan(role="local", spec=f"llama_cpp:{local_model}", label=f"Local base model ({local_model})"))
    if finetune and finetune.get("enabled"):
        plans.append(ArmPlan(role="finetuned", spec=finetune["arm_spec"],
                             options={"lora_sha256": finetune["adapter_sha256"]},
                             label=f"Local fine-tuned ({finetune['base']} + LoRA, {finetune['steps']} steps)"))
    return plans


def plans_table(plans: list[ArmPlan]) -> pd.DataFrame:
    """The options compared, in words, with the one line that switches the stand-in to a real API."""
    rows = [{"role": p.role, "option": p.label, "arm": p.spec,
             "note": f"stand-in for a hosted API; to use a real one: {REAL_API_SWITCH}" if p.standin else ""}
            for p in plans]
    return pd.DataFrame(rows)


@contextlib.contextmanager
def _serving(plans: list[ArmPlan]) -> Iterator[None]:
    """Start the stand-in server for the duration of the runs when a plan needs it."""
    if not any(p.standin for p in plans):
        yield
        return
    from kit.report.standin import standin_server

    with standin_server(STANDIN_MODEL) as url:
        for p in plans:
            if p.standin:
                p.options["base_url"] = url
        yield


def run_stage(*, tasks: list[str], limit: dict[str, int | None] | int | None, plans: list[ArmPlan],
              store: str | None, run_dir: str | Path, privacy_required: bool = False,
              finetune_task: str | None = None) -> pd.DataFrame:
    """Every task through every planned arm (served from the store when already answered)."""
    from kit.arms import get_arm
    from kit.paths import default_store
    from kit.privacy import withhold_pii
    from kit.run.runner import run_arm
    from kit.run.store import Store
    from kit.tasks import load_task

    rows = []
    store_path = str(store or default_store())
    with Store(store_path) as db, _serving(plans):
        for plan in plans:
            with get_arm(plan.spec, **plan.options) as arm:
                plan.label = plan.label or arm.describe()
                for name in tasks:
                    if plan.role == "finetuned" and finetune_task and name != finetune_task:
                        continue
                    task = load_task(name)
                    n = limit.get(name) if isinstance(limit, dict) else limit
                    # the stand-in plays the hosted API, so it obeys the privacy rule as one would
                    hook = withhold_pii(task=task) if privacy_required and plan.hosted else None
                    s = run_arm(task, arm, store=db, limit=n, withhold=hook, progress=True)
                    rows.append({"task": name, "role": plan.role, "arm": plan.spec, "items": s.items,
                                 "new_calls": s.new_calls, "from_store": s.cached, "errors": s.errors,
                                 "withheld": s.withheld, "run_id": s.run_id, "describe": arm.describe()})
    for plan in plans:
        plan.options.pop("base_url", None) if plan.standin else None
    save_json(run_dir, "plans", [asdict(p) for p in plans])
    save_json(run_dir, "store", {"path": store_path})
    table = pd.DataFrame(rows)
    save_table(run_dir, "runs", table)
    return table


def load_plans(run_dir: str | Path) -> list[ArmPlan]:
    return [ArmPlan(**p) for p in load_json(run_dir, "plans")]


def scores_for(task_name: str, run_dir: str | Path) -> pd.DataFrame:
    """The per-item scores of this run's arms on a task (only the items this run evaluated)."""
    from kit.tasks.scoring import score_responses
    from kit.run.store import Store
    from kit.tasks import load_task

    runs = load_table(run_dir, "runs")
    runs = runs[runs["task"] == task_name]
    task = load_task(task_name)
    n = int(runs["items"].max())
    ids = [i.id for i in task.test[:n]]
    with Store(load_json(run_dir, "store")["path"]) as db:
        frame = db.responses(task=task_name, arms=list(runs["arm"]), epoch=0, item_ids=ids)
    return score_responses(task, frame)
