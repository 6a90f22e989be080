"""Benchmark: SNIPS intents accuracy of the embedded SmolLM2-135M before and after LoRA fine-tuning.

Fine-tunes on the task's train split, then runs the base model and the fine-tuned model through
llama.cpp on the same held-out test items (the first ``--limit`` of the seeded test order) and compares
them with the paired tests of kit.stats (exact McNemar, paired bootstrap of the accuracy difference).
Prints a markdown table for bench/README.md. Timings depend on what else runs on the machine.

    .venv/bin/python bench/bench_finetune.py --steps 80 --limit 150
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
    from kit.arms import get_arm
    from kit.finetune import DEFAULT_LR, finetune
    from kit.models.hardware import cpu_info
    from kit.run.runner import run_arm
    from kit.tasks.scoring import score_responses
    from kit.stats import accuracy_ci, mcnemar, paired_bootstrap
    from kit.run.store import Store
    from kit.tasks import load_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="snips-intents")
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--limit", type=int, default=150, help="held-out test items to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "adapters"), help="adapter folder (cached by settings)")
    p.add_argument("--force", action="store_true", help="retrain even if a matching adapter is cached")
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
