"""Big duplicate groups: identical codes collapse into classes, and every output computed from the
classes equals the one computed from every pair, in memory that grows like N, not N²."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dupbench.duplicates import DuplicateMap, DuplicateResult
from dupbench.files import write_json
from dupbench.records import Candidates, GroupedCandidates, pack_bits
from dupbench.search import range_groups, range_search

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "big_groups.py"


def codes_with_repeats(seed: int, n: int = 240, bases: int = 30) -> np.ndarray:
    """64-bit codes drawn with replacement from a few bases and their 1–4-bit variants: many
    identical rows, and near rows at several distances."""
    rng = np.random.default_rng(seed)
    base = rng.random((bases, 64)) < 0.5
    variants = [base]
    for flips in (1, 2, 4):
        v = base.copy()
        for row in v:
            row[rng.choice(64, flips, replace=False)] ^= True
        variants.append(v)
    pool = pack_bits(np.concatenate(variants))
    return pool[rng.integers(0, len(pool), n)]


def names_for(n: int, seed: int) -> list[str]:
    """Ids whose name order differs from their index order (ties are broken by name)."""
    return [f"img_{k:04d}.png" for k in np.random.default_rng(seed).permutation(n)]


def arrays(c: Candidates) -> tuple:
    return c.i.tolist(), c.j.tolist(), c.score.tolist(), c.distance


# -- reference implementations over plain pairs: what the outputs mean -------------------------


def reference_map(ids: list[str], pairs: Candidates, scores: bool) -> dict:
    out: dict[str, list] = {k: [] for k in ids}
    sign = -1 if pairs.higher_is_better else 1
    for a, b, s in zip(pairs.i.tolist(), pairs.j.tolist(), pairs.score.tolist()):
        out[ids[a]].append((sign * s, ids[b], s))
        out[ids[b]].append((sign * s, ids[a], s))
    return {k: [(n, s) if scores else n for _, n, s in sorted(v)] for k, v in out.items()}


def reference_groups(ids: list[str], pairs: Candidates) -> list[list[str]]:
    parent = list(range(len(ids)))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(pairs.i.tolist(), pairs.j.tolist()):
        parent[root(a)] = root(b)
    comps: dict[int, list[str]] = {}
    for k in range(len(ids)):
        comps.setdefault(root(k), []).append(ids[k])
    return sorted((sorted(g) for g in comps.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def reference_to_remove(ids: list[str], pairs: Candidates) -> list[str]:
    """imagededup's greedy: by name, a file not yet marked keeps itself and marks its duplicates."""
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(pairs.i.tolist(), pairs.j.tolist()):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    removed: set[int] = set()
    for k in sorted(neighbours, key=lambda k: ids[k]):
        if k not in removed:
            removed |= neighbours[k]
    return sorted(ids[k] for k in removed)


# -- the grouped search gives exactly the plain search's pairs ---------------------------------


@pytest.mark.parametrize("radius", [0, 1, 2, 5, 10])
@pytest.mark.parametrize("backend", ["brute", "bktree", "auto"])
def test_range_groups_expands_to_range_search(radius, backend):
    codes = codes_with_repeats(seed=radius)
    grouped = range_groups(codes, radius, "hamming", backend=backend)
    plain = range_search(codes, radius, "hamming", backend=backend)
    assert grouped.n_classes < len(codes)  # identical codes did collapse
    assert len(grouped) == len(plain)
    assert arrays(grouped.expand()) == arrays(plain)


