"""OpenCV img_hash in numpy: each pixel operation and each hash against opencv-contrib (cv2)."""

from __future__ import annotations

import io
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
    photo_array,
    unpack_bits,
)
from PIL import Image

from dupbench import find_duplicates
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError
from dupbench.methods import get_method
from dupbench.methods import opencv_pixels as ops
from dupbench.methods.img_hash import (
    BlockMeanHash,
    ColorMomentHash,
    MarrHildrethHash,
    RadialVarianceHash,
)
from dupbench.records import Encodings
from dupbench.search import range_search
from dupbench.search.radial_variance import radial_variance_search

ALL_PHOTOS = COLOUR_PHOTOS + GRAY_PHOTOS


@pytest.fixture(scope="module")
def cv2():
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "img_hash"):
        pytest.skip("cv2 without the contrib modules (pip install opencv-contrib-python-headless)")
    return cv2


@pytest.fixture()
def opencv_without_ipp(cv2):
    """OpenCV's own C++ code: pip wheels otherwise hand resize(INTER_CUBIC) to Intel IPP."""
    cv2.ipp.setUseIPP(False)
    yield cv2
    cv2.ipp.setUseIPP(True)


def random_shapes(seed: int, count: int, high: int = 700) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(v) for v in rng.integers(1, high, 2)) for _ in range(count)]
    return [*shapes, (1, 1), (2, 3), (7, 1), (512, 512), (256, 256), (600, 1024)]


def noise(shape, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*shape, channels) if channels else shape, dtype=np.uint8)


def as_opencv(rgb_or_gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb_or_gray[..., ::-1]) if rgb_or_gray.ndim == 3 else rgb_or_gray


def opencv_bits(code: np.ndarray) -> np.ndarray:
    return np.unpackbits(code.ravel()).astype(bool)


def test_gray_matches_cvtcolor_on_every_colour(cv2):
    levels = np.arange(256, dtype=np.uint8)
    for blue in range(0, 256, 5):  # every (green, red) pair for 52 blue levels
        rgb = np.stack(np.broadcast_arrays(levels[None, :], levels[:, None], np.uint8(blue)), -1)
        assert np.array_equal(ops.gray(rgb), cv2.cvtColor(as_opencv(rgb), cv2.COLOR_BGR2GRAY))


def test_resize_linear_exact_matches_opencv(cv2):
    targets = [(256, 256), (37, 5), (1, 1), (700, 300)]
    for k, shape in enumerate(random_shapes(1, 12, high=500)):
        for channels in (3, 0):
            image = noise(shape, k, channels)
            for width, height in targets:
                ours = ops.resize_linear_exact(image, width, height)
                theirs = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR_EXACT)
                assert np.array_equal(ours, theirs), (shape, channels, width, height)


def test_gaussian_blur_and_equalize_match_opencv(cv2):
    for k, shape in enumerate(random_shapes(2, 30)):
        image = noise(shape, k, 0) // (1 + k % 7)  # narrow histograms too
        assert np.array_equal(ops.gaussian_blur(image, 7), cv2.GaussianBlur(image, (7, 7), 0)), (
            shape
        )
        assert np.array_equal(ops.equalize_hist(image), cv2.equalizeHist(image)), shape
    flat = np.full((9, 9), 40, np.uint8)
    assert np.array_equal(ops.equalize_hist(flat), cv2.equalizeHist(flat))


def test_resize_cubic_matches_opencv_own_code(opencv_without_ipp):
    cv2 = opencv_without_ipp
    for k, shape in enumerate(random_shapes(3, 30)):
        image = noise(shape, k, 0)
        for width, height in [(512, 512), (100, 37), (shape[1], 512)]:
            ours = ops.resize_cubic(image, width, height)
            theirs = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
            assert np.array_equal(ours, theirs), (shape, width, height)


@pytest.mark.parametrize("mode", [0, 1])
def test_block_mean_matches_opencv_bit_for_bit(cv2, mode):
    """Bundled photos (gray ones fed to OpenCV as 1 channel), odd-sized noise and resized photos;
    IPP on, as the pip wheel runs it (block-mean uses no IPP-replaced operation)."""
    method = BlockMeanHash(mode=mode)
    images = [photo_array(name) for name in ALL_PHOTOS]
    images += [noise(shape, k) for k, shape in enumerate(random_shapes(4, 12))]
    rng = np.random.default_rng(5)
    for name in ALL_PHOTOS:
        w, h = (int(v) for v in rng.integers(3, 900, 2))
        images.append(np.asarray(photo(name).resize((w, h))))
    for image in images:
        rgb = np.asarray(Image.fromarray(image).convert("RGB"))
        theirs = opencv_bits(cv2.img_hash.blockMeanHash(as_opencv(image), mode=mode))
        assert theirs.size == method.size
        assert np.array_equal(method.hash_bits(rgb), theirs), image.shape


