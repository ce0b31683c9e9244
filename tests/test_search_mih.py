"""Multi-index hashing returns exactly the pairs of the brute-force definition, once each."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupbench.records import pack_bits
from dupbench.search import build_index, range_search
from dupbench.search.hamming import hamming_matrix
from dupbench.search.mih import (
    HammingMultiIndex,
    flip_masks,
    has_numba,
    join_tables_numpy,
    varying_positions,
)

KERNELS = ["numpy"] + (["numba"] if has_numba() else [])


def _random_codes(rng, n: int, nbits: int) -> np.ndarray:
    return pack_bits(rng.integers(0, 2, size=(n, nbits)).astype(bool))


def _clustered_codes(rng, n: int, nbits: int) -> np.ndarray:
    """Real codes cluster: a few centres, members 0-6 bits away, exact repeats, and a block of
    bits that hardly ever varies, so substring buckets are very uneven."""
    centres = rng.integers(0, 2, size=(max(1, n // 20), nbits)).astype(bool)
    centres[:, : nbits // 4] = False
    bits = centres[rng.integers(0, len(centres), n)]
    flips = rng.random((n, nbits)) < rng.choice([0.0, 0.01, 0.05], size=(n, 1))
    bits ^= flips
    bits[n // 2 : n // 2 + n // 10] = bits[: n // 10]  # exact repeats
    return pack_bits(bits)


def _definition(queries: np.ndarray | None, refs: np.ndarray, radius: int) -> list[tuple]:
    """(distance, i, j) of every pair within ``radius``: i < j within one collection."""
    d = hamming_matrix(refs if queries is None else queries, refs)
    i, j = np.nonzero(d <= radius)
    if queries is None:
        keep = i < j
        i, j = i[keep], j[keep]
    return sorted(zip(d[i, j].tolist(), i.tolist(), j.tolist()))


def _triples(c) -> list[tuple]:
    return list(zip(c.score.tolist(), c.i.tolist(), c.j.tolist()))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 250),
    nbits=st.sampled_from([64, 256, 100]),
    clustered=st.booleans(),
    radius=st.sampled_from([0, 1, 2, 3, 5, 10, 20, 64, 300]),
    m=st.sampled_from([None, 1, 2, 3, 4, 6, 11, 40]),
    kernel=st.sampled_from(KERNELS),
    cross=st.booleans(),
)
def test_range_equals_the_definition(seed, n, nbits, clustered, radius, m, kernel, cross):
    rng = np.random.default_rng(seed)
    make = _clustered_codes if clustered else _random_codes
    refs = make(rng, n, nbits)
    queries = None
    if cross:  # near copies of some references plus fresh codes
        queries = np.concatenate(
            [
                refs[: n // 3]
                ^ _random_codes(rng, n // 3, nbits)
                & _random_codes(rng, n // 3, nbits)
                & _random_codes(rng, n // 3, nbits),
                make(rng, 5, nbits),
            ]
        )
    index = HammingMultiIndex(refs, kernel=kernel, substrings=m)
    got = index.range(radius, queries=queries)
    assert _triples(got) == _definition(queries, refs, radius)
    assert got.cross == cross
    if not cross:
        assert np.all(got.i < got.j)


def test_forced_plans_really_use_substrings():
    """The property test only proves something about MIH if its plans are not brute force."""
    codes = _random_codes(np.random.default_rng(0), 100, 64)
    for m, radius in [(1, 0), (3, 5), (6, 10), (11, 10)]:
        plan = HammingMultiIndex(codes, substrings=m).plan(radius)
        assert not plan.brute
        assert sum(s.radius + 1 for s in plan.substrings) == radius + 1  # pigeonhole, no slack
        assert sum(s.bits for s in plan.substrings) <= 64


def test_cost_model_uses_substrings_for_small_radii_and_brute_force_for_large():
    codes = _random_codes(np.random.default_rng(1), 100_000, 64)
    index = HammingMultiIndex(codes)
    small = index.plan(10)
    assert not small.brute and all(s.bits <= 22 for s in small.substrings)
    assert index.plan(30).brute  # a third of the bits: nearly every pair is a candidate


def test_constant_bits_are_never_indexed():
    """Padding of short codes and bits no code sets would make one giant bucket."""
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(300, 64)).astype(bool)
    bits[:, 8:40] = True
    codes = pack_bits(np.concatenate([bits, np.zeros((300, 100), bool)], axis=1))
    positions = varying_positions(codes)
    assert len(positions) == 32
    plan = HammingMultiIndex(codes, substrings=4).plan(6)
    assert {p for s in plan.substrings for p in s.positions} <= set(positions.tolist())
    assert _triples(HammingMultiIndex(codes, substrings=4).range(6)) == _definition(None, codes, 6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_bucket_larger_than_the_output_buffer(kernel):
    """1,200 identical codes give 719,400 pairs from one bucket: the join must grow its output."""
    rng = np.random.default_rng(3)
    codes = np.concatenate([np.full((1200, 1), 12345, np.uint64), _random_codes(rng, 300, 64)])
    got = HammingMultiIndex(codes, kernel=kernel, substrings=4).range(3)
    assert _triples(got) == _definition(None, codes, 3)
    assert len(got) >= 1200 * 1199 // 2


def test_registry_builds_it_and_topk_matches_brute_force():
    codes = _clustered_codes(np.random.default_rng(4), 300, 64)
    index = build_index(codes, backend="mih")
    assert isinstance(index, HammingMultiIndex)
    assert _triples(range_search(codes, 8, backend="mih")) == _definition(None, codes, 8)
    top, ref = index.topk(3), build_index(codes, backend="brute").topk(3)
    assert np.array_equal(top.j, ref.j) and np.array_equal(top.score, ref.score)


def test_bad_arguments_get_one_clear_error():
    codes = _random_codes(np.random.default_rng(5), 10, 64)
    with pytest.raises(ValueError, match="words"):
        HammingMultiIndex(codes).range(3, queries=_random_codes(np.random.default_rng(6), 2, 256))
    with pytest.raises(ValueError, match="kernel"):
        HammingMultiIndex(codes, kernel="cuda")
    assert len(HammingMultiIndex(codes).range(-1)) == 0


def test_numpy_join_chunks_do_not_change_results():
    """The numpy join expands candidates a chunk at a time; tiny chunks must give the same pairs."""
    codes = _clustered_codes(np.random.default_rng(7), 400, 64)
    index = HammingMultiIndex(codes, kernel="numpy", substrings=4)
    sub = index.plan(7).substrings[0]
    table = index._table(sub)
    masks = np.r_[np.zeros(1, np.uint64), flip_masks(sub.bits, sub.radius)]
    whole = join_tables_numpy(table, table, masks, True, 7)
    pieces = join_tables_numpy(table, table, masks, True, 7, chunk=5)
    assert len(whole[0]) > 0
    for a, b in zip(whole, pieces):
        assert np.array_equal(a, b)
