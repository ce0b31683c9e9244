"""Exact Euclidean (L2) search over float vectors, in tiles, never the N×N distance matrix.

For short vectors (the colour moment hash's 42 values) brute force is cheap: a tile of squared
distances is ‖a‖² + ‖b‖² − 2·a·b, one BLAS product in float64; pairs within the threshold (with a
margin for that formula's rounding) are kept and their distance recomputed from the difference
a − b, so a score is exact (identical codes score 0) and the threshold is applied to it. Results
follow ``dupbench.search.hamming``'s conventions: undirected pairs i < j within one collection,
directed (query, reference) pairs across two, best first then by (i, j).
"""

from __future__ import annotations

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.search.registry import index_backend

_KIND = DistanceKind.EUCLIDEAN


def _rows(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    return x


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ‖a − b‖, computed from the differences."""
    return np.sqrt(np.einsum("ij,ij->i", a - b, a - b))


@index_backend("euclidean", DistanceKind.EUCLIDEAN)
class EuclideanIndex:
    """Range and top-k search by L2 distance; tiles of ``query_block × ref_block`` float64
    squared distances (32 MB by default), whatever the number of vectors."""

    def __init__(
        self, vectors: np.ndarray, *, query_block: int = 1024, ref_block: int = 4096
    ) -> None:
        if query_block < 1 or ref_block < 1:
            raise ValueError("query_block and ref_block must be positive")
        self.vectors = _rows(vectors)
        self.squares = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self.query_block, self.ref_block = int(query_block), int(ref_block)

    def __len__(self) -> int:
        return len(self.vectors)

    def _squared(self, block: np.ndarray, refs: slice) -> np.ndarray:
        """Squared distances of a query block to the references ``refs``, expanded form."""
        tile = block @ self.vectors[refs].T
        tile *= -2
        tile += np.einsum("ij,ij->i", block, block)[:, None]
        tile += self.squares[None, refs]
        return tile

    def _tiles(self, q: np.ndarray, cross: bool):
        """(query offset, reference offset, squared-distance tile) over the pairs to compare;
        within one collection, tiles wholly below the diagonal are skipped."""
        for qs in range(0, len(q), self.query_block):
            block = q[qs : qs + self.query_block]
            first = 0 if cross else (qs // self.ref_block) * self.ref_block
            for rs in range(first, len(self.vectors), self.ref_block):
                yield qs, rs, self._squared(block, slice(rs, rs + self.ref_block))

    def _queries(self, queries: np.ndarray | None) -> np.ndarray:
        if queries is None:
            return self.vectors
        q = _rows(queries)
        if q.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"queries have dimension {q.shape[1]}, the index {self.vectors.shape[1]}"
            )
        return q

    def range(self, threshold: float, queries: np.ndarray | None = None) -> Candidates:
        """Every pair at L2 distance ≤ ``threshold`` (self pairs excluded)."""
        t = float(threshold)
        cross = queries is not None
        q = self._queries(queries)
        if t < 0 or len(q) == 0 or len(self.vectors) == 0:
            return Candidates.empty(_KIND, cross)
        scale = max(float(self.squares.max(initial=0)), float(np.einsum("ij,ij->i", q, q).max()))
        slack = t * t + 1e-9 * scale  # the expanded form's rounding, relative to the norms
        parts_i, parts_j = [], []
        for qs, rs, tile in self._tiles(q, cross):
            rows, cols = np.nonzero(tile <= slack)
            i, j = rows + qs, cols + rs
            if not cross:
                i, j = i[j > i], j[j > i]
            parts_i.append(i)
            parts_j.append(j)
        i, j = (np.concatenate(p) if p else np.zeros(0, np.int64) for p in (parts_i, parts_j))
        score = _distances(q[i], self.vectors[j])
        keep = score <= t
        return Candidates(i[keep], j[keep], score[keep].astype(np.float32), _KIND, cross).sorted()

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        """The ``k`` nearest references of each query (self excluded), as directed pairs."""
        if k < 1:
            raise ValueError("k must be at least 1")
        cross = queries is not None
        q = self._queries(queries)
        n = len(self.vectors)
        k = min(int(k), n if cross else n - 1)
        if len(q) == 0 or k < 1:
            return Candidates.empty(_KIND, cross=True)
        parts_i, parts_j = [], []
        for qs in range(0, len(q), self.query_block):
            block = q[qs : qs + self.query_block]
            rows = np.arange(len(block))
            best = np.zeros((len(block), 0))
            best_j = np.zeros((len(block), 0), np.int64)
            for rs in range(0, n, self.ref_block):
                squared = self._squared(block, slice(rs, rs + self.ref_block))
                columns = np.arange(rs, rs + squared.shape[1])
                if not cross:
                    squared[columns[None, :] == (rows + qs)[:, None]] = np.inf
                merged = np.concatenate([best, squared], axis=1)
                merged_j = np.concatenate([best_j, np.broadcast_to(columns, squared.shape)], 1)
                keep = np.argsort(merged, axis=1, kind="stable")[:, :k]
                best = np.take_along_axis(merged, keep, 1)
                best_j = np.take_along_axis(merged_j, keep, 1)
            parts_i.append(np.repeat(qs + rows, k))
            parts_j.append(best_j.ravel())
        i, j = np.concatenate(parts_i), np.concatenate(parts_j)
        score = _distances(q[i], self.vectors[j]).astype(np.float32)
        order = np.lexsort((j, score, i))
        return Candidates(i[order], j[order], score[order], _KIND, cross=True)
