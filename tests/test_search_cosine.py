"""Cosine search: exact flat search against brute force, tiling independence, bounded memory,
approximate backends' recall, and input validation."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest

from dupbench.search.cosine import CosineIndex, unit_rows


def clustered(n: int, d: int, seed: int = 0, dup_fraction: float = 0.3) -> np.ndarray:
    """Random unit vectors where a fraction are noisy copies of others, so pairs exist at 0.9."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    m = int(n * dup_fraction)
    src = rng.integers(0, n - m, m)
    x[n - m :] = x[src] + rng.normal(0, 0.25, (m, d)).astype(np.float32)
    return unit_rows(x)


def brute_pairs(x: np.ndarray, t: float, q: np.ndarray | None = None) -> dict:
    sims = (x if q is None else q) @ x.T
    i, j = np.nonzero(sims >= t)
    if q is None:
        keep = j > i
        i, j = i[keep], j[keep]
    return {(a, b): sims[a, b] for a, b in zip(i.tolist(), j.tolist())}


def as_dict(c) -> dict:
    return {(a, b): s for a, b, s in zip(c.i.tolist(), c.j.tolist(), c.score.tolist())}


def test_flat_range_equals_brute_force_pairs_and_scores():
    x = clustered(700, 24)
    found = CosineIndex(x, query_block=64, ref_block=200).range(0.9)
    truth = brute_pairs(x, 0.9)
    assert len(truth) > 50
    assert set(as_dict(found)) == set(truth)
    got = as_dict(found)
    assert np.allclose([got[p] for p in truth], list(truth.values()), atol=1e-5)
    assert np.all(found.i < found.j) and not found.cross


def test_flat_range_is_sorted_best_first_then_by_pair():
    found = CosineIndex(clustered(400, 16, seed=3)).range(0.8)
    s = found.score.astype(np.float64)
    assert np.all(np.diff(s) <= 0)
    same = np.diff(s) == 0
    keys = found.i * 10_000 + found.j
    assert np.all(np.diff(keys)[same] > 0)


def test_flat_range_across_collections_matches_brute_force():
    x = clustered(500, 20, seed=1)
    q = unit_rows(x[:120] + np.random.default_rng(9).normal(0, 0.05, (120, 20)).astype(np.float32))
    found = CosineIndex(x, query_block=50, ref_block=128).range(0.85, queries=q)
    assert found.cross
    assert set(as_dict(found)) == set(brute_pairs(x, 0.85, q))
    assert len(found) >= 120  # every query matches at least its own source row


@pytest.mark.parametrize("qb, rb", [(1, 7), (33, 33), (100, 1000), (5000, 5000)])
def test_flat_results_do_not_depend_on_the_tiling(qb, rb):
    x = clustered(300, 12, seed=2)
    ref = CosineIndex(x, query_block=64, ref_block=64)
    idx = CosineIndex(x, query_block=qb, ref_block=rb)
    a, b = ref.range(0.7), idx.range(0.7)
    assert np.array_equal(a.i, b.i) and np.array_equal(a.j, b.j)
    assert np.allclose(a.score, b.score, atol=1e-6)
    ta, tb = ref.topk(5), idx.topk(5)
    assert np.array_equal(ta.i, tb.i) and np.array_equal(ta.j, tb.j)


def test_flat_topk_equals_brute_force_ranking():
    x = clustered(400, 16, seed=4)
    k = 6
    found = CosineIndex(x, query_block=37, ref_block=91).topk(k)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expect = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    assert found.cross and len(found) == 400 * k
    assert np.array_equal(found.i, np.repeat(np.arange(400), k))
    assert np.array_equal(found.j.reshape(400, k), expect)
    assert np.all(found.j != found.i)


def test_topk_across_collections_and_k_larger_than_n():
    x = clustered(50, 8, seed=5)
    found = CosineIndex(x).topk(100, queries=x[:3])
    assert len(found) == 3 * 50  # clamped to the number of references; self is allowed across
    assert np.array_equal(found.j[::50], [0, 1, 2])  # identical vector is each query's best
    assert len(CosineIndex(x).topk(100)) == 50 * 49


def test_unnormalised_float16_input_gives_cosine_scores():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((200, 32)) * rng.uniform(0.1, 50, (200, 1))
    x[[10, 20]] = x[[5, 5]] * [[3.0], [0.2]]  # same direction, different lengths
    found = CosineIndex(x.astype(np.float16)).range(0.999)
    assert {(5, 10), (5, 20), (10, 20)} <= set(as_dict(found))
    assert np.all(found.score <= 1.0 + 1e-3)


