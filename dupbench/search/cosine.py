"""Cosine search over float embeddings without the N×N similarity matrix.

imagededup computes the full N×N cosine matrix (≈7 GB at 60k images; 127k never finishes). Here
memory is O(N·d) plus one tile:

- ``flat`` (exact, numpy only): the similarity matrix is computed in ``query_block × ref_block``
  tiles by BLAS matrix products, filtered (range) or reduced (top-k) tile by tile and dropped. Within
  one collection only the tiles on or above the diagonal are computed (pairs i < j), halving work.
- ``hnsw`` / ``ivf`` (approximate, FAISS): ``IndexHNSWFlat`` (parameters ``M``, ``ef_construction``,
  ``ef_search``) and ``IndexIVFFlat`` (``nlist``, ``nprobe``), both inner product over unit vectors,
  queried in blocks of ``query_block`` rows. The search knob (``ef_search`` / ``nprobe``) is
  calibrated per threshold unless given: exact search of a query sample says how many pairs the
  approximate search must find, and the cheapest setting that finds 99.5 % of them is kept.

Memory: normalising makes at most one float32 copy (none for unit float32 input, as CNN encoders
return), scaled chunk by chunk; pairs accumulate as int32 row numbers and float32 scores.

Cosine similarity of rows a, b is  cos(a, b) = a·b / (‖a‖ ‖b‖); rows are L2-normalised once so it is
a plain inner product. Zero rows stay zero (similarity 0 to everything).

Results follow the Hamming search conventions (``dupbench.search.hamming``): ``range`` gives
undirected pairs i < j sorted best first then (i, j) within one collection, directed
(query, reference) pairs across collections; ``topk`` gives directed pairs, grouped by query, best
first then by reference index.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal, get_args

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.search.registry import index_backend

Backend = Literal["flat", "hnsw", "ivf"]
#: its ways to search: exact, HNSW graph, inverted file (each a registered search backend)
BACKENDS: tuple[Backend, ...] = get_args(Backend)


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
    """L2 norm of each row, accumulated in float64 chunk by chunk without an upcast copy of x."""
    out = np.empty(len(x), np.float64)
    for s in range(0, len(x), chunk):
        block = x[s : s + chunk]
        out[s : s + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
    return out


def unit_rows(vectors: np.ndarray, copy: bool = True, chunk: int = 8192) -> np.ndarray:
    """Rows scaled to unit L2 norm as C-contiguous float32, with at most one copy of the input.

    Input that already is unit-norm float32 is returned as is (no copy), so a 1M × 1280 index does
    not double its 5 GB. Otherwise the rows are scaled chunk by chunk into the float32 array: a
    conversion's own fresh array, a new one, or with ``copy=False`` the caller's float32 array in
    place. Zero rows are left zero.
    """
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (n, dim) array, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"embeddings must be numeric, got {x.dtype}")
    converted = np.ascontiguousarray(x, dtype=np.float32)
    norms = row_norms(converted, chunk)
    if not np.isfinite(norms).all():  # a NaN or inf anywhere in a row makes its norm non-finite
        raise ValueError("embeddings contain NaN or infinite values")
    nonzero = norms > 0
    if np.allclose(norms[nonzero], 1.0, atol=1e-4):
        return converted
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=nonzero).astype(np.float32)
    owned = converted is not x and not np.shares_memory(converted, x)
    out = converted if owned or not copy else np.empty_like(converted)
    for s in range(0, len(out), chunk):
        np.multiply(converted[s : s + chunk], scale[s : s + chunk, None], out=out[s : s + chunk])
    return out


def _ranked(qi: np.ndarray, j: np.ndarray, s: np.ndarray) -> Candidates:
    """Directed top-k pairs grouped by query, best first, ties by reference index."""
    order = np.lexsort((j, -s.astype(np.float64), qi))
    return Candidates(
        qi[order], j[order], s[order].astype(np.float32), DistanceKind.COSINE, cross=True
    )


def _undirected(i: np.ndarray, j: np.ndarray, s: np.ndarray) -> Candidates:
    """Pairs found from either end, as unique i < j pairs (self pairs dropped), sorted."""
    a, b = np.minimum(i, j), np.maximum(i, j)
    keep = a != b
    a, b, s = a[keep], b[keep], s[keep]
    order = np.lexsort((b, a, -s.astype(np.float64)))  # best score of each pair first
    a, b, s = a[order], b[order], s[order]
    _, first = np.unique(a * (int(b.max(initial=0)) + 1) + b, return_index=True)
    return Candidates(a[first], b[first], s[first].astype(np.float32), DistanceKind.COSINE).sorted()


def _index_dtype(n: int):
    """The smallest integer type for row numbers below n: pairs are accumulated compactly."""
    return np.int32 if n < 2**31 else np.int64


def _pair_keys(i: np.ndarray, j: np.ndarray, rows: np.ndarray, n: int, cross: bool) -> np.ndarray:
    """Directed (sample query, reference) pairs as sorted int64 keys, self matches dropped."""
    i, j = i.astype(np.int64), j.astype(np.int64)
    if not cross:
        keep = rows[i] != j
        i, j = i[keep], j[keep]
    return np.sort(i * n + j)


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


#: the automatic HNSW ``ef_search`` / IVF ``nprobe`` is the smallest that finds this share of the
#: exact pairs of a sample of queries (the undirected pairs' recall is at least the directed one's)
CALIBRATION_RECALL = 0.995
#: the calibration sample is compared exactly with every vector: about this many dot products
CALIBRATION_PRODUCTS = 200_000_000
#: with fewer exact pairs than this in the sample, recall cannot be estimated: defaults are kept
CALIBRATION_MIN_PAIRS = 50
#: IVF k-means trains on this many points per cell (FAISS warns below 39): training cost is
#: nlist² times this, so it bounds the build at 1M vectors
IVF_TRAIN_POINTS_PER_CELL = 40


def ivf_nlist(n: int) -> int:
    """IVF cell count for n vectors: ≈ 4·√n (FAISS's rule of thumb), 39+ training points each."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


class CosineIndex:
    """Range and top-k search by cosine similarity over (n, d) embeddings.

    backend: "flat" exact tiled matrix products (numpy); "hnsw" or "ivf" approximate (FAISS).
    query_block / ref_block: tile shape; peak extra memory ≈ 5 · query_block · ref_block bytes
    (the float32 tile and its boolean mask) plus 16 bytes per pair found, whatever n.
    M, ef_construction, ef_search: HNSW graph degree, build and search beam widths.
    nlist, nprobe: IVF cell count (default ``ivf_nlist(n)``) and cells visited per query.
    ef_search / nprobe left as None are chosen per threshold: the smallest power of two whose
    range search finds ``CALIBRATION_RECALL`` of the exact pairs of a sample of queries
    (``self.tuning`` records the choice, the sample's recall and the calibration's seconds).
    copy=False lets unit_rows normalise a float32 input in place instead of copying it.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        backend: Backend = "flat",
        *,
        query_block: int = 1024,
        ref_block: int = 8192,
        M: int = 32,
        ef_construction: int = 200,
        ef_search: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        copy: bool = True,
        progress: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown cosine backend {backend!r}; choose from {', '.join(BACKENDS)}"
            )
        if query_block < 1 or ref_block < 1:
            raise ValueError("query_block and ref_block must be positive")
        self.vectors = unit_rows(vectors, copy=copy)
        self.backend = backend
        self.query_block = int(query_block)
        self.ref_block = int(ref_block)
        self.progress = progress
        self.tuning: dict[float, dict] = {}
        self._index: Any = None  # the FAISS index of hnsw and ivf
        self._fixed_knob = ef_search if backend == "hnsw" else nprobe
        if backend == "hnsw":
            self._index = self._build_hnsw(M, ef_construction)
        elif backend == "ivf":
            self._index = self._build_ivf(nlist)
        if self._index is not None:
            self._set_knob(self._fixed_knob or self._default_knob())

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def _build_hnsw(self, m: int, ef_construction: int):
        faiss = _import_faiss()
        index = faiss.IndexHNSWFlat(self.dim, int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.add(self.vectors)
        return index

    def _build_ivf(self, nlist: int | None):
        faiss = _import_faiss()
        n = len(self.vectors)
        nlist = ivf_nlist(n) if nlist is None else int(nlist)
        if not 1 <= nlist <= max(1, n):
            raise ValueError(f"nlist={nlist} must be between 1 and the number of vectors ({n})")
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAIN_POINTS_PER_CELL
        index.train(self.vectors)
        index.add(self.vectors)
        self._quantizer = quantizer  # the index refers to it; keep it alive as long
        return index

    # -- the approximate backends' search-time knob (HNSW ef_search, IVF nprobe) ---------------
    def _knob_values(self) -> list[int]:
        """Candidate knob values, cheapest first, ending with the most thorough."""
        if self.backend == "ivf":
            top = self._index.nlist
            return sorted({min(2**e, top) for e in range(top.bit_length() + 1)})
        return [2**e for e in range(4, 13)]  # ef_search 16 … 4096

    def _default_knob(self) -> int:
        """Used for top-k, and where calibration has too few pairs to estimate recall."""
        return (
            min(max(16, self._index.nlist // 32), self._index.nlist)
            if self.backend == "ivf"
            else 128
        )

    def _set_knob(self, value: int) -> None:
        if self.backend == "ivf":
            self._index.nprobe = min(int(value), self._index.nlist)
        else:
            self._index.hnsw.efSearch = int(value)

    def _calibrate(self, t: float, q: np.ndarray, cross: bool) -> None:
        """Set the knob for threshold t from exact vs approximate pairs of a query sample."""
        if self._fixed_knob is not None:
            return
        if t not in self.tuning:
            start = time.perf_counter()
            self.tuning[t] = self._tune(t, q, cross)
            self.tuning[t]["seconds"] = time.perf_counter() - start
        self._set_knob(self.tuning[t]["value"])

    def _tune(self, t: float, q: np.ndarray, cross: bool) -> dict:
        n = len(self.vectors)
        size = int(min(len(q), max(256, CALIBRATION_PRODUCTS // max(n, 1))))
        rows = np.sort(np.random.default_rng(0).choice(len(q), size, replace=False))
        sample = q[rows]
        exact = self._flat_range(t, sample, cross=True)
        truth = _pair_keys(exact.i, exact.j, rows, n, cross)
        record = {"sample_queries": size, "sample_pairs": len(truth)}
        if len(truth) < CALIBRATION_MIN_PAIRS:
            return {**record, "value": self._default_knob(), "sample_recall": None}
        for value in self._knob_values():
            self._set_knob(value)
            i, j, _ = self._faiss_pairs(t, sample, progress=False)
            recall = float(np.isin(truth, _pair_keys(i, j, rows, n, cross)).mean())
            if recall >= CALIBRATION_RECALL:
                break
        return {**record, "value": value, "sample_recall": recall}

    def _queries(self, queries: np.ndarray | None) -> np.ndarray:
        if queries is None:
            return self.vectors
        q = unit_rows(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.dim}")
        return q

    def _blocks(self, n: int, desc: str, progress: bool | None = None):
        from tqdm.auto import tqdm

        starts = range(0, n, self.query_block)
        show = self.progress if progress is None else progress
        return tqdm(starts, desc=desc, unit="block", disable=not show)

    # -- range -------------------------------------------------------------------------------
    def range(self, threshold: float, queries: np.ndarray | None = None) -> Candidates:
        """Every pair with cosine similarity ≥ ``threshold`` (self pairs excluded)."""
        t = float(threshold)
        if not -1.0 <= t <= 1.0:
            raise ValueError(f"a cosine threshold must be in [-1, 1], got {threshold}")
        cross = queries is not None
        q = self._queries(queries)
        if len(q) == 0 or len(self.vectors) == 0:
            return Candidates.empty(DistanceKind.COSINE, cross)
        if self.backend == "flat":
            return self._flat_range(t, q, cross)
        self._calibrate(t, q, cross)
        i, j, sim = self._faiss_pairs(t, q)
        if cross:
            return Candidates(i, j, sim, DistanceKind.COSINE, cross=True).sorted()
        return _undirected(i.astype(np.int64), j.astype(np.int64), sim)

    def _faiss_pairs(self, t: float, q: np.ndarray, progress: bool | None = None):
        """Directed (query, reference, similarity) with similarity ≥ t, self pairs included."""
        parts_i, parts_j, parts_s = [], [], []
        index_dtype = _index_dtype(max(len(q), len(self.vectors)))
        # FAISS keeps similarities strictly above its radius: ask for the next float below t,
        # then keep >= t exactly, as the flat backend does (t = 1.0 must find exact copies)
        below = float(np.nextafter(np.float32(t), np.float32(-2)))
        for s in self._blocks(len(q), f"cosine range ({self.backend})", progress):
            lims, sims, idx = self._index.range_search(q[s : s + self.query_block], below)
            qi = np.repeat(
                np.arange(s, s + len(lims) - 1, dtype=index_dtype), np.diff(lims).astype(np.int64)
            )
            keep = sims >= np.float32(t)
            parts_i.append(qi[keep])
            parts_j.append(idx[keep].astype(index_dtype))
            parts_s.append(sims[keep].astype(np.float32))
        return tuple(np.concatenate(p) for p in (parts_i, parts_j, parts_s))

    def _flat_range(self, t: float, q: np.ndarray, cross: bool) -> Candidates:
        refs = self.vectors
        index_dtype = _index_dtype(max(len(q), len(refs)))
        parts_i, parts_j, parts_s = [], [], []
        for qs in self._blocks(len(q), "cosine range (flat)"):
            qblock = q[qs : qs + self.query_block]
            # within one collection, skip reference tiles that lie wholly below the diagonal
            first = 0 if cross else (qs // self.ref_block) * self.ref_block
            for rs in range(first, len(refs), self.ref_block):
                tile = qblock @ refs[rs : rs + self.ref_block].T
                rows, cols = np.nonzero(tile >= t)
                if not cross and rs < qs + len(qblock):  # the diagonal crosses this tile
                    keep = cols + rs > rows + qs
                    rows, cols = rows[keep], cols[keep]
                parts_s.append(tile[rows, cols])
                del tile
                parts_i.append((rows + qs).astype(index_dtype))
                parts_j.append((cols + rs).astype(index_dtype))
        if not parts_i:
            return Candidates.empty(DistanceKind.COSINE, cross)
        i, j, s = (np.concatenate(p) for p in (parts_i, parts_j, parts_s))
        del parts_i, parts_j, parts_s
        order = np.lexsort((j, i, -s))  # best first, ties by (i, j): Candidates.sorted's order
        return Candidates(i[order], j[order], s[order], DistanceKind.COSINE, cross)

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
            return Candidates.empty(DistanceKind.COSINE, cross=True)
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


for _backend in BACKENDS:
    index_backend(_backend, DistanceKind.COSINE)(functools.partial(CosineIndex, backend=_backend))