@pytest.mark.parametrize("name", ALL_PHOTOS)
def test_marr_hildreth_matches_opencv_own_code_on_photos(opencv_without_ipp, name):
    image = photo_array(name)
    rgb = np.asarray(Image.fromarray(image).convert("RGB"))
    theirs = opencv_bits(opencv_without_ipp.img_hash.marrHildrethHash(as_opencv(image)))
    assert int((MarrHildrethHash().hash_bits(rgb) != theirs).sum()) == 0


def test_marr_hildreth_matches_opencv_own_code_on_odd_sizes(opencv_without_ipp):
    """Noise has no flat areas, where a block can tie its neighbourhood's mean exactly and
    OpenCV's bit is float32-DFT rounding noise (see MarrHildrethHash.filtered)."""
    method = MarrHildrethHash()
    for k, shape in enumerate([*random_shapes(6, 8)[:8], (512, 512), (600, 1024), (13, 700)]):
        image = noise(shape, k)
        theirs = opencv_bits(opencv_without_ipp.img_hash.marrHildrethHash(as_opencv(image)))
        assert int((method.hash_bits(image) != theirs).sum()) == 0, shape


def test_marr_hildreth_against_the_ipp_build_differs_in_rare_bits(cv2):
    """The pip wheel's IPP cubic resize rounds some pixels differently from OpenCV's own code;
    measured here: at most a few of 576 bits on a photo, none on most."""
    method = MarrHildrethHash()
    differing = {}
    for name in ALL_PHOTOS:
        image = photo_array(name)
        rgb = np.asarray(Image.fromarray(image).convert("RGB"))
        theirs = opencv_bits(cv2.img_hash.marrHildrethHash(as_opencv(image)))
        differing[name] = int((method.hash_bits(rgb) != theirs).sum())
    assert max(differing.values()) <= 6, differing
    assert sum(d == 0 for d in differing.values()) >= len(ALL_PHOTOS) - 3, differing


def test_hex_is_opencv_bytes(cv2):
    image = photo_array("coffee")
    for method, reference in [
        (MarrHildrethHash(), cv2.img_hash.marrHildrethHash),
        (BlockMeanHash(), lambda bgr: cv2.img_hash.blockMeanHash(bgr, mode=0)),
        (BlockMeanHash(mode=1), lambda bgr: cv2.img_hash.blockMeanHash(bgr, mode=1)),
    ]:
        encodings = method.encode([image], ids=["c"])
        assert encodings.to_hex()["c"] == reference(as_opencv(image)).tobytes().hex()


@pytest.mark.parametrize(
    "name, params",
    [
        ("marr_hildreth", {}),
        ("block_mean", {}),
        ("block_mean", {"mode": 1}),
    ],
)
def test_copies_match_and_photos_differ(name, params):
    """Half-size and JPEG-50 copies of each scene stay within the default threshold; distinct
    scenes stay beyond it."""
    method = get_method(name, **params)
    scenes = [photo(n) for n in SCENE_PHOTOS]
    far = []
    for scene_name, img in zip(SCENE_PHOTOS, scenes):
        encodings = method.encode([img, half_size(img), jpeg_bytes(img, 50)], ids=list("abc"))
        bits = unpack_bits(encodings.codes, method.size)
        far += [
            (scene_name, k) for k in (1, 2) if (bits[0] != bits[k]).sum() > method.default_threshold
        ]
    assert far == []
    bits = unpack_bits(method.encode(scenes).codes, method.size)
    distances = [(bits[a] != bits[b]).sum() for a, b in itertools.combinations(range(len(bits)), 2)]
    assert min(distances) > method.default_threshold


def test_registered_with_sizes_and_validated():
    assert get_method("block_mean").size == 256
    assert get_method("block_mean", mode=1).size == 968  # 961 bits in OpenCV's 121 bytes
    assert get_method("marr_hildreth").size == 576
    with pytest.raises(ValueError, match="mode"):
        BlockMeanHash(mode=2)
    with pytest.raises(ValueError, match="positive"):
        MarrHildrethHash(alpha=0)
    with pytest.raises(TypeError):
        BlockMeanHash(hash_size=8)


