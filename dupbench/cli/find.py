"""``dupbench find DIR``: duplicates in a folder, with a summary, JSON output and safe file moves."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dupbench.cli.options import add_method_options, parse_params
from dupbench.duplicates import KEEP_POLICIES
from dupbench.errors import UsageError
from dupbench.files import write_json
from dupbench.text import plural


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "find",
        help="find duplicate images in a folder",
        description="Find exact and near-duplicate images in a folder.",
    )
    p.add_argument("directory", type=Path)
    add_method_options(p)
    p.add_argument(
        "--threshold",
        "-t",
        type=float,
        default=None,
        help="Hamming distance (hashes, default 10 for 64 bits), cosine similarity "
        "(cnn, default 0.9) or L2 distance (color_moment, default 3)",
    )
    p.add_argument("--out", "-o", type=Path, help="write {file: [(duplicate, score)]} JSON here")
    p.add_argument("--groups", type=Path, help="write the duplicate groups (JSON list) here")
    p.add_argument(
        "--keep",
        choices=KEEP_POLICIES,
        default="best",
        help="which file of a duplicate group to keep (default best: the largest "
        "resolution, then the largest file, then the oldest)",
    )
    p.add_argument("--remove-list", type=Path, help="write the files to remove (JSON list) here")
    p.add_argument(
        "--move-to",
        type=Path,
        help="move the files to remove into this folder (dry run unless --apply); "
        "journaled there, undo with `dupbench undo DEST`",
    )
    p.add_argument("--apply", action="store_true", help="really move files with --move-to")
    p.add_argument(
        "--backend",
        default="auto",
        help="search backend (auto, brute, bktree, faiss, flat, hnsw, ivf)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dupbench import actions

    if args.apply and not args.move_to:
        raise UsageError("--apply needs --move-to DEST (the folder the duplicates are moved to)")
    dest = args.move_to.resolve() if args.move_to else None
    if dest and actions.inside(args.directory.resolve(), dest):
        raise UsageError(
            f"--move-to {args.move_to} holds the folder searched; choose a folder outside it"
        )
    err = sys.stderr
    try:
        _settle_interrupted(dest, args.apply)
    except actions.ActionError as e:
        print(f"dupbench find: error: {e}", file=err)
        return 1
    start = time.perf_counter()
    result, scan, method = _search(args, dest)
    elapsed = time.perf_counter() - start
    groups = result.groups()
    summary = result.summary(groups)
    to_remove = result.to_remove(args.keep)
    if args.out:
        result.write_map(args.out, scores=True)
    if args.groups:
        write_json(args.groups, groups)
    if args.remove_list:
        write_json(args.remove_list, to_remove)
    print(f"method        {method!r}", file=err)
    print(
        f"files         {summary['files']}  (encoded {summary['encoded']}, "
        f"skipped {summary['skipped']})",
        file=err,
    )
    for s in result.skipped:
        print(f"  skipped     {s.path}: {s.reason}", file=err)
    if scan.unsearched_folders:
        print(
            f"folders       {plural(scan.unsearched_folders, 'subfolder')} not searched; add -r",
            file=err,
        )
    if dest and actions.inside(dest, args.directory.resolve()):
        print(f"folders       {args.move_to} not searched (the --move-to folder)", file=err)
    print(
        f"duplicates    {plural(summary['pairs'], 'pair')} in "
        f"{plural(summary['groups'], 'group')} ({plural(summary['files_in_groups'], 'file')})"
        f"; {len(to_remove)} to remove (keep={args.keep})",
        file=err,
    )
    print(f"time          {elapsed:.2f} s", file=err)
    for group in groups:
        print("  " + "  ".join(group))
    if dest:
        plan, kept_for_links = _plan(groups, set(to_remove), scan, args.directory, method)
        for line in kept_for_links:
            print(f"  {line}", file=err)
        return _move(plan, dest, args.move_to, apply=args.apply)
    return 0


def _settle_interrupted(dest: Path | None, apply: bool) -> None:
    """Finish or roll back moves a crash interrupted (with --apply), or say that some wait."""
    from dupbench import actions

    if dest and apply:
        for line in actions.recover(dest):
            print(f"  journal: {line}", file=sys.stderr)
    elif dest and actions.pending(dest):
        print(
            f"  journal: {plural(actions.pending(dest), 'interrupted move')} in {dest}; "
            "--apply finishes or rolls them back",
            file=sys.stderr,
        )


def _search(args: argparse.Namespace, dest: Path | None):
    """Scan (never entering ``dest``), encode, search: the result, the scan, the method."""
    from dupbench.api import search_scan
    from dupbench.images import scan_files
    from dupbench.methods import get_method

    method = get_method(args.method, **parse_params(args.param))
    bounds = {}
    if args.threshold is not None:
        bounds[method.distance.threshold_name] = args.threshold
    scan = scan_files(args.directory, args.recursive, exclude=[dest] if dest else ())
    result = search_scan(
        scan,
        args.directory,
        method,
        num_enc_workers=args.workers,
        search_method=args.backend,
        progress=not args.quiet,
        **bounds,
    )
    return result, scan, method


def _plan(
    groups: list[list[str]], remove: set[str], scan, root: Path, method
) -> tuple[list, list[str]]:
    """One move per file to remove, justified by the copies its group keeps (as scanned), and
    the files not to move because a symbolic link in the folder points to them."""
    from dupbench.actions import FileState, PlannedMove

    scanned = {f.path.relative_to(root).as_posix(): f for f in scan.files}
    state = {name: FileState(f.path, f.size, f.mtime_ns) for name, f in scanned.items()}
    still_same = _still_same(method)
    plan, kept_for_links = [], []
    for group in groups:
        keepers = tuple(state[name] for name in group if name not in remove)
        for name in (n for n in group if n in remove):
            if scanned[name].linked_from:
                kept_for_links.append(
                    f"not moving {scanned[name].path}: the symbolic link "
                    f"{scanned[name].linked_from[0]} points to it"
                )
            else:
                plan.append(PlannedMove(state[name], name, keepers, still_same))
    return plan, kept_for_links


def _still_same(method):
    """For exact methods, the check made right before a move: the kept copy still matches."""
    from dupbench import actions

    if method.name == "file_digest":
        return actions.same_bytes
    if method.kind != "exact":
        return None

    def same_code(kept: Path, source: Path) -> bool:
        enc = method.encode([str(kept), str(source)], workers=1, progress=False)
        return len(enc) == 2 and bool((enc.codes[0] == enc.codes[1]).all())

    return same_code


def _move(plan: list, dest: Path, shown: Path, apply: bool) -> int:
    """Dry run: what would move and what would not. Applied: journaled moves, then a summary."""
    from dupbench import actions

    err = sys.stderr
    if not apply:
        for move in plan:
            problem = actions.refusal(move, dest)
            print(
                f"  would not move {move.source.path}: {problem}"
                if problem
                else f"  would move {move.source.path} -> {shown / move.relative} (dry run; add "
                "--apply)",
                file=err,
            )
        return 0
    try:
        out = actions.move_files(plan, dest)
    except actions.ActionError as e:
        print(f"dupbench find: error: {e}; nothing further was moved", file=err)
        return 1
    for line in out.done + out.refused:
        print(f"  {line}", file=err)
    print(
        f"moved         {plural(len(out.done), 'file')} to {shown}"
        f"{'; ' + str(len(out.refused)) + ' left in place' if out.refused else ''}; "
        f"undo with: dupbench undo {shown}",
        file=err,
    )
    return 0
