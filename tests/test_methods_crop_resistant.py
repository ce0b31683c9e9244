"""Crop-resistant hash: imagehash's segments and hashes, fixed-width codes, its matching rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from methods_fixtures import SCENE_PHOTOS, half_size, jpeg_bytes, photo
from PIL import Image

from dupbench.methods.crop_resistant import CropResistantHash, find_segments
from dupbench.methods.hashing import DifferenceHash
from dupbench.records import words_to_hex
from dupbench.search.regions import crop_resistant_search, region_codes

SEGMENTS = 8


def slot_hexes(encodings, row: int) -> list[str]:
    return words_to_hex(region_codes(encodings)[row], 64)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera", "coins"])
def test_imagehash_profile_matches_imagehash(name):
    imagehash = pytest.importorskip("imagehash")
    img = photo(name)
    expected = [
        str(h) for h in imagehash.crop_resistant_hash(img, limit_segments=SEGMENTS).segment_hashes
    ]
    encodings = CropResistantHash(profile="imagehash").encode([img], ids=[name])
    slots = slot_hexes(encodings, 0)
    assert slots[: len(expected)] == expected
    assert slots == [expected[k % len(expected)] for k in range(SEGMENTS)]  # cyclic fill


def test_segments_equal_imagehash_flood_fill():
    imagehash = pytest.importorskip("imagehash")
    for name in ("chelsea", "moon"):
        small = photo(name).convert("L").resize((120, 120), Image.Resampling.LANCZOS)
        pixels = np.asarray(small).astype(np.float32)
        theirs = imagehash._find_all_segments(pixels, 128, 50)
        boxes = [
            (
                min(r for r, _ in s),
                max(r for r, _ in s) + 1,
                min(c for _, c in s),
                max(c for _, c in s) + 1,
                len(s),
            )
            for s in theirs
        ]
        ours = [
            (rows.start, rows.stop, cols.start, cols.stop, n)
            for rows, cols, n in find_segments(pixels, 128, 50)
        ]
        assert ours == boxes and len(ours) >= 2


def test_no_region_means_one_whole_image_region():
    flat = Image.new("RGB", (64, 48), (200, 200, 200))
    method = CropResistantHash()
    assert method.region_boxes(flat) == [(0.0, 0.0, 64.0, 48.0)]
    bits = method.encode_image(flat)
    whole = DifferenceHash().encode_image(flat)
    assert np.array_equal(bits, np.tile(whole, SEGMENTS))


def test_code_shape_and_parameters():
    method = CropResistantHash(segments=4, hash_size=16)
    assert method.size == 4 * 256 and method.default_threshold == 160
    with pytest.raises(ValueError, match="multiple of 8"):
        CropResistantHash(hash_size=6)


@pytest.fixture(scope="module")
def crops():
    """Each scene photo, and crops keeping 90 %, 80 % and 70 % of each side (from top left)."""
    sources, groups = [], []
    for name in SCENE_PHOTOS:
        img = photo(name)
        w, h = img.size
        sources.append(img)
        sources += [img.crop((int(w * f), int(h * f), w, h)) for f in (0.1, 0.2, 0.3)]
        groups += [name] * 4
    return sources, groups


def truth_pairs(groups) -> set:
    return {
        (a, b) for a, b in itertools.combinations(range(len(groups)), 2) if groups[a] == groups[b]
    }


def test_crops_match_far_more_often_than_with_dhash(crops):
    from dupbench.search import range_search

    sources, groups = crops
    truth = truth_pairs(groups)
    regions = crop_resistant_search(
        CropResistantHash().encode(sources, ids=list(map(str, range(len(sources)))))
    )
    found = set(zip(regions.i.tolist(), regions.j.tolist()))
    dhash = range_search(
        DifferenceHash().encode(sources, ids=list(map(str, range(len(sources))))), 10
    )
    plain = set(zip(dhash.i.tolist(), dhash.j.tolist()))
    recall_regions, recall_plain = len(found & truth) / len(truth), len(plain & truth) / len(truth)
    assert recall_regions > 0.6 and recall_regions > 5 * recall_plain


@pytest.mark.parametrize("min_segments", [1, 2])
def test_search_follows_imagehash_matching_rule(crops, min_segments):
    """Our vectorised search decides every pair as imagehash's ``hash_diff`` does."""
    imagehash = pytest.importorskip("imagehash")
    sources = crops[0] + [half_size(crops[0][0]), jpeg_bytes(crops[0][4], 50)]
    encodings = CropResistantHash().encode(sources, ids=list(map(str, range(len(sources)))))
    multi = [
        imagehash.ImageMultiHash(
            [imagehash.hex_to_hash(h) for h in dict.fromkeys(slot_hexes(encodings, k))]
        )
        for k in range(len(sources))
    ]
    expected = {}
    for a, b in itertools.combinations(range(len(sources)), 2):
        matched = max(multi[a].hash_diff(multi[b])[0], multi[b].hash_diff(multi[a])[0])
        if matched >= min_segments:
            expected[(a, b)] = min(
                x - y for x in multi[a].segment_hashes for y in multi[b].segment_hashes
            )
    result = crop_resistant_search(encodings, min_segments=min_segments)
    got = dict(zip(zip(result.i.tolist(), result.j.tolist()), result.score.tolist()))
    assert got == expected and len(got) >= len(sources) // 2


def test_search_rejects_other_encodings():
    encodings = DifferenceHash().encode([photo("coins")], ids=["c"])
    with pytest.raises(ValueError, match="crop_resistant"):
        crop_resistant_search(encodings)
