"""The experiment: which tasks, one reference option and any number of candidates, and the user's constraints.

An experiment is a YAML file (``notebooks/params/*.yaml``; ``kit report --experiment FILE``) whose keys are
also the notebooks' parameters. Every option is a typed record: a short name used in every table and plot,
what answers (an arm spec, or a fine-tune to train), where it runs — declared, never guessed from an
address — and what it costs (a hosted price, or a machine for self-hosted options). The whole experiment is
checked before any model is called; every problem names the file, the option and the fix.

>>> exp = Experiment.from_mapping(yaml.safe_load(EXAMPLE), source="example")
>>> [(o.name, o.where.value) for o in exp.options]
[('API', 'third-party'), ('SmolLM2', 'self-hosted')]
>>> exp.reference.name
'API'
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from kit.arms.base import backend_of
from kit.arms.standin import STANDIN_MODEL
from kit.errors import ConfigError

EXAMPLE = """
tasks: {snips-intents: 20}
reference: API
options:
  - {name: API, arm: standin, price: {model: gpt-4o-mini}}
  - {name: SmolLM2, arm: "llama_cpp:smollm2-135m-instruct", machine: cpu}
machines:
  cpu: {price_per_hour: 0.2, utilisation: 0.6}
"""

AUTO, STANDIN = "auto", "standin"
# `arm: auto` picks the first hosted API whose key is in the environment, else the stand-in.
KEYED_DEFAULTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("OPENAI_API_KEY", "openai:gpt-4o-mini", {}),
    ("ANTHROPIC_API_KEY", "anthropic:claude-3-5-haiku-latest", {}),
    ("MISTRAL_API_KEY", "openai:mistral-small-latest",
     {"base_url": "https://api.mistral.ai/v1", "api_key_env": "MISTRAL_API_KEY"}),
)
MAX_NAME = 32


class Where(str, Enum):
    """Where an option runs. Third-party: data leaves the organisation (the privacy rule applies)."""

    THIRD_PARTY = "third-party"
    SELF_HOSTED = "self-hosted"


@dataclass(frozen=True)
class Machine:
    """What a self-hosted option runs on and costs: USD per hour, the share of paid hours spent answering,
    whether it is paid around the clock, and people's time to set it up and run it."""

    name: str
    price_per_hour: float
    utilisation: float = 0.6
    always_on: bool = False
    setup_hours: float = 0.0
    ops_hours_per_month: float = 0.0
    description: str = ""


@dataclass(frozen=True)
class HostedPrice:
    """How a third-party option is billed: a genai-prices model id, or USD per million tokens."""

    model: str | None = None
    input_per_m: float | None = None
    output_per_m: float | None = None
    cached_share: float = 0.0

    def describe(self) -> str:
        if self.input_per_m is not None:
            return f"${self.input_per_m:g} / ${self.output_per_m:g} per million tokens (given)"
        return f"priced as {self.model} (genai-prices)"


@dataclass(frozen=True)
class FinetuneSpec:
    """A LoRA fine-tune of ``base``, trained per task on that task's train split."""

    base: str
    steps: int = 40
    rank: int = 8
    tasks: tuple[str, ...] | None = None  # None: every task of the experiment that has a train split


@dataclass(frozen=True)
class Option:
    """One way of answering the tasks. ``arm`` is None for a fine-tune (its arm exists once trained)."""

    name: str
    where: Where
    arm: str | None = None
    arm_options: Mapping[str, Any] = field(default_factory=dict)
    price: HostedPrice | None = None
    machine: Machine | None = None
    finetune: FinetuneSpec | None = None
    standin: bool = False
    description: str = ""

    @property
    def self_hosted(self) -> bool:
        return self.where is Where.SELF_HOSTED

    def applies_to(self, task: str) -> bool:
        """Whether the option answers ``task`` (a fine-tune answers the tasks it was trained for)."""
        return self.finetune is None or self.finetune.tasks is None or task in self.finetune.tasks

    def what(self) -> str:
        """What answers, in words, e.g. ``llama_cpp:mistral-7b-instruct-v0.3:Q4_K_M`` or ``LoRA on smollm2``."""
        if self.finetune is not None:
            return f"LoRA fine-tune of {self.finetune.base} ({self.finetune.steps} steps, rank {self.finetune.rank})"
        if self.standin:
            return f"stand-in: {STANDIN_MODEL} on a loopback llama.cpp server"
        return str(self.arm)