def test_range_groups_for_digests_and_cosine():
    codes = codes_with_repeats(seed=7)
    grouped = range_groups(codes, 0, "equal")
    assert len(grouped.between) == 0 and grouped.n_classes == len(np.unique(codes, axis=0))
    assert arrays(grouped.expand()) == arrays(range_search(codes, 0, "equal"))
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    vectors = np.concatenate([vectors, vectors[:10]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    grouped = range_groups(vectors, 0.5, "cosine")
    assert grouped.n_classes == len(vectors)  # similarities are computed, never assumed
    assert arrays(grouped.expand()) == arrays(range_search(vectors, 0.5, "cosine"))


def test_range_groups_edge_cases():
    codes = codes_with_repeats(seed=3, n=20)
    assert len(range_groups(codes, -1, "hamming")) == 0  # below 0 not even identical codes pair
    assert len(range_groups(codes[:0], 4, "hamming")) == 0
    with pytest.raises(ValueError, match="unknown hamming backend"):
        range_groups(codes, 0, "hamming", backend="nope")
    with pytest.raises(ValueError, match="outside"):
        GroupedCandidates(np.zeros(3), Candidates([0], [1], [2], "hamming"))
    with pytest.raises(ValueError, match="one member"):
        GroupedCandidates(np.zeros(2), Candidates.empty("cosine"))


# -- every output from the classes equals the reference over every pair ------------------------


@pytest.mark.parametrize("radius", [0, 3, 8])
def test_duplicate_result_from_classes_equals_the_reference(radius):
    codes = codes_with_repeats(seed=10 + radius)
    ids = names_for(len(codes), seed=radius)
    plain = range_search(codes, radius, "hamming")
    for result in (
        DuplicateResult(ids, range_groups(codes, radius, "hamming")),
        DuplicateResult(ids, plain),
    ):
        assert dict(result.to_map(scores=True)) == reference_map(ids, plain, scores=True)
        assert dict(result.to_map()) == reference_map(ids, plain, scores=False)
        assert result.groups() == reference_groups(ids, plain)
        assert result.to_remove("first") == reference_to_remove(ids, plain)
        summary = result.summary()
        assert summary["pairs"] == len(plain)
        assert summary["files_in_groups"] == sum(map(len, reference_groups(ids, plain)))


def test_cosine_scores_are_floats_best_first():
    pairs = Candidates([0, 0, 1], [1, 2, 2], np.array([0.95, 0.99, 0.91], np.float32), "cosine")
    dups = DuplicateResult(["a", "b", "c"], pairs).to_map(scores=True)
    assert [n for n, _ in dups["a"]] == ["c", "b"]
    assert all(isinstance(s, float) for v in dups.values() for _, s in v)
    assert dups == reference_map(["a", "b", "c"], pairs, scores=True)


def test_duplicate_map_behaves_like_the_dict(tmp_path):
    codes = codes_with_repeats(seed=5, n=60)
    ids = names_for(len(codes), seed=5)
    result = DuplicateResult(ids, range_groups(codes, 4, "hamming"))
    expected = reference_map(ids, range_search(codes, 4, "hamming"), scores=True)
    dups = result.to_map(scores=True)
    assert isinstance(dups, DuplicateMap)
    assert list(dups) == ids and len(dups) == len(ids)
    assert dups == expected and expected == dups and dups != {**expected, "other": []}
    assert dict(dups.items()) == expected and ids[0] in dups and "other" not in dups
    assert dups.get("other") is None
    with pytest.raises(KeyError):
        dups["other"]
    assert repr(dups) == repr(expected)
    out = result.write_map(tmp_path / "dups.json")
    stored = json.loads(out.read_text())
    assert stored == {k: [list(x) for x in v] for k, v in expected.items()}
    assert list(stored) == sorted(ids)
    write_json(tmp_path / "via_write_json.json", dups)  # a lazy map is streamed the same way
    assert (tmp_path / "via_write_json.json").read_bytes() == out.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary file left


def test_empty_map_is_written_as_an_empty_object(tmp_path):
    result = DuplicateResult([], Candidates.empty("hamming"))
    assert dict(result.to_map()) == {} and result.groups() == [] and result.to_remove() == []
    assert json.loads(result.write_map(tmp_path / "e.json").read_text()) == {}


# -- the memory bound ------------------------------------------------------------------------


def load_benchmark():
    spec = importlib.util.spec_from_file_location("big_groups", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_five_thousand_identical_files_stay_under_300_mb(tmp_path):
    """Each scenario in a fresh process: its peak RSS (and its workers') stays under 300 MB,
    where listing the 12.5 M pairs took 3 GB (API) and 9 GB (``find -o``)."""
    bench = load_benchmark()
    count = 5000
    folder = tmp_path / "images"
    bench.make_identical_pngs(folder, count)
    for key in ("api_digest", "api_phash", "cli"):
        out = tmp_path / f"{key}.json"
        command = [a.format(dir=folder, out=out) for a in bench.SCENARIOS[key][1]]
        rss, _, stdout = bench.peak_rss_mb(command)
        assert rss < 300, f"{key}: peak RSS {rss:.0f} MB"
        if key != "cli":
            assert int(stdout) == count * (count - 1)  # every file lists every other one
        with out.open() as f:  # one line per file: check one without loading the whole file
            assert f.readline() == "{\n"
            ((name, dups),) = json.loads("{" + f.readline().rstrip(",\n") + "}").items()
        expected = sorted(set(folder_names(folder)) - {name})
        assert [d[0] if key == "cli" else d for d in dups] == expected
        out.unlink()


def folder_names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]
