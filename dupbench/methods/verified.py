"""Retrieve, then verify: a two-stage near-duplicate method robust to crops, rotations and flips.

Every global fingerprint breaks on the edits people actually make (a 50 % crop, a 90° turn, a
mirror, letterbox bars, a caption). Local features survive them, but matching every pair of
images with them costs n². So:

- ``encode`` (the method, once per image): SIFT keypoints and descriptors of the grey image
  scaled to ``max_side``, kept in ``VerifiedEncodings.features``; the code row is a small
  grey thumbnail (unit vector) used by stage 1 as a second, photometric, source of candidates.
- Stage 1, ``retrieve``: candidate pairs, cheaply. A visual vocabulary is learnt from the
  collection's own descriptors (k-means), every image becomes a tf-idf bag of words, and each
  image proposes its ``k`` most similar bags; a mirrored copy is found through the mirrored
  bag (SIFT descriptors of a mirror image are a fixed permutation of the original's, see
  ``mirror_permutation``), a rotated or cropped one because bags of local words ignore
  position. The ``thumbnail_k`` nearest thumbnails under the 8 rotations/flips add candidates
  that local features may miss (heavy blur), and a near-equal thumbnail scores a pair alone.
- Stage 2, ``verify``: each candidate pair is matched descriptor to descriptor (Lowe's ratio
  test), as is and mirrored, and a RANSAC affine fit counts the matches that agree on one
  geometric transform. The score, in [0, 1], grows with the share of matches that map
  explains and with their count (``Verifier.score``).

``verified_search`` (the registered "verified" search) runs both stages over encodings made by
this method; the encodings must come from ``encode`` (codes alone, from a file, a store or an
encoding map, carry no local features, and the search says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.cpus import worker_count
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError
from dupbench.methods.base import Method, _map_sources, int_param
from dupbench.methods.registry import METHODS
from dupbench.records import Candidates, Encodings, Skipped
from dupbench.search.registry import whole_search
from dupbench.workers import parallel_map

#: side of the grey thumbnail that is the code row (stage 1's photometric candidates)
THUMB = 16
#: descriptors sampled per visual word to learn the vocabulary (k-means cost grows with it)
SAMPLE_PER_WORD = 32
_SIFT_BINS = (4, 4, 8)  # SIFT descriptor layout: rows x columns x orientation bins


@dataclass(frozen=True)
class LocalFeatures:
    """One image's keypoints: ``points`` (n, 2) x, y in the work image of ``width`` x
    ``height`` pixels, and their SIFT ``descriptors`` (n, 128) uint8."""

    points: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int

    def mirrored(self) -> LocalFeatures:
        """The features of the horizontally mirrored image, without extracting them again."""
        points = self.points.copy()
        points[:, 0] = self.width - 1 - points[:, 0]
        return LocalFeatures(
            points, self.descriptors[:, mirror_permutation()], self.width, self.height
        )


def mirror_permutation() -> np.ndarray:
    """Column order that turns a SIFT descriptor into the one of the mirrored keypoint.

    OpenCV measures a keypoint's angle counter-clockwise in image coordinates, so a mirror maps
    the descriptor's 4x4 grid upside down (rows reversed, in the keypoint's frame) and each
    orientation bin o to -o (mod 8). Checked in tests against SIFT run on the mirrored image.
    """
    idx = np.arange(np.prod(_SIFT_BINS)).reshape(_SIFT_BINS)
    return idx[::-1, :, (-np.arange(_SIFT_BINS[2])) % _SIFT_BINS[2]].ravel()


@dataclass
class VerifiedEncodings(Encodings):
    """Encodings plus each image's local features (``features[r]`` belongs to row r).

    A subclass rather than a new field of ``Encodings``: every other consumer (saving, stores,
    search indexes) sees ordinary float codes, and only ``verified_search`` reads the features,
    which are never saved (a few hundred descriptors per image: kept in memory for one run)."""

    features: list[LocalFeatures] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.features) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.features)} feature sets")


@METHODS.register()
class RetrieveVerify(Method):
    """SIFT features for two-stage retrieve-and-verify search (see the module doc).

    max_side: the longer side of the grey image features are taken from (pixels).
    features: at most this many SIFT keypoints per image (the strongest).
    """

    name = "verified"
    kind = "float"
    metric = DistanceKind.COSINE
    #: about the score at 99 % pair precision on the default dataset (0.077, 2026-12-01)
    default_threshold: ClassVar[float] = 0.08
    robust_to = "crops, 90° rotations, mirroring, padding, overlays, photometric edits"
    requires = ("cv2",)
    extra = "robust"
    #: its codes alone do not find duplicates: every use searches with ``verified_search``
    preferred_search = ("verified", {})
    threshold_form = "score ≥ {:g}"

    def __init__(self, max_side: int = 512, features: int = 500, **params: Any) -> None:
        self.max_side = int_param("max_side", max_side, 32)
        self.features = int_param("features", features, 8)
        super().__init__(max_side=self.max_side, features=self.features, **params)
        self._sift: Any = None  # a cv2.SIFT, made on first use

    @property
    def size(self) -> int:
        return THUMB * THUMB

    @property
    def load_options(self) -> dict[str, Any]:
        return {"draft": (self.max_side, self.max_side)}  # JPEG decodes at 1/2..1/8 scale

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_sift": None}  # a cv2 object does not pickle to workers

    # a pair, unlike Method.encode_image's row: this method's encode() is its own
    def encode_image(  # type: ignore[override]
        self, image: Image.Image
    ) -> tuple[np.ndarray, LocalFeatures]:
        """(thumbnail code row, local features) of one decoded image."""
        grey = image.convert("L")
        scale = self.max_side / max(grey.size)
        if scale < 1:
            size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
            grey = grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.asarray(grey)
        return thumbnail(pixels), self._extract(pixels)

    def _extract(self, pixels: np.ndarray) -> LocalFeatures:
        import cv2

        if self._sift is None:
            cv2.setNumThreads(1)
            # cv2's stubs omit SIFT_create; cv2.SIFT.create is missing from older releases
            self._sift = cv2.SIFT_create(nfeatures=self.features)  # type: ignore[attr-defined]
        keypoints, descriptors = self._sift.detectAndCompute(pixels, None)
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
        if descriptors is None:
            descriptors = np.zeros((0, 128), np.float32)
        height, width = pixels.shape
        return LocalFeatures(points, np.clip(descriptors, 0, 255).astype(np.uint8), width, height)

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
            self.metric,
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


def dihedral_rows(codes: np.ndarray) -> np.ndarray:
    """(8, n, d): the thumbnails under the 8 rotations and flips of the square."""
    squares = codes.reshape(len(codes), THUMB, THUMB)
    out = []
    for flipped in (squares, squares[:, :, ::-1]):
        for turns in range(4):
            out.append(np.rot90(flipped, turns, axes=(1, 2)).reshape(len(codes), -1))
    return np.stack(out)


# ---- stage 1: retrieval ------------------------------------------------------------------


def _kmeans(data: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means on the rows of ``data`` (float32); returns the (k, d) centres."""
    from scipy.sparse import csr_matrix

    centres = data[rng.choice(len(data), size=k, replace=False)].copy()
    rows = np.arange(len(data))
    for _ in range(iterations):
        labels = _nearest(data, centres)
        sums = csr_matrix((np.ones(len(data), np.float32), (labels, rows)), shape=(k, len(data)))
        sums = np.asarray(sums @ data, dtype=np.float32)
        counts = np.bincount(labels, minlength=k)
        empty = counts == 0
        centres[~empty] = sums[~empty] / counts[~empty, None]
        centres[empty] = data[rng.choice(len(data), size=int(empty.sum()), replace=False)]
    return centres


