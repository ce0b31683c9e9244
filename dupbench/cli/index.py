"""``dupbench index create|add|query|info|remove``: a persistent index on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dupbench.cli.options import parse_params
from dupbench.text import plural


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="a persistent index: add images, ask if one was seen before",
        description="Keep one method's codes for every image added to a folder, "
        "and find an image's near copies among them in milliseconds.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    c = actions.add_parser("create", help="make an empty index folder for one method")
    c.add_argument("path", type=Path)
    c.add_argument(
        "--method",
        "-m",
        default="phash",
        help="method name (see `dupbench methods`); default: phash",
    )
    c.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="method parameter, repeatable (e.g. -p hash_size=16)",
    )
    c.add_argument("--backend", default="local", help="local (default) or milvus")
    c.add_argument("--uri", help="the backend's server (milvus), if not a file in the index")
    c.set_defaults(func=run_create)

    a = actions.add_parser("add", help="add the images of a folder (only new or changed files)")
    a.add_argument("path", type=Path)
    a.add_argument("sources", type=Path, nargs="+", metavar="DIR_OR_FILE")
    a.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    a.add_argument(
        "--workers",
        type=int,
        default=0,
        help="encoding processes (0: one per usable core; 1: in this process)",
    )
    a.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    a.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="encode on a Dask cluster: a scheduler address (tcp://host:8786) or "
        "local:N for N local worker processes; the workers read the files, so "
        "they must see them at the same paths (needs dupbench[cluster])",
    )
    a.set_defaults(func=run_add)

    q = actions.add_parser("query", help="the indexed images similar to each given image")
    q.add_argument("path", type=Path)
    q.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    q.add_argument(
        "--threshold",
        "-t",
        type=float,
        help="max Hamming distance, or min cosine similarity (default: the method's)",
    )
    q.add_argument("-k", type=int, help="at most this many matches per image")
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.add_argument(
        "--method", "-m", help="refuse an index made with another method configuration than this"
    )
    q.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="parameter of --method, repeatable",
    )
    q.set_defaults(func=run_query)

    i = actions.add_parser("info", help="the index's method, backend and size")
    i.add_argument("path", type=Path)
    i.set_defaults(func=run_info)

    r = actions.add_parser("remove", help="remove entries by id")
    r.add_argument("path", type=Path)
    r.add_argument("ids", type=int, nargs="+", metavar="ID")
    r.set_defaults(func=run_remove)


def run_create(args: argparse.Namespace) -> int:
    from dupbench.index import Index

    with Index.create(
        args.path, args.method, backend=args.backend, uri=args.uri, **parse_params(args.param)
    ) as index:
        info = index.info()
    print(
        f"created {args.path}: {info['method']} ({info['kind']}, {info['size']}), "
        f"{info['backend']} backend",
        file=sys.stderr,
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from dupbench.cluster import session
    from dupbench.index import AddResult, Index

    total = AddResult()
    with (
        Index.open(args.path) as index,
        session(args.cluster) if args.cluster else nullcontext() as cluster,
    ):
        for source in args.sources:
            if not source.exists():
                raise FileNotFoundError(2, "No such file or directory", str(source))
            done = index.add(
                source,
                recursive=args.recursive,
                workers=args.workers,
                progress=not args.quiet,
                cluster=cluster,
            )
            total.added += done.added
            total.unchanged += done.unchanged
            total.skipped += done.skipped
        size = len(index)
    for s in total.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    counts = total.summary()
    print(
        f"added {counts['added']}, unchanged {counts['unchanged']}, skipped "
        f"{counts['skipped']}; {size} entries in {args.path}",
        file=sys.stderr,
    )
    return 0


def run_query(args: argparse.Namespace) -> int:
    from dupbench.errors import DupbenchError, UsageError
    from dupbench.index import Index

    failed = 0
    answers = []
    if args.param and not args.method:
        raise UsageError("-p/--param needs --method")
    with Index.open(args.path, args.method, **parse_params(args.param)) as index:
        for image in args.images:
            try:
                matches = index.query(image, args.threshold, args.k)
            except DupbenchError as e:
                print(f"dupbench index query: error: {e}", file=sys.stderr)
                failed += 1
                continue
            answers.append((image, matches))
    if args.json:
        print(
            json.dumps(
                [
                    {"image": str(image), "matches": [m.__dict__ for m in matches]}
                    for image, matches in answers
                ],
                indent=1,
            )
        )
    else:
        for image, matches in answers:
            print(f"{image}: {plural(len(matches), 'match', 'matches')}")
            for m in matches:
                print(f"  {m.id}\t{m.score:g}\t{m.name}")
    return 1 if failed else 0


def run_info(args: argparse.Namespace) -> int:
    from dupbench.index import Index

    with Index.open(args.path) as index:
        for key, value in index.info().items():
            print(f"{key}: {value}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from dupbench.index import Index

    with Index.open(args.path) as index:
        removed = index.remove(args.ids)
        size = len(index)
    missing = sorted(set(args.ids) - set(removed))
    if missing:
        print(f"not in the index: {', '.join(map(str, missing))}", file=sys.stderr)
    print(f"removed {len(removed)}; {size} entries in {args.path}", file=sys.stderr)
    return 1 if missing else 0
