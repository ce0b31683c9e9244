"""Hamming search over packed binary codes: numpy brute force, a BK-tree, and FAISS.

All three answer ``range(radius)`` (every pair within ``radius`` bits) and ``topk(k)`` and return
identical ``Candidates`` for the same input (tests check this), so the choice is only about speed:

- ``HammingBruteForce``: blocked XOR + popcount in numpy; memory bounded by ``block_bytes`` whatever N.
- ``BKTree``: metric tree; fast for small radii on few-thousand-image collections, no dependencies.
- ``HammingFaiss``: FAISS ``IndexBinaryFlat`` (SIMD popcount); the choice for large collections.
"""

from __future__ import annotations

import heapq

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.search.registry import index_backend

_DEFAULT_BLOCK_BYTES = 64 << 20


def _as_words(codes: np.ndarray) -> np.ndarray:
    codes = np.ascontiguousarray(np.atleast_2d(codes))
    if codes.dtype != np.uint64:
        raise TypeError(f"Hamming search needs packed uint64 codes, got {codes.dtype}")
    return codes


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances between every row of ``a`` and every row of ``b``: (len(a), len(b)) int32."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=-1, dtype=np.int32)


def _rank_key(dist: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """One int64 per cell that orders by distance, then by column: deterministic tie-breaking."""
    return dist.astype(np.int64) * n_cols + cols


def _topk_rows(dist: np.ndarray, k: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` nearest columns (ordered) from a distance block; masked cells are < 0."""
    cols = np.broadcast_to(np.arange(dist.shape[1]), dist.shape)
    key = np.where(dist < 0, np.iinfo(np.int64).max, _rank_key(dist, cols, n_cols))
    k = min(k, dist.shape[1])
    part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < dist.shape[1] else np.argsort(key, 1)
    order = np.take_along_axis(key, part, 1).argsort(axis=1)
    best = np.take_along_axis(part, order, 1)
    return best, np.take_along_axis(dist, best, 1)


def _directed(rows: list, distance: DistanceKind = DistanceKind.HAMMING) -> Candidates:
    if not rows:
        return Candidates.empty(distance, cross=True)
    i, j, d = (np.concatenate(x) for x in zip(*rows))
    return Candidates(i, j, d.astype(np.int32), distance, cross=True)


@index_backend("brute", DistanceKind.HAMMING)
class HammingBruteForce:
    """Exact search by blocked XOR/popcount. Work is O(N·M·words); memory O(block_bytes)."""

    def __init__(self, codes: np.ndarray, block_bytes: int = _DEFAULT_BLOCK_BYTES) -> None:
        self.codes = _as_words(codes)
        self.block_bytes = block_bytes

    def _block_rows(self, n_cols: int) -> int:
        # per cell: the XOR words and their popcount bytes, the int32 sum and the bool mask
        per_row = max(1, n_cols * (self.codes.shape[1] * 9 + 5))
        return max(1, self.block_bytes // per_row)

    def range(self, radius: int, queries: np.ndarray | None = None) -> Candidates:
        """All pairs at distance ≤ ``radius``; within the collection when ``queries`` is None."""
        refs = self.codes
        parts_i, parts_j, parts_d = [], [], []
        if queries is None:
            step = self._block_rows(len(refs))
            for s in range(0, len(refs), step):
                d = hamming_matrix(refs[s : s + step], refs[s:])
                ii, jj = np.nonzero(d <= radius)
                keep = jj > ii  # column offset s cancels: j_global = jj + s, i_global = ii + s
                parts_i.append(ii[keep] + s)
                parts_j.append(jj[keep] + s)
                parts_d.append(d[ii[keep], jj[keep]])
            cross = False
        else:
            queries = _as_words(queries)
            step = self._block_rows(len(refs))
            for s in range(0, len(queries), step):
                d = hamming_matrix(queries[s : s + step], refs)
                ii, jj = np.nonzero(d <= radius)
                parts_i.append(ii + s)
                parts_j.append(jj)
                parts_d.append(d[ii, jj])
            cross = True
        if not parts_i:
            return Candidates.empty(DistanceKind.HAMMING, cross)
        return Candidates(
            np.concatenate(parts_i),
            np.concatenate(parts_j),
            np.concatenate(parts_d).astype(np.int32),
            DistanceKind.HAMMING,
            cross,
        ).sorted()

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        """The ``k`` nearest references of each query (self excluded), nearest first."""
        refs = self.codes
        q = refs if queries is None else _as_words(queries)
        rows = []
        step = self._block_rows(len(refs))
        for s in range(0, len(q), step):
            d = hamming_matrix(q[s : s + step], refs)
            if queries is None:
                r = np.arange(d.shape[0])
                d[r, r + s] = -1  # mask self
            best, dist = _topk_rows(d, k, len(refs))
            valid = dist >= 0
            qi = np.broadcast_to(np.arange(s, s + len(d))[:, None], best.shape)
            rows.append((qi[valid], best[valid], dist[valid]))
        return _directed(rows)


@index_backend("bktree", DistanceKind.HAMMING)
class BKTree:
    """Burkhard-Keller tree over codes (as Python ints); identical codes share one node.

    The triangle inequality prunes children whose edge distance lies outside [d - r, d + r].
    """

    def __init__(self, codes: np.ndarray) -> None:
        words = _as_words(codes)
        self.n = len(words)
        self._values = [int.from_bytes(row.astype(">u8").tobytes(), "big") for row in words]
        # node: [value, ids, {edge_distance: child}]
        self._root: list | None = None
        for idx, value in enumerate(self._values):
            self._insert(value, idx)

    def _insert(self, value: int, idx: int) -> None:
        if self._root is None:
            self._root = [value, [idx], {}]
            return
        node = self._root
        while True:
            d = (value ^ node[0]).bit_count()
            if d == 0:
                node[1].append(idx)
                return
            child = node[2].get(d)
            if child is None:
                node[2][d] = [value, [idx], {}]
                return
            node = child

    def _within(self, value: int, radius: int) -> list[tuple[int, int]]:
        """(distance, id) of every stored code within ``radius`` of ``value``."""
        found: list[tuple[int, int]] = []
        stack = [self._root] if self._root is not None else []
        while stack:
            node = stack.pop()
            d = (value ^ node[0]).bit_count()
            if d <= radius:
                found.extend((d, i) for i in node[1])
            for edge, child in node[2].items():
                if d - radius <= edge <= d + radius:
                    stack.append(child)
        return found

    def _nearest(self, value: int, k: int, exclude: int) -> list[tuple[int, int]]:
        """k nearest (distance, id), ties by id, shrinking the search radius as the heap fills."""
        heap: list[tuple[int, int]] = []  # max-heap via negation: (-d, -id)
        stack = [self._root] if self._root is not None else []
        while stack:
            node = stack.pop()
            d = (value ^ node[0]).bit_count()
            for i in node[1]:
                if i == exclude:
                    continue
                item = (-d, -i)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
            bound = -heap[0][0] if len(heap) == k else None
            for edge, child in node[2].items():
                if bound is None or abs(edge - d) <= bound:
                    stack.append(child)
        return sorted((-nd, -ni) for nd, ni in heap)

    @staticmethod
    def _values_of(queries: np.ndarray) -> list[int]:
        return [int.from_bytes(r.astype(">u8").tobytes(), "big") for r in _as_words(queries)]

    def range(self, radius: int, queries: np.ndarray | None = None) -> Candidates:
        pairs: list[tuple[int, int, int]] = []
        if queries is None:
            for i, value in enumerate(self._values):
                pairs.extend((i, j, d) for d, j in self._within(value, radius) if j > i)
        else:
            for i, value in enumerate(self._values_of(queries)):
                pairs.extend((i, j, d) for d, j in self._within(value, radius))
        if not pairs:
            return Candidates.empty(DistanceKind.HAMMING, queries is not None)
        a = np.array(pairs, dtype=np.int64)
        return Candidates(
            a[:, 0], a[:, 1], a[:, 2].astype(np.int32), DistanceKind.HAMMING, queries is not None
        ).sorted()

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        values = self._values if queries is None else self._values_of(queries)
        rows = []
        for i, value in enumerate(values):
            found = self._nearest(value, k, exclude=i if queries is None else -1)
            if found:
                d, j = np.array(found, dtype=np.int64).T
                rows.append((np.full(len(j), i), j, d))
        return _directed(rows)


@index_backend("faiss", DistanceKind.HAMMING)
class HammingFaiss:
    """FAISS ``IndexBinaryFlat``: exact, SIMD popcount, blocked so result memory stays bounded."""

    def __init__(self, codes: np.ndarray, block_rows: int = 16384) -> None:
        try:
            import faiss
        except ImportError as e:
            raise ImportError(
                "the 'faiss' Hamming backend needs faiss: pip install 'dupbench[faiss]'"
            ) from e
        self.codes = _as_words(codes)
        self.block_rows = block_rows
        self.index = faiss.IndexBinaryFlat(self.codes.shape[1] * 64)
        self.index.add(self._bytes(self.codes))

    @staticmethod
    def _bytes(words: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(words.astype(">u8")).view(np.uint8)

    def range(self, radius: int, queries: np.ndarray | None = None) -> Candidates:
        q = self.codes if queries is None else _as_words(queries)
        parts = []
        for s in range(0, len(q), self.block_rows):
            # FAISS keeps distances strictly below the radius it is given
            lims, dist, idx = self.index.range_search(
                self._bytes(q[s : s + self.block_rows]), int(radius) + 1
            )
            qi = np.repeat(np.arange(s, s + len(lims) - 1), np.diff(lims).astype(np.int64))
            keep = idx > qi if queries is None else np.ones(len(idx), bool)
            parts.append(
                Candidates(
                    qi[keep],
                    idx[keep],
                    dist[keep].astype(np.int32),
                    DistanceKind.HAMMING,
                    queries is not None,
                )
            )
        return Candidates.concat(parts, DistanceKind.HAMMING, queries is not None).sorted()

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        q = self.codes if queries is None else _as_words(queries)
        n = len(self.codes)
        need = min(n, k + (1 if queries is None else 0))
        rows = []
        for s in range(0, len(q), self.block_rows):
            block = self._bytes(q[s : s + self.block_rows])
            # FAISS breaks distance ties arbitrarily: widen the window until it holds every tie at
            # the last needed rank, then re-rank by (distance, id) so results are deterministic.
            kk = min(n, need + 1)
            while True:
                dist, idx = self.index.search(block, kk)
                if kk == n or np.all(dist[:, kk - 1] > dist[:, need - 1]):
                    break
                kk = min(n, kk * 2)
            key = _rank_key(dist, idx, n)
            if queries is None:
                key[idx == np.arange(s, s + len(block))[:, None]] = np.iinfo(np.int64).max
            order = np.argsort(key, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(idx, order, 1)
            bd = np.take_along_axis(dist, order, 1)
            valid = np.take_along_axis(key, order, 1) != np.iinfo(np.int64).max
            qi = np.broadcast_to(np.arange(s, s + len(block))[:, None], best.shape)
            rows.append((qi[valid], best[valid], bd[valid]))
        return _directed(rows)