@dataclass(frozen=True)
class Experiment:
    """Tasks (name -> item limit), the options, the reference's name, and the decision's parameters."""

    tasks: Mapping[str, int | None]
    options: tuple[Option, ...]
    reference_name: str
    source: str = "experiment"
    ignore_labels: bool = False
    margin: float = 0.02
    alpha: float = 0.05
    agreement_target: float = 0.95
    cost_per_error: float | None = None
    monthly_volume: float = 100_000
    latency_target_s: float | None = None
    budget_per_month: float | None = None
    ops_capacity: float | None = None
    privacy_required: bool = False
    data_residency: bool = False
    hourly_rate: float = 100.0
    horizon_months: float = 12.0
    max_tokens: int = 256
    store: str | None = None
    judge: str | None = None
    sweep: Mapping[str, Any] | None = None

    @property
    def reference(self) -> Option:
        return self.option(self.reference_name)

    @property
    def candidates(self) -> tuple[Option, ...]:
        return tuple(o for o in self.options if o.name != self.reference_name)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise ConfigError(f"no option named '{name}'", where=self.source,
                          fix=f"use one of {[o.name for o in self.options]}")

    def options_for(self, task: str) -> tuple[Option, ...]:
        return tuple(o for o in self.options if o.applies_to(task))

    # reading ---------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> Experiment:
        """Read an experiment file, apply ``overrides`` (top-level keys) and check it."""
        return cls.from_mapping(read_experiment_file(path, overrides=overrides), source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "experiment") -> Experiment:
        """Build and check an experiment from its keys (a YAML mapping, or a notebook's parameters)."""
        known = {f.name for f in fields(cls)} - {"options", "reference_name", "source"}
        known |= {"options", "reference", "machines", "run_dir"}
        unknown = sorted(set(data) - known)
        if unknown:
            hints = [f"'{k}' → '{m[0]}'?" for k in unknown for m in [difflib.get_close_matches(k, known, n=1)] if m]
            raise ConfigError(f"unknown keys {unknown}", where=source,
                              fix=" ".join(hints) or f"the keys are: {', '.join(sorted(known))}")
        machines = _machines(data.get("machines"), source)
        raw_options = data.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            raise ConfigError("`options:` must list at least one option", where=source,
                              fix="see README, 'Experiments': each option has a name and an arm (or a fine-tune)")
        options = tuple(_option(o, i, machines, source) for i, o in enumerate(raw_options))
        names = [o.name for o in options]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"two options share the name {dup[0]!r}", where=source,
                              fix="give every option its own short name")
        ref = data.get("reference")
        if not ref:
            raise ConfigError("no `reference:` option", where=source,
                              fix=f"name the option every candidate is tested against, e.g. reference: {names[0]}")
        if ref not in names:
            near = difflib.get_close_matches(str(ref), names, n=1)
            raise ConfigError(f"the reference {ref!r} is not one of the options", where=source,
                              fix=(f"did you mean {near[0]!r}? " if near else "") + f"options: {names}")
        scalars = {k: data[k] for k in known - {"options", "reference", "machines", "run_dir", "tasks"} if k in data}
        exp = cls(tasks=_tasks(data.get("tasks"), source), options=options, reference_name=str(ref), source=source,
                  **{k: _scalar(k, v, source) for k, v in scalars.items()})
        exp.check_values()
        return exp

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], *, source: str = "notebook parameters") -> Experiment:
        """The experiment a notebook's parameters describe: the known keys of ``namespace`` (``globals()``)."""
        keys = {f.name for f in fields(cls)} - {"options", "reference_name", "source"} | {"options", "reference",
                                                                                            "machines"}
        return cls.from_mapping({k: v for k, v in namespace.items() if k in keys}, source=source)

    def check_values(self) -> None:
        where = self.source
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"alpha={self.alpha} is out of range", where=where, fix="use e.g. alpha: 0.05")
        if not 0 <= self.margin < 1:
            raise ConfigError(f"margin={self.margin} is out of range", where=where, fix="use e.g. margin: 0.02 (2 points)")
        if not 0 < self.agreement_target <= 1:
            raise ConfigError(f"agreement_target={self.agreement_target} is out of range", where=where,
                              fix="use a share, e.g. agreement_target: 0.95")
        if self.monthly_volume <= 0:
            raise ConfigError("monthly_volume must be above zero", where=where, fix="give items per month, e.g. 100000")
        if self.cost_per_error is not None and self.cost_per_error < 0:
            raise ConfigError("cost_per_error must be zero or more", where=where,
                              fix="give USD per wrong answer, or leave it empty")

    # resolving -----------------------------------------------------------------------------------------
    def resolved(self) -> Experiment:
        """``arm: auto`` replaced by what it means on this machine (a hosted API whose key is set, else the
        stand-in): the experiment as it will run."""
        return replace(self, options=tuple(_resolve_auto(o) for o in self.options))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["options"] = [{**asdict(o), "where": o.where.value} for o in self.options]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """The inverse of :meth:`to_dict` (the run folder's copy)."""
        options = []
        for o in data["options"]:
            o = dict(o)
            o["where"] = Where(o["where"])
            o["price"] = HostedPrice(**o["price"]) if o.get("price") else None
            o["machine"] = Machine(**o["machine"]) if o.get("machine") else None
            if o.get("finetune"):
                ft = dict(o["finetune"])
                ft["tasks"] = tuple(ft["tasks"]) if ft.get("tasks") is not None else None
                o["finetune"] = FinetuneSpec(**ft)
            options.append(Option(**o))
        rest = {k: v for k, v in data.items() if k != "options"}
        return cls(options=tuple(options), **rest)


