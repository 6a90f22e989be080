"""The stand-in for a hosted API: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

Without API keys the default comparison still needs a hosted-API side. This module starts
``python -m llama_cpp.server`` with an embedded model (Gemma 3 270M by default) on the loopback
interface only, waits until ``/v1/models`` answers, and stops it afterwards. Its results are a
stand-in for a hosted API; :data:`SWITCH_TO_REAL` is the one line that switches to a real one.

An arm on the stand-in should get :meth:`StandinServer.arm_options`: its URL; ``watch``, so that the run
stops at once with the exit code or signal and the end of the server's log when the server dies; and
``served_by``, the identity of what answers (the model's sha256, llama-cpp-python's version, the chat
template) instead of the URL, so answers stored from a stand-in on another port are served from the store.

>>> with StandinServer("gemma-3-270m") as server:                        # doctest: +SKIP
...     arm = get_arm("openai:gemma-3-270m", **standin_arm_options(server=server))
...     run_arm(task, arm, store=store)   # raises EndpointDown naming SIGKILL if the server is killed
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kit.errors import ArmError, KitError
from kit.models.doctor import Check
from kit.models.hardware import llama_threads
from kit.util import atomic_write_json

HOST = "127.0.0.1"
STANDIN_MODEL = "gemma-3-270m"  # the embedded model that plays the hosted API
STANDIN_NOTE = "a stand-in for a hosted API (llama-cpp-python's OpenAI-compatible server on 127.0.0.1)"
SWITCH_TO_REAL = "export OPENAI_API_KEY=...; kit run --arm openai:gpt-4o-mini ..."

# Gemma 3's chat turns (as in google/gemma-3-270m-it's tokenizer_config.json): a system message is
# folded into the first user turn. The embedded GGUF carries no template, and llama-cpp-python would
# otherwise fall back to Llama 2's format. llama-cpp-python appends an empty assistant message to
# ask for the reply, which becomes the open model turn.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] | trim + '\n\n' %}"
    "{% set turns = messages[1:] %}{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for m in turns %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{% if loop.last and m['role'] == 'assistant' and not m['content'] %}<start_of_turn>model\n"
    "{% else %}<start_of_turn>{{ role }}\n{{ prefix if loop.first else '' }}{{ m['content'] | trim }}"
    "<end_of_turn>\n{% endif %}{% endfor %}"
)


def standin_caption() -> str:
    """The words every view of stand-in results carries: what it is, and the one line to a real API.

    >>> standin_caption()
    'a stand-in for a hosted API (a local model served on 127.0.0.1). To use a real one: export OPENAI_API_KEY=...; kit run --arm openai:gpt-4o-mini ...'
    """
    return f"a stand-in for a hosted API (a local model served on 127.0.0.1). To use a real one: {SWITCH_TO_REAL}"


def standin_arm_options(*, confidence: bool = False, server: StandinServer | None = None) -> dict[str, Any]:
    """Arm options that suit the stand-in (``get_arm("openai:gemma-3-270m", **options)``); with a started
    ``server``, also its :meth:`StandinServer.arm_options` (URL, death watch, identity by what answers).

    One request at a time (llama-cpp-python's server answers one by one, so more in flight only wait,
    and could pass the timeout); logprobs only when ``confidence`` is wanted: for them
    llama-cpp-python sorts Gemma's whole 262k-token vocabulary per generated token, about 10x slower.

    >>> standin_arm_options()
    {'concurrency': 1, 'timeout': 300.0, 'logprobs': False}
    """
    options: dict[str, Any] = {"concurrency": 1, "timeout": 300.0, "logprobs": confidence}
    return {**options, **server.arm_options()} if server is not None else options


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def standin_command(model: str = "gemma-3-270m", *, port: int, n_ctx: int = 2048,
                    n_threads: int | None = None, path: Path | None = None) -> list[str]:
    """The command line that serves ``model`` (catalog id or GGUF path; its file ``path`` when already
    resolved) on 127.0.0.1:``port``.

    ``--interrupt_requests False`` matters: by default the server cuts a running stream short
    whenever another request waits, which would truncate answers under concurrency.
    """
    if path is None:
        from kit.models import resolve_model

        path = resolve_model(model).path
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", model,
           "--host", HOST, "--port", str(port), "--n_ctx", str(n_ctx), "--interrupt_requests", "False",
           "--verbose", "False"]
    template = _template_config(path)
    if template is not None:
        cmd += ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(template)]
    threads, threads_batch = llama_threads(n_threads)
    return cmd + ["--n_threads", str(threads), "--n_threads_batch", str(threads_batch)]


def _death_signal() -> Callable[[], None] | None:
    """For the child, before exec (Linux): ask for SIGTERM when the parent dies, so no server outlives kit.

    prctl is looked up here, in the parent, so the child runs no imports between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _template_config(path: Path) -> Path | None:
    """A tokenizer_config.json with Gemma 3's chat template for a gemma3 GGUF that carries none."""
    from kit.models.gguf import read_gguf_info

    info = read_gguf_info(path)
    if info.has_chat_template or not info.architecture.startswith("gemma3"):
        return None
    out = Path(tempfile.gettempdir()) / "kit-gemma3-tokenizer_config.json"
    config = {"chat_template": GEMMA3_TEMPLATE, "bos_token": "<bos>", "eos_token": "<end_of_turn>"}
    return atomic_write_json(out, config)


