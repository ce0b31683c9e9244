"""Recall per group of truth pairs (transform, severity, category): which method survives which edit.

Only recall splits cleanly by group: a false positive pairs two unrelated images and belongs to no
edit, so precision stays a corpus-level number (``pairwise_scores``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dupbench.evaluation.curves import operating_points, pr_curve
from dupbench.evaluation.pairs import Size, label_pairs, lookup_scores, pair_level
from dupbench.records import Candidates

BREAKDOWN_COLUMNS = ["group", "pairs", "found", "recall", "median_score"]


def breakdown(
    candidates: Candidates, truth_pairs, pair_groups, threshold: float, n: Size | None = None
) -> pd.DataFrame:
    """One row per group label: how many of its truth pairs were found at ``threshold``.

    ``pair_groups[m]`` labels truth pair m (same order as ``truth_pairs``). Per group g::

        pairs  = |G_g|
        found  = |G_g ∩ R_t|      (R_t: candidates within the threshold, as ``Candidates.within``)
        recall = found / pairs
        median_score = median score of G_g's pairs among all candidates (NaN if none returned):
                       how far the edit moves a copy, independent of the threshold.

    ``n`` (optional) enables range checks; with ``cross`` candidates and an int ``n`` they are
    directed pairs within one collection, and a truth pair counts as found in either direction.
    """
    raw = np.asarray(truth_pairs)
    candidates = pair_level(candidates, n)
    # one validation of the truth, one labelling of the candidates
    labelled = label_pairs(candidates, raw, n)
    labels = np.asarray(pair_groups)
    if labels.ndim != 1 or len(labels) != len(raw):
        raise ValueError(
            f"pair_groups needs one label per truth pair: {len(raw)} pairs, labels of "
            f"shape {labels.shape}"
        )
    if len(raw) == 0:
        return pd.DataFrame(columns=BREAKDOWN_COLUMNS)
    score = lookup_scores(raw[:, 0], raw[:, 1], labelled)  # each row's best candidate score
    found = labelled.distance.within(score, threshold)  # NaN: False
    table = (
        pd.DataFrame({"group": labels, "found": found, "score": score})
        .groupby("group", sort=True)
        .agg(
            pairs=("found", "size"),
            found=("found", "sum"),
            recall=("found", "mean"),
            median_score=("score", "median"),
        )
        .reset_index()
    )
    return table[BREAKDOWN_COLUMNS]


def breakdown_at_precision(
    candidates: Candidates,
    truth_pairs,
    pair_groups,
    target_precision: float = 0.99,
    n: Size | None = None,
) -> tuple[pd.DataFrame, dict]:
    """``breakdown`` at the threshold where precision over *all* pairs reaches the target.

    Each method's own threshold is a different precision; at this one every method is compared
    at the same precision. The threshold is ``operating_points``' ``recall_at_precision_threshold``
    (the highest recall with P(t) ≥ target; ties: the strictest). Returns the table and
    ``{"threshold", "precision", "recall"}`` of that point; when no threshold reaches the target
    the threshold is NaN and every group's recall is 0.
    """
    curve = pr_curve(candidates, truth_pairs, n)
    points = operating_points(curve, target_precision)
    threshold = points["recall_at_precision_threshold"]
    at = curve[curve["threshold"] == threshold]
    point = {
        "threshold": threshold,
        "precision": float(at["precision"].iloc[0]) if len(at) else 0.0,
        "recall": points["recall_at_precision"],
    }
    return breakdown(candidates, truth_pairs, pair_groups, threshold, n), point  # NaN: none found
