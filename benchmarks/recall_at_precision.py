"""Recall at a target pair precision, per transform, for stored benchmark runs.

The per-transform tables of ``dupbench report`` give recall at each run's operating threshold,
which is a different precision for every method. This puts every run at the threshold where its
own precision over all pairs reaches the target (``recall_at_precision_threshold``, from its
stored candidates: no encoding) and prints recall per transform there, so the methods are
compared at one precision. ``dupbench report`` draws the same table as the figure
``recall_per_transform_at_precision`` (``dupbench.harness.tables.recall_at_precision_table``).

    python benchmarks/recall_at_precision.py results/reference /tmp/runs --precision 0.99
    python benchmarks/recall_at_precision.py results/calibration/runs --column severity --out t.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dupbench.files import write_text
from dupbench.harness.store import find_runs
from dupbench.harness.tables import recall_at_precision_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="folders holding stored runs")
    parser.add_argument("--precision", type=float, default=0.99)
    parser.add_argument(
        "--column", default="transform", help="breakdown column (transform, severity, category)"
    )
    parser.add_argument("--out", type=Path, help="also write the table (and thresholds) as CSV")
    args = parser.parse_args(argv)
    runs = [run for root in args.roots for run in find_runs(root)]
    wide, points = recall_at_precision_table(runs, args.column, args.precision)
    if wide.empty:
        parser.error(f"no finished run with {args.column} labels below {', '.join(args.roots)}")
    table = wide.set_index(args.column).drop(columns="pairs")
    table.loc["(threshold)"] = points["threshold"]
    recalls = table.iloc[:-1]
    best = recalls.max(axis=1)
    print(f"recall at {args.precision:.0%} pair precision (rows: {args.column}; * = best or tied)")
    shown = recalls.map(lambda v: f"{v:.3f}").where(
        recalls.lt(best, axis=0), recalls.map(lambda v: f"{v:.3f}*")
    )
    thresholds = table.loc[["(threshold)"]].map(lambda v: f"{v:.4g}")
    print(pd.concat([shown, thresholds]).to_string())
    if args.out:
        write_text(args.out, table.round(4).to_csv())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