LOG_LINES = 8
SIGNAL_CAUSES = {
    "SIGILL": "llama.cpp ran a CPU instruction this machine does not allow: rebuild llama-cpp-python for this "
              "machine as the README says, and run `kit doctor`",
    "SIGKILL": "out of memory, or killed by hand",
    "SIGSEGV": "a crash inside llama.cpp",
    "SIGBUS": "a crash inside llama.cpp (a model file changed or truncated while in use?)",
    "SIGTERM": "stopped from outside",
}


def describe_exit(returncode: int, *, what: str, log: str = "") -> str:
    """A process's end in words: its exit status or the signal that killed it (with the likely cause), and
    the last lines of its log.

    >>> describe_exit(-9, what="the stand-in server (pid 7)")
    'the stand-in server (pid 7) was killed by SIGKILL (out of memory, or killed by hand)'
    >>> describe_exit(1, what="the server", log="a\\nOSError: address in use")
    'the server exited with status 1; the end of its log: a | OSError: address in use'
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        text = f"{what} was killed by {name}" + (f" ({SIGNAL_CAUSES[name]})" if name in SIGNAL_CAUSES else "")
    else:
        text = f"{what} exited with status {returncode}"
    lines = [line.strip() for line in log.strip().splitlines() if line.strip()][-LOG_LINES:]
    return text + (f"; the end of its log: {' | '.join(lines)}" if lines else "")


class StandinServer:
    """A running stand-in server process; ``base_url`` is its OpenAI endpoint (``http://127.0.0.1:P/v1``).

    Use ``with StandinServer(...) as server:`` (started on entry, stopped on exit), or :meth:`start` /
    :meth:`stop`. :meth:`arm_options` gives an arm what it needs to stop at once when this process dies
    (:meth:`exit_notice`) and to be identified by what answers (:meth:`served_by`), not by its port.
    """

    def __init__(self, model: str = "gemma-3-270m", *, port: int | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, startup_timeout: float = 180.0) -> None:
        from kit.models import resolve_model

        self.model = model
        self.port = port or free_port()
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self._file = resolve_model(model)
        self._cmd = standin_command(model, port=self.port, n_ctx=n_ctx, n_threads=n_threads, path=self._file.path)
        self._timeout = startup_timeout
        self._log = tempfile.NamedTemporaryFile(prefix="kit-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server and wait until ``/v1/models`` answers; return ``base_url``."""
        self.process = subprocess.Popen(self._cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=_death_signal())  # noqa: PLW1509
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            notice = self.exit_notice()
            if notice is not None:
                raise ArmError(notice, where=self.base_url,
                               fix="check that the port is free and that `kit models info "
                                   f"{self.model}` works")
            if self._answers():
                return self.base_url
            time.sleep(0.2)
        self.stop()
        raise ArmError(f"the stand-in server did not answer within {self._timeout:.0f} s", where=self.base_url,
                       fix="raise startup_timeout, or look at the server log: " + self.log_tail())

    def _answers(self) -> bool:
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
            with opener.open(f"{self.base_url}/models", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, n: int = 800) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def exit_notice(self) -> str | None:
        """None while the server runs (or before it started); once its process has exited, what happened:
        exit status or signal name with its likely cause, and the last lines of its log.

        This is the ``watch`` an arm asks at every connection failure (see :meth:`arm_options`).
        """
        proc = self.process
        if proc is None or proc.poll() is None:
            return None
        return describe_exit(proc.returncode, what=f"the stand-in server ({self.model}, pid {proc.pid})",
                             log=self.log_tail(2000))

    def served_by(self) -> dict[str, str]:
        """What answers, for the arm's identity: the model file's sha256, the server software and its
        version, and the chat template — not the port, which changes every run.

        >>> StandinServer("gemma-3-270m").served_by()                # doctest: +SKIP
        {'chat_template': 'gemma3:6b0c…', 'model_sha256': '…', 'server': 'llama-cpp-python 0.3.36'}
        """
        template = "gguf"
        if "--hf_tokenizer_config_path" in self._cmd:
            config = Path(self._cmd[self._cmd.index("--hf_tokenizer_config_path") + 1])
            template = "kit:" + hashlib.sha256(config.read_bytes()).hexdigest()[:16]
        return {"model_sha256": self._file.sha256, "server": f"llama-cpp-python {_llama_cpp_version()}",
                "chat_template": template}

    def arm_options(self) -> dict[str, Any]:
        """Options for an ``openai:`` arm on this server: ``base_url``, ``watch`` (:meth:`exit_notice`) and
        ``served_by`` (:meth:`served_by`).

        >>> get_arm("openai:gemma-3-270m", **server.arm_options())   # doctest: +SKIP
        """
        return {"base_url": self.base_url, "watch": self.exit_notice, "served_by": self.served_by()}

    def __enter__(self) -> StandinServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s) and remove its log."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log_path)


