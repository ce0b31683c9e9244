"""Scoring stored search output: the one code path shared by a run and by ``dupbench evaluate``,
so re-evaluating a stored run at its threshold gives exactly the stored metrics.

Only calls ``dupbench.evaluation``; no metric is computed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dupbench.distance import DistanceKind
from dupbench.evaluation.catalogue import names
from dupbench.harness.store import NO_LABEL, StoredTruth
from dupbench.records import Candidates

#: breakdown label joining two columns, e.g. "jpeg/3" for transform "jpeg" at severity 3
COMBINED = ("transform", "severity")


@dataclass
class Scores:
    metrics: dict[str, float]
    curve: pd.DataFrame
    sweep: pd.DataFrame
    breakdown: pd.DataFrame


def sweep_thresholds(distance: str, threshold: float, sweep_to: float, points: int) -> np.ndarray:
    """Thresholds for the metrics-vs-threshold table, from the closest score to the widest
    threshold: every integer (Hamming distance), ``points`` values (cosine similarity), or the
    closest alone (equality); the run's own threshold is always included."""
    kind = DistanceKind(distance)
    widest = kind.widest(threshold, sweep_to)
    if not kind.graded:
        grid = np.array([float(kind.closest)])
    elif kind.discrete:
        grid = np.arange(kind.closest, int(widest) + 1, dtype=float)
    else:
        low, high = sorted((widest, kind.closest))
        grid = np.round(np.linspace(low, high, points), 6)
    return np.unique(np.append(grid, float(threshold)))


def group_labels(groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stored group columns plus the transform/severity combination where both exist."""
    out = dict(groups)
    if all(c in groups for c in COMBINED):
        a, b = (np.asarray(groups[c], dtype=str) for c in COMBINED)
        out["/".join(COMBINED)] = np.char.add(np.char.add(a, "/"), b)
    return out


def score(
    candidates: Candidates,
    truth: StoredTruth,
    threshold: float,
    k_values: Sequence[int],
    target_precision: float,
    sweep: Iterable[float] = (),
) -> Scores:
    """Metrics at ``threshold``, the PR curve, metrics at each ``sweep`` threshold, and recall per
    group label at ``threshold``."""
    from dupbench.evaluation import breakdown, pr_curve, scores_at, threshold_free_scores

    k_values = list(k_values)
    kept = names("sweep")  # per threshold (the full set is stored at the run's threshold)
    curve = pr_curve(candidates, truth.pairs, truth.n)
    # the threshold-free metrics once; per threshold only what the threshold changes
    # (together exactly ``evaluate_run``)
    free = threshold_free_scores(candidates, truth.pairs, target_precision, curve=curve, n=truth.n)
    at = scores_at(candidates, truth.pairs, truth.n, threshold, k_values)
    metrics = {**at, **free}
    rows = []
    for t in sweep:
        at_t = (
            at
            if float(t) == float(threshold)
            else scores_at(candidates, truth.pairs, truth.n, float(t), k_values)
        )
        rows.append({"threshold": float(t), **{m: at_t[m] for m in kept if m in at_t}})
    tables = []
    for column, labels in group_labels(truth.groups).items():
        if len(labels) and not np.isin(labels, ("", NO_LABEL)).all():
            table = breakdown(candidates, truth.pairs, labels, threshold, truth.n)
            tables.append(table.assign(column=column))
    per_group = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["column", "group", "pairs", "found", "recall"])
    )
    return Scores(metrics, curve, pd.DataFrame(rows), per_group)
