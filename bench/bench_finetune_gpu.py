"""GPU check of the fine-tuning paths: 4-bit QLoRA (bitsandbytes) and bf16 LoRA on CUDA, then GGUF export.

Needs a CUDA GPU, torch with CUDA, transformers, peft, bitsandbytes and gguf. ``--base`` is a catalog id
or a GGUF path (e.g. a 7B/8B Instruct GGUF from `kit models pull`); without one, a tiny random llama GGUF
with SmolLM2's tokenizer is used (``--tiny SOURCE.gguf`` builds it from the embedded model), which checks
the code paths, not the quality.

    python bench/bench_finetune_gpu.py --base mistral-7b-instruct-v0.3 --steps 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from kit.finetune import finetune
    from kit.finetune.gguf_export import read_adapter
    from kit.tasks import load_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="catalog id or GGUF path")
    p.add_argument("--tiny", help="build a tiny random GGUF from this GGUF's tokenizer and use it as the base")
    p.add_argument("--task", default="snips-intents")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="4bit,none", help="quantize modes to run, comma-separated")
    p.add_argument("--out", help="adapter folder (default: a temporary folder)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check here", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="kit-ft-gpu-"))
    base = args.base
    if args.tiny:
        from tiny_gguf import tiny_llama_gguf

        base = str(tiny_llama_gguf(args.tiny, out / "tiny-llama.gguf"))
    task = load_task(args.task, folder=ROOT / "datasets")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    for mode in args.modes.split(","):
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        r = finetune(task, base=base, max_steps=args.steps, device="cuda", quantize=mode, out_dir=out, force=True)
        meta, tensors = read_adapter(r.adapter_path)
        print(f"quantize={mode}: {r.steps} steps in {r.train_seconds:.1f} s ({r.train_seconds / r.steps:.3f} s/step; "
              f"{time.perf_counter() - start:.1f} s with loading and export); loss {r.losses[0]:.3f} -> "
              f"{r.final_loss:.3f}; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB; "
              f"adapter {len(tensors)} tensors, type {meta['adapter.type']}, alpha {meta['adapter.lora.alpha']}, "
              f"sha256 {r.adapter_sha256[:12]}; quantize used: {r.extra.get('quantize')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