def _nearest(data: np.ndarray, centres: np.ndarray, block: int = 65536) -> np.ndarray:
    """Index of the nearest centre (Euclidean) for every row, in blocks to bound memory."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
    out = np.empty(len(data), dtype=np.int64)
    for start in range(0, len(data), block):
        part = data[start : start + block]
        out[start : start + block] = np.argmax(part @ centres.T - half_norms, axis=1)
    return out


def _bags(features: list[LocalFeatures], vocabulary: int, seed: int) -> tuple[np.ndarray, ...]:
    """(bags, mirrored bags): L2-normalised tf-idf word histograms, one row per image."""
    n = len(features)
    counts = np.array([len(f.descriptors) for f in features])
    all_desc = np.concatenate(
        [f.descriptors for f in features] + [np.zeros((0, 128), np.uint8)]
    ).astype(np.float32)
    if len(all_desc) == 0:
        z = np.zeros((n, 1), np.float32)
        return z, z
    rng = np.random.default_rng(seed)
    k = min(vocabulary, len(all_desc))
    sample = all_desc[
        rng.choice(len(all_desc), size=min(len(all_desc), SAMPLE_PER_WORD * k), replace=False)
    ]
    centres = _kmeans(sample, k, iterations=8, rng=rng)
    image_of = np.repeat(np.arange(n), counts)
    words = _nearest(all_desc, centres)
    mirrored_words = _nearest(all_desc[:, mirror_permutation()], centres)
    bags = np.zeros((n, k), np.float32)
    mirrored = np.zeros((n, k), np.float32)
    np.add.at(bags, (image_of, words), 1)
    np.add.at(mirrored, (image_of, mirrored_words), 1)
    idf = np.log((n + 1) / (1 + (bags > 0).sum(0) + (mirrored > 0).sum(0) / 2)).astype(np.float32)
    return _unit_rows(bags * idf), _unit_rows(mirrored * idf)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def _top_k(queries: list[np.ndarray], refs: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """(n, k) nearest rows of ``refs`` for each row, by the best cosine over the query variants
    (each (n, d)); an image is never its own neighbour."""
    n = len(refs)
    k = min(k, n - 1)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = np.max([q[start:stop] @ refs.T for q in queries], axis=0)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return out


def retrieve(
    encodings: VerifiedEncodings,
    k: int = 30,
    thumbnail_k: int = 5,
    vocabulary: int = 1024,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: candidate pairs (i, j), i < j, each once: every image's ``k`` nearest bags of
    words (as is or mirrored) and ``thumbnail_k`` nearest thumbnails (any of 8 orientations)."""
    n = len(encodings)
    if n < 2:
        z = np.zeros(0, np.int64)
        return z, z.copy()
    bags, mirrored = _bags(encodings.features, vocabulary, seed)
    lists = [_top_k([bags, mirrored], bags, k)]
    if thumbnail_k > 0:
        lists.append(_top_k(list(dihedral_rows(encodings.codes)), encodings.codes, thumbnail_k))
    i = np.concatenate([np.repeat(np.arange(n), len(t[0])) for t in lists])
    j = np.concatenate([t.ravel() for t in lists])
    pairs = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
    return pairs // n, pairs % n