def test_colour_operations_match_opencv(cv2):
    """HSV, YCrCb on every colour of a 256×256 grid per blue level; blurs of any size and sigma;
    Hu moments; bicubic resizes of colour images (OpenCV's own code)."""
    levels = np.arange(256, dtype=np.uint8)
    for blue in range(0, 256, 15):
        rgb = np.stack(np.broadcast_arrays(levels[None, :], levels[:, None], np.uint8(blue)), -1)
        assert np.array_equal(ops.hsv(rgb), cv2.cvtColor(as_opencv(rgb), cv2.COLOR_BGR2HSV))
        assert np.array_equal(ops.ycrcb(rgb), cv2.cvtColor(as_opencv(rgb), cv2.COLOR_BGR2YCrCb))
    for k, shape in enumerate(random_shapes(7, 8, high=300)):
        image = noise(shape, k, 3 if k % 2 else 0)
        for ksize, sigma in [(3, 0), (5, 0), (9, 0), (0, 1.0), (0, 1.3), (0, 2.5)]:
            ours = ops.gaussian_blur(image, ksize, sigma)
            assert np.array_equal(ours, cv2.GaussianBlur(image, (ksize, ksize), sigma, sigma))
        gray = image if image.ndim == 2 else image[..., 0]
        theirs = cv2.HuMoments(cv2.moments(gray)).ravel()
        np.testing.assert_allclose(ops.hu_moments(gray), theirs, rtol=1e-9, atol=1e-300)
    assert not ops.hu_moments(np.zeros((4, 4), np.uint8)).any()
    cv2.ipp.setUseIPP(False)
    try:
        for k, shape in enumerate(random_shapes(8, 8)):
            image = noise(shape, k)
            for width, height in [(512, 512), (37, 5), (101, 33)]:
                theirs = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
                assert np.array_equal(ops.resize_cubic(image, width, height), theirs)
    finally:
        cv2.ipp.setUseIPP(True)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).convert("RGB"))


def test_color_moment_matches_opencv_own_code(opencv_without_ipp):
    """The 42 values on every bundled photo and odd-sized noise, to float64 rounding."""
    cv2, method = opencv_without_ipp, ColorMomentHash()
    images = [photo_array(name) for name in ALL_PHOTOS]
    images += [noise(shape, k) for k, shape in enumerate(random_shapes(9, 4))]
    for image in images:
        theirs = cv2.img_hash.colorMomentHash(as_opencv(image)).ravel()
        np.testing.assert_allclose(method.moments(_rgb(image)), theirs, rtol=1e-9, atol=1e-300)


def test_color_moment_distance_is_opencv_compare(cv2):
    """With the pip wheel's IPP resize the values move by ≲ 0.1 compare units (measured ≤ 0.09
    on the bundled photos), far below the threshold; the distance is OpenCV's compare."""
    method, hasher = ColorMomentHash(), cv2.img_hash.ColorMomentHash_create()
    scenes = [photo_array(name) for name in SCENE_PHOTOS[:6]]
    encodings = method.encode(scenes)
    theirs = [hasher.compute(as_opencv(image)) for image in scenes]
    for code, reference in zip(encodings.codes, theirs):
        assert np.linalg.norm(code / 10_000 - reference.ravel()) * 10_000 < 0.1
    pairs = range_search(encodings, 1e9)
    assert len(pairs) == 15
    for i, j, score in zip(pairs.i, pairs.j, pairs.score):
        assert score == pytest.approx(hasher.compare(theirs[i], theirs[j]), rel=1e-3, abs=0.2)


def test_radial_variance_bytes_match_opencv(cv2):
    """The 40 bytes on every bundled photo, odd-sized noise and resized photos (no operation
    that IPP replaces: exact with the pip wheel)."""
    method = RadialVarianceHash()
    images = [photo_array(name) for name in ALL_PHOTOS]
    images += [noise(shape, k) for k, shape in enumerate(random_shapes(10, 12))]
    rng = np.random.default_rng(11)
    for name in ALL_PHOTOS[:8]:
        w, h = (int(v) for v in rng.integers(3, 900, 2))
        images.append(np.asarray(photo(name).resize((w, h))))
    for image in images:
        theirs = cv2.img_hash.radialVarianceHash(as_opencv(image)).ravel()
        assert np.array_equal(method.hash_bytes(_rgb(image)), theirs), image.shape
    flat = np.full((20, 30, 3), 90, np.uint8)  # no variance anywhere: OpenCV's all-zero hash
    assert np.array_equal(method.hash_bytes(flat), cv2.img_hash.radialVarianceHash(flat).ravel())


