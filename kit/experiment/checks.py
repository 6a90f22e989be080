"""The checked experiment: the checks that relate keys to each other and to the arm registry (names unique,
the reference and judge among the options, where each option runs, its price or machine, its arm's options),
and the typed records they give — :class:`Option` and :class:`Experiment`.

>>> exp = Experiment.from_mapping(yaml.safe_load(EXAMPLE), source="example")
>>> exp.reference.name, exp.option("SmolLM2").where.value
('API', 'self-hosted')
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml  # noqa: F401  (the example above)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kit.arms.registry import backend_of, check_options
from kit.arms.standin import STANDIN_MODEL, standin_arm_options
from kit.errors import ArmError, ConfigError, KitError
from kit.experiment.load import plain_default, read_mapping
from kit.experiment.messages import config_error
from kit.experiment.schema import (AUTO, EXAMPLE, FINETUNE_BACKEND, KEYED_DEFAULTS, STANDIN,  # noqa: F401 (example)
                                   ExperimentFile, FinetuneSpec, HostedPrice, Machine, MachineSpec, OptionSpec,
                                   Parameters, Scope, Where)
from kit.models.convert import WeightType, resolve_weights
from kit.tasks.prompts import PromptVariant


class Option(BaseModel):
    """One way of answering the tasks. ``arm`` is None for a fine-tune (its arm exists once trained)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    where: Where
    arm: str | None = None
    arm_options: dict[str, Any] = Field(default_factory=dict)
    price: HostedPrice | None = None
    machine: Machine | None = None
    finetune: FinetuneSpec | None = None
    standin: bool = False
    description: str = ""
    prompts: tuple[PromptVariant, ...] = ()  # its variants (its own, else the experiment's); empty: the task's

    @property
    def self_hosted(self) -> bool:
        return self.where is Where.SELF_HOSTED

    @property
    def weights(self) -> WeightType:
        """The weights its llama.cpp model runs as here: the arm option ``weights`` with ``auto`` resolved
        (:func:`kit.models.convert.resolve_weights`); ``native`` for every other arm."""
        return resolve_weights(self.arm_options.get("weights", WeightType.NATIVE),
                               gpu=int(self.arm_options.get("n_gpu_layers", 0)) != 0)

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


