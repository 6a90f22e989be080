"""The LoRA training loop behind :func:`kit.finetune.finetune` (torch, transformers and peft imported lazily).

Each training example is exactly what an arm sees at inference: the task's chat messages (system,
k-shot turns, the item) formatted with the GGUF's own chat template and a generation prompt, followed
by the gold answer and the end-of-turn token. The loss covers the answer tokens only.

On the CPU the prompt prefix that every example shares (system message and k-shot turns) is run once
per step and its keys/values are shared by the whole batch, with gradients flowing through it: the
same loss as running each sequence in full, at a fraction of the cost. The rows' own tokens then run in
passes of at most 512 tokens, shortest rows together (little padding), each pass's activations freed
by its own backward: a step's memory is one prefix and one pass, whatever the batch size and however
long the task's texts (a long-text task once held 8 padded rows of ~1,000 tokens at once, 7.4 GB).
torch runs on the cores this process may use (:func:`kit.models.hardware.cpu_threads`).

>>> model, tok, info = load_base(model_file, device="cpu", quantize="none")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError, KitError, MissingDependency
from kit.models.hardware import cpu_threads
from kit.tasks.prompts import DEFAULT_PROMPT, PromptVariant, build_messages, render_answer

TORCH_PIN = "torch==2.13.0"
TOKENS_PER_PASS = 512  # a pass's own tokens (rows x padded width): bounds the activations held at once
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


def load_base(gguf_path: Any, *, device: str, quantize: str, hf_weights: str | None = None,
              dtype: str | None = None) -> tuple[Any, Any, dict]:
    """The base model and tokenizer, read from the GGUF (dequantised) or from ``hf_weights`` (a hub id or folder),
    in ``dtype`` ("float32" or "bfloat16"; default: float32 on the CPU, bfloat16 on a GPU).

    transformers reads a GGUF slowly (it dequantises every tensor in Python: about 25 s for a 135M model on one
    core), so the first read is kept as a plain transformers folder (:func:`dequantised`) and later fine-tunes of
    the same file load that. ``quantize="4bit"`` loads the weights as 4-bit NF4 with bitsandbytes (QLoRA; CUDA
    only).
    """
    torch, transformers, _ = require_training_stack(quantize=quantize == "4bit")
    kwargs: dict[str, Any] = {}
    dtype = dtype or ("float32" if device == "cpu" else "bfloat16")
    if quantize == "4bit":
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": device}
        dtype = "bfloat16"  # 4-bit loads from bf16 weights: transformers will not quantise while reading a GGUF
    else:
        kwargs["dtype"] = getattr(torch, dtype)
    folder = hf_weights or str(dequantised(gguf_path, dtype=dtype))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quantize != "4bit":
        model.to(device)
    cfg = model.config
    info = {"n_heads": int(cfg.num_attention_heads), "n_kv_heads": int(getattr(cfg, "num_key_value_heads", None)
                                                                         or cfg.num_attention_heads),
            "model_type": str(cfg.model_type)}
    return model, tokenizer, info


def dequantised(gguf_path: str | Path, *, dtype: str) -> Path:
    """A transformers folder (safetensors weights, config, tokenizer) of the GGUF's weights dequantised to
    ``dtype``, made once per file and dtype in ``$KIT_HOME/dequantised/<sha256[:16]>-<dtype>/`` (about 4 bytes a
    parameter for float32: 540 MB for SmolLM2-135M; remove the folder to free it) and reused after. Another dtype
    is cast from the float32 folder when there is one (the same values: transformers dequantises a GGUF to float32
    first), not read from the GGUF again. Written in a scratch folder and renamed into place, so a run cut off halfway, or two at
    once, leave no half folder."""
    import gc
    import os
    import shutil
    import tempfile

    from kit.models import file_sha256
    from kit.paths import kit_home

    torch, transformers, _ = require_training_stack()
    path = Path(gguf_path)
    home = kit_home() / "dequantised"
    target = home / f"{file_sha256(path)[:16]}-{dtype}"
    if (target / "config.json").is_file():
        return target
    home.mkdir(parents=True, exist_ok=True)
    exact = home / f"{target.name.rsplit('-', 1)[0]}-float32"  # cast from float32: lossless (from bf16 it is not)
    source = {"pretrained_model_name_or_path": str(exact)} if (exact / "config.json").is_file() else \
        {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=home))
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(**source)
        plain = transformers.AutoModelForCausalLM.from_pretrained(**source, dtype=getattr(torch, dtype))
        plain.hf_quantizer = None  # the weights are plain tensors now; the GGUF marker only blocks saving
        if hasattr(plain.config, "quantization_config"):
            del plain.config.quantization_config
        plain.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        del plain
        gc.collect()
        try:
            os.rename(scratch, target)
        except OSError:  # another process put it there first: theirs is the same
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def build_examples(task: Any, tokenizer: Any, prompt: PromptVariant = DEFAULT_PROMPT) -> list[Example]:
    """Token ids of every train item: the chat-formatted prompt in the form ``prompt`` gives (default: the task's
    own) and the answer (never the test items)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer read from the GGUF has no end-of-sequence token", where="finetune",
                          fix="use a GGUF with tokenizer.ggml.eos_token_id")
    out = []
    for item in task.train:
        text = tokenizer.apply_chat_template(list(build_messages(task, item, prompt)), add_generation_prompt=True,
                                             tokenize=False)
        bos = tokenizer.bos_token
        special = not (bos and text.startswith(bos))
        ids = tokenizer(text, add_special_tokens=special)["input_ids"]
        answer = tokenizer(render_answer(task, item.gold, prompt), add_special_tokens=False)["input_ids"] + [eos]
        out.append(Example(item.id, tuple(ids), tuple(answer)))
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


