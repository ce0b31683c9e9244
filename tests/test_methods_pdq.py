"""PDQ through the optional pdqhash package: copies match, photos differ, bits in reference order."""

from __future__ import annotations

import builtins
import itertools

import numpy as np
import pytest
from methods_fixtures import SCENE_PHOTOS, half_size, jpeg_bytes, photo

from dupbench.records import unpack_bits

pdqhash = pytest.importorskip("pdqhash")
from dupbench.methods.pdq import PDQHash


def distance_matrix(method, sources):
    encodings = method.encode(sources, ids=[str(k) for k in range(len(sources))])
    assert not encodings.skipped
    bits = unpack_bits(encodings.codes, 256)
    return (bits[:, None] != bits[None]).sum(-1)


def test_hex_is_the_reference_word_order():
    """Reference hex prints 16-bit words w[15]..w[0]; pdqhash's vector lists bits in that order."""
    rgb = np.asarray(photo("astronaut"))
    bits, quality = pdqhash.compute(rgb)
    encodings = PDQHash().encode([rgb], ids=["a"])
    assert encodings.size == 256 and quality > 50
    words = [int("".join(map(str, bits[16 * k: 16 * k + 16])), 2) for k in range(16)]
    assert encodings.to_hex()["a"] == "".join(f"{w:04x}" for w in words)


def test_copies_match_and_photos_differ():
    method = PDQHash()
    scenes = [photo(n) for n in SCENE_PHOTOS]
    misses = []
    for name, img in zip(SCENE_PHOTOS, scenes):
        d = distance_matrix(method, [img, half_size(img), jpeg_bytes(img, 50)])
        misses += [(name, k, d[0, k]) for k in (1, 2) if d[0, k] > method.default_threshold]
    # PDQ is unstable on small images: clock's 200×150 half-size copy lands 32 bits away
    assert [m[:2] for m in misses] == [("clock", 1)], misses
    d = distance_matrix(method, scenes)
    assert min(d[a, b] for a, b in itertools.combinations(range(len(scenes)), 2)) > 31


def test_low_quality_images_are_skipped():
    flat = np.full((64, 64, 3), 128, np.uint8)
    encodings = PDQHash(min_quality=50).encode([flat, np.asarray(photo("coffee"))])
    assert len(encodings) == 1 and "quality" in encodings.skipped[0].reason
    assert len(PDQHash().encode([flat])) == 1


def test_missing_package_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "pdqhash":
            raise ImportError("no pdqhash")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ImportError, match=r"pip install 'dupbench\[pdq\]'"):
        PDQHash()


def test_registered_and_validated():
    from dupbench.methods import get_method

    assert isinstance(get_method("pdq"), PDQHash)
    with pytest.raises(ValueError, match="min_quality"):
        PDQHash(min_quality=101)
