"""Pair arithmetic shared by every metric: the pair space, truth checking, labelled candidate pairs.

A pair (i, j) becomes one int64 key ``i * width + j``, so set operations on pairs are sorted-array
operations (``np.unique`` / ``np.isin``) whose cost grows with the pairs *listed* (candidates and
truth), never with the n(n-1)/2 pairs that exist. The pairs that were not listed are counted
arithmetically.

Three kinds of pairs: undirected within one collection (``cross=False``, int ``n``; stored
i < j), queries × references (``cross=True``, ``n=(n_queries, n_references)``) and directed
within one collection (``cross=True``, int ``n``: top-k lists, where (a, b) and (b, a) can both
appear). Truth is always unordered within one collection, so in the directed case it matches
either direction; pair-level metrics fold directed pairs to one entry per pair of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates, canonical_pairs

#: ``n`` images within one collection, or ``(n_queries, n_references)`` across two collections
Size = int | tuple[int, int]


@dataclass(frozen=True)
class PairSpace:
    """The images pairs are drawn from: one collection (i < j) or queries × references.

    ``directed_self`` marks directed pairs within one collection (``cross=True`` candidates with
    an int ``n``, as top-k lists give): (a, b) and (b, a) are distinct retrieval results, but
    they are one unordered pair of images.
    """

    n_queries: int
    n_references: int
    cross: bool
    directed_self: bool = False

    @classmethod
    def of(cls, n: Size, cross: bool) -> PairSpace:
        """``n`` an int: one collection of n images (directed pairs if ``cross``); ``n`` a
        (n_queries, n_references) pair: queries against references (``cross`` only)."""
        if isinstance(n, tuple | list):
            if not cross:
                raise ValueError(f"pairs within one collection need an int n, not {n!r}")
            if len(n) != 2:
                raise ValueError(
                    f"cross-collection pairs need n=(n_queries, n_references), not {n!r}"
                )
            nq, nr = (int(x) for x in n)
            directed_self = False
        else:
            nq = nr = int(n)
            directed_self = bool(cross)
        if nq < 0 or nr < 0:
            raise ValueError(f"n must not be negative, got {n!r}")
        return cls(nq, nr, bool(cross), directed_self)

    @property
    def total_pairs(self) -> int:
        """Number of distinct pairs: n(n-1)/2 within one collection (directed or not: a pair of
        images is one sample), n_q·n_r across two."""
        if self.cross and not self.directed_self:
            return self.n_queries * self.n_references
        return self.n_queries * (self.n_queries - 1) // 2

    def check(self, i: np.ndarray, j: np.ndarray, what: str) -> None:
        """Raise a clear error when an index falls outside the collection(s)."""
        for idx, limit, side in ((i, self.n_queries, "i"), (j, self.n_references, "j")):
            if len(idx) and (idx.min() < 0 or idx.max() >= limit):
                raise ValueError(
                    f"{what}: index {side} out of range [0, {limit}) "
                    f"(min {idx.min()}, max {idx.max()})"
                )


def is_directed_self(candidates: Candidates, n: Size | None) -> bool:
    """Whether ``candidates`` are directed pairs within one collection: ``cross`` with an int n."""
    return (
        isinstance(candidates, Candidates)
        and bool(candidates.cross)
        and n is not None
        and not isinstance(n, tuple | list)
    )


def undirected(candidates: Candidates) -> Candidates:
    """Directed pairs within one collection folded to unordered (min, max) pairs, self pairs
    refused. (a, b) and (b, a) both stay listed; ``label_pairs`` keeps the better score."""
    i, j = canonical_pairs(candidates.i, candidates.j, False, "candidates")
    return Candidates(i, j, candidates.score, candidates.distance, cross=False)


def pair_level(candidates: Candidates, n: Size | None) -> Candidates:
    """The candidates as pair-level metrics count them: each unordered pair of images once.

    Directed candidates within one collection (``cross`` with an int ``n``) are folded with
    ``undirected``; anything else is returned unchanged."""
    return undirected(candidates) if is_directed_self(candidates, n) else candidates


def as_truth_pairs(truth_pairs, cross: bool = False, space: PairSpace | None = None) -> np.ndarray:
    """Validate ground truth as an (m, 2) int64 array of unique canonical pairs, sorted."""
    truth = np.asarray(truth_pairs)
    if truth.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if truth.ndim != 2 or truth.shape[1] != 2:
        raise ValueError(f"truth_pairs must have shape (m, 2), got {truth.shape}")
    if not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(f"truth_pairs must hold integer indices, got dtype {truth.dtype}")
    i, j = canonical_pairs(truth[:, 0], truth[:, 1], cross, "truth_pairs")
    if space is not None:
        space.check(i, j, "truth_pairs")
    return np.unique(np.stack([i, j], axis=1), axis=0)


def pair_keys(i: np.ndarray, j: np.ndarray, width: int) -> np.ndarray:
    """One int64 per pair, ``i * width + j``; ``width`` must exceed every ``j``."""
    return np.asarray(i, dtype=np.int64) * np.int64(width) + np.asarray(j, dtype=np.int64)


def in_pair_set(i: np.ndarray, j: np.ndarray, pairs: np.ndarray, cross: bool) -> np.ndarray:
    """Whether each pair (i, j), in either order within one collection, is one of ``pairs``.

    ``pairs`` is canonical (as returned by ``as_truth_pairs``). Cost O((p + m) log(p + m)).
    """
    i, j = canonical_pairs(i, j, cross, "pairs")
    if len(pairs) == 0 or len(i) == 0:
        return np.zeros(len(i), dtype=bool)
    width = int(max(j.max(), pairs[:, 1].max())) + 1
    return np.isin(pair_keys(i, j, width), pair_keys(pairs[:, 0], pairs[:, 1], width))


@dataclass(frozen=True)
class LabelledPairs:
    """Candidate pairs reduced to one entry per pair (its best score), each marked true or false.

    ``truth`` is kept alongside (canonical, unique) because recall-type metrics divide by it.
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    is_true: np.ndarray
    truth: np.ndarray
    distance: DistanceKind
    cross: bool
    directed_self: bool = False

    def __len__(self) -> int:
        return len(self.i)

    @property
    def n_truth(self) -> int:
        return len(self.truth)

    def best_first(self, true_last_on_ties: bool = False) -> np.ndarray:
        """Indices ordering the pairs best score first; ties by (i, j), or non-matches first."""
        key = self.distance.order_key(self.score)
        if true_last_on_ties:
            return np.lexsort((self.j, self.i, self.is_true, key))
        return np.lexsort((self.j, self.i, key))


