"""Ground-truth formats round-trip, and every validation error is reported clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dupbench.datasets import (
    Dataset,
    DatasetError,
    GroundTruth,
    TruthError,
    read_truth,
    write_truth,
)
from dupbench.datasets.formats import (
    detect_format,
    read_id_pairs,
    read_imagededup_json,
    read_pairs_csv,
)

IDS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]


@pytest.fixture()
def truth() -> GroundTruth:
    # a-b-c a clique (exact + near), d-e similar: transitive per level set
    return GroundTruth([[1, 0], [0, 2], [1, 2], [3, 4]], ["exact", "near", "near", "similar"])


def test_ground_truth_normalises_pairs_and_keeps_strongest_level():
    t = GroundTruth([[2, 1], [1, 2], [0, 3]], ["near", "exact", "similar"])
    assert t.pairs.tolist() == [[0, 3], [1, 2]]
    assert list(t.levels) == ["similar", "exact"]


@pytest.mark.parametrize("fmt,suffix", [("pairs", ".csv"), ("qrels", ".qrels")])
def test_levelled_formats_round_trip_exactly(tmp_path, truth, fmt, suffix):
    path = write_truth(truth, IDS, tmp_path / f"t{suffix}", fmt)
    back = read_truth(path, IDS, fmt)
    assert back.pairs.tolist() == truth.pairs.tolist()
    assert list(back.levels) == list(truth.levels)


def test_imagededup_json_round_trips_pairs_and_is_symmetric(tmp_path, truth):
    path = write_truth(truth, IDS, tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert set(data) == set(IDS)
    assert sorted(data["a.jpg"]) == ["b.jpg", "c.jpg"] and data["d.jpg"] == ["e.jpg"]
    back = read_truth(path, IDS)
    assert back.pairs.tolist() == truth.pairs.tolist()
    assert set(back.levels) == {"near"}  # the format has no levels


def test_groups_csv_round_trips_transitive_truth(tmp_path, truth):
    near = truth.select(["exact", "near"])
    path = write_truth(near, IDS, tmp_path / "g.csv", "groups")
    assert path.read_text().splitlines()[0] == "id,group"
    back = read_truth(path, IDS)  # detected as groups from the header
    assert back.pairs.tolist() == near.pairs.tolist()


def test_groups_csv_refuses_non_transitive_truth(tmp_path):
    chain = GroundTruth([[0, 1], [1, 2]], "near")  # 0~1, 1~2 but not 0~2
    with pytest.raises(TruthError, match="not transitive"):
        write_truth(chain, IDS, tmp_path / "g.csv", "groups")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(TruthError, match="not found"):
        read_truth(tmp_path / "nope.json", IDS)


def test_asymmetric_imagededup_map_is_rejected_unless_allowed(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"a.jpg": ["b.jpg"], "b.jpg": []}))
    with pytest.raises(TruthError, match=r"asymmetric.*a.jpg -> b.jpg"):
        read_imagededup_json(path)
    assert read_imagededup_json(path, symmetric=False).a == ["a.jpg"]


def test_repeated_json_keys_are_rejected(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"a.jpg": ["b.jpg"], "b.jpg": ["a.jpg"], "a.jpg": []}')
    with pytest.raises(TruthError, match="more than once"):
        read_imagededup_json(path)


@pytest.mark.parametrize(
    "name,text",
    [
        ("t.json", '{"a.jpg": ["a.jpg"]}'),
        ("t.csv", "id_a,id_b\na.jpg,a.jpg\n"),
        ("t.qrels", "a.jpg 0 a.jpg 1\n"),
    ],
)
def test_self_pairs_are_rejected_in_every_format(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TruthError, match="self pair"):
        read_truth(path, IDS)


def test_self_pairs_are_rejected_in_index_truth():
    with pytest.raises(TruthError, match="self pair"):
        GroundTruth([[3, 3]], "near")


def test_ids_not_in_the_corpus_are_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id_a,id_b\na.jpg,zzz.jpg\n")
    with pytest.raises(TruthError, match=r"not in the corpus.*zzz.jpg"):
        read_truth(path, IDS)


def test_duplicate_ids_in_corpus_and_groups_file_are_rejected(tmp_path):
    with pytest.raises(DatasetError, match=r"duplicate ids.*a.jpg"):
        GroundTruth.from_id_pairs(["a.jpg", "a.jpg"], [], [])
    path = tmp_path / "g.csv"
    path.write_text("id,group\na.jpg,1\na.jpg,2\n")
    with pytest.raises(TruthError, match="more than once"):
        read_truth(path, IDS)
    table = pd.DataFrame({"id": ["x", "x"], "path": ["/x1", "/x2"]})
    with pytest.raises(DatasetError, match="duplicate ids"):
        Dataset("d", tmp_path, table, GroundTruth.empty())


def test_unknown_level_and_bad_qrels_line_are_rejected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id_a,id_b,level\na.jpg,b.jpg,kinda\n")
    with pytest.raises(TruthError, match="unknown level 'kinda'"):
        read_pairs_csv(path)
    path = tmp_path / "t.qrels"
    path.write_text("a.jpg b.jpg 1\n")
    with pytest.raises(TruthError, match=r"t.qrels:1"):
        read_truth(path, IDS)


def test_disc21_style_csv_skips_queries_without_match(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ1,R1\nQ2,\n")
    pairs = read_pairs_csv(path)
    assert (pairs.a, pairs.b) == (["Q1"], ["R1"])


def test_truth_pointing_past_the_corpus_is_rejected(tmp_path):
    table = pd.DataFrame({"id": ["x", "y"], "path": ["/x", "/y"]})
    with pytest.raises(TruthError, match="index 5"):
        Dataset("d", tmp_path, table, GroundTruth([[0, 5]], "near"))


def test_to_map_lists_every_id_symmetrically(truth):
    m = truth.to_map(IDS, levels=["exact", "near"])
    assert m["e.jpg"] == [] and sorted(m["c.jpg"]) == ["a.jpg", "b.jpg"]
    assert all(x in m[y] for x, dups in m.items() for y in dups)
    assert np.array_equal(truth.components(5, ["similar"])[[3, 4]], [3, 3])


def test_pairs_csv_row_without_its_level_cell_is_a_truth_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id_a,id_b,level\na.jpg,b.jpg,exact\nc.jpg,d.jpg\n")
    with pytest.raises(TruthError, match=r"p.csv:3: expected a level in column 3"):
        read_pairs_csv(path)
    path.write_text("id_a,id_b,level\na.jpg,b.jpg,\n")  # an empty cell takes the default
    assert read_pairs_csv(path, level="similar").levels == ["similar"]


def test_csv_with_an_excel_byte_order_mark(tmp_path):
    groups = tmp_path / "g.csv"
    groups.write_bytes("id,group\na.jpg,g1\nb.jpg,g1\n".encode("utf-8-sig"))
    assert detect_format(groups) == "groups"
    assert (read_id_pairs(groups).a, read_id_pairs(groups).b) == (["a.jpg"], ["b.jpg"])
    pairs = tmp_path / "p.csv"
    pairs.write_bytes("id_a,id_b,level\na.jpg,b.jpg,exact\n".encode("utf-8-sig"))
    read = read_id_pairs(pairs)
    assert (read.a, read.b, read.levels) == (["a.jpg"], ["b.jpg"], ["exact"])


def test_ground_truth_from_groups():
    truth = GroundTruth.from_groups([[0, 2, 4], [1], [5, 3]], "similar")
    assert truth.pairs.tolist() == [[0, 2], [0, 4], [2, 4], [3, 5]]
    assert set(truth.levels) == {"similar"}
    assert len(GroundTruth.from_groups([[1], []])) == 0
