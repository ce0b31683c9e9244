"""Argument pieces shared by several commands: method choice and ``key=value`` parameters."""

from __future__ import annotations

import argparse
import ast

from dupbench.errors import UsageError


def parse_params(items: list[str] | None) -> dict:
    """``["hash_size=16", "profile=imagededup"]`` → ``{"hash_size": 16, "profile": "imagededup"}``."""
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-p/--param expects KEY=VALUE, got {item!r}")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        "-m",
        default="phash",
        help="method name (see `dupbench methods`); default: phash",
    )
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="method parameter, repeatable (e.g. -p hash_size=16 -p profile=imagededup)",
    )
    parser.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="encoding processes (0: one per usable core; 1: in this process)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
