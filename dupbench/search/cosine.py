"""Cosine search over float embeddings without the N×N similarity matrix.

imagededup computes the full N×N cosine matrix (≈7 GB at 60k images; 127k never finishes). Here
memory is O(N·d) plus one tile:

- ``flat`` (exact, numpy only): the similarity matrix is computed in ``query_block × ref_block``
  tiles by BLAS matrix products, filtered (range) or reduced (top-k) tile by tile and dropped. Within
  one collection only the tiles on or above the diagonal are computed (pairs i < j), halving work.
- ``hnsw`` / ``ivf`` (approximate, FAISS): ``IndexHNSWFlat`` (parameters ``M``, ``ef_construction``,
  ``ef_search``) and ``IndexIVFFlat`` (``nlist``, ``nprobe``), both inner product over unit vectors,
  queried in blocks of ``query_block`` rows.

Cosine similarity of rows a, b is  cos(a, b) = a·b / (‖a‖ ‖b‖); rows are L2-normalised once so it is
a plain inner product. Zero rows stay zero (similarity 0 to everything).

Results follow the Hamming search conventions (``dupbench.search.hamming``): ``range`` gives
undirected pairs i < j sorted best first then (i, j) within one collection, directed
(query, reference) pairs across collections; ``topk`` gives directed pairs, grouped by query, best
first then by reference index.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dupbench.records import Candidates
from dupbench.search import COSINE_BACKENDS

Backend = Literal["flat", "hnsw", "ivf"]


def _import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            "approximate cosine search (backend 'hnsw' or 'ivf') needs faiss: "
            "pip install 'dupbench[faiss]' (or use backend='flat', which needs only numpy)"
        ) from e
    return faiss


def row_norms(x: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """L2 norm of each row, in float64, chunk by chunk: no (n, d) temporary for a large x."""
    out = np.empty(len(x), np.float64)
    for s in range(0, len(x), chunk):
        block = x[s : s + chunk].astype(np.float64)
        out[s : s + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as C-contiguous float32.

    Input that already is unit-norm float32 is returned as is (no copy), so a 1M × 576 index does
    not double its memory; zero rows are left zero.
    """
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (n, dim) array, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"embeddings must be numeric, got {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = row_norms(x)
    if not np.isfinite(norms).all():  # a NaN or inf anywhere in a row makes its norm non-finite
        raise ValueError("embeddings contain NaN or infinite values")
    nonzero = norms > 0
    if np.allclose(norms[nonzero], 1.0, atol=1e-4):
        return x
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=nonzero).astype(np.float32)
    return x * scale[:, None]


def _ranked(qi: np.ndarray, j: np.ndarray, s: np.ndarray) -> Candidates:
    """Directed top-k pairs grouped by query, best first, ties by reference index."""
    order = np.lexsort((j, -s.astype(np.float64), qi))
    return Candidates(qi[order], j[order], s[order].astype(np.float32), "cosine", cross=True)


def _undirected(i: np.ndarray, j: np.ndarray, s: np.ndarray) -> Candidates:
    """Pairs found from either end, as unique i < j pairs (self pairs dropped), sorted."""
    a, b = np.minimum(i, j), np.maximum(i, j)
    keep = a != b
    a, b, s = a[keep], b[keep], s[keep]
    order = np.lexsort((b, a, -s.astype(np.float64)))  # best score of each pair first
    a, b, s = a[order], b[order], s[order]
    _, first = np.unique(a * (int(b.max(initial=0)) + 1) + b, return_index=True)
    return Candidates(a[first], b[first], s[first].astype(np.float32), "cosine").sorted()


