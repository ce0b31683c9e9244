"""The dihedral search: codes of all 8 rotations and flips of each image (a hash with
``dihedral=True``, see ``dupbench.methods.invariant``) matched at the closest orientation,
registered as the "dihedral" search.
"""

from __future__ import annotations

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.methods.invariant import DIHEDRAL, DIHEDRAL_SEARCH
from dupbench.records import Candidates, Encodings
from dupbench.search import range_search
from dupbench.search.registry import whole_search


def variant_codes(encodings: Encodings) -> np.ndarray:
    """(n, 8, words) view of dihedral codes: one row of words per variant, canonical first."""
    if not encodings.params.get("dihedral"):
        raise ValueError(
            f"the {DIHEDRAL_SEARCH} search reads codes of a method with "
            f"dihedral=True, not {encodings.method} {encodings.params}"
        )
    return encodings.codes.reshape(len(encodings), len(DIHEDRAL), -1)


@whole_search(DIHEDRAL_SEARCH)
def dihedral_search(encodings: Encodings, threshold: int, backend: str = "auto") -> Candidates:
    """Pairs whose dihedral distance is at most ``threshold``.

    d(a, b) = min over the variants v of min(H(v(a), c(b)), H(v(b), c(a))), c the canonical
    (identity) hash: one range search of the 8n variants (queries) against the n canonical codes.
    Its score is that distance, so the result ranks pairs as a plain hash's search does.
    """
    slots = variant_codes(encodings)
    n, variants, words = slots.shape
    if n < 2:
        return Candidates.empty(DistanceKind.HAMMING)
    canonical = np.ascontiguousarray(slots[:, 0])
    queries = np.ascontiguousarray(slots.reshape(n * variants, words))
    found = range_search(
        canonical, threshold, DistanceKind.HAMMING, queries=queries, backend=backend
    )
    a, b = found.i // variants, found.j
    keep = a != b
    a, b, dist = a[keep], b[keep], found.score[keep].astype(np.int64)
    pair = np.minimum(a, b) * n + np.maximum(a, b)
    pairs, inverse = np.unique(pair, return_inverse=True)
    best = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, inverse, dist)
    return Candidates(pairs // n, pairs % n, best.astype(np.int32), DistanceKind.HAMMING).sorted()


__all__ = ["dihedral_search", "variant_codes"]
