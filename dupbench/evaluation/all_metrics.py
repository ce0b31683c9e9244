"""Every metric of one run at one threshold, as the flat row of floats the harness stores.

``evaluate_run`` is the union of two parts: ``scores_at`` (what depends on the threshold) and
``threshold_free_scores`` (what uses all candidates), so a sweep over thresholds computes the
second part once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dupbench.evaluation.catalogue import computed
from dupbench.evaluation.curves import micro_ap, operating_points, pr_curve, score_distributions
from dupbench.evaluation.pairs import Size
from dupbench.evaluation.pairwise import pairwise_scores
from dupbench.evaluation.ranking import ranked_lists, ranking_scores
from dupbench.records import Candidates


def scores_at(
    candidates: Candidates,
    truth_pairs,
    n: Size,
    threshold: float,
    k_values: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """The metrics of the candidates within ``threshold``: ``threshold``, the
    ``pairwise_scores`` keys, the ``retrieval_scores`` keys under imagededup's convention and
    again with a ``trec_`` prefix under trec_eval's (one set of ranked lists for both), the
    catalogue's metrics that bring their own ``compute``, and ``n_truth``."""
    at_threshold = candidates.within(threshold)
    row: dict[str, float] = {"threshold": float(threshold)}
    row.update(pairwise_scores(at_threshold, truth_pairs, n))
    lists = ranked_lists(at_threshold, truth_pairs, n)
    row.update(ranking_scores(lists, k_values, "imagededup"))
    trec = ranking_scores(lists, k_values, "trec")
    row.update({f"trec_{name}": value for name, value in trec.items()})
    row.update({name: compute(at_threshold, truth_pairs, n) for name, compute in computed(False)})
    row["n_truth"] = row["support_pos"]
    return {name: float(value) for name, value in row.items()}


def threshold_free_scores(
    candidates: Candidates,
    truth_pairs,
    target_precision: float = 0.99,
    curve: pd.DataFrame | None = None,
    n: Size | None = None,
) -> dict[str, float]:
    """The metrics that use *all* candidates (the sweep is only as wide as the search radius that
    produced them): ``micro_ap``, the ``operating_points`` keys, ``true_score_median`` /
    ``false_score_median``, the catalogue's threshold-free metrics that bring their own
    ``compute``, and ``n_candidates``. ``curve``: ``pr_curve(candidates, truth_pairs)``
    when the caller already has it. ``n``: the corpus size, needed to fold directed top-k pairs
    within one collection (see ``dupbench.evaluation.pairs``)."""
    if curve is None:
        curve = pr_curve(candidates, truth_pairs, n)
    row: dict[str, float] = {"micro_ap": micro_ap(candidates, truth_pairs, n)}
    row.update(operating_points(curve, target_precision))
    distributions = score_distributions(candidates, truth_pairs, n)
    for name in ("true", "false"):
        scores = distributions[f"{name}_pairs"]
        row[f"{name}_score_median"] = float(np.median(scores)) if len(scores) else float("nan")
    row.update({name: compute(candidates, truth_pairs, n) for name, compute in computed(True)})
    row["n_candidates"] = len(candidates)
    return {name: float(value) for name, value in row.items()}


def evaluate_run(
    candidates: Candidates,
    truth_pairs,
    n: Size,
    threshold: float,
    k_values: Sequence[int] = (1, 5, 10),
    target_precision: float = 0.99,
) -> dict[str, float]:
    """Pairwise, retrieval and threshold-free metrics in one flat ``{name: float}`` dict:
    ``scores_at`` and ``threshold_free_scores`` together.

    Names are stable: the ``pairwise_scores`` keys (precision, recall, f1, *_neg, support_*, tp,
    fp, fn, tn); the ``retrieval_scores`` keys under imagededup's convention (map, ndcg,
    ndcg_imagededup, jaccard, p@k, r@k, map@k, ndcg@k, queries) and again with a ``trec_``
    prefix under trec_eval's; ``micro_ap`` and the ``operating_points`` keys, which use *all*
    candidates (the sweep is only as wide as the search radius that produced them);
    ``true_score_median`` / ``false_score_median``; and threshold, n_candidates, n_truth.
    """
    row = {
        **scores_at(candidates, truth_pairs, n, threshold, k_values),
        **threshold_free_scores(candidates, truth_pairs, target_precision, n=n),
    }
    for name in ("n_candidates", "n_truth"):  # the counts last
        row[name] = row.pop(name)
    return row
