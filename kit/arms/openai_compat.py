"""The OpenAI-compatible arm: ``openai:MODEL`` through the official ``openai`` SDK (AsyncOpenAI).

The same arm serves OpenAI, Mistral's API, vLLM, llama.cpp's server and Ollama (``--base-url``). It
streams, to measure time to first token; reads token usage from the final chunk
(``stream_options.include_usage``) and counts when the server sends none; asks for logprobs and turns
those of the answer's tokens into ``confidence = exp(sum logprobs)``. Labels and JSON schemas go out as
``response_format`` (``json_schema``, else llama.cpp's ``json_object`` + schema); a parameter the
endpoint rejects is dropped for the rest of the run and the kit's parsing takes over. An unparseable
answer is kept as text: the runner records it as a parse error, scored wrong. An answer with an empty
``choices`` list (a content filter, a broken gateway) is recorded on the item as "the endpoint answered
with no choices", without retries. An HTML page instead of the API's JSON stops the arm with an error that
says so (see :mod:`kit.arms.hosted`).

Confidence: answers carry one only where the endpoint sends logprobs (OpenAI's API, llama.cpp's server, vLLM
do; many gateways and some providers do not). A cascade looks at the confidences the answers actually carry.

>>> arm = get_arm("openai:gpt-4o-mini")                                   # doctest: +SKIP
>>> arm = get_arm("openai:gemma-3-270m", base_url="http://127.0.0.1:8080/v1")  # the stand-in  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from kit.arms.base import Completion, Request
from kit.arms.hosted import HostedArm, HostedOptions, estimate_tokens, mask_url
from kit.arms.options import Field
from kit.arms.registry import Backend
from kit.errors import MissingDependency
from kit.arms.retry import Deadline, Fault, IncompleteStream, Outcome, check_json_answer, classify

# Optional request features, in the order they are given up when an endpoint rejects them by name.
FEATURES: dict[str, tuple[str, ...]] = {
    "json_schema": ("response_format", "json_schema"),
    "json_object": ("response_format", "json_object"),
    "logprobs": ("logprobs", "top_logprobs"),
    "stream_options": ("stream_options", "include_usage"),
    "seed": ("seed",),
}
ANSWER_KEY = "answer"
NO_CHOICES = "the endpoint answered with no choices"


class NoChoices(Exception):
    """The endpoint answered, but with an empty ``choices`` list: nothing to record as the model's answer."""


class OpenAIOptions(HostedOptions):
    """The hosted options, and what an OpenAI-compatible endpoint takes besides."""

    default_url: ClassVar[str] = "https://api.openai.com/v1"
    default_key_env: ClassVar[str] = "OPENAI_API_KEY"

    seed: int | None = Field(0, description="sent where the endpoint takes it; null: none")
    logprobs: bool = Field(True, description="ask for logprobs (a confidence per answer, where sent)")
    stream: bool = Field(True, description="stream the answer (time to first token)")

    def key_variable(self) -> str:
        """``api_key_env``, else MISTRAL_API_KEY for Mistral's API and OPENAI_API_KEY elsewhere."""
        if self.api_key_env:
            return self.api_key_env
        host = (urlsplit(mask_url(self.url())).hostname or "").lower()
        return "MISTRAL_API_KEY" if host == "mistral.ai" or host.endswith(".mistral.ai") else self.default_key_env


