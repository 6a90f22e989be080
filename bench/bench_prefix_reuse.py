"""Prefix reuse on a task with shots: items/s with and without the shared prompt prefix kept in the KV cache.

Issue 27, item 3. The prompt builder puts the shared part first (system message, then the shots as turns, then
the item), so consecutive items of one prompt form share everything up to the item's text. Two places keep it:

- the in-process llama.cpp arm (``prefix_cache``, default on): measured with it on and off, side by side;
- the stand-in (llama-cpp-python's OpenAI server): its ``Llama.generate`` keeps the previous request's tokens and
  evaluates only what differs (its log says "N prefix-match hit"; Gemma 3's sliding-window cache is full-size by
  default in llama-cpp-python, so the cut works). It has no switch, so "without" is measured by asking another
  prompt form between two items (a 0-shot request), which replaces the cached prefix — and only the k-shot
  requests are timed.

    .venv/bin/python bench/bench_prefix_reuse.py --task nace-activities --shots 3 --items 6
"""

from __future__ import annotations

import argparse
import statistics
import time

from kit.arms import get_arm
from kit.arms.standin import STANDIN_MODEL, StandinServer, standin_arm_options
from kit.tasks import load_task
from kit.tasks.prompts import PromptVariant, build_request


def _in_process(task, requests, *, model: str, prefix_cache: bool) -> float:
    with get_arm(f"llama_cpp:{model}", n_ctx=4096, prefix_cache=prefix_cache) as arm:
        arm.complete(requests[0])  # load and warm up (not timed)
        began = time.perf_counter()
        for request in requests[1:]:
            done = arm.complete(request)
            assert done.error is None, done.error
        return (len(requests) - 1) / (time.perf_counter() - began)


def _standin(requests, zero_shot) -> tuple[float, float]:
    """items/s of the k-shot requests in order (prefix reused), and with a 0-shot request between each (lost)."""
    with StandinServer(STANDIN_MODEL, n_ctx=4096) as server:
        arm = get_arm(f"openai:{STANDIN_MODEL}", **standin_arm_options(server=server))
        arm.complete(requests[0])
        kept = []
        for request in requests[1:]:
            began = time.perf_counter()
            arm.complete(request)
            kept.append(time.perf_counter() - began)
        lost = []
        for request, other in zip(requests[1:], zero_shot[1:]):
            arm.complete(other)  # another prompt form: the cached prefix is replaced
            began = time.perf_counter()
            arm.complete(request)
            lost.append(time.perf_counter() - began)
    return 1 / statistics.mean(kept), 1 / statistics.mean(lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="nace-activities")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the in-process arm's model")
    parser.add_argument("--skip-standin", action="store_true")
    args = parser.parse_args()
    task = load_task(args.task)
    items = task.test[: args.items + 1]
    shots = PromptVariant(name=f"{args.shots} shots", shots=args.shots)
    requests = [build_request(task, item, variant=shots) for item in items]
    zero = [build_request(task, item, variant=PromptVariant(name="0-shot", shots=0)) for item in items]
    chars = statistics.mean(sum(len(m["content"]) for m in r.messages) for r in requests)
    print(f"{args.task}: {args.shots} shots (the same for every item), {args.items} timed items, "
          f"prompts of {chars:.0f} characters on average")
    on = _in_process(task, requests, model=args.model, prefix_cache=True)
    off = _in_process(task, requests, model=args.model, prefix_cache=False)
    print(f"in process ({args.model}): {on:.3f} items/s with prefix reuse, {off:.3f} without: {on / off:.2f}x")
    if not args.skip_standin:
        kept, lost = _standin(requests, zero)
        print(f"stand-in ({STANDIN_MODEL} on llama-cpp-python's server): {kept:.3f} items/s with the prefix kept, "
              f"{lost:.3f} with it replaced between items: {kept / lost:.2f}x")


if __name__ == "__main__":
    main()
