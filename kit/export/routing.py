"""The routing a report's verdict chose, read from its run folder as typed records.

Per task: the recommended option (or the hybrid: its local option, τ and escalation target), the model
identity that answered in the report (GGUF or adapter sha256, API model), the prompt it was measured with
(the chosen variant's messages with a slot for the item's text, its label constraint and length limit), and
the fallback — the reference. Per option: the OpenAI-compatible endpoint that serves it (a hosted API's URL,
or the llama.cpp server command that serves a local GGUF and its LoRA adapter on 127.0.0.1). Which backend
is served how is a registry (:func:`register_serving`), not a chain of ifs.

>>> routing = routing_of(RunFolder("runs/report-x"), endpoints={"SmolLM2 + LoRA": "http://10.0.0.5:8081/v1"})  # doctest: +SKIP
>>> routing.tasks["snips-intents"].option                                                                       # doctest: +SKIP
'SmolLM2 + LoRA ⇢ API'
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kit.arms.registry import backend_of
from kit.columns import Col
from kit.errors import ConfigError
from kit.experiment import Experiment, Option
from kit.export.router import ROUTING_VERSION, SLOT
from kit.pipeline.outputs import hybrids_of
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.pipeline.scores import task_of
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, ShotChoice, build_request
from kit.tasks.types import Item

LOCAL_PORT = 8081  # the first port a locally served option is given (one port per option, in order)


@dataclass(frozen=True)
class Endpoint:
    """Where an option is served: an OpenAI-compatible ``base_url``, the ``model`` name to send, the environment
    variable that holds its key, how answers are constrained (``json_schema``: OpenAI's; ``json_object``:
    llama.cpp's grammar), its model identity, and — for a model served here — the command that serves it."""

    option: str
    base_url: str
    model: str
    structured: str
    third_party: bool
    identity: dict[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None
    serve: str | None = None
    note: str = ""


@dataclass(frozen=True)
class TaskRoute:
    """How one task is answered: ``first`` answers; below ``tau`` (a hybrid) it escalates to ``escalate_to``; on
    an error the ``fallback`` (the reference) answers. ``messages`` carry :data:`SLOT` where the text goes."""

    task: str
    option: str
    first: str
    fallback: str
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    prompt: str
    choices: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None
    tau: float | None = None
    escalate_to: str | None = None
    share_local: float | None = None
    verdict: str = ""
    expect: Expectations | None = None


@dataclass(frozen=True)
class Expectations:
    """What the verdict rested on, for the monitor to re-test: the deployed answers' agreement with the
    reference on the report's test items, the most common answer's share (the floor), the limits and levels."""

    agreement: float | None
    n_items: int
    majority: str | None
    majority_share: float | None
    accuracy: float | None
    latency_target_s: float | None
    margin: float
    alpha: float
    finetuned: bool


@dataclass(frozen=True)
class Routing:
    """Every routed task, the endpoints they use, the share of requests shadowed by the reference, and the tasks
    left unrouted with the reason (no option was recommended, or the prompt cannot be fixed in advance)."""

    run: str
    tasks: dict[str, TaskRoute]
    endpoints: dict[str, Endpoint]
    shadow_share: float
    unrouted: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``routing.json`` that :class:`kit.export.router.Router` reads."""
        return {"kit_routing": ROUTING_VERSION, "run": self.run, "shadow_share": self.shadow_share,
                "log": "requests.jsonl", "shadow_log": "shadow.jsonl",
                "tasks": {name: _plain(asdict(route)) for name, route in self.tasks.items()},
                "endpoints": {name: _plain(asdict(e)) for name, e in self.endpoints.items()},
                "unrouted": dict(self.unrouted)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------------- serving, per backend
Serving = Callable[[Option, str, dict[str, Any], int], Endpoint]
_SERVING: dict[str, Serving] = {}


def register_serving(backend: str, serving: Serving) -> None:
    """How options of ``backend`` are served over OpenAI-compatible HTTP: ``serving(option, spec, identity,
    port)`` gives their :class:`Endpoint` (``port``: a free local port, for a model served here)."""
    _SERVING[backend] = serving


def _hosted(option: Option, spec: str, identity: dict[str, Any], port: int) -> Endpoint:
    """An OpenAI-compatible endpoint as the arm called it (its own URL and key variable)."""
    opts = option.arm_options
    model = spec.partition(":")[2]
    if option.standin:
        return Endpoint(option.name, f"http://127.0.0.1:{port}/v1", model, "json_object", third_party=True,
                        identity=identity, serve=f"kit serve --model {model} --port {port}",
                        note="the report's reference was the stand-in (a local model playing a hosted API): set a "
                             "real API's base_url and key before deploying")
    return Endpoint(option.name, str(opts.get("base_url") or "https://api.openai.com/v1"), model, "json_schema",
                    third_party=not option.self_hosted, identity=identity,
                    api_key_env=str(opts.get("api_key_env") or "OPENAI_API_KEY"))


def _anthropic(option: Option, spec: str, identity: dict[str, Any], port: int) -> Endpoint:
    """Anthropic through its OpenAI SDK compatibility endpoint (no logprobs: no confidence, so no cascade)."""
    return Endpoint(option.name, str(option.arm_options.get("base_url") or "https://api.anthropic.com/v1"),
                    spec.partition(":")[2], "none", third_party=True, identity=identity,
                    api_key_env=str(option.arm_options.get("api_key_env") or "ANTHROPIC_API_KEY"),
                    note="served through Anthropic's OpenAI-compatible endpoint")


def _llama(option: Option, spec: str, identity: dict[str, Any], port: int) -> Endpoint:
    """A GGUF (and its LoRA adapter) in process in the report: served by llama-cpp-python's OpenAI-compatible
    server on 127.0.0.1, with logprobs (``logits_all``) so the cascade's confidence can be read."""
    from kit.arms.lora import parse_lora_spec
    from kit.models import resolve_model
    from kit.models.convert import converted

    name = spec.partition(":")[2]
    adapter = None
    if "+" in name and spec.startswith("lora:"):
        name, adapter = parse_lora_spec(name)
    path = converted(resolve_model(str(name)), option.weights).path  # the weights the report measured
    n_ctx = int(option.arm_options.get("n_ctx", 4096))
    command = (f"python -m llama_cpp.server --model {path} --host 127.0.0.1 --port {port} --n_ctx {n_ctx} "
               f"--logits_all true --model_alias {name}" + (f" --lora_path {adapter}" if adapter else ""))
    return Endpoint(option.name, f"http://127.0.0.1:{port}/v1", str(name), "json_object", third_party=False,
                    identity=identity, serve=command,
                    note="served with llama.cpp's server: its confidence is the label's token probability under "
                         "the grammar, close to but not the same as the in-process score τ was fitted on — the "
                         "monitor compares the share kept local with the report's")


def _replay(option: Option, spec: str, identity: dict[str, Any], port: int) -> Endpoint:
    return Endpoint(option.name, f"http://127.0.0.1:{port}/v1", option.name, "none", third_party=not option.self_hosted,
                    identity=identity, note="recorded outputs cannot answer new requests: give the endpoint "
                                            "that produced them (kit export --endpoint NAME=URL)")


for _backend, _serving in (("openai", _hosted), ("anthropic", _anthropic), ("llama_cpp", _llama), ("lora", _llama),
                           ("replay", _replay)):
    register_serving(_backend, _serving)


# --------------------------------------------------------------------------------- reading the folder
def _identities(folder: RunFolder, task: str) -> dict[str, dict[str, Any]]:
    """Option name -> the model identity its run stored (empty when the store is gone)."""
    from pathlib import Path

    from kit.run.store import Store

    path = folder.doc(Doc.STORE, default={}).get("path")
    if not path or not Path(path).is_file():
        return {}
    with Store(path) as db:
        runs = db.runs(task=task)
    by_id = {row.run_id: row.identity for row in runs.itertuples()}
    return {r.option: json.loads(by_id[r.run_id]) for r in folder.runs(task=task) if r.run_id in by_id}


def _variant(exp: Experiment, option: Option, name: str) -> PromptVariant:
    for v in option.prompts or exp.prompts:
        if v.name == name:
            return v
    return DEFAULT_PROMPT


def routing_of(folder: RunFolder, *, shadow_share: float = 0.1, endpoints: Mapping[str, str] | None = None) -> Routing:
    """The routing the run folder's verdicts chose. ``endpoints``: option name -> base URL, replacing where an
    option is served (a hosted API's gateway, your GPU box). ``shadow_share``: the share of requests the router
    also sends to the reference, for the monitor."""
    if not 0.0 <= shadow_share <= 1.0:
        raise ConfigError(f"shadow share {shadow_share} is not a share", where="kit export",
                          fix="give --shadow-share a number from 0 to 1 (e.g. 0.1)")
    exp = folder.experiment()
    given = dict(endpoints or {})
    unknown = sorted(set(given) - {o.name for o in exp.options})
    if unknown:
        raise ConfigError(f"--endpoint names no option of this run: {unknown}", where=str(folder.path),
                          fix=f"use an option's name: {[o.name for o in exp.options]}")
    tasks, used, unrouted = {}, {}, {}
    for name in folder.tasks():
        decision = folder.doc(Doc.DECISION, task=name)
        pick = decision.get("recommended")
        if pick is None:
            unrouted[name] = f"no option was recommended: {decision.get('verdict', '')}"
            continue
        hybrid = next((h for h in hybrids_of(folder, name) if h.hybrid.name == pick), None)
        first = str(hybrid.hybrid.first) if hybrid else pick
        task = task_of(folder.experiment(), name)
        record = next((r for r in folder.runs(task=name) if r.option == first), None)
        variant = _variant(exp, exp.option(first), record.prompt if record else "default")
        if variant.shot_choice is ShotChoice.SIMILAR and (variant.shots or task.shots):
            unrouted[name] = (f"{first}'s prompt ({variant.name}) picks its shots per item from the train split: "
                              "it cannot be written down once; route it with the kit, or choose a fixed-shot prompt")
            continue
        request = build_request(task, Item(id="slot", text=SLOT, gold=None), variant=variant,
                                max_tokens=task.type.max_tokens or exp.max_tokens)
        tasks[name] = TaskRoute(
            task=name, option=pick, first=first, fallback=exp.reference_name, messages=request.messages,
            max_tokens=request.max_tokens, prompt=variant.name, choices=request.choices,
            json_schema=request.json_schema, tau=hybrid.hybrid.tau if hybrid else None,
            escalate_to=str(hybrid.hybrid.escalate_to) if hybrid else None,
            share_local=hybrid.choice.share_local if hybrid else None, verdict=str(decision.get("verdict", "")),
            expect=_expectations(folder, name, pick=pick, first=first))
        identities = _identities(folder, name)
        for option in {first, exp.reference_name, *([str(hybrid.hybrid.escalate_to)] if hybrid else [])}:
            if option not in used:
                used[option] = (name, identities.get(option, {}))
    served: dict[str, Endpoint] = {}
    for port, (option_name, (task_name, identity)) in enumerate(sorted(used.items()), start=LOCAL_PORT):
        option = exp.option(option_name)
        spec = _spec(folder, option, task_name)
        serving = _SERVING.get(backend_of(spec).name)
        if serving is None:
            raise ConfigError(f"no way to serve {option_name} ({spec}) over HTTP is registered", where="kit export",
                              fix="give its endpoint: kit export RUN --endpoint 'NAME=http://HOST:PORT/v1'")
        if not identity:  # the store is gone: what the run folder recorded of the arm
            record = next((r for r in folder.runs(task=task_name) if r.option == option_name), None)
            identity = {"arm": spec, **({"describe": record.describe} if record else {})}
        endpoint = serving(option, spec, identity, port)
        if option_name in given:
            endpoint = Endpoint(**{**asdict(endpoint), "base_url": given[option_name], "serve": None})
        served[option_name] = endpoint
    return Routing(run=str(folder.path), tasks=tasks, endpoints=served, shadow_share=shadow_share, unrouted=unrouted)


def _expectations(folder: RunFolder, task: str, *, pick: str, first: str) -> Expectations:
    """The figures the monitor compares each window with: from the report's scores, and the task's train split."""
    exp = folder.experiment()
    scores = folder.table(Table.SCORES, task=task)
    scores = scores[scores[Col.EPOCH] == scores[Col.EPOCH].min()] if not scores.empty else scores
    deployed = pick if pick in set(scores[Col.OPTION]) else first
    answers = scores[scores[Col.ERROR].isna()].set_index([Col.OPTION, Col.ITEM_ID])[Col.ANSWER].astype(str)
    agreement, n = None, 0
    if deployed != exp.reference_name and not scores.empty:
        mine, ref = answers.xs(deployed, level=0), answers.xs(exp.reference_name, level=0)
        common = mine.index.intersection(ref.index)
        n = len(common)
        agreement = float((mine.loc[common] == ref.loc[common]).mean()) if n else None
    # the floor: the most common label of the train split (the majority-class baseline), where answers are labels
    t = task_of(folder.experiment(), task)
    golds = [i.gold for i in t.train] if t.labelled else []
    majority = Counter(golds).most_common(1)[0][0] if golds and all(isinstance(g, str) for g in golds) else None
    share = sum(i.gold == majority for i in t.test) / len(t.test) if majority is not None and t.test else None
    mine_scores = scores[scores[Col.OPTION] == deployed]
    accuracy = float(mine_scores[Col.CORRECT].astype(float).mean()) if not mine_scores.empty and \
        mine_scores[Col.CORRECT].notna().all() else None
    return Expectations(agreement=agreement, n_items=n, majority=majority, majority_share=share, accuracy=accuracy,
                        latency_target_s=exp.latency_target_s, margin=exp.margin, alpha=exp.alpha,
                        finetuned=exp.option(first).finetune is not None)


def _spec(folder: RunFolder, option: Option, task: str) -> str:
    """The arm spec that answered for ``option`` (a fine-tune's trained adapter, the stand-in's model)."""
    record = next((r for r in folder.runs(task=task) if r.option == option.name), None)
    if record is not None:
        return record.arm
    if option.arm is None:
        raise ConfigError(f"{option.name} did not answer {task} in this run", where=str(folder.path),
                          fix="export a run folder whose answer stage finished")
    return str(option.arm)
