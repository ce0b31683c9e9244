"""The verified method's search: retrieve candidate pairs, then verify each geometrically.

Over ``VerifiedEncodings`` (``dupbench.methods.verified``: SIFT or ORB features and a grey
thumbnail per image):

- Stage 1, ``retrieve``: candidate pairs, cheaply. A visual vocabulary is learnt from the
  collection's own descriptors (k-means; ORB's bits as 0/1 coordinates, whose squared Euclidean
  distance is their Hamming distance), every image becomes a tf-idf bag of words, and each
  image proposes its ``k`` most similar bags; a mirrored copy is found through the mirrored
  bag (of ``LocalFeatures.mirrored``: SIFT descriptors of a mirror image are a fixed
  permutation of the original's, ORB's are extracted from it), a rotated or cropped one
  because bags of local words ignore position. The ``thumbnail_k`` nearest thumbnails under
  the 8 rotations/flips add candidates that local features may miss (heavy blur), and a
  near-equal thumbnail scores a pair alone.
- Stage 2, ``verify``: each candidate pair is matched descriptor to descriptor (Lowe's ratio
  test on L2 distances for SIFT, Hamming distances for ORB), as is and mirrored, and a RANSAC
  affine fit counts the matches that agree on one geometric transform. The score, in [0, 1],
  grows with the share of matches that map explains and with their count (``Verifier.score``).
- Then ``expand``: pairs two hops apart among the verified ones (the best partners of each
  image's best partners, and the pairs that share the most verified partners) are verified as
  well, so a copy that stage 1 missed is found through the copies it does match.

Stage 1 proposes ``k`` bags per image: more than a group of copies usually holds (each photo
of the default dataset has 38 edited copies; with ``k`` = 30, one true pair in nine was
never proposed), since a pair stage 1 misses is lost whatever stage 2 would say.

``verified_search`` runs both stages (registered as the "verified" search).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dupbench.cpus import worker_count
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError
from dupbench.methods.verified import FEATURE_TYPES, THUMB, LocalFeatures, VerifiedEncodings
from dupbench.records import Candidates, Encodings
from dupbench.search.registry import whole_search
from dupbench.workers import parallel_map

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

#: descriptors sampled per visual word to learn the vocabulary (k-means cost grows with it)
SAMPLE_PER_WORD = 32
#: descriptors given their visual words at a time (a float32 block and its distances to every
#: word: about 40 MB with the default vocabulary)
DESCRIPTOR_BLOCK = 8192


def dihedral_rows(codes: np.ndarray) -> np.ndarray:
    """(8, n, d): the thumbnails under the 8 rotations and flips of the square."""
    squares = codes.reshape(len(codes), THUMB, THUMB)
    out = []
    for flipped in (squares, squares[:, :, ::-1]):
        for turns in range(4):
            out.append(np.rot90(flipped, turns, axes=(1, 2)).reshape(len(codes), -1))
    return np.stack(out)


def descriptor_rows(descriptors: np.ndarray, kind: str) -> np.ndarray:
    """Descriptors as the float32 rows that k-means and matching compare by squared Euclidean
    distance: SIFT's bytes as they are, a binary descriptor's bits unpacked to 0/1 (where that
    distance is the Hamming distance)."""
    if FEATURE_TYPES[kind].binary:
        return np.unpackbits(descriptors, axis=1).astype(np.float32)
    return descriptors.astype(np.float32)


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


def _nearest(data: np.ndarray, centres: np.ndarray, block: int = 8192) -> np.ndarray:
    """Index of the nearest centre (Euclidean) for every row, in blocks to bound memory."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
    out = np.empty(len(data), dtype=np.int64)
    for start in range(0, len(data), block):
        part = data[start : start + block]
        out[start : start + block] = np.argmax(part @ centres.T - half_norms, axis=1)
    return out


