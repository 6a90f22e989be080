"""A Hugging Face hub stand-in on 127.0.0.1 for tests: the part of the HTTP protocol ``hf_hub_download`` uses.

``HEAD|GET /{repo}/resolve/{revision}/{file}`` answers like the hub for an LFS file: ``302`` to a "CDN" (a
second port, so a different origin, as the real CDN is) with ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256),
``X-Linked-Size`` and ``ETag``. The CDN serves the bytes with ``Content-Length`` and honours ``Range``
(``206`` + ``Content-Range``). Gated repos answer 401 (no token) or 403 (token without access) with
``X-Error-Code: GatedRepo``; unknown repos/files/revisions answer like the hub (``RepoNotFound``,
``EntryNotFound``, ``RevisionNotFound``). Knobs per file simulate failures: a connection dropped after N bytes,
a body shorter than announced, an ``X-Linked-Etag`` that lies, an announced size that does not fit any disk.

>>> with HubServer() as hub:                                 # doctest: +SKIP
...     hub.add_file("org/repo", "m.gguf", data)
...     os.environ["HF_ENDPOINT"] = hub.endpoint
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")


@dataclass
class HubFile:
    data: bytes
    commit: str
    sha256: str  # the real sha256 of data
    announced_sha256: str  # what X-Linked-Etag says (differs to simulate a bad pin / corrupted transfer)
    announced_size: int
    drop_after: int | None = None  # close the connection after this many body bytes, `drops` times
    drops: int = 0
    serve_bytes: int | None = None  # serve only this many bytes but announce the full length


@dataclass
class Repo:
    files: dict[str, list[HubFile]] = field(default_factory=dict)  # every version, oldest first
    gated: bool = False
    allowed_tokens: set[str] = field(default_factory=set)


class HubServer:
    """Two loopback HTTP servers (hub API and CDN) sharing one state; a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=True))
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self._hub, self._cdn)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def __enter__(self) -> HubServer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for s in (self._hub, self._cdn):
            s.shutdown()
            s.server_close()

    def add_file(self, repo: str, filename: str, data: bytes, *, commit: str = "c" * 40, gated: bool = False,
                 allowed_tokens: tuple[str, ...] = (), announced_sha256: str | None = None,
                 announced_size: int | None = None, drop_after: int | None = None, drops: int = 0,
                 serve_bytes: int | None = None) -> HubFile:
        sha = hashlib.sha256(data).hexdigest()
        f = HubFile(data=data, commit=commit, sha256=sha, announced_sha256=announced_sha256 or sha,
                    announced_size=announced_size if announced_size is not None else len(data),
                    drop_after=drop_after, drops=drops, serve_bytes=serve_bytes)
        r = self.repos.setdefault(repo, Repo())
        r.gated = r.gated or gated
        r.allowed_tokens.update(allowed_tokens)
        r.files.setdefault(filename, []).append(f)
        return f

    def log(self, **entry: Any) -> None:
        with self._lock:
            self.requests.append(entry)

    def gets(self, *, cdn: bool = True) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "GET" and r["cdn"] == cdn]


def _handler(hub: HubServer, *, cdn: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            hub.log(method=self.command, path=self.path, cdn=cdn, range=self.headers.get("Range"),
                    authorization=self.headers.get("Authorization"))
            if cdn:
                self._cdn(body=body)
            else:
                self._resolve()

        def _reply(self, status: int, headers: dict[str, str], payload: bytes = b"") -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
            self._reply(status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
                                 **(extra or {})}, ('{"error": "%s"}' % message).encode())

        def _resolve(self) -> None:
            m = _RESOLVE.match(self.path.split("?")[0])
            repo = hub.repos.get(m["repo"]) if m else None
            if m is None or repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if repo.gated and not token:
                self._error(401, "GatedRepo", f"Access to model {m['repo']} is restricted. You must have access to "
                            "it and be authenticated to access it. Please log in.")
                return
            if repo.gated and token not in repo.allowed_tokens:
                self._error(403, "GatedRepo", f"Access to model {m['repo']} is restricted and you are not in the "
                            f"authorized list. Visit https://huggingface.co/{m['repo']} to ask for access.")
                return
            versions = repo.files.get(m["file"], [])
            commits = [x.commit for vs in repo.files.values() for x in vs]
            if m["rev"] != "main" and m["rev"] not in commits:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            found = [x for x in versions if m["rev"] in ("main", x.commit)]
            if not found:
                self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commits[-1]})
                return
            f = found[-1]  # main = the newest version
            self._reply(302, {
                "Location": f"{hub.cdn}/cdn/{f.sha256}",
                "X-Repo-Commit": f.commit,
                "X-Linked-Etag": f'"{f.announced_sha256}"',
                "X-Linked-Size": str(f.announced_size),
                "ETag": '"%s"' % hashlib.sha1(f.data[:64]).hexdigest(),  # the git pointer's oid on the real hub
            })

        def _cdn(self, *, body: bool) -> None:
            m = _CDN.match(self.path.split("?")[0])
            every = (x for r in hub.repos.values() for vs in r.files.values() for x in vs)
            f = next((x for x in every if m and x.sha256 == m["sha"]), None)
            if f is None:
                self._reply(404, {})
                return
            total = len(f.data)
            start = 0
            rng = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
            status, headers = 200, {"Accept-Ranges": "bytes", "ETag": f'"{f.sha256}"'}
            if rng:
                start = int(rng[1])
                status = 206
                headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
            chunk = f.data[start:]
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if not body:
                return
            limit = len(chunk)
            if f.serve_bytes is not None:
                limit = max(0, f.serve_bytes - start)
            if f.drop_after is not None and f.drops > 0:
                f.drops -= 1
                limit = min(limit, f.drop_after)
            self.wfile.write(chunk[:limit])
            self.wfile.flush()
            if limit < len(chunk):
                self.close_connection = True  # the client sees the body end early
    return Handler
