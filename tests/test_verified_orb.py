"""The verified method with ORB features: edited copies of real photos verified, other photos
not, and a mirror found through features extracted from the mirror image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dupbench.errors import UsageError
from dupbench.methods import get_method

cv2 = pytest.importorskip("cv2")
vsearch = pytest.importorskip("dupbench.search.verified")

from test_method_verified import EDITS, _photo

#: real photos that differ in content
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
#: the edits the issue names: a 60 % crop, a 90° turn, a mirror, padding and a text bar
ORB_EDITS = ("crop60", "rot90", "mirror", "pad", "text")


def _jpeg(img: Image.Image) -> Image.Image:
    """``img`` after a round trip through JPEG at quality 85, as an edited copy is stored."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=85)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.fixture(scope="module")
def orb_features() -> dict[tuple[str, str], object]:
    """(photo, edit or "original") → its ORB features."""
    method = get_method("verified", feature_type="orb")
    out = {}
    for name in PHOTOS:
        img = _photo(name).convert("RGB")
        out[name, "original"] = method.encode_image(img)[1]
        for edit in ORB_EDITS:
            out[name, edit] = method.encode_image(_jpeg(EDITS[edit](img)))[1]
    return out


def test_bad_feature_type_is_a_usage_error():
    with pytest.raises(UsageError, match=r"feature_type must be one of sift, orb.*'sift'\?"):
        get_method("verified", feature_type="sfit")


def test_feature_type_is_a_recorded_parameter():
    assert get_method("verified").params["feature_type"] == "sift"
    assert get_method("verified", feature_type="orb").params["feature_type"] == "orb"


def test_orb_mirror_features_are_those_of_the_mirror_image():
    """The stored mirror is ORB run on the mirrored work image: a mirrored photo encodes to
    exactly those features, in the mirror image's coordinates (most keypoints sit where the
    original's land under the mirror)."""
    method = get_method("verified", feature_type="orb")
    img = _photo("coffee").convert("RGB")
    features = method.encode_image(img)[1]
    fresh = method.encode_image(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[1]
    assert features.kind == "orb" and features.descriptors.shape == (len(features.points), 32)
    assert features.mirrored() is features.mirror
    np.testing.assert_array_equal(features.mirror.points, fresh.points)
    np.testing.assert_array_equal(features.mirror.descriptors, fresh.descriptors)
    flipped = features.points.copy()
    flipped[:, 0] = features.width - 1 - flipped[:, 0]
    offset = np.abs(flipped[:, None, :] - fresh.points[None]).max(axis=2).min(axis=1)
    assert np.mean(offset < 1) > 0.6


@pytest.fixture(scope="module")
def best_other(orb_features) -> float:
    """The best verification score of two different photos, either one edited."""
    verifier = vsearch.Verifier()
    return max(
        verifier.score(orb_features[a, "original"], orb_features[b, edit])
        for a in PHOTOS
        for b in PHOTOS
        if a != b
        for edit in ("original", *ORB_EDITS)
    )


def _assert_clearly_above(orb_features, best_other, pairs) -> None:
    verifier = vsearch.Verifier()
    score = {
        (name, edit): verifier.score(orb_features[name, "original"], orb_features[name, edit])
        for name, edit in pairs
    }
    low = {pair: s for pair, s in score.items() if s <= 2 * best_other}
    assert not low, f"scored at most twice the best different pair ({best_other:.3f}): {low}"


def test_orb_edited_copies_score_clearly_above_other_photos(orb_features, best_other):
    """A 90° turn, a mirror, letterbox bars and a caption bar of each photo verify at more than
    twice the best score of two different photos, edited or not."""
    pairs = [(name, edit) for name in PHOTOS for edit in ORB_EDITS if edit != "crop60"]
    _assert_clearly_above(orb_features, best_other, pairs)


def test_orb_crop_at_the_same_scale_scores_clearly_above_other_photos(orb_features, best_other):
    """A 60 % crop of a photo that is encoded at its own size (no side over ``max_side``, so
    crop and original share the work image's scale) verifies like the other edits."""
    pairs = [(name, "crop60") for name in ("astronaut", "chelsea", "immunohistochemistry")]
    _assert_clearly_above(orb_features, best_other, pairs)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known limit: ORB keypoints lie on their pyramid level's pixel grid, not refined to "
    "a subpixel as SIFT's are; when the crop changes the work image's scale, they move by more "
    "than the 1-pixel RANSAC tolerance and few matches are inliers",
)
def test_orb_crop_across_a_scale_change_scores_clearly_above(orb_features, best_other):
    """A 60 % crop of a photo larger than ``max_side``: the original is scaled down to the work
    image, the crop is not."""
    _assert_clearly_above(orb_features, best_other, [("coffee", "crop60"), ("rocket", "crop60")])


def test_orb_matches_by_hamming_distance(orb_features):
    """The ratio test compares Hamming distances: for ORB, the nearest two distances are the
    bit counts OpenCV's brute-force Hamming matcher finds."""
    a, b = orb_features["astronaut", "original"], orb_features["astronaut", "rot90"]
    first, distances = vsearch._two_nearest(a, b)
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    expected = np.array([[m.distance, n.distance] for m, n in knn], dtype=np.float32)
    np.testing.assert_array_equal(distances, expected)
    agree = first == np.array([m.trainIdx for m, _ in knn])
    assert np.all(agree | (distances[:, 0] == distances[:, 1]))  # only ties may differ


def test_orb_mirrored_bag_is_the_mirror_images_bag(orb_features):
    """A photo's mirrored bag of ORB words is the bag of its mirrored copy (its mirror
    features differ from the copy's only by JPEG), far closer than another photo's bag."""
    features = [
        orb_features["astronaut", "original"],
        orb_features["astronaut", "mirror"],
        orb_features["rocket", "original"],
    ]
    bags, mirrored = vsearch._bags(features, 64, seed=0)
    assert float(mirrored[0] @ bags[1]) > 0.8
    assert float(mirrored[0] @ bags[1]) > 2 * float(mirrored[0] @ bags[2])


@pytest.mark.slow
def test_orb_search_finds_the_copies_and_only_them(tmp_path):
    """End to end with ORB, encoded in worker processes (the detector is not pickled) and
    searched without thumbnail scores: each photo's mirrored and captioned copies are pairs
    of its group, scoring above every pair of different photos."""
    files = []
    for name in ("astronaut", "coffee", "rocket"):
        img = _photo(name).convert("RGB")
        for edit in ("original", "mirror", "text"):
            path = tmp_path / f"{name}__{edit}.jpg"
            (img if edit == "original" else EDITS[edit](img)).save(path, quality=85)
            files.append(path)
    encodings = get_method("verified", feature_type="orb").encode(files, workers=2)
    assert {f.kind for f in encodings.features} == {"orb"}
    found = vsearch.verified_search(encodings, 0.0, thumbnail_floor=1.0, workers=1)
    group = [encodings.ids[r].split("__")[0] for r in range(len(encodings))]
    same = {(a, b) for a in range(len(group)) for b in range(a + 1, len(group))}
    same = {p for p in same if group[p[0]] == group[p[1]]}
    score = dict(zip(zip(found.i.tolist(), found.j.tolist()), found.score.tolist()))
    worst_same = min(score.get(p, 0.0) for p in same)
    best_other = max([s for p, s in score.items() if p not in same], default=0.0)
    assert worst_same > 2 * best_other, (worst_same, best_other)
