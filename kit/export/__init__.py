"""Export a report's decision: the routing its verdict chose, ready to deploy and to watch.

:func:`export_decision` writes, into one folder:

* ``routing.json`` — per task the option (or hybrid: local option, τ, escalation target), its model identity
  and prompt, the fallback (the reference); per option its OpenAI-compatible endpoint;
* ``router.py`` — a copy of :mod:`kit.export.router` (standard library only): it answers as the routing says
  and logs every answer to ``requests.jsonl`` (and the shadowed share's reference answers to ``shadow.jsonl``),
  files that ``replay:`` and ``kit monitor`` read as they are;
* ``litellm.yaml`` — the same routing as a LiteLLM proxy configuration.

>>> export_decision(RunFolder("runs/report-x"), "deploy/")     # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from kit.export.litellm_config import litellm_config
from kit.export.routing import Endpoint, Routing, TaskRoute, register_serving, routing_of
from kit.pipeline.folder import RunFolder
from kit.util import atomic_write_json, atomic_write_text

__all__ = ["Endpoint", "Exported", "Routing", "TaskRoute", "export_decision", "litellm_config", "register_serving",
           "routing_of"]

ROUTING_FILE, ROUTER_FILE, LITELLM_FILE = "routing.json", "router.py", "litellm.yaml"


@dataclass(frozen=True)
class Exported:
    """What the export wrote, and the routing it wrote."""

    routing: Routing
    routing_file: Path
    router_file: Path
    litellm_file: Path


def export_decision(folder: RunFolder, out: str | Path, *, shadow_share: float = 0.1,
                    endpoints: Mapping[str, str] | None = None) -> Exported:
    """Write the routing of ``folder``'s verdicts into ``out`` (see the module's docstring)."""
    from kit.export import router

    routing = routing_of(folder, shadow_share=shadow_share, endpoints=endpoints)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / ROUTING_FILE, routing.to_json())
    shutil.copyfile(router.__file__, out / ROUTER_FILE)
    header = ("# LiteLLM proxy configuration written by `kit export` from " + Path(routing.run).name + ".\n"
              "# Keys are read from the environment (os.environ/NAME). A hybrid's escalation below tau needs\n"
              "# router.py (LiteLLM routes by model name); here its reference answers when the local call fails.\n")
    atomic_write_text(out / LITELLM_FILE, header + yaml.safe_dump(litellm_config(routing), sort_keys=False,
                                                                   allow_unicode=True))
    return Exported(routing, out / ROUTING_FILE, out / ROUTER_FILE, out / LITELLM_FILE)
