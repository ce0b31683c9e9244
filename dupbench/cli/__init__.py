"""The ``dupbench`` command: one sub-module per command group, each exposing ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import sys

#: command modules, in the order their commands appear in ``dupbench --help``
COMMAND_MODULES = ("find", "undo", "encode", "datasets", "run", "report")


def build_parser() -> argparse.ArgumentParser:
    from dupbench import __version__

    parser = argparse.ArgumentParser(
        prog="dupbench",
        description="Find exact and near-duplicate images; benchmark the methods that find them.",
    )
    parser.add_argument("--version", action="version", version=f"dupbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"dupbench.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "accepts_overrides", False):
        args.overrides = extra
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
