"""imagededup's ``evaluate(ground_truth_map, retrieved_map, metric)`` with its exact outputs.

The ``{file: [duplicate files]}`` maps exist only at this edge: they are checked as imagededup
checks them, turned into index arrays once, and scored by the same kernels as everything else
(``ranking_scores`` under imagededup's convention, ``pairwise_scores`` for "classification").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.evaluation.catalogue import specs
from dupbench.evaluation.pairs import as_truth_pairs, in_pair_set
from dupbench.evaluation.pairwise import pairwise_scores
from dupbench.evaluation.ranking import RankedLists, ranking_scores
from dupbench.records import Candidates


def check_maps(ground_truth_map: Mapping, retrieved_map: Mapping) -> None:
    """imagededup's validity rules, as clear ``ValueError``s: both maps have the same keys, every
    listed file is a key, relations are symmetric (a in b's list ⇔ b in a's), no file lists itself.
    """
    for name, mapping in (("ground truth", ground_truth_map), ("retrieved", retrieved_map)):
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{name} map must be a dict of file -> list of files")
        for key, values in mapping.items():
            for value in values:
                if value not in mapping:
                    raise ValueError(
                        f"{name} map lists {value!r} (under {key!r}), not one of its keys"
                    )
                if value == key:
                    raise ValueError(f"{name} map lists {key!r} as a duplicate of itself")
                if key not in mapping[value]:
                    raise ValueError(
                        f"{name} map is not symmetric: {value!r} is listed under {key!r} "
                        f"but {key!r} is not listed under {value!r}"
                    )
    difference = set(ground_truth_map) ^ set(retrieved_map)
    if difference:
        raise ValueError(
            "ground truth and retrieved maps must have the same keys; these are in only one: "
            f"{sorted(map(str, difference))}"
        )


def map_to_lists(mapping: Mapping, index: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``{file: [files]}`` into (query, doc) index arrays in key order then list order;
    a file repeated within one list counts once (its first position)."""
    query: list[int] = []
    doc: list[int] = []
    for key in index:
        seen = dict.fromkeys(mapping[key])
        query.extend([index[key]] * len(seen))
        doc.extend(index[value] for value in seen)
    return np.asarray(query, dtype=np.int64), np.asarray(doc, dtype=np.int64)


def evaluate(
    ground_truth_map: Mapping[str, Sequence[str]],
    retrieved_map: Mapping[str, Sequence[str]],
    metric: str = "all",
) -> dict:
    """Score a retrieved duplicate map against the truth, with imagededup's names and shapes.

    ``metric`` "map", "ndcg" or "jaccard" → ``{metric: float}`` (means over all files, both-empty
    lists scoring 1; "ndcg" is imagededup's variant, ideal DCG from the retrieved list's own
    relevances). "classification" → ``precision``, ``recall``, ``f1_score``, ``support``, each a
    2-array [non-duplicate pairs, duplicate pairs] over all unordered file pairs (always both
    entries, where sklearn, and so imagededup, drops a class that neither map contains).
    "all" → both.
    """
    ranking = {s.compat: s.name for s in specs("compat")}  # imagededup's name → the kernel's
    choices = (*ranking, "classification", "all")
    metric = str(metric).lower()
    if metric not in choices:
        raise ValueError(f"metric must be one of {choices}, got {metric!r}")
    check_maps(ground_truth_map, retrieved_map)
    index = {key: position for position, key in enumerate(ground_truth_map)}
    n = len(index)
    truth = as_truth_pairs(np.stack(map_to_lists(ground_truth_map, index), axis=1))
    query, doc = map_to_lists(retrieved_map, index)

    result: dict = {}
    if metric != "classification":
        lists = RankedLists(
            query=query,
            relevant=in_pair_set(query, doc, truth, cross=False),
            truth_query=np.concatenate([truth[:, 0], truth[:, 1]]),
            n_queries=n,
        )
        scores = ranking_scores(lists, k_values=(), convention="imagededup")
        wanted = ranking if metric == "all" else {metric: ranking[metric]}
        result.update({name: scores[kernel_name] for name, kernel_name in wanted.items()})
    if metric in ("classification", "all"):
        retrieved = Candidates(query, doc, np.zeros(len(query), dtype=np.int32), DistanceKind.EQUAL)
        counts = pairwise_scores(retrieved, truth, n)
        result.update(
            precision=np.array([counts["precision_neg"], counts["precision"]]),
            recall=np.array([counts["recall_neg"], counts["recall"]]),
            f1_score=np.array([counts["f1_neg"], counts["f1"]]),
            support=np.array([counts["support_neg"], counts["support_pos"]]),
        )
    return result
