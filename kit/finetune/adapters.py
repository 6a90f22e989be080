"""Fine-tune a local model on a task's train split with LoRA, and export the adapter for llama.cpp.

The train split is disjoint from the test items every arm is evaluated on (``Task.train`` /
``Task.test``, seeded). transformers reads the base weights from the same GGUF that llama.cpp runs
(dequantised), peft trains a LoRA on the attention and MLP projections, and the adapter is written as a
GGUF LoRA (:mod:`kit.finetune.gguf_export`) with its sha256. A ``lora:BASE+ADAPTER`` arm then runs it on llama.cpp.

On the CPU (float32; ``precision="bfloat16"`` on a CPU that multiplies it natively trains 1.15-1.4x faster, its
loss curve a little off float32's) this suits small models such as the embedded SmolLM2-135M. With CUDA and a large
base (7B/8B), the weights are loaded in 4-bit NF4 with bitsandbytes (QLoRA) automatically, or when
``quantize="4bit"`` is asked for.

Training is cached: the same task data and prompt, base file, hyper-parameters and seed reuse the adapter
already in ``out_dir`` (checked against the sha256 in its manifest) instead of training again.

>>> result = finetune("snips-intents", max_steps=40)          # doctest: +SKIP
>>> result.arm_spec, result.train_seconds                      # doctest: +SKIP
('lora:smollm2-135m-instruct+runs/adapters/snips-intents.smollm2-135m-instruct.3be1c0a2f9d4.lora.gguf', 212.4)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.progress import Progress
from kit.util import atomic_write_json
from kit.tasks import Task
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant

DEFAULT_BASE = "smollm2-135m-instruct"
DEFAULT_STEPS = 40
DEFAULT_LR = 1e-3
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LARGE_BASE_BYTES = 2_500_000_000  # GGUF files above this (7B/8B at 4 bits) train as 4-bit QLoRA on a GPU
FORMAT = 1  # bump when training or export changes what an adapter means (invalidates the cache)


class Precision(StrEnum):
    """The number format the base model's weights and activations are trained in (the LoRA's own weights and
    the optimizer stay float32)."""

    AUTO = "auto"          # float32 on the CPU (the exact loss curve), bfloat16 on CUDA
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"  # on a CPU: 1.15-1.4x the steps/s where it is native (AVX512-BF16/AMX), slower elsewhere


@dataclass
class FinetuneResult:
    """What a fine-tune produced, and how. ``reused`` is True when the cached adapter was returned."""

    adapter_path: str
    adapter_sha256: str
    manifest_path: str
    task: str
    base: str
    base_sha256: str
    train_seconds: float
    steps: int
    final_loss: float
    losses: list[float]
    n_train_items: int
    train_item_ids: list[str]
    hyperparameters: dict[str, Any]
    hardware: dict[str, Any]
    device: str
    created_at: str
    reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arm_spec(self) -> str:
        """The arm that runs this adapter on llama.cpp: ``lora:BASE+ADAPTER`` (ADAPTER relative to the
        project root when it lies inside it, so the spec does not depend on where the checkout is)."""
        from kit.paths import project_root

        path = Path(self.adapter_path)
        try:
            path = path.resolve().relative_to(project_root())
        except ValueError:
            pass
        return f"lora:{self.base}+{path}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_data_hash(task: Task, prompt: PromptVariant = DEFAULT_PROMPT) -> str:
    """sha256 of what training sees: every train item's id, chat messages (in the form ``prompt`` gives) and
    rendered gold answer."""
    from kit.tasks.prompts import build_messages, render_answer

    rows = [[item.id, list(build_messages(task, item, prompt)), render_answer(task, item.gold, prompt)]
            for item in task.train]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def finetune(task: Task | str, *, base: str = DEFAULT_BASE, max_steps: int = DEFAULT_STEPS,
             out_dir: str | Path | None = None, lr: float = DEFAULT_LR, rank: int = 8, alpha: float = 16,
             batch_size: int = 8, seed: int = 0, targets: tuple[str, ...] = DEFAULT_TARGETS, device: str = "auto",
             quantize: str = "auto", hf_weights: str | None = None, progress: bool = True,
             force: bool = False, prompt: PromptVariant = DEFAULT_PROMPT,
             precision: Precision | str = Precision.AUTO) -> FinetuneResult:
    """Train a LoRA on ``task.train`` (never ``task.test``) and export it as a GGUF adapter for llama.cpp.

    ``device``: "auto" (CUDA when torch sees it, else CPU), "cpu" or "cuda". ``quantize``: "auto"
    (4-bit on CUDA for bases over 2.5 GB), "none" or "4bit" (QLoRA, bitsandbytes, CUDA only).
    ``hf_weights``: a hub id or folder to read the base weights from instead of dequantising the GGUF
    (e.g. the upstream repo of a 7B model); the GGUF still gives the tokenizer, chat template and
    architecture. ``force`` retrains even when a cached adapter matches. ``prompt``: the form the train items
    are asked in — the fine-tune learns the prompt it will be asked with (e.g. 0 shots: shorter prompts, faster
    steps and answers); it names the adapter through the training data's hash. ``precision``: see
    :class:`Precision` (it is part of what names the adapter).

    >>> r = finetune("snips-intents", max_steps=40, progress=False)   # doctest: +SKIP
    >>> r.adapter_path.endswith(".lora.gguf"), len(r.losses)           # doctest: +SKIP
    (True, 40)
    """
    from kit.models import file_sha256
    from kit.tasks import load_task

    task = load_task(task) if isinstance(task, str) else task
    plan = _plan(task, base=base, max_steps=max_steps, out_dir=out_dir, lr=lr, rank=rank, alpha=alpha,
                 batch_size=batch_size, seed=seed, targets=targets, device=device, quantize=quantize,
                 hf_weights=hf_weights, prompt=prompt, precision=precision)
    if not force:
        cached = _cached(plan.adapter, plan.manifest)
        if cached is not None:
            return cached
    result = _train_and_export(task, base=base, model_file=plan.model_file, arch=plan.arch, hyper=plan.hyper,
                               adapter=plan.adapter, progress=progress, prompt=prompt)
    result.update({"manifest_path": str(plan.manifest),
                   "extra": {**result.get("extra", {}), "data_sha256": plan.data_hash, "cache_key": plan.key}})
    out = FinetuneResult(**result)
    if file_sha256(plan.adapter) != out.adapter_sha256:
        raise ConfigError("the adapter changed on disk while it was written", where=str(plan.adapter), fix="run again")
    atomic_write_json(plan.manifest, out.to_dict())
    return out


@dataclass(frozen=True)
class _Plan:
    model_file: Any
    arch: str
    hyper: dict[str, Any]
    data_hash: str
    key: str
    adapter: Path
    manifest: Path


def _plan(task: Task, *, base: str, max_steps: int, out_dir: str | Path | None, lr: float, rank: int, alpha: float,
          batch_size: int, seed: int, targets: tuple[str, ...], device: str, quantize: str,
          hf_weights: str | None, prompt: PromptVariant = DEFAULT_PROMPT,
          precision: Precision | str = Precision.AUTO) -> _Plan:
    """Check the options and work out everything that names the adapter: the cache key and the file paths."""
    from kit.models.gguf import read_gguf_info
    from kit.models import resolve_model
    from kit.paths import runs_dir

    _check_options(max_steps=max_steps, lr=lr, rank=rank, alpha=alpha, batch_size=batch_size, device=device,
                   quantize=quantize, targets=targets, precision=precision)
    _check_split(task)
    model_file = resolve_model(base)
    dev = _pick_device(device)
    quant = ("4bit" if dev == "cuda" and model_file.size > LARGE_BASE_BYTES else "none") if quantize == "auto" \
        else quantize
    if quant == "4bit" and dev != "cuda":
        raise ConfigError("4-bit QLoRA needs a CUDA GPU", where="finetune",
                          fix="run on a machine with CUDA, or pass quantize='none' (--quantize none) for the CPU")
    hyper = {"max_steps": max_steps, "lr": lr, "rank": rank, "alpha": float(alpha), "dropout": 0.0,
             "batch_size": batch_size, "seed": seed, "targets": list(targets), "optimizer": "adamw",
             "schedule": "linear warm-up (10% of steps, at most 10) then linear decay", "grad_clip": 1.0,
             "loss": "answer tokens only", "hf_weights": hf_weights, "device": dev, "quantize": quant,
             "precision": "nf4 base, bf16 compute" if quant == "4bit" else _dtype(Precision(precision), dev)}
    data_hash = training_data_hash(task, prompt)
    key = hashlib.sha256(json.dumps({"format": FORMAT, "task": task.name, "data": data_hash,
                                     "base": model_file.sha256, "hyper": hyper}, sort_keys=True).encode()).hexdigest()
    folder = Path(out_dir) if out_dir is not None else runs_dir() / "adapters"
    stem = f"{_slug(task.name)}.{_slug(base)}.{key[:12]}"
    return _Plan(model_file=model_file, arch=read_gguf_info(model_file.path).architecture, hyper=hyper,
                 data_hash=data_hash, key=key, adapter=folder / f"{stem}.lora.gguf", manifest=folder / f"{stem}.json")


def _train_and_export(task: Task, *, base: str, model_file: Any, arch: str, hyper: dict[str, Any], adapter: Path,
                      progress: bool, prompt: PromptVariant) -> dict[str, Any]:
    from kit import __version__
    from kit.models.hardware import fingerprint
    from kit.finetune.gguf_export import adapter_tensors, write_adapter
    from kit.finetune.train import build_examples, load_base, require_training_stack, train

    device, quant = hyper["device"], hyper["quantize"]
    torch, _, peft = require_training_stack(quantize=quant == "4bit")
    dtype = "bfloat16" if quant == "4bit" else hyper["precision"]
    model, tokenizer, info = load_base(model_file.path, device=device, quantize=quant, hf_weights=hyper["hf_weights"],
                                       dtype=dtype)
    if quant == "4bit":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                     gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(hyper["seed"])
    config = peft.LoraConfig(r=hyper["rank"], lora_alpha=hyper["alpha"], lora_dropout=0.0, bias="none",
                             target_modules=hyper["targets"], task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    examples = build_examples(task, tokenizer, prompt)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    bar = Progress(f"LoRA {base} · {task.name}", total=hyper["max_steps"], stage="finetune", unit="step",
                   show=progress)

    def on_step(step: int, loss: float) -> None:
        bar.advance(detail=f"loss {loss:.4f}")

    try:
        run = train(model, examples, steps=hyper["max_steps"], batch_size=hyper["batch_size"], lr=hyper["lr"],
                    seed=hyper["seed"], device=device, pad_id=pad, share_prefix=quant != "4bit", on_step=on_step)
    finally:
        bar.close()
    state = peft.get_peft_model_state_dict(model, save_embedding_layers=False)
    tensors = adapter_tensors(state, arch=arch, n_heads=info["n_heads"], n_kv_heads=info["n_kv_heads"])
    losses = run["losses"]
    sha = write_adapter(adapter, tensors, arch=arch, alpha=hyper["alpha"], metadata={
        "task": task.name, "base": base, "base_sha256": model_file.sha256, "steps": str(hyper["max_steps"]),
        "kit_version": __version__})
    return {
        "adapter_path": str(adapter), "adapter_sha256": sha, "task": task.name, "base": base,
        "base_sha256": model_file.sha256, "train_seconds": round(run["train_seconds"], 3),
        "steps": len(losses), "final_loss": round(sum(losses[-5:]) / len(losses[-5:]), 6), "losses": losses,
        "n_train_items": len(examples), "train_item_ids": [e.item_id for e in examples], "hyperparameters": hyper,
        "hardware": fingerprint(), "device": device,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "extra": {"prompt": prompt.describe(), "shared_prefix_tokens": run["shared_prefix_tokens"],
                  "threads": run["threads"], "tokens_per_pass": run["tokens_per_pass"], "arch": arch, "tensors": len(tensors),
                  "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad))},
    }


def load_result(manifest: str | Path) -> FinetuneResult:
    """A FinetuneResult from the JSON manifest written beside an adapter."""
    data = json.loads(Path(manifest).read_text(encoding="utf-8"))
    known = set(FinetuneResult.__dataclass_fields__)
    return FinetuneResult(**{k: v for k, v in data.items() if k in known})


def _cached(adapter: Path, manifest: Path) -> FinetuneResult | None:
    from kit.models import file_sha256

    if not (adapter.is_file() and manifest.is_file()):
        return None
    try:
        result = load_result(manifest)
    except (ValueError, TypeError, OSError):
        return None
    if file_sha256(adapter) != result.adapter_sha256:
        return None  # the file was replaced or damaged: train again
    result.adapter_path, result.manifest_path, result.reused = str(adapter), str(manifest), True
    return result


def _dtype(precision: Precision, device: str) -> str:
    """The dtype the base model is trained in: ``auto`` is bfloat16 on CUDA, float32 on the CPU (bench/README.md:
    bfloat16 there moves the loss curve 0.02-0.03 a step from float32's for a 1.15-1.4x speed-up)."""
    if precision is Precision.AUTO:
        return "bfloat16" if device == "cuda" else "float32"
    return precision.value


def _check_options(*, max_steps: int, lr: float, rank: int, alpha: float, batch_size: int, device: str,
                   quantize: str, targets: tuple[str, ...], precision: Precision | str = Precision.AUTO) -> None:
    from kit.finetune.gguf_export import LLAMA_CPP_NAMES

    for name, value in (("max_steps", max_steps), ("rank", rank), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer", where="finetune")
    if not lr > 0 or not alpha > 0:
        raise ConfigError(f"lr={lr} and alpha={alpha} must be positive", where="finetune")
    if device not in ("auto", "cpu", "cuda") or quantize not in ("auto", "none", "4bit"):
        raise ConfigError(f"device={device!r} / quantize={quantize!r} not understood", where="finetune",
                          fix="device: auto, cpu or cuda; quantize: auto, none or 4bit")
    if precision not in set(Precision):
        raise ConfigError(f"precision={precision!r} not understood", where="finetune",
                          fix=f"precision: {', '.join(p.value for p in Precision)}")
    bad = [t for t in targets if t not in LLAMA_CPP_NAMES] or ([] if targets else ["(none)"])
    if bad:
        raise ConfigError(f"cannot export LoRA targets {bad} to llama.cpp", where="finetune",
                          fix=f"choose among {list(LLAMA_CPP_NAMES)}")


def _check_split(task: Task) -> None:
    if not task.train:
        raise ConfigError(f"task '{task.name}' has no train items to learn from", where=str(task.path),
                          fix="lower split.test_fraction in the task YAML so that some items go to training")
    overlap = {i.id for i in task.train} & {i.id for i in task.test}
    if overlap:
        raise ConfigError(f"{len(overlap)} items are in both the train and the test split", where=str(task.path),
                          fix="make item ids unique")


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"  # the missing stack is reported when training starts
    return "cuda" if torch.cuda.is_available() else "cpu"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if os.sep in text else text).strip("-") or "model"


