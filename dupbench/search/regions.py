"""Region matching for the crop-resistant hash (``dupbench.methods.crop_resistant``): imagehash's
crop-resistant rule over the region slots of its codes, registered as the "crop_resistant" search.
"""

from __future__ import annotations

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.methods.crop_resistant import CropResistantHash
from dupbench.records import Candidates, Encodings
from dupbench.search import range_search
from dupbench.search.registry import whole_search


def region_codes(encodings: Encodings) -> np.ndarray:
    """(n, segments, words) view of crop-resistant codes: one row of words per region slot."""
    if encodings.method != CropResistantHash.name:
        raise ValueError(f"expected crop_resistant encodings, got {encodings.method!r}")
    segments = int(encodings.params["segments"])
    return encodings.codes.reshape(len(encodings), segments, -1)


@whole_search("crop_resistant")
def crop_resistant_search(
    encodings: Encodings, threshold: int | None = None, min_segments: int = 1
) -> Candidates:
    """Pairs of images sharing ≥ ``min_segments`` region hashes within ``threshold`` bits.

    threshold defaults to imagehash's 25 % bit-error rate of one region hash (16 of 64 bits).
    For images a, b with region-hash sets A, B: matched(a→b) = |{x ∈ A : min_y∈B d(x, y) ≤ t}|;
    the pair is kept when max(matched(a→b), matched(b→a)) ≥ min_segments, scored by
    min_{x∈A, y∈B} d(x, y). Region pairs come from one Hamming range search over all regions.
    """
    slots = region_codes(encodings)
    n, segments, words = slots.shape
    if threshold is None:
        threshold = int(words * 64 * 0.25)
    if min_segments < 1:
        raise ValueError("min_segments must be at least 1")
    if n < 2:
        return Candidates.empty(DistanceKind.HAMMING)
    flat = np.ascontiguousarray(slots.reshape(n * segments, words))
    first_equal = _first_equal_slot(slots)
    regions = range_search(flat, threshold, DistanceKind.HAMMING, backend="brute")
    image_a, image_b = regions.i // segments, regions.j // segments
    keep = image_a != image_b
    image_a, image_b, dist = image_a[keep], image_b[keep], regions.score[keep]
    slot_a = first_equal.ravel()[regions.i[keep]]
    slot_b = first_equal.ravel()[regions.j[keep]]
    lo, hi = np.minimum(image_a, image_b), np.maximum(image_a, image_b)
    slot_lo = np.where(image_a < image_b, slot_a, slot_b)
    slot_hi = np.where(image_a < image_b, slot_b, slot_a)
    pair = lo * n + hi
    pairs, inverse = np.unique(pair, return_inverse=True)
    matched_lo = _distinct_per_pair(inverse, slot_lo, len(pairs))
    matched_hi = _distinct_per_pair(inverse, slot_hi, len(pairs))
    best = np.full(len(pairs), np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(best, inverse, dist.astype(np.int64))
    ok = np.maximum(matched_lo, matched_hi) >= min_segments
    return Candidates(
        pairs[ok] // n, pairs[ok] % n, best[ok].astype(np.int32), DistanceKind.HAMMING
    ).sorted()


def _first_equal_slot(slots: np.ndarray) -> np.ndarray:
    """For each slot, the first slot of the same image with an identical hash (undoes padding)."""
    equal = np.all(slots[:, :, None, :] == slots[:, None, :, :], axis=-1)  # (n, s, s)
    return equal.argmax(axis=2)


def _distinct_per_pair(pair_index: np.ndarray, slot: np.ndarray, n_pairs: int) -> np.ndarray:
    """How many distinct slots occur for each pair."""
    unique = np.unique(np.stack([pair_index, slot]), axis=1)
    return np.bincount(unique[0], minlength=n_pairs)


__all__ = ["crop_resistant_search", "region_codes"]