class OpenAICompatArm(HostedArm):
    """A chat model behind an OpenAI-compatible endpoint."""

    backend = "openai"
    load_kind = "concurrency"  # a load sweep varies the requests in flight (vLLM, llama-server, Ollama, ...)
    options_class = OpenAIOptions

    def __init__(self, model: str, **options: Any) -> None:
        try:
            import openai  # noqa: F401
        except ImportError:
            raise MissingDependency("openai", purpose="for openai: arms") from None
        super().__init__(model, **options)
        self._off: set[str] = set()
        self._max_tokens_name = "max_tokens"

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "seed": self.options.seed}

    def _make_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._key, base_url=self._url, max_retries=0, timeout=self.options.timeout)

    # what to send ----------------------------------------------------------------------------------
    def _plan(self, request: Request) -> list[str]:
        """The optional features this request will carry, given what the endpoint has rejected so far."""
        wanted: list[str] = []
        if self.options.structured == "auto" and (request.choices or request.json_schema is not None):
            fmt = next((f for f in ("json_schema", "json_object") if f not in self._off), None)
            if fmt:
                wanted.append(fmt)
        if self.options.logprobs:
            wanted.append("logprobs")
        if self.options.stream:
            wanted.append("stream_options")
        if self.options.seed is not None:
            wanted.append("seed")
        return [f for f in wanted if f not in self._off]

    def _params(self, request: Request, plan: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in request.messages],
                                  "temperature": self.options.temperature, self._max_tokens_name: request.max_tokens}
        schema = _answer_schema(request)
        if "json_schema" in plan:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "strict": True, "schema": _strict(schema)}}
        elif "json_object" in plan:  # llama.cpp-style: any schema becomes a grammar, so labels go out bare
            params["response_format"] = {"type": "json_object", "schema": _answer_schema(request, envelope=False)}
        if "logprobs" in plan:
            params.update(logprobs=True, top_logprobs=1)
        if self.options.stream:
            params["stream"] = True
            if "stream_options" in plan:
                params["stream_options"] = {"include_usage": True}
        if "seed" in plan:
            params["seed"] = self.options.seed
        return params

    # calling ---------------------------------------------------------------------------------------
    async def _call(self, request: Request, deadline: Deadline) -> tuple[Outcome[Completion], dict[str, Any]]:
        dropped: list[str] = []
        while True:
            plan = self._plan(request)
            outcome = await self._retrying(request, plan, deadline,
                                           sort=lambda exc, plan=plan: self._classify(exc, plan))
            if outcome.value is not None or outcome.fault is None or not self._rejected(outcome.fault):
                break
            drop = self._named(outcome.fault.reason, plan)
            if drop is None:
                break
            if drop == "max_tokens":
                self._max_tokens_name = "max_completion_tokens"
            else:
                self._off.add(drop)
            dropped.append(drop)
        notes: dict[str, Any] = {"structured": next((f for f in plan if f in ("json_schema", "json_object")), None)}
        if dropped:
            notes["dropped_params"] = dropped
        return outcome, notes

    def _classify(self, exc: BaseException, plan: list[str]) -> Fault:
        if isinstance(exc, NoChoices):  # the server answered: asking again gets the same empty list
            return Fault(retry=False, reason=str(exc))
        fault = classify(exc)
        if fault.status is not None and fault.status >= 500 and self._named(fault.reason, plan):
            # llama.cpp's server answers a rejected parameter with 500 and a validation message
            return Fault(retry=False, reason=fault.reason, status=400, retry_after=None)
        return fault

    @staticmethod
    def _rejected(fault: Fault) -> bool:
        return fault.status in (400, 422)

    def _named(self, reason: str, plan: list[str]) -> str | None:
        text = reason.lower()
        if "max_completion_tokens" in text and self._max_tokens_name == "max_tokens":
            return "max_tokens"
        for feature in plan:
            if any(word in text for word in FEATURES[feature]):
                return feature
        return None

    async def _attempt(self, request: Request, plan: list[str]) -> Completion:
        client = await self._client()
        params = self._params(request, plan)
        start = time.perf_counter()
        if not self.options.stream:
            resp = await client.chat.completions.create(**params)
            if isinstance(resp, str):  # the SDK hands back a body it could not read as JSON as text
                check_json_answer(None, body=resp)
            if not resp.choices:
                raise NoChoices(NO_CHOICES + _finish_note(resp))
            choice = resp.choices[0]
            lps = [(t.token, t.logprob) for t in (choice.logprobs.content or [])] if choice.logprobs else []
            return self._finish(request, plan, text=choice.message.content or "", logprobs=lps,
                                usage=resp.usage, model=resp.model, finish=choice.finish_reason,
                                start=start, ttft=None, chunks=0)
        stream = await client.chat.completions.create(**params)
        check_json_answer(stream.response.headers.get("content-type"))
        pieces: list[str] = []
        lps: list[tuple[str, float]] = []
        usage = model = finish = ttft = None
        chunks = 0
        chose = False
        last: Any = None
        try:
            async for chunk in stream:
                last = chunk
                usage = chunk.usage or usage
                model = model or chunk.model
                if not chunk.choices:
                    continue
                chose = True
                choice = chunk.choices[0]
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    pieces.append(content)
                    chunks += 1
                if choice.logprobs is not None and choice.logprobs.content:
                    lps.extend((t.token, t.logprob) for t in choice.logprobs.content)
                finish = choice.finish_reason or finish
        finally:
            await stream.close()
        if not chose and last is not None:  # a complete stream whose chunks carried no choice at all
            raise NoChoices(NO_CHOICES + _finish_note(last))
        if finish is None:
            raise IncompleteStream("the stream ended before the server finished the answer")
        return self._finish(request, plan, text="".join(pieces), logprobs=lps, usage=usage, model=model,
                            finish=finish, start=start, ttft=ttft, chunks=chunks)

    def _finish(self, request: Request, plan: list[str], *, text: str, logprobs: list[tuple[str, float]],
                usage: Any, model: str | None, finish: str | None, start: float, ttft: float | None,
                chunks: int) -> Completion:
        latency = time.perf_counter() - start
        extra: dict[str, Any] = {"finish_reason": finish}
        raw, answer, span = text, text, None
        if request.choices:
            answer, span = _unwrap_choice(text, request.choices)
            if answer != text:
                extra["raw_output"] = text
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
            extra["usage"] = "server"
        else:
            prompt_tokens = estimate_tokens(request)
            completion_tokens = len(logprobs) or chunks or (len(text) // 4 if text else 0)
            extra["usage"] = "counted"  # output counted from the stream, prompt estimated (~4 chars/token)
        confidence = _confidence(logprobs, raw, span) if span is not None else None
        return Completion(text=answer, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=latency, ttft_s=ttft, confidence=confidence, model=model, extra=extra)


def _finish_note(resp: Any) -> str:
    """What an answer without choices said instead (Azure's content filter sends prompt_filter_results)."""
    extra = getattr(resp, "model_extra", None) or {}
    said = sorted(k for k in extra if k not in ("usage",))
    return f" (it sent {', '.join(said)})" if said else ""


def _answer_schema(request: Request, *, envelope: bool = True) -> dict[str, Any]:
    """The JSON schema sent for a request: labels as an enum under ``answer``, or the task's own schema.

    ``envelope=False``: labels as a bare string enum, for servers that turn any schema into a grammar
    (llama.cpp's ``json_object`` + schema). OpenAI's ``json_schema`` needs an object at the root; the bare
    form is about a third of the tokens (``"play_music"``: 5 against 14 for ``{ "answer": "play_music"}``
    with Gemma's tokenizer), and on a CPU server every token pays for the grammar over the whole vocabulary.
    """
    if request.choices:
        labels = {"type": "string", "enum": list(request.choices)}
        if not envelope:
            return labels
        return {"type": "object", "properties": {ANSWER_KEY: labels}, "required": [ANSWER_KEY]}
    return copy.deepcopy(request.json_schema or {})


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's strict mode: every object closed (``additionalProperties: false``) with all keys required."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and isinstance(node.get("properties"), dict):
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def _unwrap_choice(text: str, choices: tuple[str, ...]) -> tuple[str, tuple[int, int] | None]:
    """The label an answer names and its character span in ``text`` (for logprobs).

    ``{"answer": "x"}`` (the enum envelope) and ``"x"`` (a JSON string) give ``x``; a bare label gives itself;
    anything else is returned unchanged for the task's parser, with no span.

    >>> _unwrap_choice('"play_music"', ("play_music", "add_to_playlist"))
    ('play_music', (1, 11))
    """
    match = re.search(rf'"{ANSWER_KEY}"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match:
        try:
            value = json.loads(f'"{match.group(1)}"')
        except json.JSONDecodeError:
            value = match.group(1)
        return value, (match.start(1), match.end(1))
    stripped = text.strip()
    if len(stripped) > 1 and stripped[0] == stripped[-1] == '"':
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if value in choices:
            begin = text.find(stripped) + 1
            return value, (begin, begin + len(stripped) - 2)
    bare = stripped.rstrip(".")
    if bare in choices:
        begin = text.find(bare)
        return text, (begin, begin + len(bare))
    return text, None


def _confidence(logprobs: list[tuple[str, float]], text: str, span: tuple[int, int]) -> float | None:
    """exp(sum of the logprobs of the tokens that overlap ``span``); None when tokens and text disagree."""
    if not logprobs or "".join(tok for tok, _ in logprobs) != text:
        return None
    pos, total, used = 0, 0.0, False
    for token, logprob in logprobs:
        end = pos + len(token)
        if end > span[0] and pos < span[1] and logprob is not None:
            total += logprob
            used = True
        pos = end
    return math.exp(total) if used else None


# found through the kit.arms entry point `openai` (pyproject.toml)
BACKEND = Backend("openai", OpenAICompatArm, options=OpenAIOptions)
