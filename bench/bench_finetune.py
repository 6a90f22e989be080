"""Benchmark the LoRA fine-tune: its memory and speed against a plain peft loop (``--loops``), and what it
buys — SNIPS accuracy of the embedded SmolLM2-135M before and after (the default).

**Memory and speed (``--loops``).** Each training loop runs in a process of its own (so its peak resident
set is its own: ``ru_maxrss``) on the same train items of a task, tokenised the same way (the kit's
chat-formatted prompts, loss on the answer tokens), the same seeded batches of 8, the same LoRA (rank 8,
alpha 16, q/k/v/o/gate/up/down), AdamW lr 1e-3 with the kit's schedule:

- ``kit``: :func:`kit.finetune.train.train` of this checkout, float32 (``precision: auto`` on the CPU);
- ``kit-bf16``: the same with the base weights in bfloat16 (``precision: bfloat16``);
- ``reinit``: ``kit`` with another seed for the LoRA's initial weights (same batches): the yardstick of
  "equal within noise" — how far a loss curve moves when nothing but the random start changes;
- ``before``: the function of the checkout given with ``--before`` (e.g. an older main), float32;
- ``plain``: what a peft tutorial writes, float32 — each batch padded to its longest sequence, ``labels`` with
  -100 on the prompt, ``model(**batch, labels=labels).loss.backward()``.

It prints, per task and loop: peak RSS after loading the model, peak RSS at the end, seconds per step,
steps/s, the first and last losses, the largest and the mean loss difference from ``kit`` (``plain`` and
``before`` should agree with it to float rounding; how far ``kit-bf16`` strays is read against ``reinit``'s
distance), then the ratios of ``kit`` and ``kit-bf16`` against ``before`` and ``plain``.

    .venv/bin/python bench/bench_finetune.py --loops --tasks snips-intents,nace-activities --steps 30 \
        --which kit-bf16,kit,reinit,before --before ../old-main

**The most an exact float32 step could gain (``--bound``).** The kit's step on each task (batch 8, the task's
own prompts) timed, its matrix products' FLOPs counted (forward and backward), and their time at this CPU's
float32 matmul peak: the ratio bounds any speed-up that keeps the same arithmetic (the same loss curve).

    .venv/bin/python bench/bench_finetune.py --bound --tasks snips-intents,nace-activities

**Accuracy (default).** Fine-tunes on the task's train split, then runs the base model and the fine-tuned
model through llama.cpp on the same held-out test items (the first ``--limit`` of the seeded test order)
and compares them with the paired tests of kit.stats (exact McNemar, paired bootstrap of the accuracy
difference). Prints a markdown table for bench/README.md. Timings depend on what else runs on the machine.

    .venv/bin/python bench/bench_finetune.py --steps 80 --limit 150
"""

from __future__ import annotations

