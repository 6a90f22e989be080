"""``kit serve``: the stand-in for a hosted API, by hand."""

from __future__ import annotations

import argparse
import signal
import sys

from kit.errors import ArmError
from kit.arms.standin import STANDIN_NOTE, SWITCH_TO_REAL, StandinServer


def _cli_serve(args: argparse.Namespace) -> int:
    server = StandinServer(args.model, port=args.port, n_ctx=args.n_ctx, n_threads=args.n_threads)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        url = server.start()
        print(f"serving {args.model} at {url} — {STANDIN_NOTE}\n"
              f"  use it:  kit run --task snips-intents --arm openai:{args.model} --base-url {url}\n"
              f"  a real hosted API instead:  {SWITCH_TO_REAL}\n"
              "Ctrl-C stops it.", flush=True)
        assert server.process is not None
        server.process.wait()
        raise ArmError(server.exit_notice() or "the stand-in server stopped by itself", where=url,
                       fix="see the end of its log above; `kit doctor` checks that llama.cpp runs on this machine")
    except KeyboardInterrupt:
        print("stand-in server stopped", file=sys.stderr)
        return 0
    finally:
        server.stop()


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a local model as a stand-in for a hosted API (OpenAI-compatible, 127.0.0.1)")
    p.add_argument("--model", default="gemma-3-270m", help="catalog id or GGUF path (default gemma-3-270m)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--n-ctx", dest="n_ctx", type=int, default=2048, help="context size")
    p.add_argument("--threads", dest="n_threads", type=int, help="CPU threads")
    p.set_defaults(func=_cli_serve)