def label_pairs(candidates: Candidates, truth_pairs, n: Size | None = None) -> LabelledPairs:
    """Deduplicate candidates (keeping each pair's best score) and mark which are truth pairs.

    ``n`` (int, or (n_queries, n_references) for ``cross`` candidates) enables range checks.
    ``cross`` candidates with an int ``n`` are directed pairs within one collection: each
    direction is kept as its own entry, self pairs are refused, and the truth (unordered, stored
    i < j) matches either direction. Pair-level metrics fold them first (``pair_level``).
    """
    if not isinstance(candidates, Candidates):
        raise TypeError(f"expected dupbench.records.Candidates, got {type(candidates).__name__}")
    cross = candidates.cross
    space = PairSpace.of(n, cross) if n is not None else None
    directed_self = space is not None and space.directed_self
    truth_cross = cross and not directed_self  # directed within one collection: truth unordered
    truth = as_truth_pairs(truth_pairs, truth_cross, space)
    i, j = canonical_pairs(candidates.i, candidates.j, cross, "candidates")
    if directed_self:
        canonical_pairs(i, j, False, "candidates")  # refuses self pairs
    if space is not None:
        space.check(i, j, "candidates")
    score = candidates.score
    if len(i):
        width = int(j.max()) + 1
        keys = pair_keys(i, j, width)
        order = np.lexsort((candidates.distance.order_key(score), keys))
        first = np.ones(len(order), dtype=bool)
        first[1:] = keys[order][1:] != keys[order][:-1]
        keep = order[first]
        i, j, score = i[keep], j[keep], score[keep]
    return LabelledPairs(
        i=i,
        j=j,
        score=score,
        is_true=in_pair_set(i, j, truth, truth_cross),
        truth=truth,
        distance=candidates.distance,
        cross=cross,
        directed_self=directed_self,
    )


def lookup_scores(i: np.ndarray, j: np.ndarray, labelled: LabelledPairs) -> np.ndarray:
    """The candidate score of each pair (i, j), NaN where the search did not return it."""
    i, j = canonical_pairs(i, j, labelled.cross, "pairs")
    out = np.full(len(i), np.nan)
    if len(i) == 0 or len(labelled) == 0:
        return out
    width = int(max(j.max(), labelled.j.max())) + 1
    keys = pair_keys(labelled.i, labelled.j, width)
    order = np.argsort(keys)
    wanted = pair_keys(i, j, width)
    pos = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    hit = keys[order][pos] == wanted
    out[hit] = labelled.score[order][pos[hit]]
    return out
