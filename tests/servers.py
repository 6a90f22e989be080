"""Loopback servers that speak the hosted APIs' protocols, for tests and benchmarks (127.0.0.1 only).

``OpenAIServer`` answers ``POST /v1/chat/completions`` (streamed SSE chunks with logprobs and an
``include_usage`` chunk, or one JSON body) and can inject faults per request: 429 with Retry-After,
500, a response slower than the client's timeout, garbage JSON, a connection reset (before the
answer, or in the middle of a stream), an answer with an empty ``choices`` list, an HTTP 200 HTML page (a
captive portal's). ``AnthropicServer`` answers ``POST /v1/messages`` with the
Messages API's SSE events (message_start, content_block_start/delta/stop, message_delta with usage,
message_stop). Both record every request (path, headers, body) so tests can count calls.
``HungServer`` accepts connections and never answers (a stuck server).

>>> with OpenAIServer(answer=lambda body: "yes") as srv:                  # doctest: +SKIP
...     arm = get_arm("openai:fake", base_url=srv.base_url)
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], str]
# A fault plan: given the request body and how many times this prompt was seen (1-based), an action:
# "ok", ("status", code, headers[, message]), ("slow", seconds), "garbage", "reset", "reset_mid_stream",
# "no_choices" (OpenAI only: a complete answer whose choices list is empty), "html" (200 with a login page).
Plan = Callable[[dict[str, Any], int], Any]
LOGIN_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>"
              b"<body><form action='/login'>Accept the terms to continue</form></body></html>")


def last_user(body: dict[str, Any]) -> str:
    return next((str(m["content"]) for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")


def parity_answer(body: dict[str, Any]) -> str:
    """``yes`` for an odd number at the end of the last user message, else ``no`` (the mini task's gold)."""
    words = [w.strip(".?!:") for w in last_user(body).split()]
    digits = [w for w in words if w.isdigit()]
    return ("yes" if int(digits[-1]) % 2 else "no") if digits else "no"


def parity_task(folder: Path, n: int) -> Path:
    """A two-label task file of ``n`` items, all of them test items, whose answers :func:`parity_answer` knows
    (odd item numbers are "yes"); returns the task's YAML path."""
    rows = [{"id": f"r{i}", "text": f"request number {i}", "label": "yes" if i % 2 else "no"} for i in range(n)]
    (folder / "par.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = folder / "par.yaml"
    path.write_text("name: par\ntype: classification\ndata: par.jsonl\nlabels: ['yes', 'no']\n"
                    "instruction: 'Answer yes or no: {text}'\nsplit: {test_fraction: 1.0, seed: 1}\n", encoding="utf-8")
    return path


class _Base:
    path = ""

    def __init__(self, *, answer: Answer = parity_answer, plan: Plan | None = None, delay: float = 0.0,
                 echo_auth: bool = False) -> None:
        self.answer, self.plan, self.delay, self.echo_auth = answer, plan, delay, echo_auth
        self.requests: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.request_queue_size = 64
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> _Base:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, *, text: str | None = None) -> int:
        """Requests received (those whose last user message contains ``text``, if given)."""
        with self._lock:
            return sum(1 for r in self.requests if text is None or text in last_user(r["body"]))

    def record(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> int:
        key = last_user(body)
        with self._lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers.items()), "body": body})
            self.seen[key] = self.seen.get(key, 0) + 1
            return self.seen[key]

    def respond(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        raise NotImplementedError


def _handler(server: _Base) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # /v1/models, for readiness checks
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "body is not JSON"}})
                return
            seen = server.record(self, body)
            action = server.plan(body, seen) if server.plan else "ok"
            kind = action[0] if isinstance(action, tuple) else action
            if kind == "status":
                _, code, headers, *text = action
                message = text[0] if text else f"injected {code}"
                if server.echo_auth:  # a misbehaving gateway that quotes the credentials it got
                    message += f" for {self.headers.get('Authorization') or self.headers.get('X-Api-Key')}"
                self._json(code, {"error": {"message": message, "type": "injected"}}, headers)
            elif kind == "slow":
                time.sleep(action[1])
                self._safe(lambda: server.respond(self, body))
            elif kind == "garbage":
                data = b'{"id": "x", "choices": [ {{{ not json'
                if body.get("stream"):
                    data = b"data: {not json at all\n\n"
                    self._raw(200, data, "text/event-stream")
                else:
                    self._raw(200, data, "application/json")
            elif kind == "html":  # whatever was asked (streamed or not): a captive portal's page
                self._safe(lambda: self._raw(200, LOGIN_PAGE, "text/html; charset=utf-8"))
            elif kind == "reset":
                self._reset()
            elif kind == "reset_mid_stream":
                self._safe(lambda: server.respond(self, body, cut=True))
            elif kind == "no_choices":
                self._safe(lambda: server.respond(self, body, empty=True))
            else:
                if server.delay:
                    time.sleep(server.delay)
                self._safe(lambda: server.respond(self, body))

        def _safe(self, fn: Callable[[], None]) -> None:
            try:
                fn()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _raw(self, code: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._raw(code, json.dumps(obj).encode(), "application/json", headers)

        def sse_start(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def sse(self, data: Any, event: str | None = None) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            prefix = f"event: {event}\n" if event else ""
            self.wfile.write(f"{prefix}data: {text}\n\n".encode())
            self.wfile.flush()

        def cut(self) -> None:
            self.wfile.flush()
            self._reset()

    return Handler


def _tokens(text: str) -> list[str]:
    """Split text into pseudo-tokens that join back to it exactly (a word with its leading space)."""
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return [t for t in out if t]


class OpenAIServer(_Base):
    """``POST /v1/chat/completions`` like OpenAI's API, with optional logprobs and usage."""

    def __init__(self, *, answer: Answer = parity_answer, plan: Plan | None = None, delay: float = 0.0,
                 usage: bool = True, logprob: float = -0.105, model: str = "fake-model",
                 reject: tuple[str, ...] = (), echo_auth: bool = False) -> None:
        super().__init__(answer=answer, plan=plan, delay=delay, echo_auth=echo_auth)
        self.usage, self.logprob, self.model, self.reject = usage, logprob, model, reject

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, h: Any, body: dict[str, Any], cut: bool = False, empty: bool = False) -> None:
        for name in self.reject:
            if name in body:
                h._json(422, {"detail": [{"type": "extra_forbidden", "loc": ["body", name],
                                          "msg": "Extra inputs are not permitted"}]})
                return
        text = self.answer(body)
        rf = body.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("schema") or rf.get("schema") or {}
        if "answer" in schema.get("properties", {}):
            text = json.dumps({"answer": text})
        elif schema.get("type") == "string":  # a bare enum, as the arm sends labels in json_object mode
            text = json.dumps(text)
        toks = _tokens(text)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        lp = body.get("logprobs")
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": self.model}
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(toks), "total_tokens": prompt_tokens + len(toks)}
        if empty:  # what a content filter sends: no choices, something else instead
            filtered = {"prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
            if not body.get("stream"):
                h._json(200, {**base, "object": "chat.completion", "choices": [], "usage": usage, **filtered})
                return
            h.sse_start()
            h.sse({**base, "choices": [], **filtered})
            h.sse("[DONE]")
            return
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop",
                      "logprobs": {"content": [self._lp(t) for t in toks]} if lp else None}
            h._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        h.sse_start()
        h.sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for i, tok in enumerate(toks):
            chunk = {"index": 0, "delta": {"content": tok}, "finish_reason": None}
            if lp:
                chunk["logprobs"] = {"content": [self._lp(tok)]}
            h.sse({**base, "choices": [chunk]})
            if cut and i == 0:
                h.cut()
                return
        h.sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            h.sse({**base, "choices": [], "usage": usage})
        h.sse("[DONE]")

    def _lp(self, tok: str) -> dict[str, Any]:
        return {"token": tok, "logprob": self.logprob, "bytes": list(tok.encode()), "top_logprobs": []}


