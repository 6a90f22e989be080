"""The ``lora`` arm: a llama.cpp base model with a GGUF LoRA adapter (from ``kit finetune``) applied.

Spec: ``lora:BASE+ADAPTER`` — BASE a catalog id or GGUF path, ADAPTER the path of the ``.gguf`` adapter.
The adapter's sha256 is part of the arm's identity: ``identity()["lora_sha256"]``, and the store's
model identity column (``identity()["sha256"]``) reads ``BASE_SHA256+lora:ADAPTER_SHA256``, so answers of
the fine-tuned model are never confused with the base model's, nor with another adapter's.

>>> arm = get_arm("lora:smollm2-135m-instruct+runs/adapters/snips.lora.gguf")   # doctest: +SKIP
>>> arm.identity()["lora_sha256"][:12]                                          # doctest: +SKIP
'3be1c0a2f9d4'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.arms.llama_cpp import LlamaCppArm, LlamaOptions
from kit.arms.options import parse_options
from kit.arms.registry import Backend
from kit.errors import ArmError


class LoraOptions(LlamaOptions):
    """The llama.cpp arm's options; the adapter comes from the spec (``lora_path`` is refused), and
    ``lora_sha256``, when given, is checked against it."""

    def preflight(self, *, spec: str) -> None:
        if self.lora_path is not None:
            raise ArmError("option lora_path is set by the spec", where=spec, fix="drop the option")


def parse_lora_spec(name: str) -> tuple[str, Path]:
    """``BASE+ADAPTER`` -> (base, adapter path); the first ``+`` separates them."""
    base, sep, adapter = name.partition("+")
    if not sep or not base.strip() or not adapter.strip():
        raise ArmError(f"lora arm '{name}' is not BASE+ADAPTER", where=f"lora:{name}",
                       fix="write lora:BASE_ID+PATH_TO_ADAPTER.gguf, e.g. "
                           "lora:smollm2-135m-instruct+runs/adapters/my.lora.gguf")
    path = Path(adapter.strip()).expanduser()
    if not path.is_absolute() and not path.exists():
        from kit.paths import project_root

        path = project_root() / path  # specs name adapters relative to the project root
    return base.strip(), path


class LoraArm(LlamaCppArm):
    """llama.cpp with a LoRA adapter. Options are the llama_cpp arm's; ``lora_sha256``, if given, is checked."""

    backend = "lora"

    def __init__(self, name: str, **options: Any) -> None:
        from kit.models import file_sha256

        base, adapter = parse_lora_spec(name)
        parse_options(LoraOptions, f"lora:{name}", options)
        if not adapter.is_file():
            raise ArmError("LoRA adapter file not found", where=str(adapter),
                           fix=f"train one with `kit finetune --task TASK --base {base}` and pass the path it prints")
        sha = file_sha256(adapter)
        expected = options.pop("lora_sha256", None)
        if expected and expected != sha:
            raise ArmError(f"adapter sha256 {sha[:12]}… differs from the expected {str(expected)[:12]}…",
                           where=str(adapter), fix="use the adapter the manifest names, or train it again")
        self.spec = f"lora:{name}"
        super().__init__(base, lora_path=str(adapter), lora_sha256=sha, **options)

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        ident.update({"base_sha256": self.model.sha256, "lora_sha256": self.options.lora_sha256,
                      "sha256": f"{self.model.sha256}+lora:{self.options.lora_sha256}"})
        return ident

    def describe(self) -> str:
        return (f"{self.model.id}{self.weights_words()} + LoRA adapter {Path(str(self.options.lora_path)).name} "
                f"on llama.cpp "
                f"(local, fine-tuned; adapter sha256 {str(self.options.lora_sha256)[:12]}…)")


def _models(name: str) -> list[str]:
    return [name.partition("+")[0]]


# found through the kit.arms entry point `lora` (pyproject.toml)
BACKEND = Backend("lora", LoraArm, options=LoraOptions, in_process=True, models=_models)
