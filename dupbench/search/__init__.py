"""Search over codes: Hamming (binary hashes), equality (digests), cosine (embeddings) and
Euclidean (float vectors such as the colour moment hash).

Every index answers ``range(threshold)`` (all pairs at least that close) and ``topk(k)`` with a
``Candidates`` value: no self pairs, deterministic order, scores returned. ``build_index`` picks
the index from the codes' distance and, with ``backend="auto"``, from the collection size. Every
index, and every search that reads whole encodings, is registered by name in ``registry``.
``distance`` is a ``DistanceKind`` or its name; None takes the encodings' own (or, for a bare
array, cosine for floats and Hamming otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.errors import UsageError, did_you_mean
from dupbench.records import Candidates, Encodings, GroupedCandidates
from dupbench.search.registry import SEARCHES, IndexBackend, index_backends

#: from this many codes, "auto" uses multi-index hashing for Hamming search; it plans each search
#: and runs brute force itself (FAISS when installed) where that is cheaper, e.g. at large radii
MIH_HAMMING_MIN = 20_000
#: from this many embeddings, "auto" uses an IVF index (when faiss is installed), its nprobe
#: calibrated per threshold to find 99.5 % of a sample's exact pairs (cosine.CALIBRATION_RECALL).
#: Exact search is N²·d: minutes at 100k × 1280 on 2 cores, where IVF measured only 1.5× faster
#: (benchmarks/cosine_memory.py), hours at 1M, where IVF is several times faster
COSINE_APPROX_MIN = 200_000


def _codes_and_distance(
    data: Encodings | np.ndarray, distance: str | None
) -> tuple[np.ndarray, DistanceKind]:
    if isinstance(data, Encodings):
        return data.codes, DistanceKind(distance or data.distance)
    codes = np.asarray(data)
    if distance is None:
        return codes, DistanceKind.COSINE if codes.dtype.kind == "f" else DistanceKind.HAMMING
    return codes, DistanceKind(distance)


def pick_backend(distance: str, n: int, backend: str = "auto") -> str:
    """The backend ``build_index`` uses: explicit names are checked, "auto" decides by size."""
    distance = DistanceKind(distance)
    if distance is DistanceKind.EQUAL:
        return "equal"
    valid = index_backends(distance)
    if backend == "auto":
        if distance is DistanceKind.EUCLIDEAN:
            return "euclidean"
        if distance is DistanceKind.COSINE:
            from dupbench.search.mih import has_faiss

            return "ivf" if n >= COSINE_APPROX_MIN and has_faiss() else "flat"
        return "mih" if n >= MIH_HAMMING_MIN else "brute"
    if backend not in valid:
        raise UsageError(
            f"unknown {distance} backend {backend!r}{did_you_mean(backend, valid)} "
            f"(choose from {', '.join(valid)}, or auto)"
        )
    return backend


def build_index(
    data: Encodings | np.ndarray, distance: str | None = None, backend: str = "auto", **params: Any
):
    """An index over ``data`` (Encodings or a code array) for its distance."""
    codes, distance = _codes_and_distance(data, distance)
    entry = SEARCHES.get(pick_backend(distance, len(codes), backend))
    if not isinstance(entry, IndexBackend) or entry.distance != distance:
        raise NotImplementedError(f"no index searches {distance} codes")
    return entry.build(codes, **params)


def _query_codes(queries: Encodings | np.ndarray | None) -> np.ndarray | None:
    return queries.codes if isinstance(queries, Encodings) else queries


def range_search(
    data: Encodings | np.ndarray,
    threshold: float,
    distance: str | None = None,
    *,
    queries: Encodings | np.ndarray | None = None,
    backend: str = "auto",
    **params: Any,
) -> Candidates:
    """All pairs within ``threshold`` (Hamming or L2 distance ≤ t, cosine similarity ≥ t, or
    equal).

    Hamming search at radius 0 uses equality grouping, which is exact and O(N log N).
    """
    codes, distance = _codes_and_distance(data, distance)
    if distance is DistanceKind.HAMMING and threshold == 0 and backend == "auto":
        from dupbench.search.exact import EqualIndex

        return EqualIndex(codes, distance).range(0, _query_codes(queries))
    index = build_index(codes, distance, backend, **params)
    return index.range(threshold, queries=_query_codes(queries))


def range_groups(
    data: Encodings | np.ndarray,
    threshold: float,
    distance: str | None = None,
    *,
    backend: str = "auto",
    **params: Any,
) -> GroupedCandidates:
    """``range_search`` within one collection, with identical codes collapsed before searching.

    Images with identical codes are one class (at distance 0 of each other) and the index holds
    each distinct code once, so k identical images cost k labels instead of k·(k-1)/2 pairs, in
    the search and in its result. ``.expand()`` gives exactly ``range_search``'s pairs. Cosine
    codes are searched as they are (the similarity of identical vectors is computed, not assumed).
    """
    from dupbench.search.exact import unique_codes

    codes, distance = _codes_and_distance(data, distance)
    pick_backend(distance, len(codes), backend)  # an unknown backend fails whatever the threshold
    if distance.higher_is_closer or threshold < 0:  # below 0, not even identical codes pair up
        pairs = range_search(codes, threshold, distance, backend=backend, **params)
        return GroupedCandidates.from_candidates(pairs, len(codes))
    distinct, classes = unique_codes(codes)
    if not distance.graded or (
        distance.discrete and threshold < 1
    ):  # distinct codes: ≥ 1 bit apart
        return GroupedCandidates(classes, Candidates.empty(distance))
    index = build_index(distinct, distance, backend, **params)
    return GroupedCandidates(classes, index.range(threshold))


def topk_search(
    data: Encodings | np.ndarray,
    k: int,
    distance: str | None = None,
    *,
    queries: Encodings | np.ndarray | None = None,
    backend: str = "auto",
    **params: Any,
) -> Candidates:
    """The ``k`` nearest references of every query (self excluded), as directed pairs."""
    if k < 1:
        raise ValueError("k must be at least 1")
    index = build_index(data, distance, backend, **params)
    return index.topk(k, queries=_query_codes(queries))


__all__ = [
    "Candidates",
    "GroupedCandidates",
    "build_index",
    "pick_backend",
    "range_groups",
    "range_search",
    "topk_search",
]
