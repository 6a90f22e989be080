"""Prompts: a task's instruction, its k-shot examples and one item become chat messages — in the form a
:class:`PromptVariant` gives them.

The default variant is the task's own prompt, exactly as the kit always built it: the system message and
the task's k-shot turns come first and are the same for every item, so a backend that caches a shared
prompt prefix (llama.cpp's KV cache) computes them once. A variant changes the number of shots and how
they are chosen (random, balanced per label, the most similar train items), the instruction, whether the
system message is sent, and whether labels are named or lettered. Shots are always train items.

>>> from kit.tasks import load_task                         # doctest: +SKIP
>>> build_request(load_task("snips-intents"), item).messages[-1]["role"]   # doctest: +SKIP
'user'
>>> build_request(task, item, variant=PromptVariant(name="5 similar", shots=5, shot_choice="similar"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kit.arms.base import Request
from kit.errors import TaskError
from kit.tasks import Item, Task
from kit.tasks.classification import Classification
from kit.tasks.loading import check_placeholders

LETTERS = string.ascii_uppercase


class ShotChoice(StrEnum):
    """How a variant's k-shot examples are chosen from the train split."""

    RANDOM = "random"      # a seeded draw (the task's own shots first: `shots: K` of the task is the default)
    BALANCED = "balanced"  # in turn from each label (each stratum of the task type), seeded
    SIMILAR = "similar"    # the train items most similar to the item (TF-IDF cosine), the closest last


class ShotFormat(StrEnum):
    """How a variant's k-shot turns carry the instruction."""

    TURNS = "turns"      # every shot's user turn is the whole instruction with the shot's text (the task's own)
    COMPACT = "compact"  # the instruction once, in the first turn; the later turns only its last paragraph ({text})


class LabelStyle(StrEnum):
    """How a classification prompt lists its labels and how an answer names one."""

    NAMES = "names"      # the labels themselves
    LETTERS = "letters"  # A, B, C…: the prompt lists "A) label"; the answer is a letter, read back as its label


class PromptVariant(BaseModel):
    """One form of a task's prompt (an experiment's ``prompts:``). Every key left out keeps the task's own."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True,
                              str_strip_whitespace=True)

    name: str = Field("default", min_length=1, max_length=32, examples=["5 similar"],
                      description="the variant's short name, in the report's prompt tables")
    shots: int | None = Field(None, ge=0, examples=[5],
                              description="k-shot examples from the train split; null: the task's `shots:`")
    shot_choice: ShotChoice = Field(ShotChoice.RANDOM, strict=False, examples=["similar"],
                                    description="how the shots are chosen: `random`, `balanced` (in turn from "
                                                "each label) or `similar` (the train items most like the item)")
    shot_format: ShotFormat = Field(ShotFormat.TURNS, strict=False, examples=["compact"],
                                    description="`turns`: each shot repeats the whole instruction; `compact`: "
                                                "the instruction once, then each shot and the item give only its "
                                                "last paragraph (`Request: {text}`): shorter prompts whose shared "
                                                "start the KV cache keeps")
    instruction: str | None = Field(None, min_length=1, examples=["Intent of: {text}\nOne of {labels}."],
                                    description="replaces the task's instruction (with `{text}`, and the task "
                                                "type's placeholders such as `{labels}`); null: the task's")
    system: bool = Field(True, description="send the task's system message (false: none)")
    label_style: LabelStyle = Field(LabelStyle.NAMES, strict=False, examples=["letters"],
                                    description="classification: `names` (the labels) or `letters` (A, B, C… "
                                                "read back as the labels)")

    @model_validator(mode="after")
    def _has_text(self) -> PromptVariant:
        if self.instruction is not None and "{text}" not in self.instruction:
            raise PydanticCustomError("kit", f"prompt {self.name!r}: `instruction:` has no {{text}} placeholder",
                                      {"fix": "put {text} where the item goes"})
        return self

    @property
    def is_default(self) -> bool:
        """Whether the variant is the task's own prompt (whatever its name)."""
        return self.model_dump(exclude={"name"}) == DEFAULT_PROMPT.model_dump(exclude={"name"})

    def describe(self) -> str:
        """The variant in words, e.g. ``5 similar shots, letters, no system message``.

        >>> PromptVariant(name="x", shots=5, shot_choice="balanced", label_style="letters").describe()
        '5 balanced shots, letters'
        """
        if self.shots == 0:
            parts = ["zero-shot"]
        elif self.shots is None and self.shot_choice is ShotChoice.RANDOM:
            parts = ["the task's shots"]
        else:
            count = "the task's number of" if self.shots is None else str(self.shots)
            parts = [f"{count} {self.shot_choice.value} shots"]
        if self.shot_format is ShotFormat.COMPACT and self.shots != 0:
            parts.append("instruction once")
        if self.instruction is not None:
            parts.append("own instruction")
        if not self.system:
            parts.append("no system message")
        if self.label_style is LabelStyle.LETTERS:
            parts.append("letters")
        return ", ".join(parts)


