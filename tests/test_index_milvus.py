"""The Milvus index backend, through embedded milvus-lite: the same matches as brute force."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymilvus")
milvus_lite = pytest.importorskip("milvus_lite")
#: milvus-lite 3.x, a rewrite, has no BINARY_VECTOR (yet); the [milvus] extra installs 2.x
binary_vectors = pytest.mark.skipif(
    int(milvus_lite.__version__.split(".")[0]) >= 3,
    reason=f"milvus-lite {milvus_lite.__version__} has no BINARY_VECTOR; use 2.4-2.5",
)

from dupbench.errors import UnknownParameterError, UsageError
from dupbench.index import milvus as milvus_module
from dupbench.index.milvus import MilvusBackend, MilvusError
from dupbench.search.cosine import unit_rows


@pytest.fixture()
def open_backend(tmp_path):
    """``open_backend(kind, distance, size, folder=...)``; every backend is closed afterwards."""
    opened = []

    def make(kind, distance, size, folder=None, **options):
        backend = MilvusBackend(folder or tmp_path / "index", kind, distance, size, **options)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def distinct_ids(rng, n: int) -> np.ndarray:
    """Unique int64 ids spread over the whole range (negative ones too), in random order."""
    ids = np.unique(rng.integers(-(2**62), 2**62, 2 * n))[:n]
    return rng.permutation(ids)


def with_near_copies(rng, originals: np.ndarray, nbits: int, max_flips: int) -> np.ndarray:
    """A copy of each code with 0..max_flips random bits flipped."""
    copies = originals.copy()
    for row in copies:
        for bit in rng.choice(nbits, rng.integers(0, max_flips + 1), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return copies


def hamming_reference(codes, ids, query, threshold, k=None):
    """Brute force: numpy popcount of the XOR, best first, ties by id."""
    dist = np.bitwise_count(codes ^ query).sum(axis=1)
    rows = np.flatnonzero(dist <= threshold)
    order = np.lexsort((ids[rows], dist[rows]))[:k]
    return [(int(ids[rows[i]]), float(dist[rows[i]])) for i in order]


@binary_vectors
@pytest.mark.parametrize("nbits, threshold", [(64, 10), (256, 40)])
def test_hamming_queries_match_brute_force(open_backend, nbits, threshold):
    rng = np.random.default_rng(nbits)
    words = nbits // 64
    originals = rng.integers(0, 2**64, (400, words), dtype=np.uint64)
    codes = np.concatenate(
        [originals, with_near_copies(rng, originals[:150], nbits, threshold + 6)]
    )
    ids = distinct_ids(rng, len(codes))
    backend = open_backend("binary", "hamming", nbits)
    backend.add(ids[:300], codes[:300])  # in two batches
    backend.add(ids[300:], codes[300:])
    assert len(backend) == len(codes)
    queries = np.concatenate([originals[:150], codes[-20:]])
    got = backend.query(queries, threshold, None)
    want = [hamming_reference(codes, ids, q, threshold) for q in queries]
    assert got == want
    # the planted copies within the threshold are found, so the test is not vacuous
    assert sum(len(w) > 1 for w in want) > 50
    assert backend.query(queries, threshold, 1) == [w[:1] for w in want]
    far = nbits // 2  # a wide radius: k must keep the k best, ties broken by id
    assert backend.query(queries[:10], far, 3) == [
        hamming_reference(codes, ids, q, far, 3) for q in queries[:10]
    ]


def test_cosine_queries_match_brute_force(open_backend):
    rng = np.random.default_rng(7)
    originals = rng.normal(size=(600, 128)).astype(np.float32)
    copies = originals[:200] + rng.normal(scale=0.15, size=(200, 128)).astype(np.float32)
    vectors = np.concatenate([originals, copies]) * rng.uniform(0.5, 3, (800, 1))  # any norm
    ids = distinct_ids(rng, len(vectors))
    backend = open_backend("float", "cosine", 128)
    backend.add(ids, vectors.astype(np.float32))
    unit = unit_rows(vectors)
    queries = vectors[:200]
    got = backend.query(queries, 0.9, None)
    for q, hits in zip(unit_rows(queries), got):
        sims = unit @ q
        rows = np.flatnonzero(sims >= 0.9)
        assert {i for i, _ in hits} == set(ids[rows].tolist())
        assert len(hits) >= 2  # itself and its planted copy
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        np.testing.assert_allclose(
            [s for _, s in hits], [sims[np.flatnonzero(ids == i)[0]] for i, _ in hits], atol=1e-5
        )
    top = backend.query(queries[:20], -1.0, 5)
    for q, hits in zip(unit_rows(queries[:20]), top):
        assert [i for i, _ in hits] == ids[np.argsort(-(unit @ q), kind="stable")[:5]].tolist()


@binary_vectors
def test_exact_digests_find_identical_codes_only(open_backend):
    rng = np.random.default_rng(3)
    digests = rng.integers(0, 2**64, (50, 4), dtype=np.uint64)
    codes = np.concatenate([digests, digests[:10], digests[:3]])
    ids = np.arange(len(codes), dtype=np.int64) * 7
    backend = open_backend("exact", "equal", 256)
    backend.add(ids, codes)
    nearly = digests[:1].copy()
    nearly[0, 3] ^= np.uint64(1)  # one bit off is a different file
    got = backend.query(np.concatenate([digests[:2], digests[20:21], nearly]), 0, None)
    assert got == [
        [(0, 0.0), (350, 0.0), (420, 0.0)],
        [(7, 0.0), (357, 0.0), (427, 0.0)],
        [(140, 0.0)],
        [],
    ]


@binary_vectors
def test_add_replaces_remove_forgets_and_a_reopened_backend_keeps_its_rows(open_backend, tmp_path):
    codes = np.array([[1], [2], [3]], np.uint64)
    backend = open_backend("binary", "hamming", 64)
    backend.add(np.array([10, 11, 12]), codes)
    backend.add(np.array([11, 11]), np.array([[7], [1 << 40]], np.uint64))  # the last one wins
    assert len(backend) == 3
    assert backend.query(np.array([[1 << 40]], np.uint64), 0, None) == [[(11, 0.0)]]
    backend.remove(np.array([10, 999]))
    assert len(backend) == 2
    ids, stored = backend.items()
    assert ids.tolist() == [11, 12] and stored.tolist() == [[1 << 40], [3]]
    name = backend.collection
    backend.close()
    again = open_backend("binary", "hamming", 64)
    assert again.collection == name and len(again) == 2
    assert again.query(np.array([[2]], np.uint64), 1, None) == [[(12, 1.0)]]
    with pytest.raises(MilvusError, match="another collection"):
        open_backend("binary", "hamming", 256)
    with pytest.raises(UsageError, match="do not fit"):
        again.query(np.zeros((1, 4), np.uint64), 3, None)
    with pytest.raises(UnknownParameterError, match="'uri'"):
        open_backend("binary", "hamming", 64, folder=tmp_path / "other", ur="http://x")


@binary_vectors
def test_results_beyond_one_search_are_fetched_in_parts(open_backend, monkeypatch):
    monkeypatch.setattr(milvus_module, "MAX_TOPK", 40)  # Milvus's cap is 16384: force splits
    rng = np.random.default_rng(11)
    code = rng.integers(0, 2**64, (1, 1), dtype=np.uint64)
    codes = np.concatenate(
        [
            np.repeat(code, 300, axis=0),
            with_near_copies(rng, np.repeat(code, 200, axis=0), 64, 5),
            rng.integers(0, 2**64, (100, 1), dtype=np.uint64),
        ]
    )
    ids = distinct_ids(rng, len(codes))
    backend = open_backend("binary", "hamming", 64)
    backend.add(ids, codes)
    (got,) = backend.query(code, 5, None)
    assert len(got) >= 500
    assert got == hamming_reference(codes, ids, code[0], 5)
    for k in (30, 45, 450):  # k under the cap (ties at the 30th), k over it
        assert backend.query(code, 5, k) == [hamming_reference(codes, ids, code[0], 5, k)]
    stored_ids, stored = backend.items()
    order = np.argsort(ids)
    assert stored_ids.tolist() == ids[order].tolist()
    np.testing.assert_array_equal(stored, codes[order])


@binary_vectors
@pytest.mark.slow
def test_more_identical_codes_than_milvus_returns_at_once(open_backend):
    n = milvus_module.MAX_TOPK + 1000
    codes = np.full((n, 1), 12345, np.uint64)
    backend = open_backend("binary", "hamming", 64)
    backend.add(np.arange(n), codes)
    got = backend.query(codes[:1], 0, None)[0]
    assert [i for i, _ in got] == list(range(n))
    assert backend.query(codes[:1], 0, 3) == [[(0, 0.0), (1, 0.0), (2, 0.0)]]


@binary_vectors
def test_closing_the_last_backend_stops_the_milvus_lite_server(tmp_path):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    first = MilvusBackend(tmp_path, "binary", "hamming", 64)
    second = MilvusBackend(tmp_path, "binary", "hamming", 64)  # shares the server
    started = {p.pid for p in me.children(recursive=True)} - before
    assert len(started) == 1
    first.close()
    assert len(second) == 0  # still served
    second.close()
    second.close()  # closing twice is harmless
    (server,) = started
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize(
    "kind, distance, size, threshold",
    [
        pytest.param("binary", "hamming", 64, 12, marks=binary_vectors),
        pytest.param("binary", "hamming", 256, 50, marks=binary_vectors),
        pytest.param("exact", "equal", 256, 0, marks=binary_vectors),
        ("float", "cosine", 128, 0.8),
    ],
)
def test_the_same_matches_as_the_local_backend(
    open_backend, tmp_path, kind, distance, size, threshold
):
    local_module = pytest.importorskip("dupbench.index.local")  # the Index's own backend
    rng = np.random.default_rng(size)
    if kind == "float":
        originals = rng.normal(size=(300, size)).astype(np.float32)
        copies = originals[:100] + rng.normal(scale=0.3, size=(100, size)).astype(np.float32)
    else:
        originals = rng.integers(0, 2**64, (300, size // 64), dtype=np.uint64)
        copies = with_near_copies(rng, originals[:100], size, 0 if kind == "exact" else 16)
    codes = np.concatenate([originals, copies])
    ids = distinct_ids(rng, len(codes))
    milvus = open_backend(kind, distance, size)
    local = local_module.LocalBackend(tmp_path / "local", kind, distance, size)
    try:
        for backend in (milvus, local):
            backend.add(ids[:250], codes[:250])
            backend.add(ids[250:], codes[250:])
            backend.remove(ids[:5])
        for k in (None, 2):
            want = local.query(codes[:120], threshold, k)
            got = milvus.query(codes[:120], threshold, k)
            assert sum(len(w) for w in want) > 120  # planted copies found, not only selves
            if kind != "float":
                assert got == want
                continue
            for g, w in zip(got, want):
                assert [i for i, _ in g] == [i for i, _ in w]
                np.testing.assert_allclose([s for _, s in g], [s for _, s in w], atol=1e-5)
        assert len(milvus) == len(local) == len(codes) - 5
    finally:
        local.close()


@binary_vectors
def test_a_second_process_on_a_milvus_lite_file_gets_one_line(open_backend, tmp_path):
    import subprocess
    import sys

    open_backend("binary", "hamming", 64)  # this process serves the file now
    code = (
        "from dupbench.index.milvus import MilvusBackend, MilvusError\n"
        "try:\n"
        f"    MilvusBackend({str(tmp_path / 'index')!r}, 'binary', 'hamming', 64)\n"
        "except MilvusError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert "milvus-lite serves one process at a time" in out.stdout, out.stderr[-2000:]


@binary_vectors
@pytest.mark.parametrize(
    "method, params, threshold",
    [("phash", {}, 10), ("dhash", {"hash_size": 16}, 40), ("file_digest", {}, 0)],
)
def test_an_index_in_milvus_answers_as_a_local_index(
    planted_dir, tmp_path, method, params, threshold
):
    index_module = pytest.importorskip("dupbench.index.index")
    files = sorted(planted_dir["dir"].iterdir())
    answers = {}
    for backend in ("local", "milvus"):
        with index_module.Index.create(
            tmp_path / backend, method, backend=backend, **params
        ) as index:
            added = [index.add(files[:5]).summary(), index.add(files[5:]).summary()]
            found = [
                [(m.name, m.score) for m in index.query(f, threshold=threshold)]
                for f in files
                if f.name not in planted_dir["bad"]
            ]
            best = [
                [m.name for m in index.query(f, threshold=64, k=2)]
                for f in files
                if f.name not in planted_dir["bad"]
            ]
            index.remove([1])
            answers[backend] = (
                added,
                found,
                best,
                len(index),
                index.find_duplicates(threshold=threshold, scores=True),
            )
    assert answers["milvus"] == answers["local"]
    if method != "file_digest":  # every planted copy is found from its original
        names = {
            f.name: k for k, f in enumerate(f for f in files if f.name not in planted_dir["bad"])
        }
        for a, b in planted_dir["pairs"]:
            assert any(n.endswith(b) for n, _ in answers["local"][1][names[a]])
