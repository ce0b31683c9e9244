"""Recall per transform at 99% pair precision, for the finished runs under a results folder.

Why: the harness's breakdown is taken at each method's operating threshold, which means a
different precision for each method; comparing what an option (trim, dihedral) buys per edit
needs one precision for all. For each run, the threshold is the run's own
``recall_at_precision_threshold`` (the curve's highest recall with precision ≥ the target), and
the run's stored candidates are scored again there (``harness.execute.reevaluate``): no encoding.

Usage:
    dupbench run experiment=invariance results_dir=/tmp/inv
    python benchmarks/transform_recall.py /tmp/inv [more folders] [--column transform] [--out t.csv]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from dupbench.files import write_text
from dupbench.harness.execute import reevaluate
from dupbench.harness.store import find_runs


def recall_at_target(run, column: str) -> tuple[pd.Series, float]:
    """(recall per group of ``column`` at the run's target-precision threshold, overall recall);
    zeros where no threshold reaches the target precision."""
    threshold = run.metrics["recall_at_precision_threshold"]
    scores = reevaluate(run.dir, None if math.isnan(threshold) else threshold)
    table = scores.breakdown[scores.breakdown["column"] == column].set_index("group")["recall"]
    if math.isnan(threshold):
        return table * 0.0, 0.0
    return table, run.metrics["recall_at_precision"]


def method_label(run) -> str:
    """The method's preset label (or class name), without the run's benchmark overrides: runs of
    one preset searched to different widths are one column (the newest)."""
    method = run.record.config["method"]
    return method.get("label") or method["name"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results_dirs", type=Path, nargs="+", help="results folders (runs are found below them)"
    )
    parser.add_argument(
        "--column", default="transform", help="breakdown column (transform, severity, category)"
    )
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args(argv)
    columns, thresholds = {}, {}
    runs = [run for folder in args.results_dirs for run in find_runs(folder)]
    for run in sorted(runs, key=lambda r: r.record.finished):  # a method's newest run wins
        name = method_label(run)
        per_group, overall = recall_at_target(run, args.column)
        columns[name] = pd.concat([per_group, pd.Series({"(all pairs)": overall})])
        thresholds[name] = run.metrics["recall_at_precision_threshold"]
    table = pd.DataFrame(columns).round(3)
    table.loc["(threshold)"] = pd.Series(thresholds)
    target = run.metrics["target_precision"] if columns else float("nan")
    print(f"recall per {args.column} at {target:.0%} pair precision")
    print(table.to_markdown())
    if args.out:
        write_text(args.out, table.to_csv())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
