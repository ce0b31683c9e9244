"""Exact Hamming range search by multi-index hashing (Norouzi, Punjani & Fleet, TPAMI 2014).

Why: brute force (numpy, or FAISS ``IndexBinaryFlat``) compares all N² pairs, hours at 10M codes.
Split the bit positions that vary in the collection into m substrings and give substring k a
radius t_k with Σ(t_k + 1) = r + 1: by pigeonhole every pair within r bits is within t_k bits on
some substring k. Sorting the codes by each substring's value turns its buckets into contiguous
runs, so candidates are run pairs: a bucket with itself, and with the buckets whose keys differ
in 1..t_k bits. Each candidate is verified on the whole code (XOR + popcount), and a pair is
reported only by the first substring that finds it, so every pair appears once, exactly as brute
force returns it.

The plan (m and the radii, or brute force) is chosen per search by a cost model whose candidate
counts are measured on a random sample of pairs of the actual codes: clustered codes, whose
buckets are skewed, get longer substrings or brute force instead of a candidate blow-up.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.search.hamming import HammingBruteForce, HammingFaiss, _as_words
from dupbench.search.registry import index_backend

#: pairs sampled to measure each substring's candidate rate
SAMPLE_PAIRS = 50_000
#: substrings up to this many bits look neighbour keys up in a dense table, longer ones by bisection
DENSE_TABLE_MAX_BITS = 22
#: largest neighbour enumeration per key a plan may use
MAX_BALL = 50_000
#: run pairs the numpy join generates at a time, which bounds their arrays' memory
JOB_BATCH = 1 << 20
#: brute force costing less than this (in COST_NS terms) is taken without sampling a plan
BRUTE_ANYWAY_NS = 5e7
#: rough nanoseconds per operation on one core; they only rank plans against each other
COST_NS = {
    "sort": 100.0,  # per code per substring: key extraction, argsort, gathers
    "lookup_dense": 25.0,  # per (bucket, flip mask) neighbour lookup
    "lookup_search": 80.0,
    "verify_numba": 0.6,  # per candidate per 64-bit word
    "verify_numpy": 40.0,
    "numba_load": 6e8,  # once per process: import numba, load the cached compiled join
    "brute_faiss": 0.3,  # per pair per word
    "brute_numpy": 2.5,
}


@dataclass(frozen=True)
class Substring:
    """Bit positions (word * 64 + bit, least significant first) searched within ``radius``."""

    positions: tuple[int, ...]
    radius: int

    @property
    def bits(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class Plan:
    """How one search runs: substrings to index, or brute force when there are none."""

    substrings: tuple[Substring, ...]
    cost_ns: float

    @property
    def brute(self) -> bool:
        return not self.substrings


def _ball(bits: int, radius: int) -> int:
    return sum(math.comb(bits, w) for w in range(radius + 1))


def varying_positions(codes: np.ndarray) -> np.ndarray:
    """Bit positions where the collection's codes are not all equal; the others cannot tell two
    collection codes apart (padding of short codes, constant bits), so they are never indexed."""
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    diff = np.bitwise_or.reduce(codes ^ codes[:1], axis=0)
    bits = np.unpackbits(diff.astype("<u8").view(np.uint8), bitorder="little")
    return np.flatnonzero(bits)


def _bounds(n: int, m: int) -> list[tuple[int, int]]:
    """[lo, hi) of m nearly equal consecutive parts of n items, longer parts first."""
    size, extra = divmod(n, m)
    ends = np.cumsum([size + (k < extra) for k in range(m)])
    return [(int(e - size - (k < extra)), int(e)) for k, e in enumerate(ends)]


def split_plan(positions: np.ndarray, m: int, radius: int) -> tuple[Substring, ...]:
    """m nearly equal substrings with Norouzi's radii: r = q·m + a gives the first a + 1
    substrings radius q and the rest q - 1; those at -1 are not searched. The searched ones come
    first, so they pair up with the first ``_bounds(len(positions), m)``."""
    q, a = divmod(radius, m)
    subs = (
        Substring(tuple(int(p) for p in positions[lo:hi]), q if k <= a else q - 1)
        for k, (lo, hi) in enumerate(_bounds(len(positions), m))
    )
    return tuple(s for s in subs if s.radius >= 0 and s.bits > 0)


def substring_masks(sub: Substring, words: int) -> np.ndarray:
    """The substring as one bit mask per code word."""
    masks = np.zeros(words, np.uint64)
    for p in sub.positions:
        masks[p // 64] |= np.uint64(1) << np.uint64(p % 64)
    return masks


def substring_distance(xor: np.ndarray, sub: Substring) -> np.ndarray:
    """Per row of XORed codes, the number of differing bits inside the substring."""
    masks = substring_masks(sub, xor.shape[1])
    return np.bitwise_count(xor & masks).sum(axis=1, dtype=np.int64)


def substring_keys(codes: np.ndarray, sub: Substring) -> np.ndarray:
    """Each code's substring value as a uint64 (bits packed in position order). Consecutive
    positions inside one word are moved with a single shift and mask."""
    keys = np.zeros(len(codes), np.uint64)
    out_bit, k, pos = 0, 0, sub.positions
    while k < len(pos):
        end = k + 1
        while end < len(pos) and pos[end] == pos[end - 1] + 1 and pos[end] % 64 != 0:
            end += 1
        length, word, shift = end - k, pos[k] // 64, pos[k] % 64
        part = (codes[:, word] >> np.uint64(shift)) & np.uint64((1 << length) - 1)
        keys |= part << np.uint64(out_bit)
        out_bit += length
        k = end
    return keys


def flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every nonzero key XOR of at most ``radius`` set bits among ``bits``."""
    masks = [
        sum(1 << b for b in c) for w in range(1, radius + 1) for c in combinations(range(bits), w)
    ]
    return np.array(masks, dtype=np.uint64)