def read_experiment_file(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment file's keys with ``overrides`` on top; a clear error for a missing or broken file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("experiment file not found", where=str(path),
                          fix="pass an existing YAML file, e.g. notebooks/params/default.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", where=str(path), fix="correct the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError("an experiment file must be a YAML mapping", where=str(path), fix="write KEY: VALUE lines")
    return {**data, **(overrides or {})}


# ------------------------------------------------------------------------------------------- pieces
_FLOATS = ("margin", "alpha", "agreement_target", "cost_per_error", "monthly_volume", "latency_target_s",
           "budget_per_month", "ops_capacity", "hourly_rate", "horizon_months")
_EXAMPLES = {"margin": 0.02, "alpha": 0.05, "agreement_target": 0.95, "monthly_volume": 100000,
             "latency_target_s": 2.0, "budget_per_month": 500, "hourly_rate": 100, "horizon_months": 12}
_OPTIONAL = ("cost_per_error", "latency_target_s", "budget_per_month", "ops_capacity", "store", "judge", "sweep")


def _scalar(key: str, value: Any, source: str) -> Any:
    if value in (None, "") and key in _OPTIONAL:
        return None
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}:` must be a number, got {value!r}", where=source,
                              fix=f"write a number, e.g. {key}: {_EXAMPLES.get(key, 1)}")
        return float(value)
    if key in ("privacy_required", "data_residency", "ignore_labels"):
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}:` must be true or false, got {value!r}", where=source, fix=f"write {key}: true")
        return value
    if key == "max_tokens":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`max_tokens:` must be a whole number, got {value!r}", where=source,
                              fix="write e.g. max_tokens: 256")
        return value
    if key == "sweep":
        known = {"tasks", "levels", "items", "max_seconds"}
        if not isinstance(value, Mapping) or set(value) - known:
            raise ConfigError(f"`sweep:` must be a mapping of {sorted(known)}, got {value!r}", where=source,
                              fix="write e.g. sweep: {tasks: [snips-intents], levels: [1, 2, 4, 8], items: 24}, "
                                  "or leave it out")
        levels = value.get("levels", [1, 2, 4, 8])
        if not isinstance(levels, list) or not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                              for v in levels):
            raise ConfigError(f"sweep.levels must list load levels of at least 1, got {levels!r}", where=source,
                              fix="write e.g. levels: [1, 2, 4, 8]")
        return dict(value)
    return str(value)


