"""records.py: bit packing, hex round trips, and the stored forms of encodings and candidates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from methods_fixtures import unpack_bits

from dupbench.records import (
    Candidates,
    Encodings,
    Skipped,
    hex_to_words,
    pack_bits,
    words_to_hex,
)


@given(st.integers(1, 300), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(nbits, n, seed):
    bits = np.random.default_rng(seed).integers(0, 2, size=(n, nbits)).astype(bool)
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (n, -(-nbits // 64))
    assert np.array_equal(unpack_bits(words, nbits), bits)
    assert np.array_equal(hex_to_words(words_to_hex(words, nbits), nbits), words)


def test_hex_matches_the_bit_string():
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 1] * 8], dtype=bool)
    assert words_to_hex(pack_bits(bits), 64) == ["81" * 8]
    assert int(words_to_hex(pack_bits(bits), 64)[0], 16) == int("".join(map(str, bits[0] * 1)), 2)


def test_hex_longer_than_the_code_is_refused():
    with pytest.raises(ValueError, match="longer"):
        hex_to_words(["ff" * 9], 64)


def test_encodings_save_load_round_trip(tmp_path):
    enc = Encodings(
        ["a", "b"],
        pack_bits(np.eye(2, 64, dtype=bool)),
        "binary",
        "hamming",
        64,
        "phash",
        {"hash_size": 8},
        [Skipped("c.jpg", "empty file")],
    )
    back = Encodings.load(enc.save(tmp_path / "enc.npz"))
    assert back.ids == enc.ids and np.array_equal(back.codes, enc.codes)
    assert (back.kind, back.distance, back.size, back.method, back.params, back.skipped) == (
        enc.kind,
        enc.distance,
        enc.size,
        enc.method,
        enc.params,
        enc.skipped,
    )
    with pytest.raises(TypeError):
        Encodings(["a"], np.zeros((1, 4), np.float32), "float", "cosine", 4).to_hex()
    with pytest.raises(ValueError, match="ids"):
        Encodings(["a", "b"], np.zeros((1, 1), np.uint64), "binary", "hamming", 64)


def test_candidates_filter_sort_and_store(tmp_path):
    c = Candidates([2, 0, 1], [3, 1, 2], np.array([5, 1, 1], np.int32), "hamming")
    s = c.sorted()
    assert s.i.tolist() == [0, 1, 2] and s.score.tolist() == [1, 1, 5]
    assert len(c.within(1)) == 2
    cos = Candidates([0, 1], [1, 2], np.array([0.8, 0.95], np.float32), "cosine")
    assert cos.sorted().score.tolist() == pytest.approx([0.95, 0.8])
    assert cos.within(0.9).i.tolist() == [1]
    c.save(tmp_path / "c.npz")
    back = Candidates.load(tmp_path / "c.npz")
    assert np.array_equal(back.i, c.i) and back.distance == "hamming" and not back.cross


def test_encodings_carry_the_source_row_of_each_code(tmp_path):
    """Encoded rows map back to the sources given, skipped ones left out, without ids."""
    from dupbench.methods import get_method

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    sources = [image, str(tmp_path / "missing.png"), image[::-1].copy()]
    for name in ("phash", "verified"):
        enc = get_method(name).encode(sources, ["a", "b", "c"])
        assert enc.ids == ["a", "c"] and len(enc.skipped) == 1
        np.testing.assert_array_equal(enc.rows, [0, 2])
    with pytest.raises(ValueError, match="source rows"):
        Encodings(["a"], np.zeros((1, 1), np.uint64), "binary", "hamming", 64, rows=np.arange(2))
