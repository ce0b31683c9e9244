"""Pair-level classification: every unordered pair of images is one sample (imagededup's view).

A pair is *positive* when it is in the ground truth and *predicted positive* when it was retrieved.
Only the listed pairs (retrieved and truth) are touched; true negatives are the remainder of the
n(n-1)/2 pairs (n_q·n_r across two collections), counted arithmetically.
"""

from __future__ import annotations

import numpy as np

from dupbench.evaluation.pairs import PairSpace, Size, label_pairs, pair_level
from dupbench.records import Candidates


def ratio(numerator, denominator):
    """``numerator / denominator``, 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
    return float(out) if out.ndim == 0 else out


def f1(precision, recall):
    """F1 = 2PR / (P + R), 0 where P + R = 0."""
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    return ratio(2 * p * r, p + r)


def pairwise_scores(
    candidates: Candidates, truth_pairs, n: Size, threshold: float | None = None
) -> dict:
    """Precision, recall and F1 of both classes over all pairs, from the listed pairs only.

    With R the retrieved pairs (candidates within ``threshold``; all of them when None), G the
    truth pairs and N the number of pairs (n(n-1)/2, or n_q·n_r for cross candidates)::

        tp = |R ∩ G|   fp = |R| - tp   fn = |G| - tp   tn = N - tp - fp - fn
        precision = tp / (tp + fp)     recall = tp / (tp + fn)     f1 = 2PR / (P + R)
        precision_neg = tn / (tn + fn)  recall_neg = tn / (tn + fp)  (the non-duplicate class)
        support_pos = tp + fn           support_neg = tn + fp

    Any 0/0 is reported as 0, as sklearn (and so imagededup) does.

    ``cross`` candidates with an int ``n`` are directed pairs within one collection (top-k
    lists): they are folded to unordered pairs first, so (a, b) and (b, a) count as one retrieved
    pair (its better score) and N is n(n-1)/2.
    """
    if not isinstance(candidates, Candidates):
        raise TypeError(f"expected dupbench.records.Candidates, got {type(candidates).__name__}")
    if threshold is not None:
        candidates = candidates.within(threshold)
    candidates = pair_level(candidates, n)
    labelled = label_pairs(candidates, truth_pairs, n)
    total = PairSpace.of(n, candidates.cross).total_pairs
    tp = int(labelled.is_true.sum())
    fp = len(labelled) - tp
    fn = labelled.n_truth - tp
    tn = total - tp - fp - fn
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    precision_neg, recall_neg = ratio(tn, tn + fn), ratio(tn, tn + fp)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1(precision, recall),
        "precision_neg": precision_neg,
        "recall_neg": recall_neg,
        "f1_neg": f1(precision_neg, recall_neg),
        "support_pos": tp + fn,
        "support_neg": tn + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