import argparse
import json
import os
import inspect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("KIT_BENCH_CHECKOUT", str(ROOT)))  # a --loops worker runs the kit it names
BASE = "smollm2-135m-instruct"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(loop: str, task_name: str, steps: int, seed: int) -> dict:
    """One loop in this process; returns its figures (printed as JSON by ``--worker``)."""
    import peft
    import torch

    from kit.finetune.train import build_examples, load_base, train
    from kit.models import resolve_model
    from kit.tasks import load_task

    task = load_task(task_name, folder=ROOT / "datasets")
    dtype = "bfloat16" if loop == "kit-bf16" else "float32"
    kwargs = {"dtype": dtype} if "dtype" in inspect.signature(load_base).parameters else {}  # an older checkout
    model, tok, _ = load_base(resolve_model(BASE).path, device="cpu", quantize="none", **kwargs)
    loaded_rss = _rss_mb()
    torch.manual_seed(seed + (1 if loop == "reinit" else 0))
    config = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none", target_modules=TARGETS,
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    examples = build_examples(task, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if loop == "plain":
        run = plain_loop(model, examples, steps=steps, seed=seed, pad_id=pad)
    else:
        run = train(model, examples, steps=steps, batch_size=8, lr=1e-3, seed=seed, device="cpu", pad_id=pad,
                    share_prefix=True)
    tokens = [len(e.prompt) + len(e.answer) for e in examples]
    return {"loop": loop, "task": task_name, "steps": steps, "train_s": run["train_seconds"],
            "losses": run["losses"], "loaded_rss_mb": loaded_rss, "peak_rss_mb": _rss_mb(),
            "threads": run.get("threads", torch.get_num_threads()), "items": len(examples),
            "mean_tokens": sum(tokens) / len(tokens), "max_tokens": max(tokens),
            "prefix_tokens": run.get("shared_prefix_tokens", 0), "dtype": kwargs.get("dtype", "float32")}



def plain_loop(model, examples, *, steps: int, seed: int, pad_id: int, batch_size: int = 8, lr: float = 1e-3) -> dict:
    """The loop of a peft tutorial, on the kit's batches: pad, mask the prompt in the labels, loss, step."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = max(1, min(10, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    order: list[int] = []
    losses = []
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.permutation(len(examples)).tolist()
        batch = [examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        seqs = [list(e.prompt) + list(e.answer) for e in batch]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        labels = torch.tensor([[-100] * len(e.prompt) + list(e.answer) + [-100] * (width - len(s))
                               for e, s in zip(batch, seqs)])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 6))
    return {"losses": losses, "train_seconds": time.perf_counter() - start}


def _spawn(loop: str, task: str, steps: int, seed: int, checkout: Path) -> dict:
    env = {**os.environ, "KIT_BENCH_CHECKOUT": str(checkout), "KIT_PROJECT": str(checkout)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", loop, "--tasks", task, "--steps", str(steps),
           "--seed", str(seed)]
    out = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{loop} on {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from kit.finetune import DEFAULT_LR

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="snips-intents")
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--limit", type=int, default=150, help="held-out test items to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "adapters"), help="adapter folder (cached by settings)")
    p.add_argument("--force", action="store_true", help="retrain even if a matching adapter is cached")
    p.add_argument("--loops", action="store_true", help="compare the training loops' memory and speed instead")
    p.add_argument("--tasks", default="snips-intents,nace-activities", help="--loops: the tasks")
    p.add_argument("--before", help="--loops: another checkout of the kit whose loop to run too (e.g. main)")
    p.add_argument("--which", default="kit,plain,before", help="--loops: which loops, in this order")
    p.add_argument("--bound", action="store_true",
                   help="how much faster the float32 step could be at all: its matmul FLOPs at this CPU's peak")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bound:
        return flop_bound(args.tasks.split(","), seed=args.seed)
    if args.worker:
        print(json.dumps(worker(args.worker, args.tasks, args.steps, args.seed)))
        return 0
    if args.loops:
        return compare_loops(args)
    from kit.arms import get_arm
    from kit.finetune import finetune
    from kit.models.hardware import cpu_info
    from kit.run.runner import run_arm
    from kit.run.store import Store
    from kit.stats import accuracy_ci, mcnemar, paired_bootstrap
    from kit.tasks import load_task
    from kit.tasks.scoring import score_responses

    task = load_task(args.task, folder=ROOT / "datasets")
    result = finetune(task, base=args.base, max_steps=args.steps, lr=args.lr, seed=args.seed, out_dir=args.out,
                      force=args.force)
    items = list(task.test[: args.limit])
    assert not {i.id for i in items} & set(result.train_item_ids), "an evaluated item was trained on"
    specs = {"base": f"llama_cpp:{args.base}", "fine-tuned": result.arm_spec}
    eval_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite") as store:
        for name, spec in specs.items():
            with get_arm(spec, n_ctx=2048) as arm:
                start = time.perf_counter()
                run_arm(task, arm, store=store, items=items, progress=True)
                eval_s[name] = time.perf_counter() - start
        scores = score_responses(task, store.responses(task=task.name, arms=list(specs.values())))
    by_arm = {name: scores[scores["arm"] == spec].set_index("item_id").loc[[i.id for i in items]]
              for name, spec in specs.items()}
    base_ok, tuned_ok = by_arm["base"]["correct"].to_numpy(), by_arm["fine-tuned"]["correct"].to_numpy()
    acc = {name: accuracy_ci(frame["correct"].to_numpy()).iloc[0] for name, frame in by_arm.items()}
    mc = mcnemar(tuned_ok, base_ok).iloc[0]
    boot = paired_bootstrap(tuned_ok, base_ok, n_resamples=10_000, seed=0).iloc[0]
    cpu = cpu_info()
    reused = " (adapter reused from the cache; time measured when it was trained)" if result.reused else ""

    print(f"\n### {task.name}: {args.base} before and after LoRA ({result.steps} steps, batch "
          f"{result.hyperparameters['batch_size']}, lr {result.hyperparameters['lr']}, rank "
          f"{result.hyperparameters['rank']}, alpha {result.hyperparameters['alpha']})\n")
    print("| arm | accuracy | 95% Wilson CI | test items | eval seconds |")
    print("|---|---|---|---|---|")
    for name in specs:
        a = acc[name]
        print(f"| {name} | {a['accuracy']:.3f} | {a['ci_low']:.3f}–{a['ci_high']:.3f} | {int(a['n'])} | "
              f"{eval_s[name]:.1f} |")
    print(f"\n- difference (fine-tuned − base): {boot['difference']:+.3f}, 95% paired bootstrap CI "
          f"{boot['ci_low']:+.3f} to {boot['ci_high']:+.3f} ({boot['method_used']}, 10,000 resamples)")
    print(f"- exact McNemar: fine-tuned alone right on {mc['b10']}, base alone right on {mc['b01']}, "
          f"p = {mc['p_exact']:.3g}")
    print(f"- training: {result.steps} steps on {result.n_train_items} train items in {result.train_seconds:.1f} s "
          f"({result.train_seconds / result.steps:.2f} s/step) on {result.device}: {cpu['model']}, "
          f"{cpu['usable_cores']} usable cores{reused}; final loss {result.final_loss:.4f} "
          f"(first step {result.losses[0]:.4f})")
    print(f"- adapter: {Path(result.adapter_path).name}, sha256 {result.adapter_sha256[:16]}…, "
          f"{Path(result.adapter_path).stat().st_size / 1e6:.1f} MB")
    return 0



def flop_bound(tasks: list[str], *, seed: int, steps: int = 3) -> int:
    """For each task, the kit's float32 step (the task's own prompts, batch 8, rank 8 on every projection) against
    the most its matrix products allow: their FLOPs (torch's FlopCounterMode: every mm/bmm/attention product of
    forward and backward) over this CPU's float32 matmul peak (a 2048x2048 product, best of 10). The ratio is an
    upper bound on any exact float32 speed-up: it assumes every product at the large-matrix peak and no other work.
    """
    import numpy as np
    import peft
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kit.finetune.train import Example, accumulate_step, build_examples, load_base, shared_prefix
    from kit.models import resolve_model
    from kit.models.hardware import cpu_threads
    from kit.tasks import load_task

    torch.set_num_threads(cpu_threads())
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    peak = 2 * 2048 ** 3 / best / 1e9
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    model, tok, _ = load_base(resolve_model(BASE).path, device="cpu", quantize="none", dtype="float32")
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none",
                                                       target_modules=TARGETS, task_type="CAUSAL_LM"))
    model.train()
    for name in tasks:
        examples = build_examples(load_task(name, folder=ROOT / "datasets"), tok)
        prefix = shared_prefix(examples)
        own = [Example(e.item_id, e.prompt[len(prefix):], e.answer) for e in examples]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rng = np.random.default_rng(seed)
        batches = [[own[i] for i in rng.choice(len(own), 8, replace=False)] for _ in range(steps)]

        def step(batch):
            model.zero_grad(set_to_none=True)
            accumulate_step(model, batch, prefix=prefix, device="cpu", pad_id=pad)

        step(batches[0])  # warm-up
        seconds = [_timed(lambda b=b: step(b)) for b in batches]
        flops = []
        for batch in batches:
            counter = FlopCounterMode(display=False)
            with counter:
                step(batch)
            flops.append(counter.get_total_flops() / 1e9)
        mean_s, mean_f = float(np.mean(seconds)), float(np.mean(flops))
        print(f"{name}: prefix {len(prefix)} tokens; a step {mean_s:.2f} s ({steps} steps), {mean_f:.0f} GFLOP of "
              f"matrix products = {mean_f / mean_s:.0f} GFLOP/s ({mean_f / mean_s / peak:.0%} of peak); at peak with "
              f"no other work {mean_f / peak:.2f} s: at most {mean_s / (mean_f / peak):.2f}x faster")
    return 0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare_loops(args: argparse.Namespace) -> int:
    from kit.models.hardware import cpu_info

    cpu = cpu_info()
    from kit.finetune.train import dequantised
    from kit.models import resolve_model

    for dtype in ("float32", "bfloat16"):  # made once beforehand: the loops' memory is training's, not the reading's
        dequantised(resolve_model(BASE).path, dtype=dtype)
    cpu = cpu_info()
    print(f"{cpu['model']}, {cpu['usable_cores']} usable cores, native bfloat16: {cpu['bf16']}; {args.steps} steps of "
          "8 items, rank 8\n")
    print("| task | loop | base dtype | items (mean / max tokens) | RSS after load | peak RSS | s/step | steps/s | "
          "threads | loss first → last | loss diff vs kit: max / mean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    loops = [lp for lp in args.which.split(",") if lp != "before" or args.before]
    for task in args.tasks.split(","):
        rows = {}
        for loop in loops:
            checkout = Path(args.before).resolve() if loop == "before" else ROOT
            rows[loop] = _spawn("kit" if loop == "before" else loop, task, args.steps, args.seed, checkout)
        ref = rows.get("kit", {}).get("losses")
        for loop, r in rows.items():
            gaps = [abs(a - b) for a, b in zip(r["losses"], ref)] if ref else [float("nan")]
            print(f"| {task} | {loop} | {r['dtype']} | {r['items']} ({r['mean_tokens']:.0f} / {r['max_tokens']}) | "
                  f"{r['loaded_rss_mb'] / 1024:.2f} GB | {r['peak_rss_mb'] / 1024:.2f} GB | "
                  f"{r['train_s'] / r['steps']:.2f} | {r['steps'] / r['train_s']:.3f} | {r['threads']} | "
                  f"{r['losses'][0]:.4f} → {r['losses'][-1]:.4f} | {max(gaps):.2g} / {sum(gaps) / len(gaps):.2g} |")
        for mine in ("kit", "kit-bf16"):
            for other in ("before", "plain"):
                if mine in rows and other in rows:
                    m, o = rows[mine], rows[other]
                    less, faster = o["peak_rss_mb"] / m["peak_rss_mb"], o["train_s"] / m["train_s"]
                    print(f"| {task} | {mine} vs {other} | | | | {less:.2f}x less memory | | {faster:.2f}x steps/s "
                          "| | | |")
        sys.stdout.flush()
    return 0



if __name__ == "__main__":
    sys.exit(main())
