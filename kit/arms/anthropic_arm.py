"""The Anthropic arm: ``anthropic:MODEL`` through the official ``anthropic`` SDK (AsyncAnthropic).

Messages API, streamed: ``message_start`` carries the input tokens, ``content_block_delta`` the text
(the first one times the first token), ``message_delta`` the output tokens, ``message_stop`` the end.
System messages go into ``system``. A JSON schema goes out as ``output_config.format`` (structured
outputs) and is dropped for the rest of the run if the endpoint rejects it; the kit's parsing covers
the rest. The key comes from ``ANTHROPIC_API_KEY`` (or ``--api-key-env VAR``).

>>> arm = get_arm("anthropic:claude-3-5-haiku-latest")                    # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from kit.arms.base import Completion, Request
from kit.arms.hosted import HostedArm, HostedOptions, estimate_tokens
from kit.arms.options import Field
from kit.arms.registry import Backend
from kit.errors import MissingDependency
from kit.arms.retry import Deadline, IncompleteStream, Outcome, check_json_answer


class AnthropicOptions(HostedOptions):
    """The hosted options for the Messages API."""

    default_url: ClassVar[str] = "https://api.anthropic.com"
    default_key_env: ClassVar[str] = "ANTHROPIC_API_KEY"

    # Recent SDKs no longer take sampling parameters (newer models fix them); when set, it is sent as-is.
    temperature: float | None = Field(None, ge=0, examples=[0.0])  # type: ignore[assignment]


class AnthropicArm(HostedArm):
    """A Claude model behind the Anthropic Messages API (or a server that speaks it)."""

    backend = "anthropic"
    options_class = AnthropicOptions

    def __init__(self, model: str, **options: Any) -> None:
        try:
            import anthropic  # noqa: F401
        except ImportError:
            raise MissingDependency("anthropic", purpose="for anthropic: arms") from None
        super().__init__(model, **options)
        self._structured_ok = self.options.structured == "auto"

    def _make_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(api_key=self._key, base_url=self._url, max_retries=0, timeout=self.options.timeout)

    def _params(self, request: Request, structured: bool) -> dict[str, Any]:
        system = "\n\n".join(str(m["content"]) for m in request.messages if m["role"] == "system")
        params: dict[str, Any] = {
            "model": self.model, "max_tokens": request.max_tokens,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages if m["role"] != "system"],
            "stream": True,
        }
        if system:
            params["system"] = system
        # sent as extra body fields: SDK versions differ in which of these they take as arguments
        extra: dict[str, Any] = {}
        if self.options.temperature is not None:
            extra["temperature"] = self.options.temperature
        if structured:
            extra["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
        if extra:
            params["extra_body"] = extra
        return params

    async def _call(self, request: Request, deadline: Deadline) -> tuple[Outcome[Completion], dict[str, Any]]:
        structured = self._structured_ok and request.json_schema is not None
        outcome = await self._retrying(request, structured, deadline)
        notes: dict[str, Any] = {"structured": "json_schema" if structured else None}
        fault = outcome.fault
        if structured and outcome.value is None and fault is not None and fault.status in (400, 422) \
                and any(w in fault.reason.lower() for w in ("output_config", "format", "schema")):
            self._structured_ok = False
            notes = {"structured": None, "dropped_params": ["output_config"]}
            outcome = await self._retrying(request, False, deadline)
        return outcome, notes

    async def _attempt(self, request: Request, structured: bool) -> Completion:
        client = await self._client()
        start = time.perf_counter()
        stream = await client.messages.create(**self._params(request, structured))
        check_json_answer(stream.response.headers.get("content-type"))
        pieces: list[str] = []
        ttft = model = stop_reason = None
        input_tokens = output_tokens = None
        done = False
        try:
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    model = event.message.model
                    input_tokens = event.message.usage.input_tokens
                    output_tokens = event.message.usage.output_tokens
                elif kind == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    pieces.append(event.delta.text)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    if event.usage is not None:
                        output_tokens = event.usage.output_tokens
                        input_tokens = getattr(event.usage, "input_tokens", None) or input_tokens
                elif kind == "message_stop":
                    done = True
        finally:
            await stream.close()
        if not done:
            raise IncompleteStream("the stream ended before message_stop")
        text = "".join(pieces)
        extra: dict[str, Any] = {"finish_reason": stop_reason, "usage": "server"}
        if input_tokens is None or output_tokens is None:
            extra["usage"] = "counted"
            input_tokens = input_tokens if input_tokens is not None else estimate_tokens(request)
            output_tokens = output_tokens if output_tokens is not None else len(pieces)
        return Completion(text=text, prompt_tokens=input_tokens, completion_tokens=output_tokens,
                          latency_s=time.perf_counter() - start, ttft_s=ttft, model=model, extra=extra)


# found through the kit.arms entry point `anthropic` (pyproject.toml)
BACKEND = Backend("anthropic", AnthropicArm, options=AnthropicOptions)