def _tasks(value: Any, source: str) -> dict[str, int | None]:
    if isinstance(value, list):
        value = {str(t): None for t in value}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"`tasks:` must name at least one task, got {value!r}", where=source,
                          fix="write e.g. tasks: {snips-intents: 100} (task name: test items; null = all)")
    out: dict[str, int | None] = {}
    for name, limit in value.items():
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"task {name!r}: item limit {limit!r} is not a whole number of at least 1",
                              where=source, fix=f"write {name}: 100, or {name}: null for the whole test split")
        out[str(name)] = limit
    return out


def _machines(value: Any, source: str) -> dict[str, Machine]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("`machines:` must map machine names to their costs", where=source,
                          fix="write e.g. machines: {l4: {price_per_hour: 0.8, utilisation: 0.6}}")
    return {str(k): _machine(str(k), v, source) for k, v in value.items()}


def _machine(name: str, value: Any, source: str) -> Machine:
    where = f"{source}: machine {name!r}"
    if not isinstance(value, Mapping) or "price_per_hour" not in value:
        raise ConfigError("a machine needs at least `price_per_hour`", where=where,
                          fix="write e.g. {price_per_hour: 0.8, utilisation: 0.6, always_on: false}")
    known = {f.name for f in fields(Machine)} - {"name"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"unknown machine keys {unknown}", where=where, fix=f"use {sorted(known)}")
    try:
        machine = Machine(name=name, **{k: (v if k in ("always_on", "description") else float(v))
                                        for k, v in value.items()})
    except (TypeError, ValueError):
        raise ConfigError(f"machine values must be numbers: {dict(value)}", where=where,
                          fix="write prices and hours as numbers, always_on as true/false") from None
    if machine.price_per_hour < 0 or not 0 < machine.utilisation <= 1 or machine.setup_hours < 0 \
            or machine.ops_hours_per_month < 0:
        raise ConfigError("price and hours must be >= 0 and utilisation in (0, 1]", where=where,
                          fix="e.g. price_per_hour: 0.8, utilisation: 0.6")
    return machine


_OPTION_KEYS = frozenset({"name", "arm", "options", "runs", "price", "machine", "finetune", "description"})


