"""Metrics for duplicate finding: pair classification, per-query retrieval, curves and μAP.

Inputs are arrays: ``Candidates`` (scored pairs from a search) and ground truth as an (m, 2) int
array of duplicate pairs. No metric enumerates the n(n-1)/2 possible pairs. The formulas are in
each kernel's docstring; ``evaluate`` is imagededup's map-based entry point.
"""

from dupbench.evaluation.all_metrics import evaluate_run, scores_at, threshold_free_scores
from dupbench.evaluation.compat import evaluate
from dupbench.evaluation.curves import micro_ap, operating_points, pr_curve, score_distributions
from dupbench.evaluation.groups import breakdown, breakdown_at_precision
from dupbench.evaluation.pairwise import pairwise_scores
from dupbench.evaluation.ranking import RankedLists, ranked_lists, ranking_scores, retrieval_scores

__all__ = [
    "RankedLists",
    "breakdown",
    "breakdown_at_precision",
    "evaluate",
    "evaluate_run",
    "micro_ap",
    "operating_points",
    "pairwise_scores",
    "pr_curve",
    "ranked_lists",
    "ranking_scores",
    "retrieval_scores",
    "score_distributions",
    "scores_at",
    "threshold_free_scores",
]
