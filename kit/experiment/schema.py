"""The experiment file's keys, declared once: every key with its type, default, range and meaning.

The classes here are the file as written (:class:`ExperimentFile`); :mod:`kit.experiment.checks` turns one into
the checked :class:`~kit.experiment.checks.Experiment`. The error messages (:mod:`kit.experiment.messages`) and
the README's table of keys (:mod:`kit.experiment.readme`) both read these declarations.

>>> MachineSpec(price_per_hour=0.8).utilisation
0.6
>>> sorted(ExperimentFile.model_fields)[:3]
['agreement_target', 'alpha', 'budget_per_month']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kit.finetune import Precision
from kit.tasks.prompts import PromptVariant

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
Count = Annotated[int, Strict(), at.Ge(0)]


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
    precision: Precision = Field(Precision.AUTO, strict=False, examples=["float32"],
                                 description="the base weights' number format in training: `auto` (float32 on the "
                                             "CPU, bfloat16 on a GPU), `float32` or `bfloat16` (on a CPU with "
                                             "AVX512-BF16 or AMX: 1.15-1.4x faster, a slightly different curve)")
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

    dev_items: Count | dict[str, Count] | None = Field(
        None, examples=[40, {"snips-intents": 40, "hhs-breach-triage": 0}],
        description="dev items prompt selection may spend per task (a number for every task, or task -> number, "
                    "tasks not run ignored; 0: no selection on that task, its first variant answers); null: the "
                    "task's whole dev split")

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_only(cls, value: Any) -> Any:
        return {name: None for name in value} if isinstance(value, list) else value

    def dev_limit(self, task: str) -> int | None:
        """The dev items prompt selection may spend on ``task`` (None: its whole dev split)."""
        if isinstance(self.dev_items, dict):
            return self.dev_items.get(task)
        return self.dev_items


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

