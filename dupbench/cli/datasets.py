"""``dupbench datasets list | build | info | export``: see, build and inspect benchmark datasets."""

from __future__ import annotations

import argparse
import json

from dupbench.errors import UsageError


class _TruthFormats:
    """The names in ``dupbench.datasets.formats.FORMATS`` as argparse ``choices``, read only when
    a value is checked or help is printed, so building the parser does not import pandas."""

    def __iter__(self):
        from dupbench.datasets.formats import FORMATS

        return iter(FORMATS)

    def __contains__(self, name: object) -> bool:
        from dupbench.datasets.formats import FORMATS

        return name in FORMATS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list, build and inspect labelled duplicate datasets",
        description="Labelled duplicate datasets: the embedded default, public sets, and "
        "synthetic benchmarks built from any folder of photos.",
    )
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="the named datasets, with size, level and licence")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list)

    p = sub.add_parser(
        "build",
        help="build the default, fetch a public set, or build a "
        "synthetic set from a folder of photos",
    )
    p.add_argument(
        "name",
        nargs="?",
        default="default",
        help="'default', a public set name, or 'synthetic' (with --from)",
    )
    p.add_argument("--from", dest="source", help="folder of photos for a synthetic build")
    p.add_argument("--out", help="output folder (default: the cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transforms", help="comma-separated catalogue names (default: all)")
    p.add_argument("--all-severities", action="store_true", help="one copy per severity level")
    p.add_argument("--chains", type=int, default=2, help="chained-edit copies per original")
    p.add_argument("--distractors", type=int, default=0, help="sources kept without copies")
    p.add_argument("--max-side", type=int, default=512, help="shrink larger sources (0: keep)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: cores, max 4)")
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="replace an earlier build (only a folder dupbench built is replaced)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_build)

    p = sub.add_parser("info", help="counts, levels, transforms and checksum of a dataset")
    p.add_argument("name", nargs="?", default="default", help="dataset name or folder")
    _add_truth_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)

    p = sub.add_parser("export", help="write a dataset's ground truth in another format")
    p.add_argument("name", help="dataset name or folder")
    p.add_argument("out", help="output file")
    p.add_argument(
        "--format",
        choices=_TruthFormats(),
        metavar="FORMAT",
        help="%(choices)s (default: from OUT's extension)",
    )
    _add_truth_options(p)
    p.set_defaults(func=_export)


def _add_truth_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--truth",
        metavar="FILE",
        help="NAME is a plain folder of images and FILE its ground truth (imagededup "
        "JSON, pairs or groups CSV, TREC qrels), e.g. to check or convert it",
    )
    p.add_argument(
        "--truth-format",
        choices=_TruthFormats(),
        metavar="FORMAT",
        help="format of --truth: %(choices)s (default: guessed)",
    )


def _load(args: argparse.Namespace):
    """The dataset named by ``args.name``, or the folder plus ``--truth`` file."""
    from dupbench.datasets import from_folder, load_dataset

    if args.truth:
        return from_folder(args.name, args.truth, format=args.truth_format)
    return (
        load_dataset(args.name, progress=False)
        if args.name == "default"
        else load_dataset(args.name)
    )


def _list(args: argparse.Namespace) -> int:
    from dupbench.datasets import available, describe

    rows = [describe(name) for name in available()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        print(
            f"{row['name']:<13} {row['size']}\n{'':13} level: {row['level']}\n"
            f"{'':13} licence: {row['licence']}"
        )
    return 0


def _build(args: argparse.Namespace) -> int:
    from dupbench.datasets import SyntheticConfig, build_synthetic, load_dataset
    from dupbench.datasets.default import build_default
    from dupbench.datasets.synthetic import default_workers

    progress = not args.no_progress
    if args.source:
        if not args.out:
            raise UsageError("--out is required with --from")
        transforms = (
            tuple(t.strip() for t in args.transforms.split(","))
            if args.transforms
            else SyntheticConfig().transforms
        )
        config = SyntheticConfig(
            transforms=transforms,
            all_severities=args.all_severities,
            chains=args.chains,
            distractors=args.distractors,
            max_side=args.max_side or None,
            seed=args.seed,
        )
        dataset = build_synthetic(
            args.source,
            args.out,
            config,
            workers=default_workers() if args.workers is None else args.workers,
            progress=progress,
            overwrite=args.rebuild,
        )
    elif args.name == "default" and args.out:
        dataset = build_default(
            args.out, workers=args.workers, progress=progress, overwrite=args.rebuild
        )
    elif args.name == "default":
        dataset = load_dataset(
            "default", workers=args.workers, progress=progress, rebuild=args.rebuild
        )
    else:
        params = {"root": args.out} if args.out else {}
        dataset = load_dataset(args.name, progress=progress, rebuild=args.rebuild, **params)
    print(f"{dataset!r} at {dataset.root}\nchecksum {dataset.checksum()}")
    return 0


def _info(args: argparse.Namespace) -> int:
    dataset = _load(args)
    summary = {
        **dataset.summary(),
        **{k: dataset.info.get(k) for k in ("description", "level", "licence", "citation")},
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        print(f"{key:<12} {value}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from dupbench.datasets import write_truth

    dataset = _load(args)
    path = write_truth(dataset.truth, dataset.ids, args.out, args.format)
    print(f"wrote {len(dataset.truth)} pairs to {path}")
    return 0