class _Table:
    """Codes sorted by one substring's value: bucket ``u`` is rows ``lo[u]:hi[u]``."""

    def __init__(self, codes: np.ndarray, sub: Substring, dense: bool) -> None:
        keys = substring_keys(codes, sub)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        self.keys = sorted_keys[starts]
        self.lo = starts.astype(np.int64)
        self.hi = np.r_[starts[1:], len(codes)].astype(np.int64)
        self.codes = np.ascontiguousarray(codes[order])
        self.heads = np.ascontiguousarray(self.codes[:, 0])  # first words, for a fast pre-filter
        self.ids = order.astype(np.int64)
        self.offsets = None
        if dense:  # bucket of key k is rows offsets[k]:offsets[k + 1], empty or not
            counts = np.bincount(keys.astype(np.int64), minlength=1 << sub.bits)
            small = np.int32 if len(codes) < 2**31 else np.int64  # half the cache footprint
            self.offsets = np.r_[0, np.cumsum(counts)].astype(small)

    def runs(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows [lo, hi) of the bucket of each key; empty (lo == hi) where no code has it."""
        if self.offsets is not None:
            return self.offsets[keys], self.offsets[keys + np.uint64(1)]
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[at] == keys
        return np.where(found, self.lo[at], 0), np.where(found, self.hi[at], 0)


def _neighbour_jobs(src: _Table, dst: _Table, masks: np.ndarray, self_join: bool):
    """Run pairs (src bucket, dst bucket whose key is src key ^ mask) in batches of about
    JOB_BATCH, as (a_lo, a_hi, b_lo, b_hi, tri). In a self-join mask 0 pairs a bucket with itself
    (``tri``: later rows only) and other masks only reach larger keys, so each pair is met once."""
    per_batch = max(1, JOB_BATCH // max(1, len(src.keys)))
    for s in range(0, len(masks), per_batch):
        parts: list[tuple[np.ndarray, ...]] = []
        for mask in masks[s : s + per_batch]:
            target = src.keys ^ mask
            tri = self_join and mask == 0
            if self_join and not tri:
                a = np.flatnonzero(target > src.keys)
            else:
                a = np.arange(len(src.keys))
            b_lo, b_hi = dst.runs(target[a])
            hit = b_hi > b_lo
            a = a[hit]
            parts.append((src.lo[a], src.hi[a], b_lo[hit], b_hi[hit], np.full(len(a), tri)))
        yield tuple(np.concatenate(x) for x in zip(*parts))


def join_tables_numpy(
    src: _Table, dst: _Table, masks: np.ndarray, self_join: bool, radius: int, chunk: int = 1 << 22
) -> tuple[np.ndarray, ...]:
    """The numpy join: expand run pairs into candidate index arrays (about ``chunk`` at a time)
    and verify them with XOR + popcount. Same contract as ``mih_kernel.join_tables``."""
    out: list[tuple[np.ndarray, ...]] = []
    for a_lo, a_hi, b_lo, b_hi, tri in _neighbour_jobs(src, dst, masks, self_join):
        nb = b_hi - b_lo
        size = (a_hi - a_lo) * nb
        ends = np.cumsum(size)
        first = 0
        while first < len(size):
            base = ends[first] - size[first]  # candidates before this chunk
            last = max(first + 1, int(np.searchsorted(ends, base + chunk)))
            job = np.repeat(np.arange(first, last), size[first:last])
            off = base + np.arange(len(job)) - (ends[job] - size[job])
            p = a_lo[job] + off // nb[job]
            q = b_lo[job] + off % nb[job]
            keep = ~tri[job] | (q > p)
            p, q = p[keep], q[keep]
            d = np.bitwise_count(src.codes[p] ^ dst.codes[q]).sum(axis=1, dtype=np.int32)
            hit = d <= radius
            out.append((src.ids[p[hit]], dst.ids[q[hit]], d[hit]))
            first = last
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
    return tuple(np.concatenate(x) for x in zip(*out))


def has_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


def has_faiss() -> bool:
    return importlib.util.find_spec("faiss") is not None


@index_backend("mih", DistanceKind.HAMMING)
class HammingMultiIndex:
    """Exact Hamming range search by multi-index hashing, with brute force where that is cheaper.

    ``kernel``: "numba" (compiled join), "numpy", or "auto" (numba when installed).
    ``substrings``: force this many substrings (clipped to what the code length allows; brute
    force where the neighbour enumeration would exceed MAX_BALL) instead of the cost model's
    choice; for tests and benchmarks. Top-k search is delegated to brute force (FAISS when
    installed): with no radius known up front, MIH would have to widen its radius step by step,
    not worth it at the sizes top-k is used for.
    """

    def __init__(
        self,
        codes: np.ndarray,
        kernel: str = "auto",
        substrings: int | None = None,
        sample_pairs: int = SAMPLE_PAIRS,
        seed: int = 0,
    ) -> None:
        if kernel not in ("auto", "numba", "numpy"):
            raise ValueError(f"unknown MIH kernel {kernel!r}; choose from auto, numba, numpy")
        self.codes = _as_words(codes)
        self.kernel = ("numba" if has_numba() else "numpy") if kernel == "auto" else kernel
        self.substrings = substrings
        self.sample_pairs = sample_pairs
        self.seed = seed
        self._positions = varying_positions(self.codes)
        self._tables: dict[Substring, _Table] = {}
        self._brute: HammingFaiss | HammingBruteForce | None = None

    @property
    def words(self) -> int:
        return self.codes.shape[1]

    def brute(self) -> HammingFaiss | HammingBruteForce:
        """The exhaustive index used for top-k and for plans where brute force is cheaper."""
        if self._brute is None:
            self._brute = HammingFaiss(self.codes) if has_faiss() else HammingBruteForce(self.codes)
        return self._brute

    def _sample_differences(self, queries: np.ndarray | None) -> np.ndarray:
        """For random pairs, the running count of differing bits along the varying positions:
        a substring (a range of them) differs in ``c[:, hi] - c[:, lo]`` bits."""
        rng = np.random.default_rng(self.seed)
        n = len(self.codes)
        s = self.sample_pairs
        if queries is None:
            i, j = rng.integers(0, n, s), rng.integers(0, n - 1, s)
            j += j >= i  # a uniform pair of distinct rows
            xor = self.codes[i] ^ self.codes[j]
        else:
            xor = queries[rng.integers(0, len(queries), s)] ^ self.codes[rng.integers(0, n, s)]
        bits = np.unpackbits(xor.astype("<u8").view(np.uint8), axis=1, bitorder="little")
        counts = np.zeros((s, len(self._positions) + 1), np.int16)
        np.cumsum(bits[:, self._positions], axis=1, out=counts[:, 1:])
        return counts

    def plan(self, radius: int, queries: np.ndarray | None = None) -> Plan:
        """The cheapest plan for this radius by the cost model (brute force is one candidate)."""
        n = len(self.codes)
        nq = n if queries is None else len(queries)
        pairs = n * (n - 1) / 2 if queries is None else float(nq) * n
        brute_ns = COST_NS["brute_faiss" if has_faiss() else "brute_numpy"] * self.words
        best = Plan((), pairs * brute_ns * (2 if queries is None and has_faiss() else 1))
        nvar = len(self._positions)
        if nvar == 0 or pairs == 0 or (self.substrings is None and best.cost_ns < BRUTE_ANYWAY_NS):
            return best
        m_min = -(-nvar // 64)  # keys are uint64
        if self.substrings is not None:
            subs = split_plan(self._positions, min(max(self.substrings, m_min), nvar), radius)
            if all(_ball(s.bits, s.radius) <= MAX_BALL for s in subs):
                return Plan(subs, math.nan)
            return best
        counts = self._sample_differences(queries)
        verify = COST_NS[f"verify_{self.kernel}"] * self.words
        loaded = self.kernel == "numpy" or "dupbench.search.mih_kernel" in sys.modules
        for m in range(m_min, max(m_min, min(nvar, radius + 1)) + 1):
            subs = split_plan(self._positions, m, radius)
            cost = 0.0 if loaded else COST_NS["numba_load"]
            for sub, (lo, hi) in zip(subs, _bounds(nvar, m)):
                ball = _ball(sub.bits, sub.radius)
                if ball > MAX_BALL:
                    cost = math.inf
                    break
                differ = counts[:, hi] - counts[:, lo]
                rate = max(np.mean(differ <= sub.radius), 0.5 / len(counts))
                dense = sub.bits <= DENSE_TABLE_MAX_BITS
                lookup = COST_NS["lookup_dense" if dense else "lookup_search"]
                buckets = min(nq, 2.0**sub.bits)
                lookups = buckets * ball / (2 if queries is None else 1)
                sorted_codes = n + (0 if queries is None else nq)
                cost += sorted_codes * COST_NS["sort"] + lookups * lookup + pairs * rate * verify
            if subs and cost < best.cost_ns:
                best = Plan(subs, cost)
        return best

    def _table(self, sub: Substring) -> _Table:
        if sub not in self._tables:
            self._tables[sub] = _Table(self.codes, sub, sub.bits <= DENSE_TABLE_MAX_BITS)
        return self._tables[sub]

    def _join(self, *args) -> tuple[np.ndarray, ...]:
        if self.kernel == "numba":
            from dupbench.search.mih_kernel import join_tables

            return join_tables(*args)
        return join_tables_numpy(*args)

    def range(self, radius: int, queries: np.ndarray | None = None) -> Candidates:
        """All pairs at distance ≤ ``radius``; within the collection when ``queries`` is None."""
        q = None if queries is None else _as_words(queries)
        cross = q is not None
        if radius < 0 or len(self.codes) == 0 or (q is not None and len(q) == 0):
            return Candidates.empty(DistanceKind.HAMMING, cross)
        if q is not None and q.shape[1] != self.words:
            raise ValueError(f"queries have {q.shape[1]} words, the collection {self.words}")
        plan = self.plan(radius, q)
        if plan.brute:
            return self.brute().range(radius, queries=q)
        found = []
        for k, sub in enumerate(plan.substrings):
            table = self._table(sub)
            src = table if q is None else _Table(q, sub, dense=False)
            masks = np.r_[np.zeros(1, np.uint64), flip_masks(sub.bits, sub.radius)]
            i, j, d = self._join(src, table, masks, not cross, radius)
            if not cross:
                i, j = np.minimum(i, j), np.maximum(i, j)
            found.append(self._first_finder_only(i, j, d, plan.substrings[:k], q))
        return Candidates.concat(
            [Candidates(i, j, d, DistanceKind.HAMMING, cross) for i, j, d in found],
            DistanceKind.HAMMING,
            cross,
        ).sorted()

    def _first_finder_only(self, i, j, d, earlier: tuple[Substring, ...], queries):
        """Drop pairs an earlier substring also finds, so each pair is reported once."""
        if not earlier or len(i) == 0:
            return i, j, d
        xor = (self.codes if queries is None else queries)[i] ^ self.codes[j]
        seen = np.zeros(len(i), bool)
        for sub in earlier:
            seen |= substring_distance(xor, sub) <= sub.radius
        return i[~seen], j[~seen], d[~seen]

    def topk(self, k: int, queries: np.ndarray | None = None) -> Candidates:
        """Delegated to brute force (see the class docstring)."""
        return self.brute().topk(k, queries=queries)
