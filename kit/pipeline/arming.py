"""Which arm answers an option: its spec and options on a task, the stand-in server, the privacy hook, its models.

A helper below the stages: the answer stage, the rounds driver (:mod:`kit.pipeline.sequential`), the judge and
the costs stage (which models an option runs) all ask here, so an option maps to one arm in one place.

>>> arm_for(exp.option("SmolLM2"), task="snips-intents", finetunes={}, standin=None)   # doctest: +SKIP
('llama_cpp:smollm2-135m-instruct', {'n_ctx': 8192})
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from kit.arms import backend_of
from kit.arms.standin import StandinServer, standin_arm_options
from kit.experiment import STANDIN_MODEL, Experiment, Option
from kit.privacy import withhold_pii
from kit.run.runner import Withhold
from kit.tasks import Task


@contextlib.contextmanager
def standin_for(exp: Experiment) -> Iterator[StandinServer | None]:
    """The stand-in server while the block runs (None when no option is the stand-in)."""
    if not any(o.standin for o in exp.options):
        yield None
        return
    with StandinServer(STANDIN_MODEL) as server:
        yield server


def arm_for(option: Option, *, task: str, finetunes: Mapping[str, Any],
            standin: StandinServer | None) -> tuple[str, dict[str, Any]]:
    """The arm spec and options that answer ``task`` for ``option`` (``finetunes``: the run's ``Doc.FINETUNES``
    record). The stand-in's arm is identified by what answers (model sha256, server version), not by its port,
    and stops at once if its server dies."""
    if option.standin:
        return f"openai:{STANDIN_MODEL}", {**standin_arm_options(server=standin), **option.arm_options}
    if option.finetune is not None:
        trained = finetunes[option.name][task]
        return trained["arm_spec"], {"lora_sha256": trained["adapter_sha256"], **option.arm_options}
    return str(option.arm), dict(option.arm_options)


def withhold_for(exp: Experiment, option: Option, task: Task) -> Withhold | None:
    """The privacy rule's hook for ``option`` on ``task``: a third-party option (and the stand-in, which plays
    one) never gets an item with personal data when the experiment requires privacy; None otherwise."""
    return withhold_pii(task=task) if exp.privacy_required and not option.self_hosted else None


def models_of(option: Option) -> list[str]:
    """The GGUF models an option runs on this machine (catalog ids or paths), as its backend declares them."""
    if option.standin:
        return [STANDIN_MODEL]
    if option.finetune is not None:
        return [option.finetune.base]
    return backend_of(str(option.arm)).models(str(option.arm).partition(":")[2]) if option.arm else []