class AnthropicServer(_Base):
    """``POST /v1/messages`` like Anthropic's Messages API, streamed (SSE events) or not."""

    def __init__(self, *, answer: Answer = parity_answer, plan: Plan | None = None, delay: float = 0.0,
                 model: str = "claude-fake", echo_auth: bool = False) -> None:
        super().__init__(answer=answer, plan=plan, delay=delay, echo_auth=echo_auth)
        self.model = model

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, h: Any, body: dict[str, Any], cut: bool = False) -> None:
        text = self.answer(body)
        toks = _tokens(text)
        words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        input_tokens = words + len(str(body.get("system", "")).split())
        message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": self.model,
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": input_tokens, "output_tokens": 1}}
        if not body.get("stream"):
            message.update(content=[{"type": "text", "text": text}], stop_reason="end_turn",
                           usage={"input_tokens": input_tokens, "output_tokens": len(toks)})
            h._json(200, message)
            return
        h.sse_start()
        h.sse({"type": "message_start", "message": message}, "message_start")
        h.sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
              "content_block_start")
        h.sse({"type": "ping"}, "ping")
        for i, tok in enumerate(toks):
            h.sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": tok}},
                  "content_block_delta")
            if cut and i == 0:
                h.cut()
                return
        h.sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        h.sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
               "usage": {"output_tokens": len(toks)}}, "message_delta")
        h.sse({"type": "message_stop"}, "message_stop")


class _Listener:
    """A bare TCP listener on 127.0.0.1 that counts connections and hands each to :meth:`handle`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.handle(conn)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self.sock.close()


class HungServer(_Listener):
    """Accepts every connection on 127.0.0.1 and never answers (nor closes): a stuck server. Counts connections.

    >>> with HungServer() as hung:                                          # doctest: +SKIP
    ...     arm = get_arm("openai:fake", base_url=hung.url + "/v1", timeout=0.3)
    """

    def handle(self, conn: socket.socket) -> None:
        self._held.append(conn)  # read nothing, answer nothing


class ResettingListener(_Listener):
    """Accepts every connection and resets it at once (RST), counting the connections."""

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def main() -> None:
    """Serve from a separate process: ``python tests/servers.py openai|anthropic [--delay S]``; prints the port."""
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["openai", "anthropic"])
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    cls = OpenAIServer if args.kind == "openai" else AnthropicServer
    with cls(delay=args.delay) as srv:
        print(srv.port, flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


if __name__ == "__main__":
    main()
