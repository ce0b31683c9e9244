"""The verified method's encoding: local features and a thumbnail per image.

Every global fingerprint breaks on the edits people actually make (a 50 % crop, a 90° turn, a
mirror, letterbox bars, a caption). Local features survive them, but matching every pair of
images with them costs n², so the method is two-stage: this module encodes (keypoints and
descriptors of the grey image inside its uniform borders, scaled to ``max_side``, kept in
``VerifiedEncodings.features``; the code row is a small grey thumbnail of the same image, a unit
vector), and ``dupbench.search.verified`` retrieves candidate pairs and verifies them
geometrically (the registered "verified" search, this method's ``preferred_search``).

The features are OpenCV's SIFT (``feature_type="sift"``, the default: 128 gradient-histogram
bytes, compared by L2 distance) or ORB (``"orb"``: 256-bit binary descriptors, compared by
Hamming distance, about six times faster to encode). A mirror image's SIFT descriptors are a
fixed permutation of the original's (``mirror_permutation``); ORB's sampling pattern has none,
so ORB is also extracted from the mirrored image and kept as ``LocalFeatures.mirror``.

The features are computed once per image and kept wherever the encodings are:
``VerifiedEncodings.save`` writes them into the same .npz (``Encodings.load`` gives them back),
and an encoding store keeps them beside each shard of codes (``features_to_arrays``). Only an
imagededup-style encoding map ({file: vector}) lacks them, and the search says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError, did_you_mean
from dupbench.methods.base import Method, _map_sources, int_param
from dupbench.methods.invariant import trim_borders
from dupbench.methods.registry import METHODS
from dupbench.records import DamagedFile, Encodings, Skipped

#: side of the grey thumbnail that is the code row (stage 1's photometric candidates)
THUMB = 16
_SIFT_BINS = (4, 4, 8)  # SIFT descriptor layout: rows x columns x orientation bins


@dataclass(frozen=True)
class LocalFeatures:
    """One image's keypoints: ``points`` (n, 2) x, y in the work image of ``width`` x
    ``height`` pixels, and their ``descriptors`` (n, 128) uint8 for SIFT, (n, 32) packed bits
    for ORB (``kind``, a key of ``FEATURE_TYPES``).

    ``mirror``: the features extracted from the mirrored image, kept only for a feature type
    whose descriptors have no known mirror permutation (None for SIFT: ``mirrored`` derives
    them)."""

    points: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int
    kind: str = "sift"
    mirror: LocalFeatures | None = None

    def mirrored(self) -> LocalFeatures:
        """The features of the horizontally mirrored image, without extracting them again."""
        if self.mirror is not None:
            return self.mirror
        mirror_order = FEATURE_TYPES[self.kind].mirror_order
        if mirror_order is None:
            raise ValueError(f"{self.kind} features need their mirror image's own (``mirror``)")
        points = self.points.copy()
        points[:, 0] = self.width - 1 - points[:, 0]
        return LocalFeatures(
            points, self.descriptors[:, mirror_order()], self.width, self.height, self.kind
        )


def mirror_permutation() -> np.ndarray:
    """Column order that turns a SIFT descriptor into the one of the mirrored keypoint.

    OpenCV measures a keypoint's angle counter-clockwise in image coordinates, so a mirror maps
    the descriptor's 4x4 grid upside down (rows reversed, in the keypoint's frame) and each
    orientation bin o to -o (mod 8). Checked in tests against SIFT run on the mirrored image.
    """
    idx = np.arange(np.prod(_SIFT_BINS)).reshape(_SIFT_BINS)
    return idx[::-1, :, (-np.arange(_SIFT_BINS[2])) % _SIFT_BINS[2]].ravel()


#: the arrays one list of ``LocalFeatures`` is saved as (``features_to_arrays``): per image its
#: keypoint count, size and feature kind; every image's points and descriptors one after another
_FLAT = {
    "feature_counts": ("iu", 1),
    "points": ("f", 2),
    "descriptors": ("u", 2),
    "widths": ("iu", 1),
    "heights": ("iu", 1),
    "feature_kinds": ("U", 1),
}
#: the same again for the ``mirror`` features of the images that have them (``has_mirror``)
MIRROR = "mirror_"
FEATURE_ARRAYS = {**_FLAT, "has_mirror": ("b", 1), **{MIRROR + k: v for k, v in _FLAT.items()}}


def features_to_arrays(features: Sequence[LocalFeatures]) -> dict[str, np.ndarray]:
    """Flat arrays (``FEATURE_ARRAYS``) that ``features_from_arrays`` turns back into
    ``features``: a few arrays instead of an object per image, so that they save in an .npz
    without pickling."""
    mirrors = [f.mirror for f in features if f.mirror is not None]
    if any(m.mirror is not None for m in mirrors):
        raise ValueError("the features of a mirror image cannot carry a mirror of their own")
    flat = _flatten(features)
    flat["has_mirror"] = np.array([f.mirror is not None for f in features], dtype=bool)
    flat.update((MIRROR + k, v) for k, v in _flatten(mirrors).items())
    return flat


def _flatten(features: Sequence[LocalFeatures]) -> dict[str, np.ndarray]:
    widths = {f.descriptors.shape[1] for f in features}
    if len(widths) > 1:
        raise ValueError(f"descriptors of {sorted(widths)} bytes cannot be saved together")
    width = widths.pop() if widths else 0
    return {
        "feature_counts": np.array([len(f.points) for f in features], np.int64),
        "points": np.concatenate([np.zeros((0, 2), np.float32), *(f.points for f in features)]),
        "descriptors": np.concatenate(
            [np.zeros((0, width), np.uint8), *(f.descriptors for f in features)]
        ),
        "widths": np.array([f.width for f in features], np.int64),
        "heights": np.array([f.height for f in features], np.int64),
        "feature_kinds": np.array([f.kind for f in features], dtype=str).reshape(-1),
    }


def features_from_arrays(
    arrays: dict[str, np.ndarray], n: int, path: str | Path, rows: np.ndarray | None = None
) -> list[LocalFeatures]:
    """The ``n`` images' features that ``features_to_arrays`` stored, or only those at ``rows``
    (then copied, so that ``arrays`` can be freed); inconsistent arrays raise ``DamagedFile``."""
    has_mirror = arrays["has_mirror"]
    if len(has_mirror) != n:
        raise DamagedFile(f"{path}: local features for {len(has_mirror)} images, not {n}")
    image = _unflatten(arrays, "", n, path)
    mirror = _unflatten(arrays, MIRROR, int(has_mirror.sum()), path)
    mirror_of = np.cumsum(has_mirror) - 1
    copy = rows is not None
    return [
        image(r, copy, mirror(int(mirror_of[r]), copy, None) if has_mirror[r] else None)
        for r in (range(n) if rows is None else rows.tolist())
    ]


def _unflatten(
    arrays: dict[str, np.ndarray], prefix: str, n: int, path: str | Path
) -> Callable[[int, bool, LocalFeatures | None], LocalFeatures]:
    """``take(r, copy, mirror)``: image r's features, after checking the arrays agree."""
    counts, points, descriptors, widths, heights, kinds = (arrays[prefix + k] for k in _FLAT)
    if not (len(counts) == len(widths) == len(heights) == len(kinds) == n):
        raise DamagedFile(f"{path}: {prefix}local features do not list {n} images")
    if (counts < 0).any() or not (int(counts.sum()) == len(points) == len(descriptors)):
        raise DamagedFile(f"{path}: {prefix}keypoint counts disagree with the points stored")
    if points.shape[1] != 2:
        raise DamagedFile(f"{path}: {prefix}points are not (x, y) pairs")
    points = points.astype(np.float32, copy=False)
    descriptors = descriptors.astype(np.uint8, copy=False)
    ends = np.cumsum(counts)
    starts = ends - counts

    def take(r: int, copy: bool, mirror: LocalFeatures | None) -> LocalFeatures:
        part = slice(int(starts[r]), int(ends[r]))
        p, d = points[part], descriptors[part]
        if copy:
            p, d = p.copy(), d.copy()
        return LocalFeatures(p, d, int(widths[r]), int(heights[r]), str(kinds[r]), mirror)

    return take


