"""Threshold-free views of scored pairs: the precision-recall curve, operating points, μAP, and the
score distributions of true and false pairs.

Each is one sort of the candidate pairs (best score first) plus cumulative sums, so sweeping every
threshold costs the same as evaluating one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dupbench.evaluation.pairs import Size, label_pairs, pair_level
from dupbench.evaluation.pairwise import f1, ratio
from dupbench.records import Candidates

CURVE_COLUMNS = ["threshold", "tp", "fp", "fn", "precision", "recall", "f1"]


def labelled_pairs(candidates: Candidates, truth_pairs, n: Size | None):
    """The pairs every curve is built from, one entry per pair of images.

    Without ``n`` the candidates are taken as they are (``cross`` ones as queries × references).
    With ``cross`` candidates and an int ``n`` they are directed pairs within one collection
    (top-k lists): folded to unordered pairs, (a, b) and (b, a) count once with the better
    score, matching the unordered truth either way round.
    """
    return label_pairs(pair_level(candidates, n), truth_pairs, n)


def pr_curve(candidates: Candidates, truth_pairs, n: Size | None = None) -> pd.DataFrame:
    """Pair-level precision and recall at every distinct candidate score, strictest first.

    Row t keeps the pairs at least as close as ``threshold`` t (distance ≤ t, or similarity ≥ t),
    exactly as ``Candidates.within(t)`` does; with the pairs sorted best first and rel_k = 1 for
    a truth pair, the row ending at position K (the last pair scoring t) has::

        tp = Σ_{k≤K} rel_k     fp = K - tp     fn = |G| - tp
        precision = tp / K     recall = tp / |G|     f1 = 2PR / (P + R)

    Pairs the search never returned are only in ``fn``: no threshold can recover them.
    ``n`` is optional (range checks); see ``labelled_pairs`` for directed pairs within one
    collection.
    """
    labelled = labelled_pairs(candidates, truth_pairs, n)
    order = labelled.best_first()
    score = labelled.score[order]
    hits = np.cumsum(labelled.is_true[order], dtype=np.int64)
    # the last position of each run of equal scores closes that threshold's row
    closes = np.ones(len(score), dtype=bool)
    closes[:-1] = score[1:] != score[:-1]
    last = np.flatnonzero(closes)
    tp = hits[last]
    retrieved = last + 1
    precision = ratio(tp, retrieved)
    recall = ratio(tp, labelled.n_truth)
    return pd.DataFrame(
        {
            "threshold": score[last],
            "tp": tp,
            "fp": retrieved - tp,
            "fn": labelled.n_truth - tp,
            "precision": precision,
            "recall": recall,
            "f1": f1(precision, recall),
        },
        columns=CURVE_COLUMNS,
    )


def operating_points(curve: pd.DataFrame, target_precision: float = 0.99) -> dict:
    """The thresholds one would deploy: the best-F1 point and the max recall at a precision floor.

    ``best_f1 = max_t F1(t)`` (ties: the strictest threshold);
    ``recall_at_precision = max {R(t) : P(t) ≥ target}`` (ties: the strictest threshold), 0 with a
    NaN threshold when no threshold reaches the target precision.
    """
    missing = set(CURVE_COLUMNS) - set(curve.columns)
    if missing:
        raise ValueError(f"curve lacks columns {sorted(missing)}; build it with pr_curve()")
    nan = float("nan")
    points = {
        "best_f1": 0.0,
        "best_f1_threshold": nan,
        "best_f1_precision": 0.0,
        "best_f1_recall": 0.0,
        "target_precision": float(target_precision),
        "recall_at_precision": 0.0,
        "recall_at_precision_threshold": nan,
    }
    if len(curve) == 0:
        return points
    best = curve.iloc[int(np.argmax(curve["f1"].to_numpy()))]
    points.update(
        best_f1=float(best["f1"]),
        best_f1_threshold=float(best["threshold"]),
        best_f1_precision=float(best["precision"]),
        best_f1_recall=float(best["recall"]),
    )
    precise = curve[curve["precision"] >= target_precision]
    if len(precise):
        row = precise.iloc[int(np.argmax(precise["recall"].to_numpy()))]
        points.update(
            recall_at_precision=float(row["recall"]),
            recall_at_precision_threshold=float(row["threshold"]),
        )
    return points


def micro_ap(candidates: Candidates, truth_pairs, n: Size | None = None) -> float:
    """Micro average precision (μAP, as in the DISC21 image-similarity challenge).

    All candidate pairs are pooled into one list sorted best score first, with non-matches first
    among equal scores (so ties cannot flatter a method); with rel_k = 1 for a truth pair::

        μAP = (1 / |G|) · Σ_k rel_k · P@k,    P@k = (Σ_{l≤k} rel_l) / k

    Dividing by |G| (all truth pairs, not only those returned) makes missed pairs lower the score.
    NaN when there are no truth pairs. ``n`` as in ``pr_curve``.
    """
    labelled = labelled_pairs(candidates, truth_pairs, n)
    if labelled.n_truth == 0:
        return float("nan")
    rel = labelled.is_true[labelled.best_first(true_last_on_ties=True)]
    precision_at_k = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float(precision_at_k[rel].sum() / labelled.n_truth)


def score_distributions(candidates: Candidates, truth_pairs, n: Size | None = None) -> dict:
    """Scores of the candidate pairs that are duplicates (``true_pairs``) and that are not
    (``false_pairs``), one entry per distinct pair; their overlap is what no threshold can split.
    ``n`` as in ``pr_curve``."""
    labelled = labelled_pairs(candidates, truth_pairs, n)
    return {
        "true_pairs": labelled.score[labelled.is_true],
        "false_pairs": labelled.score[~labelled.is_true],
    }