def test_zero_rows_have_similarity_zero_to_everything():
    x = clustered(100, 8)
    x[7] = 0
    found = CosineIndex(x).range(0.0)
    with_7 = (found.i == 7) | (found.j == 7)
    assert with_7.sum() == 99 and np.all(found.score[with_7] == 0)
    assert not np.any(np.isin([7], CosineIndex(x).range(0.01).i))


def test_unit_float32_input_is_not_copied():
    x = clustered(100, 8)
    assert CosineIndex(x).vectors is x


def test_flat_range_memory_is_linear_not_quadratic():
    n, d = 20_000, 16
    x = clustered(n, d, seed=7, dup_fraction=0.01)
    index = CosineIndex(x, query_block=256, ref_block=2048)
    tracemalloc.start()
    found = index.range(0.95)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(found) >= 150
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB; an N×N matrix would be {n * n * 4 / 1e9:.1f} GB"


@pytest.mark.parametrize(
    "backend, params", [("hnsw", {"M": 16, "ef_search": 64}), ("ivf", {"nlist": 16, "nprobe": 4})]
)
def test_approximate_backends_have_high_recall(backend, params):
    pytest.importorskip("faiss")
    x = clustered(2000, 32, seed=8)
    exact = set(as_dict(CosineIndex(x).range(0.9)))
    approx = CosineIndex(x, backend, **params).range(0.9)
    got = set(as_dict(approx))
    assert len(exact) > 200
    assert len(got & exact) / len(exact) >= 0.9 and got <= exact
    assert np.all(approx.i < approx.j)
    assert np.all(approx.score >= 0.9 - 1e-5)
    top = CosineIndex(x, backend, **params).topk(1)
    truth = CosineIndex(x).topk(1)
    assert np.all(top.i != top.j)
    has_duplicate = truth.score >= 0.9  # the rest have only random, interchangeable neighbours
    assert np.mean(top.j[has_duplicate] == truth.j[has_duplicate]) >= 0.95


