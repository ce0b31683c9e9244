"""Every metric of one run at one threshold, as the flat row of floats the harness stores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dupbench.evaluation.curves import micro_ap, operating_points, pr_curve, score_distributions
from dupbench.evaluation.pairs import Size
from dupbench.evaluation.pairwise import pairwise_scores
from dupbench.evaluation.ranking import retrieval_scores
from dupbench.records import Candidates


def evaluate_run(
    candidates: Candidates,
    truth_pairs,
    n: Size,
    threshold: float,
    k_values: Sequence[int] = (1, 5, 10),
    target_precision: float = 0.99,
) -> dict[str, float]:
    """Pairwise, retrieval and threshold-free metrics in one flat ``{name: float}`` dict.

    Names are stable: the ``pairwise_scores`` keys (precision, recall, f1, *_neg, support_*, tp,
    fp, fn, tn); the ``retrieval_scores`` keys under imagededup's convention (map, ndcg,
    ndcg_imagededup, jaccard, p@k, r@k, map@k, ndcg@k, queries) and again with a ``trec_``
    prefix under trec_eval's; ``micro_ap`` and the ``operating_points`` keys, which use *all*
    candidates (the sweep is only as wide as the search radius that produced them);
    ``true_score_median`` / ``false_score_median``; and threshold, n_candidates, n_truth.
    """
    at_threshold = candidates.within(threshold)
    row: dict[str, float] = {"threshold": float(threshold)}
    row.update(pairwise_scores(at_threshold, truth_pairs, n))
    row.update(retrieval_scores(at_threshold, truth_pairs, n, k_values, "imagededup"))
    trec = retrieval_scores(at_threshold, truth_pairs, n, k_values, "trec")
    row.update({f"trec_{name}": value for name, value in trec.items()})
    row["micro_ap"] = micro_ap(candidates, truth_pairs)
    row.update(operating_points(pr_curve(candidates, truth_pairs), target_precision))
    distributions = score_distributions(candidates, truth_pairs)
    for name in ("true", "false"):
        scores = distributions[f"{name}_pairs"]
        row[f"{name}_score_median"] = float(np.median(scores)) if len(scores) else float("nan")
    row["n_candidates"] = len(candidates)
    row["n_truth"] = row["support_pos"]
    return {name: float(value) for name, value in row.items()}
