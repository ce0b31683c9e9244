"""``dupbench find DIR``: duplicates in a folder, with a summary, JSON output and safe file moves."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from dupbench.cli.options import add_method_options, parse_params
from dupbench.duplicates import KEEP_POLICIES
from dupbench.files import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("find", help="find duplicate images in a folder",
                       description="Find exact and near-duplicate images in a folder.")
    p.add_argument("directory", type=Path)
    add_method_options(p)
    p.add_argument("--threshold", "-t", type=float, default=None,
                   help="Hamming distance (hashes, default 10 for 64 bits) or cosine similarity "
                        "(cnn, default 0.9)")
    p.add_argument("--out", "-o", type=Path, help="write {file: [(duplicate, score)]} JSON here")
    p.add_argument("--groups", type=Path, help="write the duplicate groups (JSON list) here")
    p.add_argument("--keep", choices=KEEP_POLICIES, default="first",
                   help="which file of a duplicate set to keep (default: first by name)")
    p.add_argument("--remove-list", type=Path, help="write the files to remove (JSON list) here")
    p.add_argument("--move-to", type=Path,
                   help="move the files to remove into this folder (dry run unless --apply)")
    p.add_argument("--apply", action="store_true", help="really move files with --move-to")
    p.add_argument("--backend", default="auto", help="search backend (auto, brute, bktree, faiss, "
                                                      "flat, hnsw, ivf)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dupbench.api import search_duplicates
    from dupbench.methods import get_method

    method = get_method(args.method, **parse_params(args.param))
    threshold = {}
    if args.threshold is not None:
        key = "min_similarity_threshold" if method.metric == "cosine" else "max_distance_threshold"
        threshold[key] = args.threshold
    start = time.perf_counter()
    result = search_duplicates(args.directory, method=method, recursive=args.recursive,
                               num_enc_workers=args.workers, search_method=args.backend,
                               progress=not args.quiet, **threshold)
    elapsed = time.perf_counter() - start
    groups = result.groups()
    summary = result.summary(groups)
    to_remove = result.to_remove(args.keep)
    if args.out:
        write_json(args.out, result.to_map(scores=True))
    if args.groups:
        write_json(args.groups, groups)
    if args.remove_list:
        write_json(args.remove_list, to_remove)
    err = sys.stderr
    print(f"method        {method!r}", file=err)
    print(f"files         {summary['files']}  (encoded {summary['encoded']}, "
          f"skipped {summary['skipped']})", file=err)
    for s in result.skipped:
        print(f"  skipped     {s.path}: {s.reason}", file=err)
    print(f"duplicates    {summary['pairs']} pairs in {summary['groups']} groups "
          f"({summary['files_in_groups']} files); {len(to_remove)} to remove (keep={args.keep})",
          file=err)
    print(f"time          {elapsed:.2f} s", file=err)
    for group in groups:
        print("  " + "  ".join(group))
    if args.move_to:
        _move(args.directory, to_remove, args.move_to, apply=args.apply)
    return 0


def _move(root: Path, names: list[str], target: Path, apply: bool) -> None:
    """Move files under ``target`` keeping their relative paths; never overwrite, never delete."""
    verb = "moving" if apply else "would move (dry run; add --apply)"
    for name in names:
        src, dst = root / name, target / name
        if dst.exists():
            print(f"  not moving {src}: {dst} already exists", file=sys.stderr)
            continue
        print(f"  {verb} {src} -> {dst}", file=sys.stderr)
        if apply:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
