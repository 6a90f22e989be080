"""A small router for the routing a report chose: the standard library only, so it can be copied anywhere.

``kit export RUN_FOLDER`` writes ``routing.json`` and a copy of this file beside it. The router answers one
request per item of a task the way the verdict said: the chosen option's endpoint with the prompt it was
measured with; for a hybrid, the local option first and the escalation target when the local answer's
confidence is below τ (or it carries none); the fallback (the reference) when the chosen endpoint fails.
Every endpoint speaks the OpenAI chat-completions protocol (a hosted API, llama.cpp's server, vLLM, Ollama).

Every answer is one line of ``requests.jsonl``, in the format the kit's ``replay:`` arm reads as it is
(``item_id``, ``output``, ``latency_s``, ``prompt_tokens``, ``completion_tokens``, ``confidence``, ``model``,
``error``), plus what the monitor needs (``task``, ``time``, ``text``, ``option``, ``route``). **Shadow mode**: a
share of the requests (``shadow_share``, chosen by a hash of the item id, so the same items every time) is
also sent to the reference, whose answer goes to ``shadow.jsonl`` in the same format: the monitor compares the
two; ``replay:shadow.jsonl`` replays the reference's side.

Use it as a library or as a server (``python router.py routing.json --port 8000``; ``POST /route`` with
``{"task": ..., "text": ..., "id": ..., "time": ...}``, or ``POST /v1/chat/completions`` whose ``model`` is the
task's name and whose last user message is the item's text)::

    router = Router.from_file("export/routing.json")
    record = router.route("snips-intents", "play some jazz", item_id="req-1")
    record["output"], record["route"]        # ('PlayMusic', 'local')

API keys are read from the environment variable each endpoint names (``api_key_env``), never written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROUTING_VERSION = 1
SLOT = "\u27e6text\u27e7"  # where the item's text goes in the exported messages
ANSWER_KEY = "answer"
ROUTES = ("chosen", "local", "escalated", "fallback")


class RoutingError(Exception):
    """A routing file or a request the router cannot serve; the message says what to fix."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def shadowed(item_id: str, share: float) -> bool:
    """Whether ``item_id`` is in the shadowed share: the same answer for the same id, on every machine.

    >>> shadowed("req-1", 0.0), shadowed("req-1", 1.0)
    (False, True)
    """
    digest = hashlib.sha256(f"shadow:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def unwrap(text: str, choices: list[str] | None) -> tuple[str, tuple[int, int] | None]:
    """The label an answer names and its span in ``text``: ``{"answer": "x"}``, ``"x"`` and a bare ``x`` give
    ``x``; anything else is returned as it is (the kit's parser reads it), with no span.

    >>> unwrap('"PlayMusic"', ["PlayMusic", "GetWeather"])
    ('PlayMusic', (1, 10))
    """
    if not choices:
        return text, None
    match = re.search(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match and match.group(1) in choices:
        return match.group(1), match.span(1)
    stripped = text.strip()
    if len(stripped) > 1 and stripped[0] == stripped[-1] == '"' and stripped[1:-1] in choices:
        begin = text.find(stripped) + 1
        return stripped[1:-1], (begin, begin + len(stripped) - 2)
    bare = stripped.rstrip(".")
    if bare in choices:
        begin = text.find(bare)
        return bare, (begin, begin + len(bare))
    return text, None


def confidence_of(tokens: list[tuple[str, float]], text: str, span: tuple[int, int] | None) -> float | None:
    """exp(sum of the logprobs of the tokens over ``span``): the probability of the chosen label; None without
    logprobs, or when the tokens do not spell the text."""
    if span is None or not tokens or "".join(t for t, _ in tokens) != text:
        return None
    pos, total, used = 0, 0.0, False
    for token, logprob in tokens:
        end = pos + len(token)
        if end > span[0] and pos < span[1]:
            total, used = total + logprob, True
        pos = end
    return math.exp(total) if used else None


class Router:
    """Answers items the way ``routing`` (the parsed ``routing.json``) says, and logs each answer."""

    def __init__(self, routing: dict[str, Any], *, folder: str | Path = ".", shadow_share: float | None = None,
                 timeout_s: float = 60.0) -> None:
        if routing.get("kit_routing") != ROUTING_VERSION:
            raise RoutingError(f"not a routing file of version {ROUTING_VERSION}: write it with `kit export`")
        self.routing = routing
        self.folder = Path(folder)
        share = routing.get("shadow_share", 0.0) if shadow_share is None else shadow_share
        if not 0.0 <= float(share) <= 1.0:
            raise RoutingError(f"shadow_share={share} is not a share: give a number from 0 to 1")
        self.shadow_share = float(share)
        self.timeout_s = timeout_s
        self.log_path = self.folder / routing.get("log", "requests.jsonl")
        self.shadow_path = self.folder / routing.get("shadow_log", "shadow.jsonl")
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Router:
        """The router of a ``routing.json``; its logs go beside it unless ``folder=`` says otherwise."""
        path = Path(path)
        try:
            routing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RoutingError(f"{path}: cannot read the routing file ({exc}): write it with `kit export`") from None
        return cls(routing, **{"folder": path.parent, **options})

    # -- asking one endpoint ----------------------------------------------------------------------------
    def ask(self, option: str, task: dict[str, Any], text: str) -> dict[str, Any]:
        """One call of ``option``'s endpoint for ``text``: output, tokens, latency, confidence, model or error."""
        endpoint = self.routing["endpoints"][option]
        messages = [{**m, "content": m["content"].replace(SLOT, text)} for m in task["messages"]]
        body: dict[str, Any] = {"model": endpoint["model"], "messages": messages, "max_tokens": task["max_tokens"],
                                "temperature": 0, "logprobs": True, "top_logprobs": 1}
        body.update(self._constraint(endpoint, task))
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(endpoint["api_key_env"]) if endpoint.get("api_key_env") else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = endpoint["base_url"].rstrip("/") + "/chat/completions"
        start = time.perf_counter()
        try:
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            return {"output": "", "error": f"HTTP {exc.code} from {option}", "latency_s": time.perf_counter() - start}
        except (urllib.error.URLError, OSError, json.JSONDecodeError, ValueError) as exc:
            return {"output": "", "error": f"{option} did not answer: {exc}", "latency_s": time.perf_counter() - start}
        latency = time.perf_counter() - start
        choices = data.get("choices") or []
        if not choices:
            return {"output": "", "error": f"{option} answered with no choices", "latency_s": latency}
        raw = (choices[0].get("message") or {}).get("content") or ""
        output, span = unwrap(raw, task.get("choices"))
        content = ((choices[0].get("logprobs") or {}).get("content")) or []
        tokens = [(t.get("token", ""), float(t.get("logprob", 0.0))) for t in content]
        usage = data.get("usage") or {}
        return {"output": output, "latency_s": latency, "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"), "model": data.get("model") or endpoint["model"],
                "confidence": confidence_of(tokens, raw, span)}

    @staticmethod
    def _constraint(endpoint: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
        style, choices, schema = endpoint.get("structured", "none"), task.get("choices"), task.get("json_schema")
        if style == "none" or (not choices and not schema):
            return {}
        if style == "json_object":  # llama.cpp's server: any schema becomes a grammar; labels go out bare
            return {"response_format": {"type": "json_object",
                                        "schema": {"type": "string", "enum": choices} if choices else schema}}
        inner = ({"type": "object", "properties": {ANSWER_KEY: {"type": "string", "enum": choices}},
                  "required": [ANSWER_KEY], "additionalProperties": False} if choices else schema)
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": inner}}}

    # -- routing one item ---------------------------------------------------------------------------------
    def route(self, task_name: str, text: str, *, item_id: str | None = None, at: str | None = None) -> dict[str, Any]:
        """Answer ``text`` for ``task_name`` as the routing says; log the answer (and the shadow's). Returns the
        logged record."""
        task = self.routing["tasks"].get(task_name)
        if task is None:
            raise RoutingError(f"task {task_name!r} is not routed here: choose among {sorted(self.routing['tasks'])}")
        item_id = str(item_id) if item_id is not None else uuid.uuid4().hex
        at = at or _now()
        answer, route, option = self.ask(task["first"], task, text), ("local" if task.get("tau") is not None
                                                                      else "chosen"), task["first"]
        tau = task.get("tau")
        low = tau is not None and (answer.get("confidence") is None or answer["confidence"] < tau)
        if task.get("escalate_to") and (low or answer.get("error")):
            first_latency = answer["latency_s"]
            option, route = task["escalate_to"], "escalated"
            answer = self.ask(option, task, text)
            answer["latency_s"] += first_latency  # the local call was paid before the escalation
        if answer.get("error") and task.get("fallback") and option != task["fallback"]:
            option, route = task["fallback"], "fallback"
            answer = self.ask(option, task, text)
        record = {"item_id": item_id, **{k: v for k, v in answer.items() if v is not None}, "task": task_name,
                  "time": at, "text": text, "option": option, "route": route}
        reference = task.get("fallback")
        shadow = None
        if reference and reference != task["first"] and self.shadow_share > 0 and shadowed(item_id, self.shadow_share):
            shadow = {"item_id": item_id, **{k: v for k, v in self.ask(reference, task, text).items() if v is not None},
                      "task": task_name, "time": at, "text": text, "option": reference, "route": "shadow"}
        with self._lock:
            _append(self.log_path, record)
            if shadow is not None:
                _append(self.shadow_path, shadow)
        return record

    # -- serving ------------------------------------------------------------------------------------------
    def serve(self, *, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
        """An HTTP server on ``host:port`` answering ``POST /route`` and ``POST /v1/chat/completions``; call
        ``serve_forever()`` on it (or run it in a thread)."""
        server = ThreadingHTTPServer((host, port), _handler(self))
        server.daemon_threads = True
        return server


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _handler(router: Router) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") == "/route":
                    record = router.route(body["task"], body["text"], item_id=body.get("id"), at=body.get("time"))
                    self._send(200, record)
                elif self.path.rstrip("/").endswith("/chat/completions"):
                    text = next(m["content"] for m in reversed(body["messages"]) if m.get("role") == "user")
                    record = router.route(body["model"], text, item_id=body.get("user"))
                    self._send(200, {"id": record["item_id"], "object": "chat.completion", "model": record.get("model"),
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": record["output"]}}],
                                     "kit_route": {"option": record["option"], "route": record["route"],
                                                   "error": record.get("error")}})
                else:
                    self._send(404, {"error": "POST /route or /v1/chat/completions"})
            except RoutingError as exc:
                self._send(400, {"error": str(exc)})
            except (KeyError, StopIteration, ValueError, TypeError) as exc:
                self._send(400, {"error": f"bad request ({exc!r}): send task and text"})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the routing a kit report chose (routing.json).")
    parser.add_argument("routing", help="the routing.json that `kit export` wrote")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--shadow-share", type=float, default=None, help="share of requests also sent to the reference")
    args = parser.parse_args(argv)
    router = Router.from_file(args.routing, shadow_share=args.shadow_share)
    server = router.serve(host=args.host, port=args.port)
    print(f"routing {', '.join(router.routing['tasks'])} at http://{args.host}:{server.server_address[1]} "
          f"(log: {router.log_path}; shadow: {router.shadow_share:.0%} to {router.shadow_path})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