DEFAULT_PROMPT = PromptVariant()


def check_variant(task: Task, variant: PromptVariant, *, where: str) -> None:
    """A TaskError when ``variant`` cannot be built for ``task`` as declared: an instruction with a placeholder
    nothing fills in, more shots than the train split holds (the prompt would carry fewer than the report says),
    letters for a task without a label set or for more labels than letters. Called before any answer is asked."""
    if variant.instruction is not None:
        check_placeholders(variant.instruction, task.type, what=f"prompt {variant.name!r}: `instruction:`",
                           where=where)
    if variant.shots is not None and variant.shots > len(task.train) and task.labelled:
        raise TaskError(f"prompt {variant.name!r} asks for {variant.shots} shots and task {task.name!r} has "
                        f"{len(task.train)} train items to draw them from", where=where,
                        fix=f"give the variant shots: {len(task.train)} or fewer (or give it only to options of "
                            "tasks with a larger train split)")
    if variant.shot_format is ShotFormat.COMPACT and not split_instruction(_template(task, variant))[0]:
        raise TaskError(f"prompt {variant.name!r}: `shot_format: compact` gives the instruction's lead once and "
                        f"repeats its paragraph with {{text}}, and task {task.name!r}'s instruction has nothing "
                        "before that paragraph", where=where,
                        fix="start the instruction with its guidance, then a blank line, then the line with "
                            "{text} (e.g. `Request: {text}`); or use shot_format: turns")
    if variant.label_style is LabelStyle.LETTERS:
        choices = task.type.constraint().choices
        if not choices:
            raise TaskError(f"prompt {variant.name!r}: letters need a label set, and task {task.name!r} is "
                            f"{task.kind}", where=where,
                            fix="use label_style: names for this task, or give the variant only to classification "
                                "tasks' options")
        if len(choices) > len(LETTERS):
            raise TaskError(f"prompt {variant.name!r}: {len(choices)} labels are more than {len(LETTERS)} letters",
                            where=where, fix="use label_style: names")


def _letters(task: Task) -> dict[str, str]:
    """label -> letter, in the label set's order."""
    return dict(zip(task.type.constraint().choices or (), LETTERS))


def render_instruction(task: Task, text: str, variant: PromptVariant = DEFAULT_PROMPT) -> str:
    """The instruction with ``{text}`` and the type's placeholders (``{labels}``, ``{fields}``) filled in. With
    letters, ``{labels}`` lists each letter with its label; an instruction without ``{labels}`` gets that list
    in a last line (a letter means nothing unless the prompt says which label it stands for)."""
    return _template(task, variant).replace("{text}", text).strip()


def _template(task: Task, variant: PromptVariant) -> str:
    """The variant's instruction with every placeholder but ``{text}`` filled in."""
    out = variant.instruction if variant.instruction is not None else task.instruction
    values = task.type.prompt_vars()
    if variant.label_style is LabelStyle.LETTERS:
        values = {**values, "labels": "; ".join(f"{letter}) {label}" for label, letter in _letters(task).items())}
        if "{labels}" not in out:
            out = out.rstrip() + "\n\nAnswer with the letter of one of: {labels}."
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out.strip()


def split_instruction(template: str) -> tuple[str, str]:
    """An instruction's lead (every paragraph before the one holding ``{text}``) and that paragraph to the end
    (the part a compact shot repeats); the lead is empty when ``{text}`` is in the first paragraph.

    >>> split_instruction("Classify the request.\\nName only.\\n\\nRequest: {text}")
    ('Classify the request.\\nName only.', 'Request: {text}')
    """
    at = template.index("{text}")
    cut = template.rfind("\n\n", 0, at)
    if cut < 0:
        return "", template.strip()
    return template[:cut].strip(), template[cut:].strip()


def render_answer(task: Task, gold: Any, variant: PromptVariant = DEFAULT_PROMPT) -> str:
    """A shot's gold answer as the assistant turn gives it (its letter, with letters)."""
    if variant.label_style is LabelStyle.LETTERS:
        return _letters(task)[gold]
    return task.type.render(gold)


def parse_answer(task: Task, text: str, variant: PromptVariant = DEFAULT_PROMPT) -> Any:
    """A reply's answer under ``variant``: a letter is read back as its label; None when it names none."""
    if variant.label_style is LabelStyle.LETTERS and isinstance(task.type, Classification):
        return task.type.parse_letter(text)
    return task.type.parse(text)


def shots_for(task: Task, item: Item, variant: PromptVariant = DEFAULT_PROMPT) -> tuple[Item, ...]:
    """The variant's k-shot examples for ``item``, all from the train split (none for an unlabelled task)."""
    k = task.shots if variant.shots is None else variant.shots
    if k <= 0 or not task.labelled or not task.train:
        return ()
    if variant.shot_choice is ShotChoice.RANDOM:
        return _random_shots(task, k)
    if variant.shot_choice is ShotChoice.BALANCED:
        return _balanced_shots(task, k)
    return _similar_shots(task, item, k)