@dataclass(frozen=True)
class FeatureType:
    """One kind of local features: ``create(cv2, n)`` makes its OpenCV detector for at most n
    keypoints, whose descriptors are ``width`` bytes; ``binary`` descriptors are bit strings,
    compared by Hamming distance (others by L2). ``mirror_order()``: the column order that turns
    a descriptor into its mirrored keypoint's, where there is one (else the mirror image's own
    features are extracted too)."""

    create: Callable[[Any, int], Any]
    width: int
    binary: bool
    mirror_order: Callable[[], np.ndarray] | None = None


#: the ``feature_type`` choices (SIFT_create: cv2.SIFT.create is missing from older releases)
FEATURE_TYPES: dict[str, FeatureType] = {
    "sift": FeatureType(
        lambda cv2, n: cv2.SIFT_create(nfeatures=n),
        128,
        binary=False,
        mirror_order=mirror_permutation,
    ),
    "orb": FeatureType(lambda cv2, n: cv2.ORB_create(nfeatures=n), 32, binary=True),
}


@dataclass
class VerifiedEncodings(Encodings):
    """Encodings plus each image's local features (``features[r]`` belongs to row r).

    A subclass rather than a new field of ``Encodings``: every other consumer (search indexes,
    the other methods) sees ordinary float codes, and only ``verified_search`` reads the
    features. They are saved with the codes (``save``, an encoding store) through the hooks
    ``Encodings`` provides for a per-row object, so that features are computed once per image.
    """

    features: list[LocalFeatures] = field(default_factory=list)

    saved_as: ClassVar[str] = "verified"
    extra_layout: ClassVar[dict[str, tuple[str, int]]] = FEATURE_ARRAYS

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.features) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.features)} feature sets")

    def extra(self) -> list:
        return self.features

    def extra_arrays(self) -> dict[str, np.ndarray]:
        return features_to_arrays(self.features)

    @classmethod
    def extra_rows(
        cls, arrays: dict[str, np.ndarray], n: int, path: str | Path, rows: np.ndarray | None = None
    ) -> list:
        return features_from_arrays(arrays, n, path, rows)

    @classmethod
    def with_extra(cls, base: Encodings, extra: list) -> VerifiedEncodings:
        return cls(**{f.name: getattr(base, f.name) for f in fields(Encodings)}, features=extra)


