"""What the decision report shows: the headline, key numbers, options, examples, caveats, manifest.

Every string that comes from data (model output, item text, names) reaches the page through a pandas
table, which escapes it, or through :func:`esc` — never as raw HTML. A ``<script>`` in a model's answer
is shown as text and never runs.

>>> esc("<script>alert(1)</script>")
'&lt;script&gt;alert(1)&lt;/script&gt;'
"""

from __future__ import annotations

import html
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from kit import __version__
from kit.report.analysis import OPTION_OF_ROLE, run_tasks
from kit.report.stages import load_json, load_plans, load_table, scores_for

PACKAGES = ("llama-cpp-python", "numpy", "pandas", "scipy", "statsmodels", "papermill", "nbconvert", "openai",
            "anthropic", "huggingface_hub", "genai-prices", "torch", "transformers", "peft")


def esc(text: Any) -> str:
    """Text made safe for Markdown/HTML: ``<``, ``>``, ``&`` and quotes escaped, Markdown stars neutral."""
    return html.escape(str(text)).replace("*", "&#42;").replace("_", "&#95;")


def headline(run_dir: str | Path) -> str:
    """The verdict per task, as Markdown: the recommended option, then its one-sentence verdict."""
    lines = []
    for name in run_tasks(run_dir):
        d = load_json(run_dir, f"decision_{name}")
        lines.append(f"### {esc(name)}: **{esc(d['recommended'])}**\n\n{esc(d['verdict'])}\n")
    return "\n".join(lines)


def key_numbers(run_dir: str | Path) -> pd.DataFrame:
    """Per task and option: quality with CI, the paired conclusion, monthly cost and p95 latency."""
    roles = {p.spec: OPTION_OF_ROLE[p.role] for p in load_plans(run_dir)}
    rows = []
    for name in run_tasks(run_dir):
        metrics = load_table(run_dir, f"metrics_{name}").set_index("arm")
        compare = load_table(run_dir, f"compare_{name}").set_index("arm")
        costs = load_table(run_dir, f"costs_{name}").set_index("option")
        latency = load_table(run_dir, f"latency_{name}").set_index("arm")
        for arm, m in metrics.iterrows():
            option = roles.get(arm, arm)
            rows.append({
                "task": name, "option": option, "quality": f"{m['mean_score']:.1%}",
                "95% CI": f"{m['score_ci_low']:.1%} – {m['score_ci_high']:.1%}", "items": int(m["n_items"]),
                "vs API": compare.loc[arm, "conclusion_adjusted"] if arm in compare.index else "reference",
                "USD / month": f"{costs.loc[option, 'monthly_cost']:,.0f}" if option in costs.index else "",
                "p95 latency (s)": f"{latency.loc[arm, 'p95_s']:.2f}" if arm in latency.index else "",
            })
        choice = load_json(run_dir, f"cascade_choice_{name}")
        if choice.get("tau") is not None:
            rows.append({"task": name, "option": f"hybrid (τ={choice['tau']:.2f}, {choice['share_local']:.0%} local)",
                         "quality": f"{choice['accuracy']:.1%}",
                         "95% CI": f"{choice['ci_low']:.1%} – {choice['ci_high']:.1%}", "items": "",
                         "vs API": choice["conclusion"], "USD / month": f"{choice['monthly_cost']:,.0f}",
                         "p95 latency (s)": f"{choice['p95_latency_s']:.2f}"})
    return pd.DataFrame(rows)


def options_table(run_dir: str | Path) -> pd.DataFrame:
    """The options compared and how they ran: model, quantisation and sha256, or the API and its endpoint."""
    runs = load_table(run_dir, "runs").drop_duplicates("arm").set_index("arm")
    models = load_table(run_dir, "models").set_index("model")
    rows = []
    for plan in load_plans(run_dir):
        model = plan.spec.split(":", 1)[1].split("+")[0]
        info = models.loc[model] if model in models.index else None
        rows.append({"option": OPTION_OF_ROLE[plan.role], "arm": plan.spec,
                     "how it ran": runs.loc[plan.spec, "describe"] if plan.spec in runs.index else "not run",
                     "quantisation": info["quantisation"] if info is not None and not plan.standin else "",
                     "sha256": info["sha256"] if info is not None else ""})
    return pd.DataFrame(rows)


