"""Hamming and equality search: every backend returns the same pairs as a plain definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupbench.records import Encodings, pack_bits
from dupbench.search import build_index, pick_backend, range_search, topk_search
from dupbench.search.exact import EqualIndex
from dupbench.search.hamming import BKTree, HammingBruteForce, HammingFaiss

BACKENDS = [HammingBruteForce, BKTree, HammingFaiss]


def _codes(seed: int, n: int, nbits: int) -> np.ndarray:
    """Random codes with planted near copies and exact repeats, so every radius finds pairs."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, nbits)).astype(bool)
    copies = bits[: n // 2].copy()
    flips = rng.integers(0, nbits, size=(len(copies), 3))
    for r, f in enumerate(flips):
        copies[r, f[: r % 4]] ^= True  # 0 to 3 flipped bits
    return pack_bits(np.concatenate([bits, copies, bits[:3]]))


def _reference_range(codes, radius):
    """The definition: every i<j with popcount(xor) ≤ radius, sorted by (distance, i, j)."""
    n = len(codes)
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            d = int(np.bitwise_count(codes[i] ^ codes[j]).sum())
            if d <= radius:
                out.append((d, i, j))
    return sorted(out)


def _triples(c):
    return sorted(zip(c.score.tolist(), c.i.tolist(), c.j.tolist()))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(2, 40),
    st.sampled_from([8, 64, 100, 256]),
    st.integers(0, 12),
)
def test_range_backends_equal_the_definition(seed, n, nbits, radius):
    codes = _codes(seed, n, nbits)
    expected = _reference_range(codes, radius)
    for cls in BACKENDS:
        got = cls(codes).range(radius)
        assert _triples(got) == expected, cls.__name__
        assert np.all(got.i < got.j) and not got.cross
        assert list(zip(got.score, got.i, got.j)) == sorted(zip(got.score, got.i, got.j))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40), st.sampled_from([64, 128]), st.integers(1, 6))
def test_topk_backends_agree_and_exclude_self(seed, n, nbits, k):
    codes = _codes(seed, n, nbits)
    results = [cls(codes).topk(k) for cls in BACKENDS]
    first = results[0]
    for other in results[1:]:
        assert np.array_equal(first.i, other.i) and np.array_equal(first.j, other.j)
        assert np.array_equal(first.score, other.score)
    assert not np.any(first.i == first.j) and first.cross
    counts = np.bincount(first.i, minlength=len(codes))
    assert np.all(counts == min(k, len(codes) - 1))
    # each list really holds the k nearest: its worst is no farther than any excluded reference
    for q in range(len(codes)):
        d = np.bitwise_count(codes[q] ^ codes).sum(axis=1)
        d[q] = 10**6
        mine = first.score[first.i == q]
        assert np.all(np.diff(mine) >= 0) and mine.max() <= np.sort(d)[len(mine) - 1]


def test_cross_collection_range_matches_the_definition():
    refs = _codes(1, 60, 64)
    queries = _codes(2, 10, 64)[:10] ^ np.uint64(1)
    queries[:3] = refs[:3]
    for cls in BACKENDS:
        got = cls(refs).range(5, queries=queries)
        assert got.cross
        for i, j, s in zip(got.i, got.j, got.score):
            assert int(np.bitwise_count(queries[i] ^ refs[j]).sum()) == s <= 5
        total = sum(int(np.bitwise_count(q ^ refs).sum(axis=1).__le__(5).sum()) for q in queries)
        assert len(got) == total


def test_radius_zero_uses_exact_grouping_with_the_same_answer():
    codes = _codes(3, 200, 64)
    fast = range_search(codes, 0)
    slow = HammingBruteForce(codes).range(0)
    assert _triples(fast) == _triples(slow) and len(fast) > 0


def test_equal_index_groups_identical_codes():
    codes = np.array([[1, 2], [3, 4], [1, 2], [1, 2], [5, 6]], dtype=np.uint64)
    pairs = EqualIndex(codes).range()
    assert list(zip(pairs.i.tolist(), pairs.j.tolist())) == [(0, 2), (0, 3), (2, 3)]
    top = EqualIndex(codes).topk(1)
    assert dict(zip(top.i.tolist(), top.j.tolist())) == {0: 2, 2: 0, 3: 0}
    cross = EqualIndex(codes).range(0, queries=np.array([[3, 4], [9, 9]], dtype=np.uint64))
    assert list(zip(cross.i.tolist(), cross.j.tolist())) == [(0, 1)]


def test_block_size_does_not_change_results():
    codes = _codes(4, 300, 64)
    a = HammingBruteForce(codes, block_bytes=1 << 30).range(8)
    b = HammingBruteForce(codes, block_bytes=256).range(8)  # one query row per block
    assert _triples(a) == _triples(b)


def test_dispatch_from_encodings_and_backend_choice():
    codes = _codes(5, 50, 64)
    enc = Encodings([str(k) for k in range(len(codes))], codes, "binary", "hamming", 64)
    assert _triples(range_search(enc, 4, backend="bktree")) == _triples(range_search(codes, 4))
    assert len(topk_search(enc, 2)) == 2 * len(codes)
    assert pick_backend("hamming", 10) == "brute"
    assert pick_backend("hamming", 10**6) == "mih"
    assert isinstance(build_index(codes, backend="bktree"), BKTree)
    with pytest.raises(ValueError, match="unknown hamming backend"):
        build_index(codes, backend="nope")
    with pytest.raises(TypeError, match="uint64"):
        HammingBruteForce(np.zeros((3, 1), np.int32))
