"""``kit models list | pull ID | info ID_OR_PATH``: the GGUF catalog."""

from __future__ import annotations

import json
from typing import Any

from kit.models import model_info, models_table, pull_model


def register_cli(sub: Any) -> None:
    """Add ``models list [--json]``, ``models pull ID`` and ``models info ID_OR_PATH`` to an argparse subparsers.

    Each leaf sets ``func(args) -> int``; KitError is left to the caller.
    """
    p = sub.add_parser("models", help="GGUF model catalog: list, pull, info")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    pl = msub.add_parser("list", help="every catalog model, whether it is here and whether it fits this machine")
    pl.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    pl.add_argument("--n-ctx", type=int, default=None, help="context length for the memory estimate")
    pl.set_defaults(func=_cli_list)
    pp = msub.add_parser("pull", help="download a model from the Hugging Face hub and verify its sha256")
    pp.add_argument("id")
    pp.add_argument("--update", action="store_true", help="ignore the lock-file pin and take the hub's current file")
    pp.add_argument("--no-progress", action="store_true")
    pp.set_defaults(func=_cli_pull)
    pi = msub.add_parser("info", help="GGUF metadata of a catalog id or a .gguf path")
    pi.add_argument("id_or_path")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(func=_cli_info)


def _cli_list(args: Any) -> int:
    df = models_table(n_ctx=args.n_ctx)
    print(df.to_json(orient="records", indent=1) if args.json else df.drop(columns=["size_bytes", "file"]).to_string(index=False))
    return 0


def _cli_pull(args: Any) -> int:
    mf = pull_model(args.id, progress=not args.no_progress, update=args.update)
    print(f"{mf.id}: {mf.path}\nsha256 {mf.sha256} (verified), {mf.size / 1e9:.2f} GB")
    return 0


def _cli_info(args: Any) -> int:
    info = model_info(args.id_or_path)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        width = max(map(len, info))
        print("\n".join(f"{k:<{width}}  {v}" for k, v in info.items()))
    return 0
