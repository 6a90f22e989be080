"""The LoRA training loop behind :func:`kit.finetune.finetune` (torch, transformers and peft imported lazily).

Each training example is exactly what an arm sees at inference: the task's chat messages (system,
k-shot turns, the item) formatted with the GGUF's own chat template and a generation prompt, followed
by the gold answer and the end-of-turn token. The loss covers the answer tokens only.

On the CPU the prompt prefix that every example shares (system message and k-shot turns) is run once
per step and its keys/values are shared by the whole batch, with gradients flowing through it: the
same loss as running each sequence in full, at a fraction of the cost.

>>> model, tok, info = load_base(model_file, device="cpu", quantize="none")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kit.errors import ConfigError, KitError, MissingDependency

TORCH_PIN = "torch==2.13.0"
CPU_TORCH = f"pip install {TORCH_PIN} --index-url https://download.pytorch.org/whl/cpu"


def require_training_stack(*, quantize: bool = False) -> tuple[Any, Any, Any]:
    """Import torch, transformers and peft (and bitsandbytes for 4-bit), or say how to install them."""
    missing = []
    for name in ("torch", "transformers", "peft") + (("bitsandbytes",) if quantize else ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        err = MissingDependency(", ".join(missing), extra="finetune", purpose="for LoRA fine-tuning")
        gpu = " For 4-bit QLoRA on a GPU: a CUDA build of torch, then `pip install bitsandbytes`" if quantize else ""
        KitError.__init__(err, err.problem, where="finetune",
                          fix=f"run `{CPU_TORCH}` (a CPU build; a bare `pip install torch` pulls several GB of CUDA "
                              f"libraries), then `pip install 'kit[finetune]'`.{gpu}")
        raise err
    import peft
    import torch
    import transformers

    return torch, transformers, peft


@dataclass(frozen=True)
class Example:
    item_id: str
    prompt: tuple[int, ...]
    answer: tuple[int, ...]  # answer tokens then the end-of-turn token


def load_base(gguf_path: Any, *, device: str, quantize: str, hf_weights: str | None = None) -> tuple[Any, Any, dict]:
    """The base model and tokenizer, read from the GGUF (dequantised) or from ``hf_weights`` (a hub id or folder).

    ``quantize="4bit"`` loads the weights as 4-bit NF4 with bitsandbytes (QLoRA; CUDA only).
    """
    torch, transformers, _ = require_training_stack(quantize=quantize == "4bit")
    folder, name = str(gguf_path.parent), gguf_path.name
    source: dict[str, Any] = {"pretrained_model_name_or_path": hf_weights} if hf_weights else \
        {"pretrained_model_name_or_path": folder, "gguf_file": name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    kwargs: dict[str, Any] = {}
    if device == "cpu":
        kwargs["dtype"] = torch.float32
    elif quantize == "4bit":
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": device}
    else:
        kwargs["dtype"] = torch.bfloat16
    if quantize == "4bit" and not hf_weights:
        model = _load_gguf_4bit(transformers, torch, folder, name, kwargs)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(**source, **kwargs)
    if quantize != "4bit":
        model.to(device)
    cfg = model.config
    info = {"n_heads": int(cfg.num_attention_heads), "n_kv_heads": int(getattr(cfg, "num_key_value_heads", None)
                                                                         or cfg.num_attention_heads),
            "model_type": str(cfg.model_type)}
    return model, tokenizer, info


def _load_gguf_4bit(transformers: Any, torch: Any, folder: str, name: str, kwargs: dict[str, Any]) -> Any:
    """transformers will not quantise while reading a GGUF: dequantise it to bf16, save it as safetensors
    in a scratch folder (``$KIT_HOME/tmp``, removed afterwards), and load that in 4-bit."""
    import gc
    import tempfile

    from kit.paths import kit_home

    scratch = kit_home() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gguf-bf16-", dir=scratch) as tmp:
        plain = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
        plain.hf_quantizer = None  # the weights are plain tensors now; the GGUF marker only blocks saving
        if hasattr(plain.config, "quantization_config"):
            del plain.config.quantization_config
        plain.save_pretrained(tmp)
        del plain
        gc.collect()
        return transformers.AutoModelForCausalLM.from_pretrained(tmp, **kwargs)


def build_examples(task: Any, tokenizer: Any) -> list[Example]:
    """Token ids of every train item: the chat-formatted prompt and the answer (never the test items)."""
    from kit.tasks.prompts import build_messages

    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer read from the GGUF has no end-of-sequence token", where="finetune",
                          fix="use a GGUF with tokenizer.ggml.eos_token_id")
    out = []
    for item in task.train:
        text = tokenizer.apply_chat_template(list(build_messages(task, item)), add_generation_prompt=True,
                                             tokenize=False)
        bos = tokenizer.bos_token
        special = not (bos and text.startswith(bos))
        prompt = tokenizer(text, add_special_tokens=special)["input_ids"]
        answer = tokenizer(task.type.render(item.gold), add_special_tokens=False)["input_ids"] + [eos]
        out.append(Example(item.id, tuple(prompt), tuple(answer)))
    return out


def shared_prefix(examples: Sequence[Example]) -> tuple[int, ...]:
    """The longest run of prompt tokens every example starts with (leaving each at least one of its own)."""
    first = examples[0].prompt
    n = min(len(e.prompt) for e in examples) - 1
    for e in examples[1:]:
        k = 0
        while k < n and e.prompt[k] == first[k]:
            k += 1
        n = k
    return first[:max(n, 0)]


def batch_loss(model: Any, batch: Sequence[Example], *, prefix: Sequence[int], device: str, pad_id: int) -> Any:
    """Mean cross-entropy over the answer tokens of ``batch``; ``prefix`` (may be empty) is run once and shared."""
    import torch

    p = len(prefix)
    rows = [list(e.prompt[p:]) + list(e.answer) for e in batch]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, e) in enumerate(zip(rows, batch)):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        start = len(row) - len(e.answer)  # position of the first answer token
        targets[i, start - 1:len(row) - 1] = torch.tensor(e.answer)  # logits at t predict token t + 1
    ids, mask, targets = ids.to(device), mask.to(device), targets.to(device)
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = core.get_decoder(), core.get_output_embeddings()
    kwargs: dict[str, Any] = {}
    if p:
        out = decoder(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True)
        cache = out.past_key_values
        cache.batch_repeat_interleave(len(rows))
        kwargs = {"past_key_values": cache, "use_cache": True}
        mask = torch.cat([torch.ones((len(rows), p), dtype=mask.dtype, device=device), mask], dim=1)
    hidden = decoder(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
    keep = targets != -100
    logits = head(hidden[keep]).float()
    cap = getattr(core.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, targets[keep])


def train(model: Any, examples: Sequence[Example], *, steps: int, batch_size: int, lr: float, seed: int,
          device: str, pad_id: int, share_prefix: bool, on_step: Callable[[int, float], None] | None = None) -> dict:
    """Run ``steps`` AdamW steps over seeded shuffles of ``examples``; return losses and timing."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = max(1, min(10, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    prefix = shared_prefix(examples) if share_prefix else ()
    order: list[int] = []
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if len(order) < batch_size:
            order += rng.permutation(len(examples)).tolist()
        batch = [examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        loss = batch_loss(model, batch, prefix=prefix, device=device, pad_id=pad_id)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ConfigError(f"the loss became {value} at step {step + 1}", where="finetune",
                              fix="lower the learning rate (--lr)")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(value, 6))
        if on_step:
            on_step(step + 1, losses[-1])
    model.eval()
    return {"losses": losses, "train_seconds": time.perf_counter() - start, "shared_prefix_tokens": len(prefix)}