def test_radial_variance_search_scores_opencv_compare(cv2):
    """Every pair's score is OpenCV's compare (the peak correlation over shifts), with copies."""
    hasher = cv2.img_hash.RadialVarianceHash_create()
    scenes = [photo(name) for name in SCENE_PHOTOS[:5]]
    sources = [*scenes, half_size(scenes[0]), jpeg_bytes(scenes[1], 50)]
    encodings = RadialVarianceHash().encode(sources)
    pixels = [np.asarray(Image.open(io.BytesIO(s)) if isinstance(s, bytes) else s) for s in sources]
    hashes = [hasher.compute(as_opencv(p)) for p in pixels]
    pairs = radial_variance_search(encodings, -1.0, block=3, ref_block=2)  # tiling is exact
    assert len(pairs) == 21
    for i, j, score in zip(pairs.i, pairs.j, pairs.score):
        assert score == pytest.approx(hasher.compare(hashes[i], hashes[j]), abs=1e-5)
    within = radial_variance_search(encodings, 0.9)
    assert {(int(i), int(j)) for i, j in zip(within.i, within.j)} == {(0, 5), (1, 6)}


def jpeg_50(img: Image.Image) -> bytes:
    return jpeg_bytes(img, 50)


def test_radial_variance_search_is_the_brute_force_peak():
    rng = np.random.default_rng(12)
    codes = rng.integers(0, 256, (70, 40)).astype(np.float32)
    codes -= codes.mean(axis=1, keepdims=True)
    codes[5] = 0  # a flat image's hash: correlation 0 with everything
    encodings = Encodings([str(k) for k in range(70)], codes, "float", "cosine", 40)
    unit = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-30)
    peak = np.max([unit @ np.roll(unit, s, axis=1).T for s in range(40)], axis=0)
    for threshold in (0.4, 0.0):
        found = radial_variance_search(encodings, threshold, block=8, ref_block=16)
        expected = set(zip(*np.nonzero(np.triu(peak >= threshold, 1))))
        assert set(zip(found.i.tolist(), found.j.tolist())) == expected
        assert np.allclose(found.score, peak[found.i, found.j], atol=1e-6)
        assert np.all(np.diff(found.score) <= 0)  # best first


@pytest.mark.parametrize(
    "name, copies, threshold",
    [
        ("color_moment", (half_size,), {"max_distance_threshold": 3.0}),
        ("radial_variance", (half_size, jpeg_50), {}),
    ],
)
def test_find_duplicates_finds_copies_not_other_photos(tmp_path, name, copies, threshold):
    """Through the public API: a half-size (and for radial variance a JPEG-50) copy is found,
    another photo is not. Radial variance at its default threshold; colour moment at OpenCV's
    usual 3, since its calibrated default (99 % precision on the default dataset) is so strict
    that it keeps 6 % of the pairs. Colour moments move by tens of compare units under JPEG's
    chroma subsampling, so JPEG copies are not asked of them."""
    for scene in ("astronaut", "camera", "coffee"):
        photo(scene).save(tmp_path / f"{scene}.png")
        for k, copy in enumerate(copies):
            made = copy(photo(scene))
            path = tmp_path / f"{scene}_copy{k}.{'jpg' if isinstance(made, bytes) else 'png'}"
            path.write_bytes(made) if isinstance(made, bytes) else made.save(path)
    found = find_duplicates(tmp_path, method=name, progress=False, num_enc_workers=1, **threshold)
    for key, dups in found.items():
        assert {d.split("_copy")[0].split(".")[0] for d in dups} <= {
            key.split("_copy")[0].split(".")[0]
        }
    for scene in ("astronaut", "camera", "coffee"):
        assert len(found[f"{scene}.png"]) == len(copies), (scene, found[f"{scene}.png"])


def test_float_hashes_registered_and_validated():
    color, radial = get_method("color_moment"), get_method("radial_variance")
    assert (color.size, color.distance, color.kind) == (42, DistanceKind.EUCLIDEAN, "float")
    assert (radial.size, radial.distance) == (40, DistanceKind.COSINE)
    assert radial.preferred_search[0] == "radial_variance"
    with pytest.raises(ValueError, match="sigma"):
        RadialVarianceHash(sigma=0.5)
    with pytest.raises(UsageError, match="lines"):
        RadialVarianceHash(lines=2)
    with pytest.raises(UsageError, match="≥ 0"):
        find_duplicates(
            encoding_map=color.encode([photo("coffee")]), method=color, max_distance_threshold=-1
        )
    with pytest.raises(UsageError, match="max_distance_threshold"):
        find_duplicates(
            encoding_map=color.encode([photo("coffee")]), method=color, min_similarity_threshold=0.5
        )