def passes(batch: Sequence[Example], *, tokens: int) -> list[list[Example]]:
    """The batch's rows in passes of at most ``tokens`` own tokens each (rows × the pass's longest row; a
    longer row alone), shortest rows first, so that a pass pads little and holds few activations at once.

    >>> rows = [Example(str(n), (1,) * n, (2,)) for n in (9, 2, 3, 8)]
    >>> [[e.item_id for e in p] for p in passes(rows, tokens=12)]
    [['2', '3'], ['8'], ['9']]
    """
    order = sorted(batch, key=lambda e: len(e.prompt) + len(e.answer))
    out: list[list[Example]] = []
    for e in order:
        width = len(e.prompt) + len(e.answer)
        if out and (len(out[-1]) + 1) * width <= tokens:  # sorted: this row is the pass's longest
            out[-1].append(e)
        else:
            out.append([e])
    return out


def accumulate_step(model: Any, batch: Sequence[Example], *, prefix: Sequence[int], device: str, pad_id: int,
                    tokens_per_pass: int = TOKENS_PER_PASS) -> float:
    """Add the gradients of one step's loss — the mean cross-entropy over the answer tokens of ``batch`` — to
    the trainable parameters' ``.grad``; return the loss.

    ``prefix`` (may be empty: then every row runs in full) is the prompt start every row shares: it is run
    once, its keys/values are shared by every row, and the rows run in :func:`passes` of at most
    ``tokens_per_pass`` own tokens, each pass's activations freed by its backward before the next. The
    gradients reaching the prefix's keys/values are summed over the passes and sent through the prefix
    once at the end. A prefix longer than ``tokens_per_pass`` is first run without gradients and run again
    with them at the end (its activations are not held while the passes run). The same gradients as one
    pass over the full padded sequences (tests check both ways), with the memory of at most about
    ``tokens_per_pass`` tokens of prefix and one pass, and no padding beyond a pass's own.
    """
    import torch

    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = core.get_decoder(), core.get_output_embeddings()
    total = sum(len(e.answer) for e in batch)
    p = len(prefix)
    shared: list[Any] = []
    leaves: list[Any] = []
    recompute = p > tokens_per_pass  # a long prefix is not held: run again with gradients at the end
    if p:
        prefix_ids = torch.tensor([list(prefix)], device=device)
        with torch.set_grad_enabled(not recompute):
            shared = _cache_tensors(decoder(input_ids=prefix_ids, use_cache=True).past_key_values)
        leaves = [t.detach().requires_grad_() for t in shared]
    value = 0.0
    for rows in passes(batch, tokens=tokens_per_pass):
        ids, mask, targets = _padded(rows, pad_id=pad_id, device=device)
        kwargs: dict[str, Any] = {}
        if p:
            kwargs = {"past_key_values": _shared_cache(core.config, leaves, len(rows)), "use_cache": True}
            mask = torch.cat([torch.ones((len(rows), p), dtype=mask.dtype, device=device), mask], dim=1)
        hidden = decoder(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
        keep = targets != -100
        logits = head(hidden[keep]).float()
        cap = getattr(core.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum") / total
        loss.backward()
        value += float(loss.detach())
        del hidden, logits, loss
    if p:
        if recompute:  # the same values, now with their graph: one more prefix forward instead of holding it
            shared = _cache_tensors(decoder(input_ids=prefix_ids, use_cache=True).past_key_values)
        # a layer whose keys/values no LoRA reaches (e.g. the first layer's keys without k_proj) has no graph
        pairs = [(t, leaf.grad) for t, leaf in zip(shared, leaves) if t.requires_grad and leaf.grad is not None]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
    return value


def _padded(rows: Sequence[Example], *, pad_id: int, device: str) -> tuple[Any, Any, Any]:
    """Ids, attention mask and targets (-100 but where a logit predicts an answer token) of ``rows`` after
    the shared prefix, padded on the right to the longest."""
    import torch

    seqs = [list(e.prompt) + list(e.answer) for e in rows]
    width = max(len(r) for r in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    targets = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (row, e) in enumerate(zip(seqs, rows)):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        start = len(row) - len(e.answer)  # position of the first answer token
        targets[i, start - 1:len(row) - 1] = torch.tensor(e.answer)  # logits at t predict token t + 1
    return ids.to(device), mask.to(device), targets.to(device)


def _cache_tensors(cache: Any) -> list[Any]:
    """Every layer's keys then values of a transformers cache, in layer order."""
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def _shared_cache(config: Any, tensors: Sequence[Any], rows: int) -> Any:
    """A fresh cache holding the shared prefix's keys/values for ``rows`` rows (views, not copies): each pass
    appends its own keys/values to a cache of its own, and gradients flow back to ``tensors``."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for layer in range(len(tensors) // 2):
        keys, values = tensors[2 * layer], tensors[2 * layer + 1]
        cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), layer)
    return cache


def train(model: Any, examples: Sequence[Example], *, steps: int, batch_size: int, lr: float, seed: int,
          device: str, pad_id: int, share_prefix: bool, on_step: Callable[[int, float], None] | None = None,
          tokens_per_pass: int = TOKENS_PER_PASS, threads: int | None = None) -> dict:
    """Run ``steps`` AdamW steps over seeded shuffles of ``examples``; return losses and timing.

    ``threads``: torch's CPU threads for the run (default: the cores this process may use, see
    :func:`kit.models.hardware.cpu_threads`); restored afterwards.
    """
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
    own = [Example(e.item_id, e.prompt[len(prefix):], e.answer) for e in examples]
    order: list[int] = []
    losses: list[float] = []
    before = torch.get_num_threads()
    n_threads = threads or cpu_threads()
    torch.set_num_threads(n_threads)
    model.train()
    start = time.perf_counter()
    try:
        for step in range(steps):
            if len(order) < batch_size:
                order += rng.permutation(len(examples)).tolist()
            batch = [own[i] for i in order[:batch_size]]
            del order[:batch_size]
            value = accumulate_step(model, batch, prefix=prefix, device=device, pad_id=pad_id,
                                    tokens_per_pass=tokens_per_pass)
            if not math.isfinite(value):
                raise ConfigError(f"the loss became {value} at step {step + 1}", where="finetune",
                                  fix="lower the learning rate (--lr)")
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(round(value, 6))
            if on_step:
                on_step(step + 1, losses[-1])
    finally:
        torch.set_num_threads(before)
        model.eval()
    return {"losses": losses, "train_seconds": time.perf_counter() - start, "shared_prefix_tokens": len(prefix),
            "threads": n_threads, "tokens_per_pass": tokens_per_pass}