def thumbnail_scores(codes: np.ndarray, i: np.ndarray, j: np.ndarray, floor: float) -> np.ndarray:
    """Per pair, the best thumbnail cosine over the 8 orientations of ``i``, mapped from
    [floor, 1] to [0, 1] (0 below ``floor``; on the default dataset no two different photos
    exceed 0.92)."""
    if len(i) == 0 or floor >= 1:
        return np.zeros(len(i), np.float32)
    best = np.max(np.einsum("vnd,nd->vn", dihedral_rows(codes[i]), codes[j]), axis=0)
    return np.clip((best - floor) / (1 - floor), 0, 1).astype(np.float32)


# ---- stage 2: verification ---------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """How one candidate pair is verified and scored (the search's stage-2 parameters).

    ratio: Lowe's ratio test; tolerance: RANSAC reprojection error in work-image pixels;
    iterations: RANSAC's most; half_score_inliers, min_inliers, full_coverage: see ``score``.
    """

    ratio: float = 0.8
    tolerance: float = 1.0
    iterations: int = 500
    half_score_inliers: float = 5.0
    min_inliers: int = 5
    full_coverage: float = 0.25

    def fit(self, a: LocalFeatures, b: LocalFeatures) -> tuple[int, int, float]:
        """(inliers, matches, coverage): how many descriptor matches of ``a`` to ``b`` pass
        the ratio test, how many of them one affine map (RANSAC) explains, and the larger
        share of either image that the convex hull of those inliers spans."""
        import cv2

        if len(a.descriptors) < 2 or len(b.descriptors) < 2:
            return 0, 0, 0.0
        query, ref = a.descriptors.astype(np.float32), b.descriptors.astype(np.float32)
        dist = (query * query).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2 * query @ ref.T
        two = np.argpartition(dist, 1, axis=1)[:, :2]
        d = np.take_along_axis(dist, two, axis=1)
        first = np.where(d[:, 0] <= d[:, 1], two[:, 0], two[:, 1])
        d = np.sqrt(np.maximum(np.sort(d, axis=1), 0))
        good = np.flatnonzero(d[:, 0] < self.ratio * d[:, 1])
        if len(good) < max(3, self.min_inliers):
            return 0, len(good), 0.0
        src, dst = a.points[good], b.points[first[good]]
        _, mask = cv2.estimateAffine2D(
            src,
            dst,
            method=cv2.RANSAC,
            ransacReprojThreshold=self.tolerance,
            maxIters=self.iterations,
            confidence=0.995,
        )
        if mask is None:
            return 0, len(good), 0.0
        kept = mask.ravel().astype(bool)
        coverage = max(_hull_share(src[kept], a), _hull_share(dst[kept], b))
        return int(kept.sum()), len(good), coverage

    def score(self, a: LocalFeatures, b: LocalFeatures) -> float:
        """Similarity in [0, 1] from the better fit of ``b`` as is and mirrored:
        ``(inliers / matches)³ · inliers / (inliers + half_score_inliers)``, scaled down by
        ``coverage / full_coverage`` when under 1; 0 below ``min_inliers``.

        The inlier count alone cannot tell a copy from another photo of the same scene (a
        stereo pair gives a hundred inliers on one depth plane); the share of matches that one
        affine map explains within a pixel can: near 1 for an edited copy, about half for a
        second view (on the default dataset the cube separates them better than the square). The
        coverage keeps two photos that share only a caption or a logo apart.
        """
        inliers, matches, coverage = max(self.fit(a, b), self.fit(a, b.mirrored()))
        if inliers < self.min_inliers:
            return 0.0
        spread = min(1.0, coverage / self.full_coverage) if self.full_coverage > 0 else 1.0
        return (inliers / matches) ** 3 * inliers / (inliers + self.half_score_inliers) * spread


def _hull_share(points: np.ndarray, image: LocalFeatures) -> float:
    """The area of the convex hull of ``points`` as a share of ``image``'s area."""
    import cv2

    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(cv2.contourArea(hull)) / max(1, image.width * image.height)


