"""Per-query retrieval metrics (MAP, NDCG, Jaccard, P@k, R@k, MAP@k, NDCG@k) over flat arrays.

Each image q is a query; R(q) is its retrieved list, best first, self excluded; G(q) its true
duplicates. All queries' lists are flattened into one array grouped by query, and every per-query
sum is one ``np.bincount``. Queries with neither retrieved nor true duplicates are never listed:
under imagededup's convention they score 1 each and are added arithmetically, so a corpus of a
million images with a few thousand pairs costs only those pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dupbench.evaluation.pairs import PairSpace, Size, label_pairs
from dupbench.evaluation.pairwise import ratio
from dupbench.records import Candidates

CONVENTIONS = ("imagededup", "trec")


@dataclass(frozen=True)
class RankedLists:
    """Every query's retrieved list, flattened.

    ``query`` is ascending (entries of one query are contiguous) and in rank order within a query;
    ``relevant`` marks entries that are in G(query); ``truth_query`` holds the query of every
    (query, duplicate) truth entry, so |G(q)| is the number of times q occurs in it. Lists must
    not repeat a document.
    """

    query: np.ndarray
    relevant: np.ndarray
    truth_query: np.ndarray
    n_queries: int


def ranked_lists(candidates: Candidates, truth_pairs, n: Size) -> RankedLists:
    """Per-query lists from scored pairs. Order: best score, then document index.

    - within one collection (``cross`` False, int ``n``): each unordered pair (i, j) serves both
      queries i and j;
    - directed within one collection (``cross`` True, int ``n``; top-k lists): each (i, j) serves
      query i only, and the truth is symmetrised: G(q) holds every image paired with q, in
      either order. Self pairs are refused;
    - across collections (``cross`` True, n=(n_queries, n_references)): (i, j) serves query i.
    """
    labelled = label_pairs(candidates, truth_pairs, n)
    space = PairSpace.of(n, candidates.cross)
    truth = labelled.truth
    if labelled.cross:
        query, doc, score = labelled.i, labelled.j, labelled.score
        relevant, truth_query = labelled.is_true, truth[:, 0]
        if labelled.directed_self:
            truth_query = np.concatenate([truth[:, 0], truth[:, 1]])
    else:
        query = np.concatenate([labelled.i, labelled.j])
        doc = np.concatenate([labelled.j, labelled.i])
        score = np.concatenate([labelled.score, labelled.score])
        relevant = np.concatenate([labelled.is_true, labelled.is_true])
        truth_query = np.concatenate([truth[:, 0], truth[:, 1]])
    order = np.lexsort((doc, labelled.distance.order_key(score), query))
    return RankedLists(query[order], relevant[order], truth_query, space.n_queries)


def ideal_dcg(max_relevant: int) -> np.ndarray:
    """``IDCG[m] = Σ_{r=1}^{m} 1 / log2(r + 1)``: the DCG of m relevant documents ranked first."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, max_relevant + 2)))])


