"""``dupbench report RESULTS_DIR`` (tables and figures of stored runs) and
``dupbench evaluate RUN_DIR`` (metrics of one stored run again, at any threshold searched)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dupbench.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="tables (Markdown, CSV, LaTeX) and figures of stored runs",
        description="Collect every finished run below RESULTS_DIR (at any depth) into the main "
        "table, per-transform/severity breakdowns and figures (PNG and PDF).",
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    p.add_argument("--out", "-o", type=Path, help="output folder (default: RESULTS_DIR/report)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(func=report)

    e = sub.add_parser(
        "evaluate",
        help="recompute a stored run's metrics without re-encoding",
        description="Score a run directory's stored candidate pairs again: at its own threshold "
        "this gives exactly the stored metrics; any threshold up to the widest one "
        "searched is allowed.",
    )
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    e.add_argument(
        "--threshold",
        "-t",
        type=float,
        help="Hamming distance or cosine similarity (default: the run's own)",
    )
    e.add_argument("--json", action="store_true", help="print all metrics as JSON")
    e.add_argument("--out", "-o", type=Path, help="also write the metrics to this JSON file")
    e.set_defaults(func=evaluate)


def report(args: argparse.Namespace) -> int:
    from dupbench.harness.report import write_report
    from dupbench.text import plural

    result = write_report(args.results_dir, args.out, figures=not args.no_figures)
    print(result.main_markdown)
    print(
        f"{result.summary()}; {plural(len(result.files), 'file')} in {result.out}", file=sys.stderr
    )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from dupbench.evaluation.catalogue import names
    from dupbench.files import write_json
    from dupbench.harness.execute import reevaluate

    try:
        metrics = reevaluate(args.run_dir, args.threshold).metrics
    except ValueError as e:  # a threshold beyond the widest one searched
        raise UsageError(str(e)) from e
    if args.out:
        write_json(args.out, metrics)
    if args.json:
        print(json.dumps(metrics, indent=1, sort_keys=True))
    else:
        for name in names("shown"):
            value = metrics[name]
            text = "nan" if math.isnan(value) else f"{value:.4f}".rstrip("0").rstrip(".")
            print(f"{name:22s} {text}")
    return 0
