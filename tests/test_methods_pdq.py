"""PDQ in numpy: bit for bit pdqhash (when installed), copies match, photos differ, no compiled
package needed."""

from __future__ import annotations

import builtins
import itertools

import numpy as np
import pytest
from methods_fixtures import (
    COLOUR_PHOTOS,
    GRAY_PHOTOS,
    SCENE_PHOTOS,
    half_size,
    jpeg_bytes,
    photo,
    unpack_bits,
)
from PIL import Image

from dupbench.methods.pdq import PDQHash, dct16, downsample, luma, pdq_hash


def reference():
    return pytest.importorskip("pdqhash")


def assert_same_as_reference(rgb: np.ndarray) -> None:
    """Same bits and quality; and, for hashable sizes, the same float32 DCT coefficients."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    bits, quality = pdq_hash(rgb)
    expected_bits, expected_quality = reference().compute(rgb)
    differing = int((bits != expected_bits.astype(bool)).sum())
    assert (differing, quality) == (0, expected_quality), rgb.shape
    if min(rgb.shape[:2]) >= 5:  # below, pdqhash's compute_float reads unfiltered buffers
        coefficients = dct16(downsample(luma(rgb))).ravel()[::-1]
        expected = np.asarray(reference().compute_float(rgb)[0], dtype=np.float32)
        assert np.array_equal(coefficients, expected), rgb.shape


def distance_matrix(method, sources):
    encodings = method.encode(sources, ids=[str(k) for k in range(len(sources))])
    assert not encodings.skipped
    bits = unpack_bits(encodings.codes, 256)
    return (bits[:, None] != bits[None]).sum(-1)


@pytest.mark.parametrize("name", COLOUR_PHOTOS + GRAY_PHOTOS)
def test_bundled_photos_match_pdqhash_bit_for_bit(name):
    """Gray photos go through RGB, as PDQHash feeds them; quality must match too."""
    assert_same_as_reference(np.asarray(photo(name).convert("RGB")))


def test_odd_sizes_and_edge_cases_match_pdqhash():
    """Noise and resampled photos at odd sizes, 64×64 (no blur), sides below 5 (all-zero hash),
    flat images (median ties everywhere), and a large upscale (window 12 and 17)."""
    rng = np.random.default_rng(13)
    shapes = [tuple(int(v) for v in rng.integers(1, 700, 2)) for _ in range(24)]
    shapes += [(64, 64), (64, 65), (5, 5), (4, 90), (90, 4), (1, 1), (129, 1000)]
    for shape in shapes:
        assert_same_as_reference(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    for name in ("astronaut", "coffee", "camera", "moon"):
        h, w = (int(v) for v in rng.integers(5, 900, 2))
        assert_same_as_reference(np.asarray(photo(name).convert("RGB").resize((w, h))))
    for value in (0, 128, 255):
        assert_same_as_reference(np.full((300, 201, 3), value, np.uint8))
    big = photo("chelsea").resize((2177, 1533), Image.Resampling.BICUBIC)
    assert_same_as_reference(np.asarray(big))


def test_hex_is_the_reference_word_order():
    """Reference hex prints 16-bit words w[15]..w[0]; pdqhash's vector lists bits in that order."""
    rgb = np.asarray(photo("astronaut"))
    bits, quality = reference().compute(rgb)
    encodings = PDQHash().encode([rgb], ids=["a"])
    assert encodings.size == 256 and quality > 50
    words = [int("".join(map(str, bits[16 * k : 16 * k + 16])), 2) for k in range(16)]
    assert encodings.to_hex()["a"] == "".join(f"{w:04x}" for w in words)


def test_works_without_pdqhash(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "pdqhash":
            raise ImportError("no pdqhash")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    encodings = PDQHash().encode([photo("coffee")])
    assert len(encodings) == 1 and not encodings.skipped


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


def test_registered_and_validated():
    from dupbench.methods import get_method

    assert isinstance(get_method("pdq"), PDQHash)
    with pytest.raises(ValueError, match="min_quality"):
        PDQHash(min_quality=101)