@METHODS.register()
class RetrieveVerify(Method):
    """Local features for two-stage retrieve-and-verify search (see the module doc).

    max_side: the longer side of the grey image features are taken from (pixels).
    features: at most this many keypoints per image (the strongest).
    feature_type: "sift" or "orb" (``FEATURE_TYPES``).
    """

    name = "verified"
    kind = "float"
    distance = DistanceKind.COSINE
    #: about the score at 99 % pair precision on the default dataset (0.127, 2026-12-01; 0.144
    #: on the same recipe built with seed 7)
    default_threshold: ClassVar[float] = 0.13
    robust_to = "crops, 90° rotations, mirroring, padding, overlays, photometric edits"
    requires = ("cv2",)
    extra = "robust"
    #: its codes alone do not find duplicates: every use searches with ``verified_search``
    preferred_search = ("verified", {})
    threshold_form = "score ≥ {:g}"

    def __init__(
        self, max_side: int = 512, features: int = 500, feature_type: str = "sift", **params: Any
    ) -> None:
        self.max_side = int_param("max_side", max_side, 32)
        self.features = int_param("features", features, 8)
        if not isinstance(feature_type, str) or feature_type not in FEATURE_TYPES:
            raise UsageError(
                f"feature_type must be one of {', '.join(FEATURE_TYPES)}, got {feature_type!r}"
                f"{did_you_mean(feature_type, FEATURE_TYPES)}"
            )
        self.feature_type = feature_type
        super().__init__(
            max_side=self.max_side, features=self.features, feature_type=feature_type, **params
        )
        self._detector: Any = None  # the OpenCV detector, made on first use

    @property
    def size(self) -> int:
        return THUMB * THUMB

    @property
    def load_options(self) -> dict[str, Any]:
        return {"draft": (self.max_side, self.max_side)}  # JPEG decodes at 1/2..1/8 scale

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}  # a cv2 object does not pickle to workers

    # a pair, unlike Method.encode_image's row: this method's encode() is its own
    def encode_image(  # type: ignore[override]
        self, image: Image.Image
    ) -> tuple[np.ndarray, LocalFeatures]:
        """(thumbnail code row, local features) of one decoded image, inside its uniform
        borders: letterbox bars carry no content, and their corners would match the bars of
        any other padded image."""
        grey = trim_borders(image).convert("L")
        scale = self.max_side / max(grey.size)
        if scale < 1:
            size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
            grey = grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.asarray(grey)
        return thumbnail(pixels), self._extract(pixels)

    def _extract(self, pixels: np.ndarray) -> LocalFeatures:
        """The features of ``pixels`` and, for a type whose descriptors have no mirror
        permutation (``FeatureType.mirror_order``), those of its mirror image."""
        features = self._detect(pixels)
        if FEATURE_TYPES[self.feature_type].mirror_order is not None:
            return features
        return replace(features, mirror=self._detect(np.ascontiguousarray(np.fliplr(pixels))))

    def _detect(self, pixels: np.ndarray) -> LocalFeatures:
        import cv2

        feature_type = FEATURE_TYPES[self.feature_type]
        if self._detector is None:
            cv2.setNumThreads(1)
            self._detector = feature_type.create(cv2, self.features)
        keypoints, descriptors = self._detector.detectAndCompute(pixels, None)
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
        if descriptors is None:
            descriptors = np.zeros((0, feature_type.width), np.uint8)
        height, width = pixels.shape
        descriptors = np.clip(descriptors, 0, 255).astype(np.uint8)  # SIFT's are float
        return LocalFeatures(points, descriptors, width, height, self.feature_type)

    def encode(
        self,
        sources: Sequence[images.Source],
        ids: Sequence[str] | None = None,
        *,
        workers: int | None = 1,
        progress: bool = False,
    ) -> VerifiedEncodings:
        """Per image, its thumbnail row and its local features; unreadable files are skipped."""
        ids = self._ids_for(sources, ids)
        results = _map_sources(self, list(sources), workers, progress)
        kept, rows, features, skipped = [], [], [], []
        for k, result in enumerate(results):
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                kept.append(k)
                rows.append(result[0])
                features.append(result[1])
        codes = np.stack(rows) if rows else np.zeros((0, self.size), np.float32)
        return VerifiedEncodings(
            [ids[k] for k in kept],
            codes,
            self.kind,
            self.distance,
            self.size,
            self.name,
            self.params,
            skipped,
            np.asarray(kept, dtype=np.int64),
            features=features,
        )


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A THUMB x THUMB grey thumbnail with zero mean and unit norm (brightness and contrast
    changes cancel out), as a float32 row."""
    small = Image.fromarray(pixels).resize((THUMB, THUMB), Image.Resampling.BOX)
    row = np.asarray(small, dtype=np.float32).ravel()
    row -= row.mean()
    norm = np.linalg.norm(row)
    return row / norm if norm > 0 else row


__all__ = [
    "FEATURE_TYPES",
    "FeatureType",
    "LocalFeatures",
    "RetrieveVerify",
    "VerifiedEncodings",
    "features_from_arrays",
    "features_to_arrays",
    "mirror_permutation",
    "thumbnail",
]