def _random_shots(task: Task, k: int) -> tuple[Item, ...]:
    """The task's own shots first (exactly them for k = the task's ``shots:``), then a seeded draw of the rest
    of the train split; in train order. A smaller k takes the first of the task's own."""
    own = task.shot_items()
    if k <= len(own):
        return own[:k]
    taken = {i.id for i in own}
    rest = [i for i in task.train if i.id not in taken]
    rng = np.random.default_rng(task.split_seed + 3)
    extra = {rest[j].id for j in rng.permutation(len(rest))[: k - len(own)]}
    chosen = taken | extra
    return tuple(i for i in task.train if i.id in chosen)


def _balanced_shots(task: Task, k: int) -> tuple[Item, ...]:
    """k train items taken in turn from each label (stratum), each label's items in a seeded order; labels in
    the label set's order. A type without strata draws like ``random``."""
    groups: dict[Any, list[Item]] = {}
    for i in task.train:
        groups.setdefault(task.type.stratum(i.gold), []).append(i)
    order = list(task.type.constraint().choices or ())
    keys = [g for g in order if g in groups] + sorted((g for g in groups if g not in order), key=str)
    rng = np.random.default_rng(task.split_seed + 4)
    queues = [[groups[g][j] for j in rng.permutation(len(groups[g]))] for g in keys]
    out: list[Item] = []
    while len(out) < k and any(queues):
        for q in queues:
            if q and len(out) < k:
                out.append(q.pop(0))
    return tuple(out)


_WORD = re.compile(r"\w+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=16)
def _tfidf(texts: tuple[str, ...]) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """The vocabulary, smoothed idf weights and L2-normalised TF-IDF rows of ``texts``."""
    vocab: dict[str, int] = {}
    docs = [_tokens(t) for t in texts]
    for doc in docs:
        for w in doc:
            vocab.setdefault(w, len(vocab))
    counts = np.zeros((len(docs), len(vocab)))
    for r, doc in enumerate(docs):
        for w in doc:
            counts[r, vocab[w]] += 1
    idf = np.log((1 + len(docs)) / (1 + (counts > 0).sum(axis=0))) + 1
    rows = counts * idf
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return vocab, idf, rows / np.where(norms == 0, 1, norms)


def similarity(query: str, texts: tuple[str, ...]) -> np.ndarray:
    """TF-IDF cosine similarity of ``query`` to each of ``texts`` (idf from ``texts``; deterministic).

    >>> similarity("play a song", ("play some music", "book a table", "play a song now")).round(2).tolist()
    [0.25, 0.25, 0.83]
    """
    vocab, idf, rows = _tfidf(texts)
    vec = np.zeros(len(vocab))
    for w in _tokens(query):
        if w in vocab:
            vec[vocab[w]] += 1
    vec *= idf
    norm = np.linalg.norm(vec)
    return rows @ (vec / norm) if norm else np.zeros(len(texts))


def _similar_shots(task: Task, item: Item, k: int) -> tuple[Item, ...]:
    """The k train items most similar to ``item`` (ties: train order), the most similar last (nearest the item)."""
    pool = [i for i in task.train if i.id != item.id]
    sims = similarity(item.text, tuple(i.text for i in pool))
    best = sorted(range(len(pool)), key=lambda j: (-sims[j], j))[:k]
    return tuple(pool[j] for j in reversed(best))


def build_messages(task: Task, item: Item, variant: PromptVariant = DEFAULT_PROMPT) -> tuple[dict[str, str], ...]:
    """The chat messages for ``item``: the system message, the shots' user and assistant turns, the item's turn.
    With ``shot_format: compact`` the first user turn carries the instruction's lead once and every turn only its
    last paragraph, so a zero-shot compact prompt is the zero-shot prompt itself."""
    messages: list[dict[str, str]] = []
    if task.system and variant.system:
        messages.append({"role": "system", "content": str(task.system).strip()})
    shots = shots_for(task, item, variant)
    template = _template(task, variant)
    lead, line = split_instruction(template) if variant.shot_format is ShotFormat.COMPACT else ("", template)
    for n, case in enumerate((*shots, item)):
        content = line.replace("{text}", case.text).strip()
        if n == 0 and lead:
            content = f"{lead}\n\n{content}"
        messages.append({"role": "user", "content": content})
        if n < len(shots):
            messages.append({"role": "assistant", "content": render_answer(task, case.gold, variant)})
    return tuple(messages)


def build_request(task: Task, item: Item, *, variant: PromptVariant = DEFAULT_PROMPT, max_tokens: int = 256) -> Request:
    """The request for ``item`` in the form ``variant`` gives (the default: the task's own prompt). With
    letters, the constraint's choices are the letters."""
    constraint = task.type.constraint()
    choices = constraint.choices
    if variant.label_style is LabelStyle.LETTERS:
        choices = tuple(_letters(task).values())
    return Request(item_id=item.id, messages=build_messages(task, item, variant), choices=choices,
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
