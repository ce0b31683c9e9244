"""``dupbench undo DEST``: put back every file that ``find --move-to DEST --apply`` moved."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dupbench.errors import UsageError
from dupbench.text import plural


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "undo",
        help="put back the files a `find --move-to DEST --apply` moved",
        description="Restore every file recorded in DEST's journal to where it "
        "was, byte for byte; a file that changed since it was moved, "
        "or whose original path is taken again, is left in place.",
    )
    p.add_argument("destination", type=Path, help="the --move-to folder (it holds the journal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dupbench import actions

    if not (args.destination / actions.JOURNAL_NAME).is_file():
        raise UsageError(
            f"{args.destination} has no dupbench journal ({actions.JOURNAL_NAME}): nothing to undo"
        )
    try:
        out = actions.undo(args.destination)
    except actions.ActionError as e:
        print(f"dupbench undo: error: {e}", file=sys.stderr)
        return 1
    for line in out.done + out.refused:
        print(f"  {line}", file=sys.stderr)
    restored = sum(line.startswith("restored") for line in out.done)
    print(
        f"restored      {plural(restored, 'file')}"
        f"{'; ' + str(len(out.refused)) + ' left in place' if out.refused else ''}",
        file=sys.stderr,
    )
    return 1 if out.refused else 0
