"""DistanceKind.EUCLIDEAN and its exact search: direction, thresholds, brute-force agreement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dupbench.distance import DistanceKind
from dupbench.search import build_index, pick_backend, range_groups, range_search, topk_search

L2 = DistanceKind.EUCLIDEAN


def brute_pairs(x: np.ndarray, t: float) -> dict[tuple[int, int], float]:
    return {
        (i, j): float(np.linalg.norm(x[i].astype(np.float64) - x[j]))
        for i, j in itertools.combinations(range(len(x)), 2)
        if np.linalg.norm(x[i].astype(np.float64) - x[j]) <= t
    }


def test_kind_reads_as_a_distance():
    assert DistanceKind("euclidean") is L2 and str(L2) == "euclidean"
    assert not L2.higher_is_closer and not L2.discrete and L2.graded
    assert L2.threshold_name == "max_distance_threshold"
    assert L2.threshold_form.format(3) == "L2 ≤ 3"
    assert L2.within(np.array([2.0, 3.0, 3.5]), 3.0).tolist() == [True, True, False]
    assert L2.default_sweep_to(42) == 10.0
    assert pick_backend(L2, 10**6) == "euclidean"
    with pytest.raises(ValueError, match="euclidean"):
        pick_backend(L2, 10, "hnsw")


def test_range_equals_brute_force_in_tiles():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 42)).astype(np.float32)
    x[7] = x[3]  # identical codes score exactly 0
    expected = brute_pairs(x, 8.0)
    for blocks in ({}, {"query_block": 17, "ref_block": 29}):
        found = build_index(x, L2, **blocks).range(8.0)
        assert found.distance is L2 and found.score.dtype == np.float32
        got = {(int(i), int(j)): float(s) for i, j, s in zip(found.i, found.j, found.score)}
        assert got.keys() == expected.keys()
        assert np.allclose([got[k] for k in expected], list(expected.values()), rtol=1e-6)
        assert np.all(np.diff(found.score) >= 0)  # closest first
    assert got[(3, 7)] == 0.0
    grouped = range_groups(x, 8.0, L2).expand()
    assert {(int(i), int(j)) for i, j in zip(grouped.i, grouped.j)} == expected.keys()


def test_cross_queries_and_topk():
    rng = np.random.default_rng(1)
    refs, queries = rng.normal(size=(50, 5)), rng.normal(size=(9, 5))
    found = range_search(refs, 1.5, L2, queries=queries)
    dist = np.linalg.norm(queries[:, None] - refs[None], axis=2)
    assert {(int(i), int(j)) for i, j in zip(found.i, found.j)} == set(
        zip(*np.nonzero(dist <= 1.5))
    )
    top = topk_search(refs, 3, L2, queries=queries)
    assert np.array_equal(top.j.reshape(9, 3), np.argsort(dist, axis=1)[:, :3])
    own = topk_search(refs, 2, L2)
    assert not np.any(own.i == own.j) and len(own) == 100


def test_local_index_queries_by_l2(tmp_path):
    """A persistent index of colour moment codes answers by L2 distance, closest first."""
    from methods_fixtures import half_size, photo

    from dupbench import Index

    files = []
    for name in ("astronaut", "camera", "coffee"):
        photo(name).save(tmp_path / f"{name}.png")
        files.append(str(tmp_path / f"{name}.png"))
    index = Index.create(tmp_path / "ix", "color_moment")
    index.add(files)
    matches = index.query(half_size(photo("camera")))
    assert [m.name for m in matches] == [str((tmp_path / "camera.png").resolve())]
    assert 0 < matches[0].score <= 3.0 and isinstance(matches[0].score, float)
    nearest = index.query(photo("coffee"), threshold=1e6, k=2)
    assert nearest[0].score == 0.0 and nearest[1].score > 0
    assert len(index.find_duplicates(threshold=1e6)) == 3


def test_topk_merges_reference_tiles():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    small = build_index(x, L2, query_block=7, ref_block=5).topk(4)
    whole = build_index(x, L2).topk(4)
    assert np.array_equal(small.i, whole.i) and np.array_equal(small.j, whole.j)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2) + np.diag(np.full(40, np.inf))
    assert np.array_equal(whole.j.reshape(40, 4), np.argsort(dist, axis=1)[:, :4])


def test_milvus_backend_refuses_l2_codes(tmp_path):
    pytest.importorskip("pymilvus")  # the milvus extra; CI installs it in a later step
    from dupbench.errors import UsageError
    from dupbench.index.milvus import MilvusBackend

    with pytest.raises(UsageError, match="local"):
        MilvusBackend(tmp_path, "float", L2, 42)