def _topk_merge(best_s, best_j, tile, offset, k):
    """Merge one tile's columns into each row's running top-k (scores, global column ids)."""
    kk = min(k, tile.shape[1])
    part = np.argpartition(-tile, kk - 1, axis=1)[:, :kk] if kk < tile.shape[1] else None
    if part is None:
        part = np.broadcast_to(np.arange(tile.shape[1]), tile.shape)
    s = np.concatenate([best_s, np.take_along_axis(tile, part, 1)], axis=1)
    j = np.concatenate([best_j, part + offset], axis=1)
    # keep k best by (score desc, column asc), so the result is independent of the tiling
    order = np.lexsort((j, -s.astype(np.float64)), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(j, order, 1)


class CosineIndex:
    """Range and top-k search by cosine similarity over (n, d) embeddings.

    backend: "flat" exact tiled matrix products (numpy); "hnsw" or "ivf" approximate (FAISS).
    query_block / ref_block: tile shape; peak extra memory ≈ 5 · query_block · ref_block bytes
    (the float32 tile and its boolean mask), whatever n.
    M, ef_construction, ef_search: HNSW graph degree, build and search beam widths.
    nlist, nprobe: IVF cell count (default ≈ 4·√n, at least 39 training points per cell) and
    cells visited per query.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        backend: Backend = "flat",
        *,
        query_block: int = 1024,
        ref_block: int = 16384,
        M: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        progress: bool = False,
    ) -> None:
        if backend not in COSINE_BACKENDS:
            raise ValueError(f"unknown cosine backend {backend!r}; "
                             f"choose from {', '.join(COSINE_BACKENDS)}")
        if query_block < 1 or ref_block < 1:
            raise ValueError("query_block and ref_block must be positive")
        self.vectors = unit_rows(vectors)
        self.backend = backend
        self.query_block = int(query_block)
        self.ref_block = int(ref_block)
        self.progress = progress
        self._index = None
        if backend == "hnsw":
            self._index = self._build_hnsw(M, ef_construction, ef_search)
        elif backend == "ivf":
            self._index = self._build_ivf(nlist, nprobe)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def _build_hnsw(self, m: int, ef_construction: int, ef_search: int):
        faiss = _import_faiss()
        index = faiss.IndexHNSWFlat(self.dim, int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.add(self.vectors)
        index.hnsw.efSearch = int(ef_search)
        return index

    def _build_ivf(self, nlist: int | None, nprobe: int):
        faiss = _import_faiss()
        n = len(self.vectors)
        if nlist is None:
            nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
        if not 1 <= nlist <= max(1, n):
            raise ValueError(f"nlist={nlist} must be between 1 and the number of vectors ({n})")
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, int(nlist), faiss.METRIC_INNER_PRODUCT)
        index.train(self.vectors)
        index.add(self.vectors)
        index.nprobe = min(int(nprobe), int(nlist))
        self._quantizer = quantizer  # the index refers to it; keep it alive as long
        return index

    def _queries(self, queries: np.ndarray | None) -> np.ndarray:
        if queries is None:
            return self.vectors
        q = unit_rows(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.dim}")
        return q

    def _blocks(self, n: int, desc: str):
        from tqdm.auto import tqdm

        starts = range(0, n, self.query_block)
        return tqdm(starts, desc=desc, unit="block", disable=not self.progress)

    # -- range -------------------------------------------------------------------------------
    def range(self, min_similarity: float, queries: np.ndarray | None = None) -> Candidates:
        """Every pair with cosine similarity ≥ ``min_similarity`` (self pairs excluded)."""
        t = float(min_similarity)
        if not -1.0 <= t <= 1.0:
            raise ValueError(f"min_similarity must be in [-1, 1], got {min_similarity}")
        cross = queries is not None
        q = self._queries(queries)
        if len(q) == 0 or len(self.vectors) == 0:
            return Candidates.empty("cosine", cross)
        if self.backend == "flat":
            return self._flat_range(t, q, cross)
        parts_i, parts_j, parts_s = [], [], []
        for s in self._blocks(len(q), f"cosine range ({self.backend})"):
            # FAISS keeps similarities strictly above its radius: ask for the next float below t,
            # then keep >= t exactly, as the flat backend does (t = 1.0 must find exact copies)
            below = float(np.nextafter(np.float32(t), np.float32(-2)))
            lims, sims, idx = self._index.range_search(q[s : s + self.query_block], below)
            qi = np.repeat(np.arange(s, s + len(lims) - 1), np.diff(lims).astype(np.int64))
            keep = sims >= np.float32(t)
            parts_i.append(qi[keep])
            parts_j.append(idx[keep].astype(np.int64))
            parts_s.append(sims[keep])
        i, j, sim = (np.concatenate(p) for p in (parts_i, parts_j, parts_s))
        if cross:
            return Candidates(i, j, sim.astype(np.float32), "cosine", cross=True).sorted()
        return _undirected(i, j, sim)

    def _flat_range(self, t: float, q: np.ndarray, cross: bool) -> Candidates:
        refs = self.vectors
        parts_i, parts_j, parts_s = [], [], []
        for qs in self._blocks(len(q), "cosine range (flat)"):
            qblock = q[qs : qs + self.query_block]
            # within one collection, skip reference tiles that lie wholly below the diagonal
            first = 0 if cross else (qs // self.ref_block) * self.ref_block
            for rs in range(first, len(refs), self.ref_block):
                tile = qblock @ refs[rs : rs + self.ref_block].T
                rows, cols = np.nonzero(tile >= t)
                gi, gj = rows + qs, cols + rs
                if not cross:
                    keep = gj > gi
                    rows, cols, gi, gj = rows[keep], cols[keep], gi[keep], gj[keep]
                parts_i.append(gi)
                parts_j.append(gj)
                parts_s.append(tile[rows, cols])
        if not parts_i:
            return Candidates.empty("cosine", cross)
        return Candidates(
            np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_s),
            "cosine", cross,
        ).sorted()

    # -- top-k -------------------------------------------------------------------------------
    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        """The ``k`` most similar references of each query (self excluded), as directed pairs."""
        if k < 1:
            raise ValueError("k must be at least 1")
        cross = queries is not None
        q = self._queries(queries)
        n = len(self.vectors)
        k = min(int(k), n if cross else n - 1)
        if len(q) == 0 or k < 1:
            return Candidates.empty("cosine", cross=True)
        search = self._flat_topk if self.backend == "flat" else self._faiss_topk
        parts = [search(q, qs, k, cross) for qs in self._blocks(len(q), f"cosine top-{k}")]
        qi, j, s = (np.concatenate(p) for p in zip(*parts))
        return _ranked(qi, j, s)

    def _flat_topk(self, q: np.ndarray, qs: int, k: int, cross: bool):
        qblock = q[qs : qs + self.query_block]
        m = len(qblock)
        best_s = np.full((m, 0), -np.inf, np.float32)
        best_j = np.zeros((m, 0), np.int64)
        for rs in range(0, len(self.vectors), self.ref_block):
            tile = qblock @ self.vectors[rs : rs + self.ref_block].T
            if not cross:
                rows = np.arange(m)
                cols = rows + qs - rs
                on = (cols >= 0) & (cols < tile.shape[1])
                tile[rows[on], cols[on]] = -np.inf  # mask self
            best_s, best_j = _topk_merge(best_s, best_j, tile, rs, k)
        valid = np.isfinite(best_s)
        qi = np.broadcast_to(np.arange(qs, qs + m)[:, None], best_s.shape)
        return qi[valid], best_j[valid], best_s[valid]

    def _faiss_topk(self, q: np.ndarray, qs: int, k: int, cross: bool):
        qblock = q[qs : qs + self.query_block]
        sims, idx = self._index.search(qblock, k if cross else k + 1)
        qi = np.broadcast_to(np.arange(qs, qs + len(qblock))[:, None], idx.shape)
        valid = idx >= 0
        if not cross:
            valid &= idx != qi
        qi, idx, sims = qi[valid], idx[valid], sims[valid]
        if not cross:  # a query may come back without itself: keep its k best others
            order = np.lexsort((idx, -sims.astype(np.float64), qi))
            qi, idx, sims = qi[order], idx[order], sims[order]
            rank = np.arange(len(qi)) - np.searchsorted(qi, qi)
            keep = rank < k
            qi, idx, sims = qi[keep], idx[keep], sims[keep]
        return qi, idx.astype(np.int64), sims
