"""``kit stats ...`` subcommands: paired comparison, latency and error tables from a score table file.

The lead's ``kit/cli.py`` calls :func:`register_cli` with its subparsers; each handler returns an
exit code. KitErrors propagate to the CLI layer, which turns them into messages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from kit.columns import Col
from kit.errors import ConfigError


def _read(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file: {path}", where="kit stats", fix="pass a CSV, JSONL or Parquet score table")
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    if p.suffix in (".jsonl", ".json"):
        return pd.read_json(p, lines=p.suffix == ".jsonl")
    return pd.read_csv(p)


def _emit(table: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        print(table.to_csv(index=False), end="")
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(table.drop(columns=[Col.STATEMENT], errors="ignore").to_string(index=False))
            for text in table.get(Col.STATEMENT, []):
                print("\n" + text)


def _compare(args: argparse.Namespace) -> int:
    from kit.stats.compare import compare_arms

    table = compare_arms(_read(args.scores), reference=args.reference, margin=args.margin, alpha=args.alpha,
                         holm=not args.no_holm, equivalence=args.equivalence, n_resamples=args.resamples,
                         seed=args.seed)
    _emit(table, args.format)
    return 0


def _latency(args: argparse.Namespace) -> int:
    from kit.stats.latency import latency_summary

    _emit(latency_summary(_read(args.scores), seed=args.seed), args.format)
    return 0


def _errors(args: argparse.Namespace) -> int:
    from kit.stats.tables import errors_table

    _emit(errors_table(_read(args.scores)), args.format)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``kit stats compare|latency|errors SCORES`` to the kit's argument parser."""
    stats = sub.add_parser("stats", help="paired statistics on a score table (CSV, JSONL or Parquet)")
    inner = stats.add_subparsers(dest="stats_command", required=True)
    cmp_ = inner.add_parser("compare", help="every arm against a reference: McNemar, bootstrap, non-inferiority")
    cmp_.add_argument("scores")
    cmp_.add_argument("--reference", required=True, help="arm spec of the reference (e.g. the API)")
    cmp_.add_argument("--margin", type=float, default=0.02, help="non-inferiority margin (0.02 = 2 points)")
    cmp_.add_argument("--alpha", type=float, default=0.05)
    cmp_.add_argument("--equivalence", action="store_true", help="test equivalence (TOST) instead")
    cmp_.add_argument("--no-holm", action="store_true", help="do not correct for several candidates")
    cmp_.add_argument("--resamples", type=int, default=10_000)
    cmp_.set_defaults(func=_compare)
    lat = inner.add_parser("latency", help="per-arm latency percentiles with bootstrap intervals")
    lat.add_argument("scores")
    lat.set_defaults(func=_latency)
    err = inner.add_parser("errors", help="errors and unparseable answers per arm")
    err.add_argument("scores")
    err.set_defaults(func=_errors)
    for p in (cmp_, lat, err):
        p.add_argument("--format", choices=("table", "csv"), default="table")
        p.add_argument("--seed", type=int, default=0)