_WORKER: dict[str, Any] = {}


def _worker_start(features: list[LocalFeatures], verifier: Verifier) -> None:
    """Pool initializer: one thread per worker process (the matrices per pair are small, and
    BLAS or OpenCV threads on top of the processes slow verification down many times)."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)
    _WORKER.update(features=features, verifier=verifier)


def _score_pair(pair: tuple[int, int]) -> float:
    features, verifier = _WORKER["features"], _WORKER["verifier"]
    return verifier.score(features[pair[0]], features[pair[1]])


def verify(
    features: list[LocalFeatures],
    i: np.ndarray,
    j: np.ndarray,
    verifier: Verifier,
    workers: int | None = None,
) -> np.ndarray:
    """Stage 2: the score of every candidate pair, over ``workers`` processes
    (``cpus.worker_count``; fewer than 256 pairs are scored here)."""
    pairs = list(zip(np.asarray(i).tolist(), np.asarray(j).tolist()))
    workers = worker_count(workers)
    if workers == 1 or len(pairs) < 256:
        from threadpoolctl import threadpool_limits

        _WORKER.update(features=features, verifier=verifier)
        try:
            with threadpool_limits(1):
                return np.array([_score_pair(p) for p in pairs], dtype=np.float32)
        finally:
            _WORKER.clear()
    scores = parallel_map(
        _score_pair,
        pairs,
        workers,
        chunk_size=max(64, min(1024, len(pairs) // (workers * 8))),
        initializer=_worker_start,
        initargs=(features, verifier),
    )
    return np.array(scores, dtype=np.float32)


@whole_search("verified", timed=True)
def verified_search(
    encodings: Encodings,
    threshold: float = 0.0,
    *,
    k: int = 30,
    thumbnail_k: int = 5,
    vocabulary: int = 1024,
    seed: int = 0,
    ratio: float = 0.8,
    tolerance: float = 1.0,
    iterations: int = 500,
    half_score_inliers: float = 5.0,
    min_inliers: int = 5,
    full_coverage: float = 0.25,
    thumbnail_floor: float = 0.95,
    workers: int = 0,
    stage: Callable | None = None,
) -> Candidates:
    """Both stages over ``RetrieveVerify`` encodings: every verified candidate pair scoring at
    least ``threshold`` (a similarity in [0, 1]), best first.

    A pair's score is the better of its verification score and its thumbnail score
    (``thumbnail_scores``): heavy blur or downscaling leaves few keypoints to match but the
    thumbnails nearly equal.

    ``stage(name, items)``, when given, returns a context manager that times a sub-stage (the
    harness passes its stopwatch's), so that retrieval and verification are reported apart.
    """
    if not isinstance(encodings, VerifiedEncodings):
        raise UsageError(
            "the verified search needs the local features that the verified "
            "method computes while encoding; encodings read back from a file, a "
            "store or an encoding map hold codes only: search the images instead"
        )
    timed = stage or (lambda name, items: nullcontext())
    verifier = Verifier(
        ratio, tolerance, int(iterations), half_score_inliers, int(min_inliers), full_coverage
    )
    with timed("search.retrieve", len(encodings)):
        i, j = retrieve(encodings, int(k), int(thumbnail_k), int(vocabulary), int(seed))
    with timed("search.verify", len(i)):
        score = verify(encodings.features, i, j, verifier, worker_count(workers))
        score = np.maximum(score, thumbnail_scores(encodings.codes, i, j, thumbnail_floor))
    keep = score >= threshold
    return Candidates(i[keep], j[keep], score[keep], DistanceKind.COSINE).sorted()


__all__ = [
    "LocalFeatures",
    "RetrieveVerify",
    "VerifiedEncodings",
    "Verifier",
    "mirror_permutation",
    "retrieve",
    "verified_search",
    "verify",
]