def examples_table(run_dir: str | Path, *, task: str, n: int = 8) -> pd.DataFrame:
    """A few items with every option's raw output, items where the options disagree first."""
    from kit.tasks import load_task

    scores = scores_for(task, run_dir)
    from kit.run.store import Store

    with Store(load_json(run_dir, "store")["path"]) as db:
        raw = db.responses(task=task, arms=list(scores["arm"].unique()), epoch=0)
    outputs = raw.pivot_table(index="item_id", columns="arm", values="output", aggfunc="first")
    correct = scores.pivot_table(index="item_id", columns="arm", values="correct", aggfunc="first")
    order = correct.astype(float).std(axis=1).sort_values(ascending=False).index[:n]
    t = load_task(task)
    rows = []
    for item_id in order:
        item = t.item(item_id)
        row = {"item": item_id, "text": _clip(item.text, 160), "gold": _clip(t.type.render(item.gold), 80)}
        for arm in outputs.columns:
            row[f"{arm[:40]}"] = _clip(outputs.loc[item_id, arm], 80) + (" ✓" if correct.loc[item_id, arm] else " ✗")
        rows.append(row)
    return pd.DataFrame(rows)


def _clip(text: Any, n: int) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def caveats(run_dir: str | Path) -> list[str]:
    seen: dict[str, None] = {}
    for name in run_tasks(run_dir):
        for c in load_json(run_dir, f"decision_{name}")["caveats"]:
            seen.setdefault(c)
    return list(seen)


def caveats_markdown(run_dir: str | Path) -> str:
    return "\n".join(f"- {esc(c)}" for c in caveats(run_dir)) or "- none"


def manifest(run_dir: str | Path) -> pd.DataFrame:
    """What exactly ran: commit, versions, model hashes, parameters, hardware, run ids, timestamps."""
    hw = load_json(run_dir, "hardware")
    runs = load_table(run_dir, "runs")
    rows: list[tuple[str, Any]] = [("kit version", __version__), ("git commit", _git_commit()),
                                   ("python", platform.python_version()), ("os", platform.platform())]
    rows += [(f"package {p}", _version(p)) for p in PACKAGES]
    rows += [(f"model {m['model']} sha256", m["sha256"]) for m in load_table(run_dir, "models").to_dict("records")]
    tuned = load_json(run_dir, "finetune", {"enabled": False})
    if tuned.get("enabled"):
        rows.append(("LoRA adapter sha256", tuned["adapter_sha256"]))
        rows.append(("LoRA training seconds", round(tuned["train_seconds"], 1)))
    rows += [(f"parameter {k}", v) for k, v in sorted(_params(run_dir).items())]
    rows += [("cpu", f"{hw['cpu'].get('model')} ({hw['cpu'].get('logical_cores')} cores)"),
             ("ram GB", round(hw["ram_bytes"] / 1e9, 1)), ("gpus", ", ".join(g.get("name", "?") for g in hw["gpus"])
                                                          or "none"),
             ("llama.cpp system info", hw["llama_cpp"].get("system_info", ""))]
    rows += [(f"run {r['task']} · {r['arm']}", r["run_id"]) for r in runs.to_dict("records")]
    rows.append(("report folder", Path(run_dir).name))
    return pd.DataFrame(rows, columns=["what", "value"]).astype({"value": str})


def _params(run_dir: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(run_dir) / "params.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data.pop("run_dir", None)
    return data


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    from kit.paths import project_root

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root(),
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() or "unknown") + (" (with local changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
