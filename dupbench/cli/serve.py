"""``dupbench serve PATH``: an index's HTTP JSON API (see ``dupbench.index.service``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an index over HTTP (query, add, stats)",
        description="Serve an index made with `dupbench index create`: POST /query "
        "and POST /add take an image's bytes; docs at /docs.",
    )
    p.add_argument("path", type=Path)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--token",
        default=os.environ.get("DUPBENCH_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' for writes "
        "(default: $DUPBENCH_TOKEN; none: writes are open)",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        help="largest request body (default: dupbench.index.service.MAX_BYTES, 32 MiB)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        help="largest image in pixels (default: ...service.MAX_PIXELS, 50 million)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dupbench.index import Index
    from dupbench.index.service import serve

    with Index.open(args.path) as index:
        print(
            f"serving {args.path} ({len(index)} entries) on http://{args.host}:{args.port} "
            f"(docs: /docs){'; writes need the token' if args.token else ''}",
            file=sys.stderr,
        )
        limits = {
            k: v
            for k, v in (("max_bytes", args.max_bytes), ("max_pixels", args.max_pixels))
            if v is not None
        }
        serve(index, args.host, args.port, token=args.token, **limits)
    return 0
