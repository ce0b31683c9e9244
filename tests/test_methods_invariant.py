"""Invariance options of the hashes: border trimming and dihedral (rotation/flip) matching."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from methods_fixtures import photo, unpack_bits
from PIL import Image, ImageOps

from dupbench.errors import UsageError
from dupbench.methods import get_method
from dupbench.methods.invariant import DIHEDRAL, border_box, dihedral_variants, trim_borders
from dupbench.search.dihedral import dihedral_search, variant_codes
from dupbench.search.hamming import hamming_matrix

#: every binary hash family, 64-bit presets (crop_resistant's code is region slots: no dihedral)
HASHES = (
    "ahash",
    "dhash",
    "dhash_vertical",
    "phash",
    "phash_simple",
    "whash",
    "colorhash",
    "pdq",
    "marr_hildreth",
    "block_mean",
)
#: distinct scenes, colour and gray, square and not
SCENES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "motorcycle")


def small(name: str, side: int = 160) -> Image.Image:
    """A bundled photo reduced (fast tests), kept non-square where the photo is."""
    img = photo(name).convert("RGB")
    scale = side / max(img.size)
    return img.resize(
        (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS
    )


def distance(method, a: Image.Image, b: Image.Image) -> int:
    codes = method.encode([np.asarray(a), np.asarray(b)]).codes
    return int(hamming_matrix(codes[:1], codes[1:])[0, 0])


def dihedral_distances(method, imgs: list[Image.Image]) -> np.ndarray:
    """(n, n) matrix of dihedral_search distances (all pairs: threshold = the code's length)."""
    enc = method.encode([np.asarray(i) for i in imgs])
    found = dihedral_search(enc, method.size)
    out = np.full((len(imgs), len(imgs)), -1)
    out[found.i, found.j] = out[found.j, found.i] = found.score
    return out


@pytest.mark.parametrize("name", HASHES)
def test_every_rotation_and_flip_is_at_distance_zero(name):
    """The 7 other symmetries of a non-square photo are exact duplicates for the dihedral hash,
    while the plain hash sees most of them as different images (colorhash: the same anyway)."""
    original = small("coffee")
    copies = dihedral_variants(original)
    method = get_method(name, dihedral=True)
    d = dihedral_distances(method, copies)
    assert (d[0, 1:] == 0).all() and (d == 0).sum() == len(copies) * (len(copies) - 1)
    plain = get_method(name)
    moved = [distance(plain, original, c) for c in copies[1:]]
    if name != "colorhash":
        assert sum(m > plain.default_threshold for m in moved) >= 5, moved


@pytest.mark.parametrize("name", ["phash", "pdq", "block_mean"])
def test_canonical_slot_is_the_plain_hash(name):
    """Slot 0 holds the plain hash, left-padded to whole words: its distances are the plain ones,
    and its hex ends with the plain hex."""
    imgs = [np.asarray(small(n)) for n in ("astronaut", "rocket")]
    plain = get_method(name).encode(imgs)
    dihedral = get_method(name, dihedral=True).encode(imgs)
    canonical = variant_codes(dihedral)[:, 0]
    assert (hamming_matrix(canonical, canonical) == hamming_matrix(plain.codes, plain.codes)).all()
    digits = -(-plain.size // 4)
    for ident in plain.ids:
        slot0 = dihedral.to_hex()[ident][: len(dihedral.to_hex()[ident]) // len(DIHEDRAL)]
        assert slot0.endswith(plain.to_hex()[ident]) and set(slot0[:-digits]) <= {"0"}


def test_search_is_the_min_over_variants_both_ways():
    """dihedral_search's score equals min_k min(H(v_k(a), c(b)), H(v_k(b), c(a))) computed from
    the unpacked bits, for every pair of a set mixing photos, rotations and edits."""
    base = [small(n) for n in SCENES]
    imgs = [
        *base,
        base[0].rotate(5, expand=False),
        ImageOps.mirror(base[1]).resize((150, 90)),
        base[2].transpose(Image.Transpose.ROTATE_270).crop((5, 5, 100, 140)),
    ]
    method = get_method("phash", dihedral=True)
    enc = method.encode([np.asarray(i) for i in imgs])
    bits = unpack_bits(enc.codes, enc.size).reshape(len(imgs), len(DIHEDRAL), -1)
    found = dihedral_search(enc, 64)
    got = {(int(i), int(j)): int(s) for i, j, s in zip(found.i, found.j, found.score)}
    for a, b in itertools.combinations(range(len(imgs)), 2):
        one_way = (bits[a] != bits[b, 0]).sum(axis=1).min()
        other_way = (bits[b] != bits[a, 0]).sum(axis=1).min()
        assert got[(a, b)] == min(one_way, other_way)
    narrow = dihedral_search(enc, 12)
    assert set(zip(narrow.i.tolist(), narrow.j.tolist())) == {p for p, s in got.items() if s <= 12}


@pytest.mark.parametrize("name", ["phash", "pdq"])
def test_different_photos_stay_apart(name):
    """Taking the best of 8 orientations must not bring distinct scenes within the threshold."""
    method = get_method(name, dihedral=True)
    d = dihedral_distances(method, [small(n, 256) for n in SCENES])
    off_diagonal = d[~np.eye(len(SCENES), dtype=bool)]
    assert off_diagonal.min() > method.default_threshold, d


def test_dihedral_through_the_api(tmp_path):
    """find_duplicates with a dihedral preset groups a photo with its rotation and mirror (saved
    as JPEG), leaves another photo out, and the plain hash misses the rotation."""
    from dupbench.api import find_duplicates

    img = small("chelsea", 300)
    img.save(tmp_path / "cat.jpg", quality=90)
    img.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "cat_rot90.jpg", quality=90)
    ImageOps.mirror(img).save(tmp_path / "cat_mirror.jpg", quality=90)
    small("coffee", 300).save(tmp_path / "coffee.jpg", quality=90)
    found = find_duplicates(tmp_path, method="phash_dihedral")
    assert sorted(found["cat.jpg"]) == ["cat_mirror.jpg", "cat_rot90.jpg"]
    assert found["coffee.jpg"] == []
    explicit = find_duplicates(tmp_path, method="phash_16", dihedral=True, search_method="dihedral")
    assert sorted(explicit["cat.jpg"]) == ["cat_mirror.jpg", "cat_rot90.jpg"]
    plain = find_duplicates(tmp_path, method="phash")
    assert "cat_rot90.jpg" not in plain["cat.jpg"]


def jpeg(img: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def padded_copies(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {
        "letterbox black": ImageOps.expand(img, (0, h // 5, 0, h // 5), fill=(0, 0, 0)),
        "pillarbox white, JPEG": jpeg(
            ImageOps.expand(img, (w // 4, 0, w // 4, 0), fill=(255, 255, 255))
        ),
        "uneven grey padding": ImageOps.expand(
            img, (w // 10, h // 3, w // 6, h // 12), fill=(128, 128, 128)
        ),
    }


@pytest.mark.parametrize("name", SCENES)
def test_trim_brings_padded_copies_back(name):
    """A padded copy hashes within a few bits of its original with trim=True; plain pHash puts
    it far off (the content shrinks and shifts inside the hash's grid)."""
    original = photo(name).convert("RGB")
    plain, trimmed = get_method("phash"), get_method("phash", trim=True)
    for edit, copy in padded_copies(original).items():
        assert distance(trimmed, original, copy) <= 4, edit
        assert distance(plain, original, copy) > 8, edit


@pytest.mark.parametrize("name", ["pdq", "dhash", "block_mean"])
def test_trim_serves_every_hash(name):
    original = small("rocket", 320)
    copy = padded_copies(original)["letterbox black"]
    plain, trimmed = get_method(name), get_method(name, trim=True)
    assert distance(trimmed, original, copy) < distance(plain, original, copy) / 2


def test_border_box_finds_the_content_and_never_cuts_into_it():
    """On noise content, padded with a colour per axis, the box is exact at full
    resolution and within one reduction factor on an image large enough to be analysed reduced."""
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    padded = ImageOps.expand(content, (7, 0, 13, 0), fill=(10, 200, 30))  # uneven pillarbox
    padded = ImageOps.expand(padded, (0, 11, 0, 5), fill=(255, 255, 255))  # in a letterbox
    assert border_box(padded) == (7, 11, 127, 101)
    big_content = content.resize((1200, 900), Image.Resampling.NEAREST)
    big = ImageOps.expand(big_content, (301, 0, 299, 0), fill=(0, 0, 0))  # 1800 wide: factor 4
    left, top, right, bottom = border_box(big)
    assert abs(left - 301) < 4 and abs(right - 1501) < 4 and (top, bottom) == (0, 900)


def test_a_band_at_one_edge_only_is_not_a_border():
    """A caption bar or a clear sky at one edge is kept: borders come in pairs."""
    img = small("coffee", 200)
    bar = ImageOps.expand(img, (0, 30, 0, 0), fill=(0, 0, 0))
    assert border_box(bar) is None
    assert border_box(ImageOps.expand(bar, (0, 0, 0, 10), fill=(255, 255, 255))) == (
        0,
        30,
        img.width,
        30 + img.height,
    )


def test_trim_leaves_borderless_and_flat_images_alone():
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        assert border_box(photo(name)) is None
    flat = Image.new("RGB", (64, 48), (40, 40, 40))
    assert trim_borders(flat) is flat


def test_options_are_checked_and_recorded_only_when_on():
    assert "trim" not in get_method("phash").params
    assert get_method("pdq", trim=True).params["trim"] is True
    assert get_method("marr_hildreth", dihedral=True).size == 8 * 576
    with pytest.raises(UsageError, match="trim"):
        get_method("phash", trim="yes")
    with pytest.raises(UsageError, match="dihedral"):
        get_method("crop_resistant", dihedral=True)
    with pytest.raises(ValueError, match="dihedral=True"):
        dihedral_search(get_method("phash").encode([np.asarray(small("coins"))] * 2), 10)
