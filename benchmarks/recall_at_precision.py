"""Recall at a target pair precision, per transform, for stored benchmark runs.

The per-transform tables of ``dupbench report`` give recall at each run's operating threshold,
which is a different precision for every method. This script puts every run at the threshold
where its own precision over all pairs reaches the target (``recall_at_precision_threshold``,
computed from its stored candidates) and prints recall per transform there, so the methods
are compared at one precision:

    python benchmarks/recall_at_precision.py results/reference /tmp/runs --precision 0.99
"""

from __future__ import annotations

import argparse

import pandas as pd

from dupbench.evaluation import breakdown
from dupbench.evaluation.all_metrics import threshold_free_scores
from dupbench.harness.store import find_runs


def per_transform(run, precision: float) -> tuple[pd.Series, float]:
    """(recall per transform label, overall recall) at ``precision`` for one stored run."""
    candidates, truth = run.candidates(), run.truth()
    free = threshold_free_scores(candidates, truth.pairs, precision, n=truth.n)
    threshold = free["recall_at_precision_threshold"]
    table = breakdown(candidates, truth.pairs, truth.groups["transform"], threshold, truth.n)
    return table.set_index("group")["recall"], free["recall_at_precision"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="folders holding stored runs")
    parser.add_argument("--precision", type=float, default=0.99)
    args = parser.parse_args()
    columns, overall = {}, {}
    for root in args.roots:
        for run in find_runs(root):
            columns[run.label], overall[run.label] = per_transform(run, args.precision)
    table = pd.DataFrame(columns)
    table.loc["ALL"] = pd.Series(overall)
    best = table.max(axis=1)
    print(f"recall at {args.precision:.0%} pair precision (rows: transform; * = best or tied)")
    shown = table.map(lambda v: f"{v:.3f}").where(
        table.lt(best, axis=0), table.map(lambda v: f"{v:.3f}*")
    )
    print(shown.to_string())


if __name__ == "__main__":
    main()
