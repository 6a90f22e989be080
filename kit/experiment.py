"""The experiment: which tasks, one reference option and any number of candidates, and the user's constraints.

An experiment is a YAML file (``notebooks/params/*.yaml``; ``kit report --experiment FILE``) whose keys are
also the notebooks' parameters. Its schema is declared once, below: every key with its type, default, range
and meaning. The checks, the error messages and the README's table of keys (:func:`schema_table`) all follow
from it. Every option is a typed record: a short name used in every table and plot, what answers (an arm
spec, or a fine-tune to train), where it runs — declared, never guessed from an address — and what it costs
(a hosted price, or a machine for self-hosted options). The whole experiment is checked before any model is
called; every problem names the file, the key, the option and the fix.

>>> exp = Experiment.from_mapping(yaml.safe_load(EXAMPLE), source="example")
>>> [(o.name, o.where.value) for o in exp.options]
[('API', 'third-party'), ('SmolLM2', 'self-hosted')]
>>> exp.reference.name
'API'
>>> Experiment.from_mapping({**yaml.safe_load(EXAMPLE), "alpha": 0.7}, source="example")  # doctest: +ELLIPSIS
Traceback (most recent call last):
kit.errors.ConfigError: example: `alpha:` 0.7 is out of range (above 0 and below 0.5). Fix: ...
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Collection, Mapping
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, ValidationError, field_validator, \
    model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from kit.arms.registry import backend_of, check_options
from kit.arms.standin import STANDIN_MODEL, standin_arm_options
from kit.errors import ArmError, ConfigError, KitError
from kit.tasks.prompts import PromptVariant

__all__ = ["STANDIN_MODEL", "Experiment", "ExperimentFile", "FinetuneSpec", "HostedPrice", "Machine", "MachineSpec",
           "Option", "OptionSpec", "SweepSpec", "UpkeepSpec", "Where", "override_value", "read_experiment_file", "schema_table"]

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
# a trained fine-tune answers as kit.finetune's ``arm_spec``: ``lora:BASE+ADAPTER``
FINETUNE_BACKEND = "lora"
MAX_NAME = 32


class Where(str, Enum):
    """Where an option runs. Third-party: data leaves the organisation (the privacy rule applies)."""

    THIRD_PARTY = "third-party"
    SELF_HOSTED = "self-hosted"


# ============================================================================================ the schema
# Strict: a number is a number (never the text "0.02"), true is not 1, NaN and infinity are refused, and an
# unknown key is an error. Every field carries its meaning (description) and an example for the fixes.

WholeNumber = Annotated[int, Strict(), at.Gt(0)]


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True,
                              str_strip_whitespace=True)


def _kit_error(problem: str, fix: str) -> PydanticCustomError:
    """A check of the schema's own, with its fix (read back by :func:`_explain`)."""
    return PydanticCustomError("kit", problem, {"fix": fix})


class MachineSpec(_Schema):
    """What a self-hosted option runs on and costs: USD per hour, the share of paid hours spent answering,
    whether it is paid around the clock, and people's time to set it up and run it."""

    price_per_hour: float = Field(ge=0, examples=[0.8], description="USD an hour the machine costs")
    utilisation: float = Field(0.6, gt=0, le=1,
                               description="the share of paid hours spent answering (the rest is idle)")
    always_on: bool = Field(False, description="paid around the clock; false: only the hours the volume needs")
    setup_hours: float = Field(0.0, ge=0, examples=[8],
                               description="engineering hours to set it up (spread over `horizon_months`)")
    ops_hours_per_month: float = Field(0.0, ge=0, examples=[2], description="engineering hours a month to run it")
    description: str = Field("", examples=["one NVIDIA L4 24 GB"], description="what the machine is, for the report")


class Machine(MachineSpec):
    """A machine as an option uses it: its key under ``machines:`` (``inline`` when declared in the option)."""

    name: str


