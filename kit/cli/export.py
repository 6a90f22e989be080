"""``kit export RUN_FOLDER``: the routing a report's verdict chose, ready to deploy and to watch.

    kit export runs/report-20261206-2245                    # into RUN_FOLDER/export/
    kit export runs/report-x -o deploy --shadow-share 0.2 --endpoint 'SmolLM2 + LoRA=http://gpu-box:8081/v1'

Writes ``routing.json``, ``router.py`` (standard library only; its logs are what ``replay:`` and ``kit monitor``
read) and ``litellm.yaml`` (a LiteLLM proxy configuration).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kit.errors import ConfigError


def _endpoints(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ConfigError(f"--endpoint {pair!r} is not NAME=URL", where="kit export",
                              fix="write e.g. --endpoint 'SmolLM2=http://10.0.0.5:8081/v1'")
        out[name.strip()] = url.strip()
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from kit.export import export_decision
    from kit.pipeline.folder import RunFolder

    path = Path(args.run_folder)
    if not (path / "experiment.json").is_file():
        raise ConfigError("not a report's run folder (no experiment.json)", where=str(path),
                          fix="pass a folder that `kit report` wrote, e.g. runs/report-<stamp>")
    out = Path(args.out) if args.out else path / "export"
    done = export_decision(RunFolder(path), out, shadow_share=args.shadow_share, endpoints=_endpoints(args.endpoint))
    for name, route in done.routing.tasks.items():
        how = (f"{route.first} first, {route.escalate_to} below τ={route.tau:.3f}" if route.tau is not None
               else route.first)
        print(f"{name}: {how}; fallback {route.fallback}; prompt {route.prompt}")
    for name, why in done.routing.unrouted.items():
        print(f"{name}: not routed — {why}")
    for e in done.routing.endpoints.values():
        print(f"  {e.option}: {e.base_url}" + (f"   serve it: {e.serve}" if e.serve else "")
              + (f"   ({e.note})" if e.note else ""))
    print(f"wrote {done.routing_file}, {done.router_file.name}, {done.litellm_file.name}\n"
          f"  run the router:   python {done.router_file} {done.routing_file} --port 8000\n"
          f"  watch its log:    kit monitor {out} --windows month")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the routing a report chose: LiteLLM config, a small router, its log format")
    p.add_argument("run_folder", help="a report's run folder (runs/report-<stamp>)")
    p.add_argument("-o", "--out", help="where to write (default: RUN_FOLDER/export)")
    p.add_argument("--shadow-share", dest="shadow_share", type=float, default=0.1,
                   help="share of requests also sent to the reference and logged beside (default 0.1)")
    p.add_argument("--endpoint", action="append", default=[], metavar="NAME=URL",
                   help="where an option is served (OpenAI-compatible base URL); repeatable")
    p.set_defaults(func=cmd_export)