def _bags(features: list[LocalFeatures], vocabulary: int, seed: int) -> tuple[np.ndarray, ...]:
    """(bags, mirrored bags): L2-normalised tf-idf word histograms, one row per image.

    Descriptors stay uint8 in their images' features: only the k-means sample and one block of
    images at a time (``DESCRIPTOR_BLOCK`` descriptors) are ever float, so memory does not grow
    with the collection's descriptor count beyond the features themselves."""
    n = len(features)
    counts = np.array([len(f.descriptors) for f in features], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        z = np.zeros((n, 1), np.float32)
        return z, z
    kind = features[0].kind
    rng = np.random.default_rng(seed)
    k = min(vocabulary, total)
    picked = rng.choice(total, size=min(total, SAMPLE_PER_WORD * k), replace=False)
    starts = np.concatenate([[0], np.cumsum(counts)])
    owner = np.searchsorted(starts, picked, side="right") - 1
    sample = np.stack(
        [features[o].descriptors[p - starts[o]] for o, p in zip(owner.tolist(), picked.tolist())]
    )
    centres = _kmeans(descriptor_rows(sample, kind), k, iterations=8, rng=rng)
    del sample
    bags = _word_counts((f.descriptors for f in features), n, centres, kind)
    mirrored = _word_counts((f.mirrored().descriptors for f in features), n, centres, kind)
    idf = np.log((n + 1) / (1 + (bags > 0).sum(0) + (mirrored > 0).sum(0) / 2)).astype(np.float32)
    return _unit_rows(bags * idf), _unit_rows(mirrored * idf)


def _word_counts(
    descriptors: Iterable[np.ndarray], n: int, centres: np.ndarray, kind: str
) -> np.ndarray:
    """(n, words): how many of each image's descriptors (one array per image, made as they are
    read: a mirror's are) have each visual word, a block of images at a time."""
    words = np.zeros((n, len(centres)), np.float32)
    for block in _blocks(descriptors):
        image_of = np.repeat([r for r, _ in block], [len(d) for _, d in block])
        rows = descriptor_rows(np.concatenate([d for _, d in block]), kind)
        np.add.at(words, (image_of, _nearest(rows, centres)), 1)
    return words


def _blocks(descriptors: Iterable[np.ndarray]) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Lists of (image index, its descriptors): an image and the images after it while these
    hold fewer than ``DESCRIPTOR_BLOCK`` descriptors."""
    block: list[tuple[int, np.ndarray]] = []
    after = 0
    for r, d in enumerate(descriptors):
        if block and after + len(d) >= DESCRIPTOR_BLOCK:
            yield block
            block, after = [], 0
        elif block:
            after += len(d)
        block.append((r, d))
    if block:
        yield block


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
    k: int = 60,
    thumbnail_k: int = 10,
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


def _strongest(
    n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray, per_image: int
) -> csr_matrix:
    """(n, n) sparse graph of each image's ``per_image`` best-scoring verified pairs (score >
    0), weighted by their scores; row a holds a's own best, so it need not be symmetric."""
    from scipy.sparse import csr_matrix

    verified = score > 0
    src = np.concatenate([i[verified], j[verified]])
    dst = np.concatenate([j[verified], i[verified]])
    best = np.concatenate([score[verified], score[verified]])
    order = np.lexsort((-best, src))
    src, dst, best = src[order], dst[order], best[order]
    first = np.searchsorted(src, src)  # where each image's run of pairs starts
    top = np.arange(len(src)) - first < per_image
    return csr_matrix((best[top], (src[top], dst[top])), shape=(n, n))