class HostedPrice(_Schema):
    """How a third-party option is billed: a genai-prices model id, or USD per million tokens."""

    model: str | None = Field(None, min_length=1, examples=["gpt-4o-mini"],
                              description="a genai-prices model id (`kit price MODEL`); default: the arm's model")
    input_per_m: float | None = Field(None, ge=0, examples=[0.15],
                                      description="USD per million input tokens, instead of `model`")
    output_per_m: float | None = Field(None, ge=0, examples=[0.6],
                                       description="USD per million output tokens, with `input_per_m`")
    cached_share: float = Field(0.0, ge=0, le=1, examples=[0.5],
                                description="the share of input tokens read from the provider's prompt cache")

    @model_validator(mode="after")
    def _one_way_of_pricing(self) -> HostedPrice:
        if (self.input_per_m is None) != (self.output_per_m is None):
            raise _kit_error("`price:` needs both input_per_m and output_per_m",
                             "write price: {input_per_m: 0.15, output_per_m: 0.60} (USD per million tokens)")
        if self.model is not None and self.input_per_m is not None:
            raise _kit_error("`price:` gives both a model and prices per token",
                             "keep either model: ID or input_per_m and output_per_m")
        return self

    def describe(self) -> str:
        if self.input_per_m is not None:
            return f"${self.input_per_m:g} / ${self.output_per_m:g} per million tokens (given)"
        return f"priced as {self.model} (genai-prices)"


class FinetuneSpec(_Schema):
    """A LoRA fine-tune of ``base``, trained per task on that task's train split."""

    base: str = Field(min_length=1, examples=["smollm2-135m-instruct"],
                      description="the model to fine-tune (a catalog id or a GGUF file)")
    steps: int = Field(40, ge=1, description="training steps per task")
    rank: int = Field(8, ge=1, description="the LoRA rank")
    tasks: tuple[str, ...] | None = Field(None, strict=False, min_length=1, examples=[["snips-intents"]],
                                          description="the tasks to train for; null: every task with a train split")


class SweepSpec(_Schema):
    """A load sweep of the self-hosted options: the same items at rising load (README, "Throughput as it
    would be served")."""

    tasks: tuple[str, ...] | None = Field(None, strict=False, min_length=1, examples=[["snips-intents"]],
                                          description="the experiment's tasks to sweep on; null: every task")
    levels: tuple[WholeNumber, ...] = Field((1, 2, 4, 8), strict=False, min_length=1, examples=[[1, 2, 4, 8]],
                                            description="the load levels (concurrent requests or batch size)")
    items: int = Field(24, ge=1, description="test items answered at each level")
    max_seconds: float = Field(300.0, gt=0, description="the sweep stops after this many seconds")

    def covers(self, task: str) -> bool:
        """Whether the sweep runs on ``task``."""
        return self.tasks is None or task in self.tasks


class SequentialSpec(_Schema):
    """Runs that stop when the verdict is settled: items in rounds, re-tested after each round with an always-valid
    confidence sequence (README, "Runs that stop when the verdict is settled")."""

    round_items: int = Field(40, ge=1, description="test items every option answers per round")
    max_items: int | None = Field(None, ge=1, examples=[400],
                                  description="the most items per task; null: the task's items (`tasks:`)")
    max_cost_usd: float | None = Field(None, gt=0, examples=[5.0],
                                       description="stop a task's rounds once its answers cost this many USD; "
                                                   "null: no cap")


class UpkeepSpec(_Schema):
    """The cost of keeping the verdict true once deployed: labelling a fresh sample each window so the monitor can
    re-test quality, and retraining each fine-tune at a cadence (README, "The cost of staying right")."""

    labels_per_window: int | None = Field(None, ge=0, examples=[200],
                                          description="fresh labels each window; null: the paired items the "
                                                      "plan's formula needs at the margin, from the run's answers")
    seconds_per_label: float = Field(30.0, gt=0, description="seconds one label takes when the store has no timed "
                                                             "labels of the task (else the labelling loop's pace)")
    windows_per_month: float = Field(1.0, gt=0, description="labelled windows a month (1: monthly, 4.35: weekly)")
    retrain_every_months: float | None = Field(3.0, gt=0, examples=[6],
                                               description="months between retrainings of a fine-tune; null: "
                                                           "never retrained")
    retrain_engineer_hours: float = Field(4.0, ge=0, description="engineering hours each retraining takes (data, "
                                                                 "checks, deployment)")


