"""``dupbench encode DIR``: codes for every image, stored for later search or evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dupbench.cli.options import add_method_options, parse_params
from dupbench.errors import UsageError

#: what ``--out`` can write, by suffix
OUT_SUFFIXES = (".npz", ".json")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="encode a folder of images with one method",
        description="Encode every image in a folder; unreadable files are skipped and listed.",
    )
    p.add_argument("directory", type=Path)
    add_method_options(p)
    p.add_argument(
        "--out",
        "-o",
        type=Path,
        help=".npz (exact, any method) or .json ({file: hex}, hashes only)",
    )
    p.add_argument(
        "--store",
        type=Path,
        help="keep the codes in this folder as they are made: a rerun resumes an "
        "interrupted encode and encodes only new or changed files",
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="encode on a Dask cluster: a scheduler address (tcp://host:8786) or "
        "local:N for N local worker processes; the workers read the files, so "
        "they must see them at the same paths (needs dupbench[cluster])",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dupbench.api import encode_images
    from dupbench.files import write_json
    from dupbench.methods import get_method

    if args.out is None and args.store is None:
        raise UsageError("say where the codes go: --out FILE, --store FOLDER, or both")
    if (
        args.out is not None and args.out.suffix not in OUT_SUFFIXES
    ):  # refuse before the work, not after it
        raise UsageError(
            f"--out {args.out}: the file name must end in .npz (codes of any "
            "method) or .json (hex hashes)"
        )
    method = get_method(args.method, **parse_params(args.param))
    as_json = args.out is not None and args.out.suffix == ".json"
    if as_json and method.kind == "float":
        raise UsageError(f"{method.name} makes float embeddings: write them to a .npz file")
    enc = encode_images(
        args.directory,
        method,
        recursive=args.recursive,
        num_enc_workers=args.workers,
        progress=not args.quiet,
        store=args.store,
        cluster=args.cluster,
    )
    for s in enc.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    where = [str(p) for p in (args.store, args.out) if p is not None]
    if args.out is not None:
        write_json(args.out, enc.to_hex()) if as_json else enc.save(args.out)
    print(
        f"encoded {len(enc)} images ({len(enc.skipped)} skipped) -> {' and '.join(where)}",
        file=sys.stderr,
    )
    return 0