def _pair_keys(n: int, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """One int64 per unordered pair (a, c), a != c."""
    a, c = a.astype(np.int64), c.astype(np.int64)
    return np.minimum(a, c) * n + np.maximum(a, c)


def expand(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    score: np.ndarray,
    per_image: int,
    neighbours: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """New candidate pairs (a, c), a < c, not among (i, j), two hops apart in the graph of
    verified pairs (score > 0), proposed by two rankings:

    - best paths: c is among the ``per_image`` best pairs of one of ``a``'s own ``per_image``
      best, so an image that stage 1 linked to one or two copies reaches their strongest
      partners (the original, usually);
    - shared neighbours: the ``per_image`` pairs of each image with the most weight of common
      verified partners (the sum of score products over each image's ``neighbours`` best
      pairs), so two copies that stage 1 never put together but that verify with many of the
      same copies are proposed, however large the group (with only the best paths, the best
      partners of a 38-copy group are its near-exact copies, and two edited copies stay apart).

    Query expansion over verified pairs: an edit that hides a copy from stage 1 (a text bar over
    a photo with few keypoints: its words are mostly the caption's) rarely hides it from every
    other copy. At most ``per_image``² + ``per_image`` pairs per image, however large a group of
    copies is; the products read at most ``neighbours``² entries per image.
    """
    if per_image <= 0:
        z = np.zeros(0, np.int64)
        return z, z.copy()
    known = _pair_keys(n, i, j)
    best = _strongest(n, i, j, score, per_image)
    paths = (best @ best).tocoo()
    proposed = [_pair_keys(n, paths.row, paths.col)[paths.row != paths.col]]
    near = _strongest(n, i, j, score, neighbours)
    shared = (near @ near.T).tocoo()
    mask = shared.row != shared.col
    a, keys, weight = (
        shared.row[mask],
        _pair_keys(n, shared.row, shared.col)[mask],
        shared.data[mask],
    )
    new = ~np.isin(keys, known)
    a, keys, weight = a[new], keys[new], weight[new]
    order = np.lexsort((-weight, a))
    a, keys = a[order], keys[order]
    proposed.append(keys[np.arange(len(a)) - np.searchsorted(a, a) < per_image])
    pairs = np.setdiff1d(np.concatenate(proposed), known)
    return pairs // n, pairs % n


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
        first, d = _two_nearest(a, b)
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


def _two_nearest(a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """For each descriptor of ``a``: the index of its nearest in ``b``, and the distances to its
    nearest two, (n, 2) ascending, in the feature type's own metric (L2 for SIFT, Hamming for a
    binary type)."""
    query, ref = descriptor_rows(a.descriptors, a.kind), descriptor_rows(b.descriptors, b.kind)
    dist = (query * query).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2 * query @ ref.T
    two = np.argpartition(dist, 1, axis=1)[:, :2]
    d = np.take_along_axis(dist, two, axis=1)
    first = np.where(d[:, 0] <= d[:, 1], two[:, 0], two[:, 1])
    d = np.maximum(np.sort(d, axis=1), 0)  # squared distances: exact, as integers in float32
    return first, d if FEATURE_TYPES[a.kind].binary else np.sqrt(d)


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


def _scores(
    encodings: VerifiedEncodings,
    i: np.ndarray,
    j: np.ndarray,
    verifier: Verifier,
    thumbnail_floor: float,
    workers: int | None,
) -> np.ndarray:
    """Per pair, the better of its verification and its thumbnail score."""
    score = verify(encodings.features, i, j, verifier, workers)
    return np.maximum(score, thumbnail_scores(encodings.codes, i, j, thumbnail_floor))


@whole_search("verified", timed=True)
def verified_search(
    encodings: Encodings,
    threshold: float = 0.0,
    *,
    k: int = 60,
    thumbnail_k: int = 10,
    vocabulary: int = 1024,
    seed: int = 0,
    ratio: float = 0.8,
    tolerance: float = 1.0,
    iterations: int = 500,
    half_score_inliers: float = 5.0,
    min_inliers: int = 5,
    full_coverage: float = 0.25,
    thumbnail_floor: float = 0.95,
    expand_k: int = 5,
    expand_neighbours: int = 20,
    workers: int = 0,
    stage: Callable | None = None,
) -> Candidates:
    """Both stages over ``RetrieveVerify`` encodings: every verified candidate pair scoring at
    least ``threshold`` (a similarity in [0, 1]), best first.

    A pair's score is the better of its verification score and its thumbnail score
    (``thumbnail_scores``): heavy blur or downscaling leaves few keypoints to match but the
    thumbnails nearly equal. With ``expand_k``, the pairs that the verified ones propose
    (``expand``, looking at each image's ``expand_neighbours`` best) are verified too.

    ``stage(name, items)``, when given, returns a context manager that times a sub-stage (the
    harness passes its stopwatch's), so that retrieval and verification are reported apart.
    """
    if not isinstance(encodings, VerifiedEncodings):
        raise UsageError(
            "the verified search needs the local features that the verified method keeps "
            "with its encodings; an encoding map {file: vector} (or a file saved by an "
            "older dupbench) holds thumbnails only: search the images instead"
        )
    timed = stage or (lambda name, items: nullcontext())
    verifier = Verifier(
        ratio, tolerance, int(iterations), half_score_inliers, int(min_inliers), full_coverage
    )
    with timed("search.retrieve", len(encodings)):
        i, j = retrieve(encodings, int(k), int(thumbnail_k), int(vocabulary), int(seed))
    with timed("search.verify", len(i)):
        score = _scores(encodings, i, j, verifier, thumbnail_floor, workers)
    if expand_k > 0:
        more_i, more_j = expand(len(encodings), i, j, score, int(expand_k), int(expand_neighbours))
        with timed("search.expand", len(more_i)):
            more = _scores(encodings, more_i, more_j, verifier, thumbnail_floor, workers)
        i, j, score = (np.concatenate(x) for x in ((i, more_i), (j, more_j), (score, more)))
    keep = score >= threshold
    return Candidates(i[keep], j[keep], score[keep], DistanceKind.COSINE).sorted()


__all__ = ["Verifier", "expand", "retrieve", "verified_search", "verify"]