# `machine:` is a key of `machines:` or a machine declared in place
_BY_NAME, _INLINE = "machine by name", "machine in place"
MachineRef = Annotated[Union[Annotated[str, Tag(_BY_NAME)], Annotated[MachineSpec, Tag(_INLINE)]],
                       Discriminator(lambda v: _INLINE if isinstance(v, Mapping) else _BY_NAME)]


class OptionSpec(_Schema):
    """One option as the file declares it (see :class:`Option` for the checked record)."""

    name: str = Field(min_length=1, max_length=MAX_NAME, examples=["Mistral 7B Q4"],
                      description="a short name used in every table and plot; details go in `description`")
    arm: str | None = Field(None, min_length=1, examples=["llama_cpp:mistral-7b-instruct-v0.3:Q4_K_M"],
                            description="what answers: BACKEND:MODEL, `auto` (a hosted API whose key is set, "
                                        "else the stand-in) or `standin`; or give `finetune` instead")
    finetune: FinetuneSpec | None = Field(None, examples=[{"base": "smollm2-135m-instruct", "steps": 40}],
                                          description="a LoRA trained per task, instead of `arm`")
    options: dict[str, Any] = Field(default_factory=dict, examples=[{"n_ctx": 4096}],
                                    description="the arm's options (`n_ctx`, `base_url`, `concurrency`…)")
    runs: Where | None = Field(None, strict=False, examples=["self-hosted"],
                               description="where it runs; required for HTTP and replay arms (in-process arms "
                                           "are self-hosted, `auto` and `standin` third-party)")
    price: HostedPrice | None = Field(None, examples=[{"model": "gpt-4o-mini"}],
                                      description="third-party options: how tokens are billed (default: the "
                                                  "arm's model in genai-prices)")
    machine: MachineRef | None = Field(None, examples=["l4"],
                                       description="self-hosted options: a key of `machines`, or a machine's "
                                                   "keys in place")
    description: str = Field("", examples=["Q4_K_M on one L4"], description="details shown beside the name")
    prompts: tuple[PromptVariant, ...] | None = Field(None, strict=False, examples=[[{"name": "0-shot", "shots": 0}]],
                                                      description="this option's prompt variants, instead of the "
                                                                  "top-level `prompts`")

    @field_validator("prompts")
    @classmethod
    def _option_prompts(cls, value: tuple[PromptVariant, ...] | None) -> tuple[PromptVariant, ...] | None:
        return _unique_prompts(value) if value is not None else None

    @field_validator("options")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = _non_finite(value)
        if bad is not None:
            raise _kit_error(f"`options.{bad[0]}:` must be a finite number, got {bad[1]}",
                             f"write a number for {bad[0]}, or leave it out")
        return value

    @model_validator(mode="after")
    def _arm_or_finetune(self) -> OptionSpec:
        if (self.arm is None) == (self.finetune is None):
            raise _kit_error("an option needs exactly one of `arm:` or `finetune:`",
                             "write arm: llama_cpp:MODEL (or openai:MODEL, standin, auto), or finetune: {base: MODEL}")
        return self


class Scope(_Schema):
    """What is compared on: the tasks, each with how many of its test items."""

    tasks: dict[str, WholeNumber | None] = Field(
        min_length=1, examples=[{"snips-intents": 100}],
        description="test items to use per task, or null for the whole test split (a list of names: all items)")

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_only(cls, value: Any) -> Any:
        return {name: None for name in value} if isinstance(value, list) else value


class Choices(Scope):
    """The tasks, the options, the one every candidate is tested against, and the machines they run on."""

    reference: str = Field(min_length=1, examples=["API"],
                           description="the name of the option every candidate is tested against")
    options: list[OptionSpec] = Field(min_length=1, examples=[[{"name": "API", "arm": "auto"}]],
                                      description="the options: the reference and the candidates")
    machines: dict[str, MachineSpec] = Field(default_factory=dict, examples=[{"l4": {"price_per_hour": 0.8}}],
                                             description="what self-hosted options run on "
                                                                               "and cost, by name")