class Experiment(Parameters, Scope):
    """Tasks (name -> item limit), the checked options, the reference's name, and the decision's parameters."""

    options: tuple[Option, ...]
    reference_name: str
    source: str = "experiment"

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
        """Read an experiment file, apply ``overrides`` (top-level keys, as ``-p KEY VALUE`` gives them) and
        check it. ``Experiment.load("notebooks/params/default.yaml").reference.name`` is ``'API'``."""
        data = {**read_mapping(Path(path)), **(overrides or {})}
        return cls.from_mapping(data, source=str(path), overridden=tuple(overrides or ()))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "experiment",
                     overridden: Collection[str] = ()) -> Experiment:
        """Build and check an experiment from its keys (a YAML mapping, or a notebook's parameters);
        ``overridden``: the keys given with ``-p``, which an error names as such."""
        try:
            spec = ExperimentFile.model_validate(dict(data))
        except ValidationError as exc:
            raise config_error(exc, data, source=source, overridden=overridden) from None
        return _checked(spec, source=source, overridden=overridden)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], *, source: str = "notebook parameters") -> Experiment:
        """The experiment a notebook's parameters describe: the schema's keys of ``namespace`` (``globals()``)."""
        return cls.from_mapping({k: v for k, v in namespace.items() if k in ExperimentFile.model_fields},
                                source=source)

    # resolving -----------------------------------------------------------------------------------------
    def resolved(self) -> Experiment:
        """``arm: auto`` replaced by what it means on this machine (a hosted API whose key is set, else the
        stand-in): the experiment as it will run."""
        return self.model_copy(update={"options": tuple(_resolve_auto(o) for o in self.options)})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values (the run folder's copy)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """The inverse of :meth:`to_dict`."""
        return cls.model_validate(dict(data), strict=False)



def read_experiment_file(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment file's keys with ``overrides`` on top and the schema's defaults for the keys it leaves out,
    checked against the schema; a clear error for a
    missing, unreadable or invalid file or override (``read_experiment_file("exp.yaml", overrides={"margin":
    0.05})``)."""
    data = {**read_mapping(Path(path)), **(overrides or {})}
    Experiment.from_mapping(data, source=str(path), overridden=tuple(overrides or ()))
    # a key the file leaves out takes the schema's default, never the default experiment's value that the first
    # notebook's parameters cell holds (papermill keeps a cell's value for every key it is not given)
    defaults = {key: plain_default(field.get_default(call_default_factory=True))
                for key, field in ExperimentFile.model_fields.items() if not field.is_required()}
    return {**defaults, **data}



def _checked(spec: ExperimentFile, *, source: str, overridden: Collection[str] = ()) -> Experiment:
    """The checks that relate keys to each other and to the arm registry, then the typed records."""

    def at(*keys: str) -> str:  # the file, and the -p keys the problem involves
        given = [k for k in keys if k in overridden]
        return f"{source} ({', '.join(f'-p {k}' for k in given)})" if given else source

    names = [o.name for o in spec.options]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two options share the name {dup[0]!r}", where=at("options"),
                          fix="give every option its own short name")
    _one_of_options(spec.reference, names, role="the reference", where=at("reference", "options"))
    if spec.judge is not None:
        _one_of_options(spec.judge, names, role="the judge", where=at("judge", "options"))
    missing = [t for t in (spec.sweep.tasks or ()) if t not in spec.tasks] if spec.sweep else []
    if missing:
        raise ConfigError(f"`sweep.tasks:` names {missing[0]!r}, which is not a task of the experiment",
                          where=at("sweep", "tasks"),
                          fix=f"sweep some of {list(spec.tasks)} (sweep.tasks: null sweeps them all), add "
                              f"{missing[0]} to `tasks:`, or write sweep: null for no load sweep")
    # dev items for a task the experiment does not run are moot (a file's mapping still serves `-p tasks`), but a
    # name one typo away from a task's is a mistake: that task would spend its whole dev split
    for name in sorted(set(spec.dev_items) - set(spec.tasks)) if isinstance(spec.dev_items, dict) else ():
        near = difflib.get_close_matches(name, list(spec.tasks), n=1)
        if near:
            raise ConfigError(f"`dev_items:` names {name!r}, which is not a task of the experiment",
                              where=at("dev_items", "tasks"),
                              fix=f"did you mean {near[0]!r}? (a task left out spends its whole dev split)")
    for o in spec.options:
        if o.finetune is not None and len(o.prompts if o.prompts is not None else spec.prompts) > 1:
            raise ConfigError(f"the fine-tune {o.name!r} is given several prompt variants",
                              where=at("options", "prompts"),
                              fix="give it one (`prompts: [{name: 0-shot, shots: 0}]`): a fine-tune learns the "
                                  "prompt it will be asked with, so it is trained and asked in that one form "
                                  "(`prompts: []`: the task's own)")
    options = tuple(_option(o, spec.machines, where=f"{at('options', 'machines')}: option {o.name!r}")
                    .model_copy(update={"prompts": spec.prompts if o.prompts is None else o.prompts})
                    for o in spec.options)
    return Experiment(options=options, reference_name=spec.reference, source=source,
                      **{k: getattr(spec, k) for k in Experiment.model_fields if k in ExperimentFile.model_fields
                         and k != "options"})


def _one_of_options(name: str, names: list[str], *, role: str, where: str) -> None:
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        raise ConfigError(f"{role} {name!r} is not one of the options", where=where,
                          fix=(f"did you mean {near[0]!r}? " if near else "") + f"options: {names}")


def _option(spec: OptionSpec, machines: Mapping[str, MachineSpec], *, where: str) -> Option:
    if spec.finetune is not None:
        where_runs = _placement(spec.runs, backend=FINETUNE_BACKEND,
                                in_process=backend_of(f"{FINETUNE_BACKEND}:{spec.finetune.base}").in_process,
                                where=where)
    elif spec.arm in (AUTO, STANDIN):
        if spec.runs not in (None, Where.THIRD_PARTY):
            raise ConfigError(f"`{spec.arm}` plays a hosted API: it runs third-party", where=where, fix="drop `runs:`")
        where_runs = Where.THIRD_PARTY
    else:
        try:
            backend = backend_of(str(spec.arm))
        except ArmError as exc:
            raise ConfigError(exc.problem, where=where, fix=exc.fix) from None
        where_runs = _placement(spec.runs, backend=backend.name, in_process=backend.in_process, where=where)
    price = machine = None
    if where_runs is Where.THIRD_PARTY:
        if spec.machine is not None:
            raise ConfigError("a third-party option is billed per token, not by machine", where=where,
                              fix="drop `machine:`, or declare `runs: self-hosted` if you run it yourself")
        price = _price(spec.price, str(spec.arm), where=where)
    else:
        if spec.price is not None:
            raise ConfigError("a self-hosted option is priced by its machine, not per token", where=where,
                              fix="drop `price:`, or declare `runs: third-party` if a provider bills you per token")
        machine = _machine_of(spec.machine, machines, where=where)
    _check_arm_options(spec, where=where)
    return Option(name=spec.name, where=where_runs, arm=spec.arm, arm_options=spec.options, price=price,
                  machine=machine, finetune=spec.finetune, standin=spec.arm == STANDIN, description=spec.description)


OPTIONS_STYLE = "options: {{{name}: {value}}}"  # how a fix writes an arm option in an experiment file


def runs_as(spec: OptionSpec) -> tuple[str, dict[str, Any]]:
    """The arm spec and options an option will be answered by, as far as they are known before any work: a
    fine-tune's adapter is not trained yet, ``auto`` resolves with the keys set now, the stand-in's server is
    not started (its URL and identity are added when it is).

    >>> runs_as(OptionSpec(name="L", arm="llama_cpp:smollm2-135m-instruct", options={"n_ctx": 2048}))
    ('llama_cpp:smollm2-135m-instruct', {'n_ctx': 2048})
    """
    if spec.finetune is not None:
        return f"{FINETUNE_BACKEND}:{spec.finetune.base}+ADAPTER", dict(spec.options)
    arm = str(spec.arm)
    if arm == AUTO:
        keyed = next(((a, o) for variable, a, o in KEYED_DEFAULTS if os.environ.get(variable)), None)
        if keyed is not None:
            return keyed[0], {**keyed[1], **spec.options}
        arm = STANDIN
    if arm == STANDIN:
        return f"openai:{STANDIN_MODEL}", {**standin_arm_options(), **spec.options}
    return arm, dict(spec.options)


def _check_arm_options(spec: OptionSpec, *, where: str) -> None:
    """Every option's arm options against its backend's schema, and what a run will need (a key variable
    named with ``api_key_env``), before anything runs — a fine-tune listed first would otherwise train first."""
    arm, options = runs_as(spec)
    try:
        check_options(arm, options, style=OPTIONS_STYLE)
    except KitError as exc:
        raise ConfigError(exc.problem, where=f"{where} (arm {arm})", fix=exc.fix) from None


def _placement(runs: Where | None, *, backend: str, in_process: bool, where: str) -> Where:
    if in_process:
        if runs not in (None, Where.SELF_HOSTED):
            raise ConfigError(f"a {backend} option runs in this process: it is self-hosted", where=where,
                              fix="drop `runs:` or write runs: self-hosted")
        return Where.SELF_HOSTED
    if runs is None:
        raise ConfigError("where this option runs is not declared", where=where,
                          fix="add runs: third-party (data leaves your organisation: hosted APIs) or runs: "
                              "self-hosted (your own server: vLLM, llama-server, Ollama, recorded outputs of one)")
    return runs


def _price(price: HostedPrice | None, arm: str, *, where: str) -> HostedPrice:
    from kit.economics import model_price  # genai-prices loads its price data: only when an option is priced

    if price is not None and price.input_per_m is not None:
        return price
    if price is not None and price.model is not None:
        if model_price(price.model) is None:
            raise ConfigError(f"genai-prices does not know the model {price.model!r}", where=where,
                              fix="check the id with `kit price MODEL`, or give input_per_m and output_per_m")
        return price
    if arm == AUTO:
        return price or HostedPrice()  # priced with the arm it resolves to (see _resolve_auto)
    model = None if arm == STANDIN else arm.partition(":")[2]
    if model is None or model_price(model) is None:
        raise ConfigError(f"no price is known for {model or arm!r}", where=where,
                          fix="add price: {model: GENAI_PRICES_ID} (e.g. gpt-4o-mini) or price: "
                              "{input_per_m: 0.15, output_per_m: 0.60} in USD per million tokens")
    return (price or HostedPrice()).model_copy(update={"model": model})


def _machine_of(ref: str | MachineSpec | None, machines: Mapping[str, MachineSpec], *, where: str) -> Machine:
    if ref is None:
        raise ConfigError("a self-hosted option needs a machine price", where=where,
                          fix="add machine: NAME (a key of `machines:`) or machine: {price_per_hour: 0.8}")
    if isinstance(ref, MachineSpec):
        return Machine(name="inline", **dict(ref))
    if ref not in machines:
        near = difflib.get_close_matches(ref, list(machines), n=1)
        raise ConfigError(f"no machine named {ref!r}", where=where,
                          fix=(f"did you mean {near[0]!r}? " if near else "") + f"machines: {sorted(machines)}")
    return Machine(name=ref, **dict(machines[ref]))


def _resolve_auto(option: Option) -> Option:
    if option.arm != AUTO:
        return option
    for variable, spec, arm_options in KEYED_DEFAULTS:
        if os.environ.get(variable):
            price = option.price if option.price and option.price.model else HostedPrice(model=spec.partition(":")[2])
            return option.model_copy(update={"arm": spec, "arm_options": {**arm_options, **option.arm_options},
                                             "price": price})
    price = option.price if option.price and (option.price.model or option.price.input_per_m is not None) \
        else HostedPrice(model="gpt-4o-mini")
    return option.model_copy(update={"arm": STANDIN, "standin": True, "price": price})