def _llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def standin_server(model: str = "gemma-3-270m", port: int | None = None, *, n_ctx: int = 2048,
                   n_threads: int | None = None, startup_timeout: float = 180.0) -> Iterator[str]:
    """Serve ``model`` on 127.0.0.1 for the duration of the ``with`` block; yields the base URL.

    >>> with standin_server() as url:                 # doctest: +SKIP
    ...     url
    'http://127.0.0.1:41873/v1'
    """
    server = StandinServer(model, port=port, n_ctx=n_ctx, n_threads=n_threads, startup_timeout=startup_timeout)
    try:
        yield server.start()
    finally:
        server.stop()


def check_standin(model: str = STANDIN_MODEL, *, startup_timeout: float = 120.0) -> Check:
    """Start the stand-in server with ``model``, wait for ``/v1/models``, stop it."""
    start = time.perf_counter()
    try:
        server = StandinServer(model, startup_timeout=startup_timeout)
    except KitError as exc:
        return Check("stand-in server", "fail", f"cannot prepare {model}: {exc.problem}", exc.fix or "")
    try:
        url = server.start()
    except KitError as exc:
        return Check("stand-in server", "fail", exc.problem, exc.fix or "")
    finally:
        server.stop()
    return Check("stand-in server", "ok", f"{model} answered at {url} after {time.perf_counter() - start:.1f} s")
