"""Equality search for exact digests: group identical code rows instead of comparing pairs.

Grouping is O(N log N), so exact-duplicate detection stays fast at any collection size; it also
serves Hamming range search at radius 0.
"""

from __future__ import annotations

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.search.registry import index_backend


def unique_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows, a label per row): row ``x`` equals ``distinct[labels[x]]``."""
    rows = np.ascontiguousarray(np.atleast_2d(codes))
    if len(rows) == 0:
        return rows, np.zeros(0, dtype=np.int64)
    distinct, labels = np.unique(rows, axis=0, return_inverse=True)
    return distinct, labels.reshape(-1).astype(np.int64)


def _group_labels(codes: np.ndarray) -> np.ndarray:
    """A label per row; rows with identical codes share a label."""
    return unique_codes(codes)[1]


def _members(labels: np.ndarray) -> list[np.ndarray]:
    """Index arrays of every label shared by two or more rows, each sorted."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return [g for g in np.split(order, bounds) if len(g) > 1]


class EqualIndex:
    """Pairs whose codes are identical; the score is a distance of 0 (``DistanceKind.EQUAL``)."""

    def __init__(self, codes: np.ndarray, distance: DistanceKind = DistanceKind.EQUAL) -> None:
        self.codes = np.ascontiguousarray(np.atleast_2d(codes))
        self.distance = distance

    def range(self, threshold: float = 0, queries: np.ndarray | None = None) -> Candidates:
        """Identical pairs; ``threshold`` is accepted for interface parity and must be 0 or more."""
        if threshold < 0:
            return Candidates.empty(self.distance, queries is not None)
        if queries is None:
            parts = []
            for g in _members(_group_labels(self.codes)):
                a, b = np.triu_indices(len(g), k=1)
                parts.append((g[a], g[b]))
            cross = False
        else:
            q = np.atleast_2d(queries)
            labels = _group_labels(np.concatenate([q, self.codes]))
            parts = []
            for g in _members(labels):
                qs = g[g < len(q)]
                rs = g[g >= len(q)] - len(q)
                if len(qs) and len(rs):
                    parts.append((np.repeat(qs, len(rs)), np.tile(rs, len(qs))))
            cross = True
        if not parts:
            return Candidates.empty(self.distance, cross)
        i = np.concatenate([p[0] for p in parts])
        j = np.concatenate([p[1] for p in parts])
        return Candidates(i, j, np.zeros(len(i), np.int32), self.distance, cross).sorted()

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        """Up to ``k`` identical references per query, lowest index first."""
        pairs = self.range(0, queries)
        if queries is None:  # make directed: each pair serves both of its images
            pairs = Candidates(
                np.concatenate([pairs.i, pairs.j]),
                np.concatenate([pairs.j, pairs.i]),
                np.concatenate([pairs.score, pairs.score]),
                self.distance,
                True,
            ).sorted()
        order = np.lexsort((pairs.j, pairs.i))
        i, j = pairs.i[order], pairs.j[order]
        rank = np.arange(len(i)) - np.searchsorted(i, i, side="left")
        keep = rank < k
        return Candidates(i[keep], j[keep], pairs.score[order][keep], self.distance, True)


@index_backend("equal", DistanceKind.EQUAL)
def equal_index(codes: np.ndarray, **params) -> EqualIndex:
    """Digests have one search, whatever the configured backend: its parameters do not apply."""
    return EqualIndex(codes)