class Parameters(_Schema):
    """The decision's parameters: the statistics, the user's limits, and how the run is done."""

    ignore_labels: bool = Field(False, description="treat the tasks as unlabelled: the reference's answers "
                                                   "become the bar")
    margin: float = Field(0.02, ge=0, lt=1, description="the largest quality loss against the reference you "
                                                        "accept (0.02 is 2 points)")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="the one-sided significance level of every test against "
                                                         "the reference")
    agreement_target: float = Field(0.95, gt=0, le=1, description="unlabelled tasks: the share of items a "
                                                                   "candidate must agree with the reference on")
    cost_per_error: float | None = Field(None, ge=0, examples=[0.002], description="USD one wrong answer costs "
                                                                                  "you; null: quality first")
    monthly_volume: float = Field(100_000.0, gt=0, description="items a month")
    latency_target_s: float | None = Field(None, gt=0, examples=[2.0],
                                           description="p95 seconds per item you accept; null: no target")
    budget_per_month: float | None = Field(None, ge=0, examples=[500],
                                           description="USD a month you can spend; null: no budget")
    ops_capacity: float | None = Field(None, ge=0, examples=[8], description="hours a month the team can spend "
                                                                            "running self-hosted models; null: "
                                                                            "no limit")
    privacy_required: bool = Field(False, description="items with personal data never go to a third party")
    data_residency: bool = Field(False, description="nothing may leave your organisation at all")
    hourly_rate: float = Field(100.0, ge=0, description="USD per engineering hour (setup and ops)")
    horizon_months: float = Field(12.0, gt=0, description="one-time costs (setup, fine-tuning) are spread over "
                                                          "this many months")
    windows: Union[Literal["month"], Annotated[int, Field(ge=4)]] | None = Field(
        None, examples=["month"], description="the report's look at time: each task's test items cut by calendar month "
                                              "of its time column (`month`) or every N items; null: no windows")
    upkeep: UpkeepSpec | None = Field(None, examples=[{"labels_per_window": 200, "retrain_every_months": 6}],
                                      description="labelling and retraining after deployment, in the monthly "
                                                  "cost; null: the defaults below")
    max_tokens: int = Field(256, ge=1, description="the longest answer, in tokens (a task type may set its own)")
    judge: str | None = Field(None, min_length=1, examples=["API"],
                              description="free-text tasks: the name of the option whose model judges answers; "
                                          "null: the reference")
    sweep: SweepSpec | None = Field(None, examples=[{"tasks": ["snips-intents"], "levels": [1, 2, 4, 8]}],
                                    description="a load sweep of the self-hosted options; null: none")
    sequential: SequentialSpec | None = Field(None, examples=[{"round_items": 40}],
                                              description="answer in rounds and stop when the verdict is "
                                                          "settled; null: a fixed number of items")
    store: str | None = Field(None, min_length=1, examples=["runs/kit.sqlite"],
                              description="the SQLite response store; null: runs/kit.sqlite")
    # -- prompt variants, chosen per option on the dev split (kit.pipeline.selection)
    prompts: tuple[PromptVariant, ...] = Field((), strict=False,
                                               examples=[[{"name": "0-shot", "shots": 0},
                                                          {"name": "5 similar", "shots": 5, "shot_choice": "similar"}]],
                                               description="prompt variants for every option: each is scored on the "
                                                           "dev split and the best one answers the test split; "
                                                           "empty: the task's own prompt")

    @field_validator("prompts")
    @classmethod
    def _top_prompts(cls, value: tuple[PromptVariant, ...]) -> tuple[PromptVariant, ...]:
        return _unique_prompts(value)


def _unique_prompts(variants: tuple[PromptVariant, ...]) -> tuple[PromptVariant, ...]:
    """Each variant's name once: the report's tables and the run record name variants."""
    names = [v.name for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _kit_error(f"two prompt variants share the name {dup[0]!r}", "give every variant its own name")
    return variants


class ExperimentFile(Parameters, Choices):
    """Every key of an experiment file (and of the notebooks' parameters), as written."""


# =========================================================================================== the records
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
        data = {**_read_mapping(Path(path)), **(overrides or {})}
        return cls.from_mapping(data, source=str(path), overridden=tuple(overrides or ()))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "experiment",
                     overridden: Collection[str] = ()) -> Experiment:
        """Build and check an experiment from its keys (a YAML mapping, or a notebook's parameters);
        ``overridden``: the keys given with ``-p``, which an error names as such."""
        try:
            spec = ExperimentFile.model_validate(dict(data))
        except ValidationError as exc:
            raise _config_error(exc, data, source=source, overridden=overridden) from None
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