def ranking_scores(
    lists: RankedLists, k_values: Sequence[int] = (1, 5, 10), convention: str = "imagededup"
) -> dict:
    """Mean per-query metrics; binary relevance rel_r of the document at rank r (1-based).

    With P@r = (Σ_{s≤r} rel_s) / r, DCG = Σ_r rel_r / log2(r + 1) and IDCG[m] as in ``ideal_dcg``::

        map              AP(q) = Σ_r rel_r · P@r / |G|
        ndcg             DCG / IDCG[|G|]                 (trec_eval: linear gain, log2 discount)
        ndcg_imagededup  DCG / IDCG[|R ∩ G|]             (ideal from R's own relevances, so a
                                                          missed duplicate costs nothing)
        jaccard          |R ∩ G| / |R ∪ G|
        p@k              Σ_{r≤k} rel_r / k               (trec_eval: always divided by k)
        r@k              Σ_{r≤k} rel_r / |G|
        map@k            Σ_{r≤k} rel_r · P@r / |G|       (trec_eval's map_cut)
        ndcg@k           DCG@k / IDCG[min(|G|, k)]       (trec_eval's ndcg_cut)

    A 0 denominator gives 0. ``convention`` says which queries are averaged: ``"imagededup"``
    averages all n queries, a query with G and R both empty scoring 1 (one empty: 0);
    ``"trec"`` averages only queries with |G| > 0, as trec_eval does (NaN when there are none).
    ``queries`` in the output is the number of queries averaged.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    k_values = [int(k) for k in k_values]
    if any(k < 1 for k in k_values):
        raise ValueError(f"k_values must be positive, got {k_values}")

    n_listed = len(lists.query)
    active, position = np.unique(
        np.concatenate([lists.query, lists.truth_query]).astype(np.int64), return_inverse=True
    )
    qpos, n_active = position[:n_listed], len(active)
    truth_count = np.bincount(position[n_listed:], minlength=n_active)
    retrieved_count = np.bincount(qpos, minlength=n_active)

    rel = lists.relevant.astype(np.float64)
    starts = np.searchsorted(lists.query, lists.query, side="left")
    rank = np.arange(1, n_listed + 1) - starts
    cumulative = np.cumsum(rel)
    hits_so_far = cumulative - (cumulative - rel)[starts]
    gain_ap = rel * hits_so_far / rank
    gain_dcg = rel / np.log2(rank + 1)

    def per_query(weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if mask is None:
            return np.bincount(qpos, weights=weights, minlength=n_active)
        return np.bincount(qpos[mask], weights=weights[mask], minlength=n_active)

    hits = per_query(rel)
    ideal = ideal_dcg(int(truth_count.max()) if n_active else 0)
    dcg = per_query(gain_dcg)
    values = {
        "map": ratio(per_query(gain_ap), truth_count),
        "ndcg": ratio(dcg, ideal[truth_count]),
        "ndcg_imagededup": ratio(dcg, ideal[hits.astype(np.int64)]),
        "jaccard": ratio(hits, retrieved_count + truth_count - hits),
    }
    for k in k_values:
        top = rank <= k
        hits_k = per_query(rel, top)
        values[f"p@{k}"] = hits_k / k
        values[f"r@{k}"] = ratio(hits_k, truth_count)
        values[f"map@{k}"] = ratio(per_query(gain_ap, top), truth_count)
        values[f"ndcg@{k}"] = ratio(per_query(gain_dcg, top), ideal[np.minimum(truth_count, k)])

    if convention == "imagededup":
        queries = lists.n_queries
        both_empty = queries - n_active  # each scores 1
        scores = {name: ratio(v.sum() + both_empty, queries) for name, v in values.items()}
    else:
        judged = truth_count > 0
        queries = int(judged.sum())
        scores = {
            name: float(v[judged].mean()) if queries else float("nan") for name, v in values.items()
        }
    if queries == 0:
        scores = dict.fromkeys(scores, float("nan"))
    scores["queries"] = float(queries)
    return scores


def retrieval_scores(
    candidates: Candidates,
    truth_pairs,
    n: Size,
    k_values: Sequence[int] = (1, 5, 10),
    convention: str = "imagededup",
) -> dict:
    """Per-query retrieval metrics of scored pairs (see ``ranking_scores`` for the formulas).

    R(q) is every candidate involving q, ordered by score then index; apply a threshold first with
    ``candidates.within(t)``. ``n`` is the corpus size, or (n_queries, n_references) for cross
    candidates, whose queries are the i side only. ``cross`` candidates with an int ``n`` are
    directed pairs within one collection (top-k lists): R(q) is the pairs (q, ·) and G(q) every
    truth pair containing q, whichever way round it is stored (see ``ranked_lists``).
    """
    return ranking_scores(ranked_lists(candidates, truth_pairs, n), k_values, convention)
