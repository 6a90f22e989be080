"""Prompts: a task's instruction, its k-shot examples and one item become chat messages.

The system message and the k-shot turns come first and are the same for every item, so a backend
that caches a shared prompt prefix (llama.cpp's KV cache) computes them once.

>>> from kit.tasks import load_task                         # doctest: +SKIP
>>> build_request(load_task("snips-intents"), item).messages[-1]["role"]   # doctest: +SKIP
'user'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kit.arms.base import Request
from kit.tasks import Item, Task


def render_instruction(task: Task, text: str) -> str:
    """The instruction with ``{text}`` and the type's placeholders (``{labels}``, ``{fields}``) filled in."""
    out = task.instruction
    for key, value in task.type.prompt_vars().items():
        out = out.replace("{" + key + "}", value)
    return out.replace("{text}", text).strip()


def build_messages(task: Task, item: Item) -> tuple[dict[str, str], ...]:
    messages: list[dict[str, str]] = []
    if task.system:
        messages.append({"role": "system", "content": str(task.system).strip()})
    for shot in task.shot_items():
        messages.append({"role": "user", "content": render_instruction(task, shot.text)})
        messages.append({"role": "assistant", "content": task.type.render(shot.gold)})
    messages.append({"role": "user", "content": render_instruction(task, item.text)})
    return tuple(messages)


def build_request(task: Task, item: Item, *, max_tokens: int = 256) -> Request:
    constraint = task.type.constraint()
    return Request(item_id=item.id, messages=build_messages(task, item), choices=constraint.choices,
                   json_schema=constraint.json_schema, max_tokens=max_tokens)


def prompt_hash(request: Request) -> str:
    """sha256 of everything that shapes the answer: messages, constraint and length limit."""
    payload: dict[str, Any] = {
        "messages": list(request.messages),
        "choices": list(request.choices) if request.choices else None,
        "json_schema": request.json_schema,
        "max_tokens": request.max_tokens,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