def _option(value: Any, index: int, machines: Mapping[str, Machine], source: str) -> Option:
    if not isinstance(value, Mapping):
        raise ConfigError(f"option {index + 1} is not a mapping", where=source,
                          fix="write each option as {name: ..., arm: ...}")
    name = str(value.get("name") or "").strip()
    where = f"{source}: option {name or index + 1!r}"
    if not name:
        raise ConfigError("an option has no name", where=where,
                          fix="give it a short name used in every table, e.g. name: Mistral 7B Q4")
    if len(name) > MAX_NAME:
        raise ConfigError(f"the name {name!r} is longer than {MAX_NAME} characters", where=where,
                          fix="use a short name (tables and plots show it); put details in `description:`")
    unknown = sorted(set(value) - _OPTION_KEYS)
    if unknown:
        raise ConfigError(f"unknown option keys {unknown}", where=where, fix=f"use {sorted(_OPTION_KEYS)}")
    arm, finetune = value.get("arm"), value.get("finetune")
    if (arm is None) == (finetune is None):
        raise ConfigError("an option needs exactly one of `arm:` or `finetune:`", where=where,
                          fix="arm: llama_cpp:MODEL (or openai:MODEL, standin, auto), or finetune: {base: MODEL}")
    arm_options = value.get("options") or {}
    if not isinstance(arm_options, Mapping):
        raise ConfigError("`options:` must be a mapping of arm options", where=where,
                          fix="write e.g. options: {n_ctx: 4096} or {base_url: http://10.0.0.5:8000/v1}")
    ft = _finetune(finetune, where) if finetune is not None else None
    backend = "lora" if ft else str(arm).partition(":")[0]
    standin = arm == STANDIN
    if ft is None and arm not in (AUTO, STANDIN):
        _check_backend(str(arm), where)
    where_runs = _where(value.get("runs"), backend, arm, where)
    price = machine = None
    if where_runs is Where.THIRD_PARTY:
        price = _price(value.get("price"), arm, where)
        if value.get("machine") is not None:
            raise ConfigError("a third-party option is billed per token, not by machine", where=where,
                              fix="drop `machine:`, or declare `runs: self-hosted` if you run it yourself")
    else:
        machine = _machine_of(value.get("machine"), machines, where)
    return Option(name=name, where=where_runs, arm=None if ft else str(arm), arm_options=dict(arm_options),
                  price=price, machine=machine, finetune=ft, standin=standin,
                  description=str(value.get("description") or ""))


def _check_backend(spec: str, where: str) -> None:
    from kit.arms import registered_backends

    backend, sep, name = spec.partition(":")
    known = registered_backends()
    if not sep or not name:
        raise ConfigError(f"arm {spec!r} has no backend prefix", where=where,
                          fix=f"write BACKEND:MODEL with BACKEND one of {known}, or standin / auto")
    if backend not in known:
        near = difflib.get_close_matches(backend, known, n=1)
        raise ConfigError(f"unknown arm backend {backend!r}", where=where,
                          fix=(f"did you mean '{near[0]}:{name}'? " if near else "") + f"known backends: {known}")


def _where(value: Any, backend: str, arm: Any, where: str) -> Where:
    if arm in (AUTO, STANDIN):
        if value not in (None, Where.THIRD_PARTY.value):
            raise ConfigError(f"`{arm}` plays a hosted API: it runs third-party", where=where, fix="drop `runs:`")
        return Where.THIRD_PARTY
    if backend_of(f"{backend}:_").in_process:
        if value not in (None, Where.SELF_HOSTED.value):
            raise ConfigError(f"a {backend} option runs in this process: it is self-hosted", where=where,
                              fix="drop `runs:` or write runs: self-hosted")
        return Where.SELF_HOSTED
    if value is None:
        raise ConfigError("where this option runs is not declared", where=where,
                          fix="add runs: third-party (data leaves your organisation: hosted APIs) or runs: "
                              "self-hosted (your own server: vLLM, llama-server, Ollama, recorded outputs of one)")
    try:
        return Where(str(value))
    except ValueError:
        raise ConfigError(f"runs: {value!r} is neither third-party nor self-hosted", where=where,
                          fix="write runs: third-party or runs: self-hosted") from None