def test_approximate_range_across_collections():
    pytest.importorskip("faiss")
    x = clustered(1000, 16, seed=10)
    found = CosineIndex(x, "ivf", nlist=8, nprobe=8).range(0.9, queries=x[:50])
    assert found.cross
    assert set(as_dict(found)) == set(brute_pairs(x, 0.9, x[:50]))  # nprobe = nlist: exhaustive


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"dupbench\[faiss\]"):
        CosineIndex(clustered(50, 4), "hnsw")
    assert len(CosineIndex(clustered(50, 4), "flat").range(0.5)) > 0  # flat needs no faiss


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(5), "2-D"),
        (np.full((3, 2), np.nan), "NaN"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_bad_vectors_are_rejected_clearly(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CosineIndex(bad)


def test_bad_arguments_are_rejected_clearly():
    index = CosineIndex(clustered(20, 4))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        index.range(1.5)
    with pytest.raises(ValueError, match="dimension"):
        index.range(0.5, queries=np.ones((2, 5)))
    with pytest.raises(ValueError, match="backend"):
        CosineIndex(clustered(20, 4), "annoy")
    with pytest.raises(ValueError, match="k must"):
        index.topk(0)


def test_empty_collection():
    index = CosineIndex(np.zeros((0, 8), np.float32))
    assert len(index.range(0.5)) == 0 and len(index.topk(3)) == 0


@pytest.mark.parametrize("backend", ["hnsw", "ivf"])
def test_faiss_backends_keep_pairs_exactly_at_the_threshold(backend):
    """FAISS keeps similarities strictly above its radius; exact copies at t = 1.0 must stay."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[10] = x[5]
    x[200] = x[100]
    found = CosineIndex(x, backend=backend, nlist=4, nprobe=4).range(1.0)
    pairs = set(zip(found.i.tolist(), found.j.tolist()))
    assert {(5, 10), (100, 200)} <= pairs
    assert np.all(found.score >= np.float32(1.0))


def cnn_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Non-negative, unnormalised rows in groups of ~10 around class-correlated centres (like
    pooled ReLU CNN features), noise varying by group so pairs fall on both sides of 0.9."""
    rng = np.random.default_rng(seed)
    groups = n // 10
    classes = rng.standard_normal((20, d))
    centres = 0.6 * rng.standard_normal((groups, d)) + 0.8 * classes[rng.integers(0, 20, groups)]
    noise = rng.uniform(0.05, 0.5, groups)
    g = rng.integers(0, groups, n)
    x = np.maximum(centres[g] + noise[g, None] * rng.standard_normal((n, d)), 0)
    return (x * rng.lognormal(0, 0.3, (n, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def clustered_20k():
    x = cnn_like(20_000, 64, seed=11)
    return x, set(as_dict(CosineIndex(x).range(0.9)))


@pytest.mark.parametrize("backend", ["ivf", "hnsw"])
def test_auto_tuned_approximate_range_finds_99_percent_of_exact_pairs(clustered_20k, backend):
    pytest.importorskip("faiss")
    x, exact = clustered_20k
    index = CosineIndex(x, backend)  # nlist / M defaults, nprobe / ef_search calibrated
    got = set(as_dict(index.range(0.9)))
    assert len(exact) > 20_000
    assert len(got & exact) / len(exact) >= 0.99
    assert len(got - exact) <= len(exact) * 1e-4  # only float rounding at the threshold
    tuned = index.tuning[0.9]
    assert tuned["sample_recall"] >= 0.995 and tuned["sample_pairs"] >= 50


def test_calibration_picks_more_probes_for_a_lower_threshold(clustered_20k):
    pytest.importorskip("faiss")
    x, _ = clustered_20k
    index = CosineIndex(x, "ivf")
    index.range(0.95)
    index.range(0.8)
    assert index.tuning[0.8]["value"] >= index.tuning[0.95]["value"]
    assert set(index.tuning) == {0.95, 0.8}


def test_fixed_nprobe_is_not_calibrated():
    pytest.importorskip("faiss")
    index = CosineIndex(clustered(1000, 16), "ivf", nlist=8, nprobe=3)
    index.range(0.9)
    assert index.tuning == {} and index._index.nprobe == 3


def test_auto_backend_is_exact_below_the_size_limit_and_ivf_above(monkeypatch):
    from dupbench.search import COSINE_APPROX_MIN, mih, pick_backend

    assert pick_backend("cosine", COSINE_APPROX_MIN - 1) == "flat"
    monkeypatch.setattr(mih, "has_faiss", lambda: True)
    assert pick_backend("cosine", COSINE_APPROX_MIN) == "ivf"
    monkeypatch.setattr(mih, "has_faiss", lambda: False)
    assert pick_backend("cosine", 10**7) == "flat"
    assert pick_backend("cosine", 10**7, "hnsw") == "hnsw"


def test_normalising_copies_once_or_works_in_place():
    x = cnn_like(300, 16)
    before = x.copy()
    y = unit_rows(x)
    assert np.array_equal(x, before) and not np.shares_memory(x, y)
    assert np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-5)
    z = unit_rows(x, copy=False)
    assert z is x and np.allclose(x, y)
    h = unit_rows(before.astype(np.float16))  # the float32 conversion is the one copy
    assert h.dtype == np.float32 and np.allclose(h, y, atol=2e-3)


_MEMORY_PROBE = """
import numpy as np
from dupbench.search.cosine import CosineIndex
x = np.abs(np.random.default_rng(0).standard_normal((36_000, 256), dtype=np.float32)) + 0.1
x[18_000:] = x[:18_000] * 2  # unnormalised, with 18k pairs at similarity 1
x = x.astype(np.float16)  # as a float16 store gives them: converting is the one allowed copy
# (arrays above glibc's 32 MB mmap threshold: freed memory leaves RSS, the baseline is honest)
index_args = dict(query_block=256, ref_block=2048)
def rss(field):
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(field))
CosineIndex(x[:500], **index_args).range(0.9)  # warm up BLAS and the allocator
open('/proc/self/clear_refs', 'w').write('5')
before = rss('VmRSS')
found = CosineIndex(x, **index_args).range(0.99)
print(rss('VmHWM') - before, x.size * 4, len(found))
"""


def test_exact_search_peak_memory_is_at_most_one_more_copy_of_the_vectors():
    """Whole-process peak RSS above the baseline: one float32 copy, one tile, the pairs."""
    import os
    import subprocess

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    extra, vectors, pairs = map(int, out.stdout.split())
    assert pairs >= 18_000
    tile = 5 * 256 * 2048
    assert extra <= vectors + tile + pairs * 40 + 8e6, f"{extra / 1e6:.0f} MB above the baseline"