# ======================================================================================= reading files
class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        self.key, self.first, self.again = key, first, again
        super().__init__(f"the key {key!r} is given twice")


class _KeyCheckingLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base loader says so
                continue
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, *, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_KeyCheckingLoader)  # noqa: S506 — a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"line {exc.again}: the key {exc.key!r} is given twice in one mapping (first on line "
                          f"{exc.first})", where=where, fix=f"keep one {exc.key!r} (YAML would silently use the last)"
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", where=where, fix="correct the YAML syntax") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("experiment file not found", where=str(path),
                          fix="pass an existing YAML file, e.g. notebooks/params/default.yaml")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text: byte {exc.start} (line {line}) is {raw[exc.start:exc.start + 1]!r}",
                          where=str(path), fix="save the file as UTF-8 (your editor's 'save with encoding')") from None
    data = _load_yaml(text, where=str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("an experiment file must be a YAML mapping", where=str(path), fix="write KEY: VALUE lines")
    return data


def read_experiment_file(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment file's keys with ``overrides`` on top and the schema's defaults for the keys it leaves out,
    checked against the schema; a clear error for a
    missing, unreadable or invalid file or override (``read_experiment_file("exp.yaml", overrides={"margin":
    0.05})``)."""
    data = {**_read_mapping(Path(path)), **(overrides or {})}
    Experiment.from_mapping(data, source=str(path), overridden=tuple(overrides or ()))
    # a key the file leaves out takes the schema's default, never the default experiment's value that the first
    # notebook's parameters cell holds (papermill keeps a cell's value for every key it is not given)
    defaults = {key: _plain(field.get_default(call_default_factory=True))
                for key, field in ExperimentFile.model_fields.items() if not field.is_required()}
    return {**defaults, **data}


def _plain(value: Any) -> Any:
    """A default as the YAML of an experiment file would give it (a list for a tuple), for papermill's parameters.

    >>> _plain(()), _plain((1, 2)), _plain(0.5)
    ([], [1, 2], 0.5)
    """
    return list(value) if isinstance(value, tuple) else value


def override_value(key: str, text: str) -> Any:
    """The value of ``-p KEY TEXT`` as the schema reads it: text for text keys, YAML for the others (a number
    may also be written as Python reads it, e.g. ``1e6``); an unknown key is an error at once.

    >>> override_value("monthly_volume", "1e6"), override_value("store", "2024.sqlite")
    (1000000.0, '2024.sqlite')
    >>> override_value("judge", "null") is None
    True
    """
    field = ExperimentFile.model_fields.get(key)
    if field is None:
        near = difflib.get_close_matches(key, list(ExperimentFile.model_fields), n=1)
        raise ConfigError(f"unknown key {key!r}", where=f"-p {key}",
                          fix=(f"did you mean {near[0]!r}? " if near else "") + "see README, 'Experiments'")
    kind = _strip(field.annotation)
    if kind is str:
        return None if text.strip() in ("", "null", "~") and not field.is_required() else text
    value = _load_yaml(text, where=f"-p {key}")
    if kind in (float, int) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # the schema names the problem
    return value


# ============================================================================== checks across the keys
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
    from kit.economics import model_price

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


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first NaN or infinity in a nested value, with its dotted path."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


# ======================================================================= schema errors as clear errors
_TAGS = frozenset({_BY_NAME, _INLINE, "[key]"})
_KINDS = {"float_type": "a number", "int_type": "a whole number", "bool_type": "true or false",
          "string_type": "text", "dict_type": "a mapping", "model_type": "a mapping",
          "list_type": "a list", "tuple_type": "a list"}


def _config_error(exc: ValidationError, data: Mapping[str, Any], *, source: str,
                  overridden: Collection[str]) -> ConfigError:
    """The first problem pydantic found, as a ConfigError naming the file, the option, the key and the fix
    (an unknown key first: a misspelt key explains a missing one)."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(p for p in first["loc"] if p not in _TAGS)
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"
                         and tuple(p for p in e["loc"] if p not in _TAGS)[:-1] == parent)
        where, path = _locate(parent, data, source=source, overridden=overridden)
        model = _walk(parent)[2]
        known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
        hints = [f"'{k}' → '{m[0]}'?" for k in unknown for m in [difflib.get_close_matches(k, known, n=1)] if m]
        return ConfigError(f"unknown keys {unknown}" + (f" in `{path}:`" if path else ""), where=where,
                           fix=" ".join(hints) or f"the keys are: {', '.join(known)}")
    where, path = _locate(loc, data, source=source, overridden=overridden)
    field, leaf, _ = _walk(loc)
    problem, fix = _explain(first, field, leaf=leaf, path=path, element=bool(loc) and loc[-1] != leaf)
    return ConfigError(problem, where=where, fix=fix)


def _locate(loc: tuple[Any, ...], data: Mapping[str, Any], *, source: str,
            overridden: Collection[str]) -> tuple[str, str]:
    """Where a problem is (the file, ``-p KEY``, the option or machine) and the key's path there."""
    top = loc[0] if loc else None
    where = f"{source} (-p {top})" if top in overridden else source
    rest = loc
    if top == "options" and len(loc) > 1 and isinstance(loc[1], int):
        raw = data.get("options")
        name = raw[loc[1]].get("name") if isinstance(raw, list) and isinstance(raw[loc[1]], Mapping) else None
        label = repr(name.strip()) if isinstance(name, str) and name.strip() else str(loc[1] + 1)
        where, rest = f"{where}: option {label}", loc[2:]
    elif top == "machines" and len(loc) > 1:
        where, rest = f"{where}: machine {loc[1]!r}", loc[2:]
    return where, ".".join(str(p) for p in rest if isinstance(p, str))


def _walk(loc: tuple[Any, ...]) -> tuple[FieldInfo | None, str | None, Any]:
    """The schema field a location falls in (its innermost named key), that key, and the type at the
    location (a schema model where the location is a mapping of keys)."""
    tp: Any = ExperimentFile
    field = leaf = None
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field, leaf = tp.model_fields.get(str(part)), str(part)
            if field is None:
                break
            tp = field.annotation
        elif get_origin(tp) in (list, tuple, dict):
            tp = get_args(tp)[-1] if get_origin(tp) is dict else get_args(tp)[0]
        else:
            break
    return field, leaf, _strip(tp)


def _explain(error: Mapping[str, Any], field: FieldInfo | None, *, leaf: str | None, path: str,
             element: bool) -> tuple[str, str]:
    """The problem and its fix, in words, from the error's kind and the field's declaration."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "kit":
        return error["msg"], str(ctx["fix"])
    shown = f"`{path}:`" if path else "it"
    keys = path.split(".")
    parent = ".".join(keys[:len(keys) - 1 - keys[::-1].index(leaf)]) if leaf in keys else ""
    example = f"{leaf}: {_inline(_example(field))}" + (f" under `{parent}:`" if parent else "") \
        if field is not None and leaf else None
    about = f" — {field.description}" if field is not None and field.description else ""
    fix = f"write e.g. {example}{about}" if example else "see README, 'Experiments'"
    if kind == "missing" or (kind in _KINDS and value is None and field is not None and field.is_required()):
        return f"{shown} is missing", f"add {example}{about}"
    if "[key]" in error["loc"]:
        return f"{shown} has the key {value!r}: keys must be text", fix
    if kind in _KINDS:
        return f"{shown} must be {_KINDS[kind]}, got {value!r}", fix
    if kind == "finite_number":
        return f"{shown} must be a finite number, got {value!r}", fix
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        own, each = _bounds(field) if field is not None else ([], [])
        words = " and ".join(each if element and each else own) or error["msg"].lower()
        return f"{shown} {value!r} is out of range ({words})", fix
    if kind in ("too_short", "string_too_short"):
        return f"{shown} is empty", fix
    if kind == "string_too_long":
        return f"{shown} {value!r} is longer than {ctx['max_length']} characters", fix
    if kind == "enum":
        return f"{shown} {value!r} is not one of {ctx['expected']}", fix
    return f"{shown} {value!r}: {error['msg']}", fix


def _example(field: FieldInfo) -> Any:
    if field.examples:
        return field.examples[0]
    return "…" if field.is_required() else field.get_default(call_default_factory=True)


# ========================================================================== the schema in the README
def _strip(tp: Any) -> Any:
    """``X`` from ``Annotated[X, …]`` and ``X | None``; a union of text and a mapping stays a union."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not NoneType]
            models = [a for a in map(_strip, args) if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(args) == 1:
                tp = args[0]
            elif models:
                return models[0]
            else:
                return tp
        else:
            return tp


def _kind(tp: Any, *, plural: bool = False) -> str:
    """A type in words: ``number``, ``whole number or null``, ``list of text``…"""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _kind(args[0], plural=plural)
    if origin in (Union, UnionType):
        words = " or ".join(_kind(a, plural=plural) for a in args if a is not NoneType)
        return words + (" or null" if NoneType in args else "")
    if origin in (list, tuple):
        return f"list of {_kind(args[0], plural=True)}"
    if origin is dict:
        return f"mapping of text to {_kind(args[1], plural=True)}"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " or ".join(f"`{m.value}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mappings" if plural else "mapping"
    names = {bool: ("true/false", "true/false"), int: ("whole number", "whole numbers"),
             float: ("number", "numbers"), str: ("text", "text")}
    return names.get(tp, ("any value", "any values"))[plural]


def _bounds(field: FieldInfo) -> tuple[list[str], list[str]]:
    """A field's range in words: its own bounds, and those of each of its items."""
    whole = _strip(field.annotation) is int

    def words(metadata: list[Any], whole: bool) -> list[str]:
        out = []
        for m in metadata:
            if isinstance(m, at.Gt):
                out.append(f"at least {m.gt + 1}" if whole else f"above {_inline(m.gt)}")
            elif isinstance(m, at.Ge):
                out.append(f"at least {_inline(m.ge)}")
            elif isinstance(m, at.Lt):
                out.append(f"at most {m.lt - 1}" if whole else f"below {_inline(m.lt)}")
            elif isinstance(m, at.Le):
                out.append(f"at most {_inline(m.le)}")
            elif isinstance(m, at.MinLen):
                out.append("not empty")
            elif isinstance(m, at.MaxLen):
                out.append(f"at most {m.max_length} characters")
        return out

    each: list[str] = []
    container = _strip(field.annotation)
    if get_origin(container) in (list, tuple, dict):
        item = get_args(container)[-1] if get_origin(container) is dict else get_args(container)[0]
        while get_origin(item) in (Union, UnionType):
            item = next(a for a in get_args(item) if a is not NoneType)
        if get_origin(item) is Annotated:
            each = words(list(get_args(item)[1:]), _strip(item) is int)
    return words(field.metadata, whole), each


def _inline(value: Any) -> str:
    """A value as one line of YAML: ``0.02``, ``null``, ``[1, 2, 4, 8]``, ``{snips-intents: 100}``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    """One table row per key of ``model``, then the keys of each mapping it holds (``options[].price.model``);
    a key that is a name or a mapping (``machine``) is not expanded: its keys are listed where it is declared."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        default = "required" if field.is_required() else f"`{_inline(field.get_default(call_default_factory=True))}`"
        own, each = _bounds(field)
        ranges = "; ".join(filter(None, [", ".join(own), ("each " + ", ".join(each)) if each else ""]))
        cells = [f"`{key}`", _kind(field.annotation), default, ranges, field.description or ""]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        inner, below = _without_none(field.annotation), f"{key}."
        if get_origin(inner) in (list, tuple, dict):
            below = f"{key}.NAME." if get_origin(inner) is dict else f"{key}[]."
            inner = _without_none(get_args(inner)[-1] if get_origin(inner) is dict else get_args(inner)[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            rows += _rows(inner, below)
    return rows


def _without_none(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not NoneType] if get_origin(tp) in (Union, UnionType) else [tp]
    return args[0] if len(args) == 1 else tp


def schema_table() -> str:
    """The keys of an experiment file as a Markdown table (the README's, checked by the tests)."""
    head = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    return "\n".join(head + _rows(ExperimentFile, "")) + "\n"