def _price(value: Any, arm: Any, where: str) -> HostedPrice:
    from kit.economics import model_price

    if value is None:
        model = None if arm in (AUTO, STANDIN) else str(arm).partition(":")[2]
        if arm == AUTO:
            return HostedPrice(model=None)  # resolved with the arm (see _resolve_auto)
        if model is None or model_price(model) is None:
            raise ConfigError(f"no price is known for {model or arm!r}", where=where,
                              fix="add price: {model: GENAI_PRICES_ID} (e.g. gpt-4o-mini) or price: "
                                  "{input_per_m: 0.15, output_per_m: 0.60} in USD per million tokens")
        return HostedPrice(model=model)
    if not isinstance(value, Mapping):
        raise ConfigError(f"`price:` must be a mapping, got {value!r}", where=where,
                          fix="write price: {model: gpt-4o-mini} or {input_per_m: 0.15, output_per_m: 0.60}")
    unknown = sorted(set(value) - {f.name for f in fields(HostedPrice)})
    if unknown:
        raise ConfigError(f"unknown price keys {unknown}", where=where,
                          fix="use model, or input_per_m and output_per_m (USD per million tokens), cached_share")
    if value.get("input_per_m") is not None or value.get("output_per_m") is not None:
        try:
            price = HostedPrice(input_per_m=float(value["input_per_m"]), output_per_m=float(value["output_per_m"]),
                                cached_share=float(value.get("cached_share", 0.0)))
        except (KeyError, TypeError, ValueError):
            raise ConfigError("give both input_per_m and output_per_m as numbers", where=where,
                              fix="write price: {input_per_m: 0.15, output_per_m: 0.60}") from None
        if price.input_per_m < 0 or price.output_per_m < 0:
            raise ConfigError("prices must be >= 0", where=where, fix="write USD per million tokens")
        return price
    model = str(value.get("model") or "")
    if not model or model_price(model) is None:
        raise ConfigError(f"genai-prices does not know the model {model!r}", where=where,
                          fix="check the id with `kit price MODEL`, or give input_per_m and output_per_m")
    return HostedPrice(model=model, cached_share=float(value.get("cached_share", 0.0)))


def _machine_of(value: Any, machines: Mapping[str, Machine], where: str) -> Machine:
    if value is None:
        raise ConfigError("a self-hosted option needs a machine price", where=where,
                          fix="add machine: NAME (a key of `machines:`) or machine: {price_per_hour: 0.8}")
    if isinstance(value, Mapping):
        return _machine("inline", value, where)
    if str(value) not in machines:
        near = difflib.get_close_matches(str(value), list(machines), n=1)
        raise ConfigError(f"no machine named {value!r}", where=where,
                          fix=(f"did you mean {near[0]!r}? " if near else "") + f"machines: {sorted(machines)}")
    return machines[str(value)]


def _finetune(value: Any, where: str) -> FinetuneSpec:
    if not isinstance(value, Mapping) or not value.get("base"):
        raise ConfigError("`finetune:` needs at least a base model", where=where,
                          fix="write finetune: {base: smollm2-135m-instruct, steps: 40}")
    unknown = sorted(set(value) - {f.name for f in fields(FinetuneSpec)})
    if unknown:
        raise ConfigError(f"unknown finetune keys {unknown}", where=where, fix="use base, steps, rank, tasks")
    tasks = value.get("tasks")
    if tasks is not None and (not isinstance(tasks, list) or not tasks):
        raise ConfigError("finetune.tasks must list task names", where=where, fix="write tasks: [snips-intents]")
    steps, rank = value.get("steps", 40), value.get("rank", 8)
    for key, number in (("steps", steps), ("rank", rank)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ConfigError(f"finetune.{key} must be a whole number of at least 1, got {number!r}", where=where,
                              fix=f"write {key}: {40 if key == 'steps' else 8}")
    return FinetuneSpec(base=str(value["base"]), steps=steps, rank=rank,
                        tasks=tuple(map(str, tasks)) if tasks is not None else None)


def _resolve_auto(option: Option) -> Option:
    if option.arm != AUTO:
        return option
    for variable, spec, arm_options in KEYED_DEFAULTS:
        if os.environ.get(variable):
            price = option.price if option.price and option.price.model else HostedPrice(model=spec.partition(":")[2])
            return replace(option, arm=spec, arm_options={**arm_options, **option.arm_options}, price=price)
    price = option.price if option.price and (option.price.model or option.price.input_per_m is not None) \
        else HostedPrice(model="gpt-4o-mini")
    return replace(option, arm=STANDIN, standin=True, price=price)
