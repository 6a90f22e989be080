"""``kit doctor``'s check of the stand-in for a hosted API: llama-cpp-python's server starts on 127.0.0.1 and
answers. Here rather than in :mod:`kit.models.doctor` because the server lives in the report layer.

>>> check_standin().status          # doctest: +SKIP
'ok'
"""

from __future__ import annotations

import time

from kit.errors import KitError
from kit.models.doctor import Check
from kit.report.standin import StandinServer

STANDIN_MODEL = "gemma-3-270m"


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
