"""PDQ, Meta's 256-bit perceptual hash, in numpy: bit for bit the reference C++ (``pdqhash``).

PDQ takes luma (0.299 R + 0.587 G + 0.114 B), blurs it with a Jarosz tent filter (two rounds of
box filters along rows then columns, each window ⌈side / 128⌉), samples 64×64 pixel centres,
takes the 16×16 lowest non-DC terms of a DCT and thresholds them at their median (Torben's
method). It also rates the image's "quality" (0-100, from gradient energy): flat or tiny images
give unreliable hashes, and the reference recommends ignoring those below 50; ``min_quality``
turns them into skips.

Why not call ``pdqhash``: it is a compiled package without wheels for every platform, and the
default experiment includes PDQ. Equal bits need the reference's float32 arithmetic in its
order: its box filter keeps a running sum (add the entering pixel, subtract the leaving one,
divide by the window), which a float32 ``cumsum`` over the interleaved +entering/−leaving terms
reproduces rounding for rounding; its DCT sums products one k at a time, so ours does too rather
than calling a BLAS matmul whose summation order is unspecified. tests/test_methods_pdq.py
checks the bits, the quality and the float32 DCT coefficients against ``pdqhash`` on every
bundled photo and random sizes.

Bits are ordered as the reference implementation prints them, so our hex equals its hex.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.methods.invariant import InvariantHash
from dupbench.methods.registry import METHODS

_F32 = np.float32
#: the reference's side of the blurred, sampled image, and of its DCT block
_SAMPLED, _DCT = 64, 16
#: smaller images get the all-zero hash and quality 0, as in the reference
_MIN_SIDE = 5
#: running-sum terms per block of rows in the box filter (4 MiB of float32)
_BLOCK_TERMS = 1 << 20


def luma(rgb: np.ndarray) -> np.ndarray:
    """float32 luma; pdqhash's binding computes it in float64 then casts."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(_F32)


def window_size(side: int) -> int:
    """Box width per pass: half of one 64th of the side, rounded up (two passes make the tent)."""
    return (side + 2 * _SAMPLED - 1) // (2 * _SAMPLED)


@lru_cache(maxsize=256)
def _box_plan(length: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Where in the interleaved running sum each output sits, and its divisor.

    The reference first adds ``window`` pixels, writing from the ``half``-th on (a window
    clipped at the start); then for each later output adds the entering pixel and subtracts
    the leaving one; then subtracts for the last ``half - 1`` outputs (clipped at the end).
    """
    half = (window + 2) // 2
    full_steps = length - window
    positions = np.concatenate(
        [
            np.arange(half - 1, window),
            window + 1 + 2 * np.arange(full_steps),
            window + 2 * full_steps + np.arange(half - 1),
        ]
    )
    divisors = np.concatenate(
        [
            np.arange(half, window + 1),
            np.full(full_steps, window),
            window - 1 - np.arange(half - 1),
        ]
    ).astype(_F32)
    return positions, divisors


def box_filter_transposed(a: np.ndarray, window: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The reference's box filter along ``a``'s last axis, returned transposed (C order).

    Transposing lets each pass run along the contiguous axis (numpy's cumsum is several times
    faster there). ``keep`` selects output positions, when only those are needed. Rows go in
    blocks of about ``_BLOCK_TERMS`` running-sum terms, so a huge photo needs no huge buffer.
    """
    rows, length = a.shape
    full_steps = length - window
    tail = (window + 2) // 2 - 1
    positions, divisors = _box_plan(length, window)
    if keep is not None:
        positions, divisors = positions[keep], divisors[keep]
    out = np.empty((len(positions), rows), _F32)
    width = window + 2 * full_steps + tail
    step = max(1, _BLOCK_TERMS // width)
    for start in range(0, rows, step):
        block = a[start : start + step]
        terms = np.empty((len(block), width), _F32)
        terms[:, :window] = block[:, :window]
        terms[:, window : window + 2 * full_steps : 2] = block[:, window:]
        leaving = terms[:, window + 1 : window + 2 * full_steps : 2]
        np.negative(block[:, :full_steps], out=leaving)
        draining = terms[:, window + 2 * full_steps :]
        np.negative(block[:, full_steps : full_steps + tail], out=draining)
        np.cumsum(terms, axis=1, out=terms)  # accumulate is sequential: the reference's roundings
        out[:, start : start + step] = terms[:, positions].T
    out /= divisors[:, None]
    return out


def sample_centres(side: int) -> np.ndarray:
    """The 64 pixel indices the reference samples along a side (centres, in float64, truncated)."""
    return ((np.arange(_SAMPLED) + 0.5) * side / _SAMPLED).astype(np.intp)


def downsample(y: np.ndarray) -> np.ndarray:
    """Two Jarosz rounds (rows, then columns) and the 64×64 centre samples; 64×64 passes as is."""
    rows, cols = y.shape
    if (rows, cols) == (_SAMPLED, _SAMPLED):
        return y
    along_rows, along_cols = window_size(cols), window_size(rows)
    blurred = box_filter_transposed(y, along_rows)  # (cols, rows)
    blurred = box_filter_transposed(blurred, along_cols)  # (rows, cols)
    # the last round: only the 64 sampled columns, then only the 64 sampled rows, are read
    blurred = box_filter_transposed(blurred, along_rows, keep=sample_centres(cols))
    return box_filter_transposed(blurred, along_cols, keep=sample_centres(rows))


def quality(small: np.ndarray) -> int:
    """Gradient energy: truncated |Δ|·100/255 between 4-neighbours, summed, / 90, capped at 100."""
    total = 0
    for delta in (small[:-1] - small[1:], small[:, :-1] - small[:, 1:]):
        total += int(np.abs((delta * _F32(100) / _F32(255)).astype(np.int32)).sum())
    return min(100, total // 90)


@lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """(16, 64) DCT-II rows 1..16: a float32 scale times a float64 cosine, as in the reference."""
    scale = float(_F32(math.sqrt(2.0 / _SAMPLED)))
    step = math.pi / 2.0 / _SAMPLED
    return np.array(
        [
            [scale * math.cos(step * (i + 1) * (2 * j + 1)) for j in range(_SAMPLED)]
            for i in range(_DCT)
        ]
    ).astype(_F32)


def dct16(small: np.ndarray) -> np.ndarray:
    """B = D · A · Dᵀ with float32 sums over k accumulated in the reference's order (k = 0..63).

    A cumulative sum is sequential in numpy, so its last term has the reference's roundings.
    """
    d = dct_matrix()
    products = d[:, :, None] * small[None, :, :]  # (i, k, j) = D[i, k] · A[k, j]
    partial = np.cumsum(products, axis=1, dtype=_F32)[:, -1]
    products = partial[:, None, :] * d[None, :, :]  # (i, j, k) = T[i, k] · D[j, k]
    return np.cumsum(products, axis=2, dtype=_F32)[:, :, -1]


def torben_median(values: np.ndarray) -> np.float32:
    """Torben Mogensen's median by bisection (the reference's; for an even count, the lower one)."""
    n = values.size
    half = (n + 1) // 2
    low, high = values.min(), values.max()
    while True:
        guess = (low + high) / _F32(2)
        below, above = values < guess, values > guess
        less, greater = int(below.sum()), int(above.sum())
        max_below = max(low, values[below].max()) if less else low
        min_above = min(high, values[above].min()) if greater else high
        if less <= half and greater <= half:
            break
        if less > greater:
            high = max_below
        else:
            low = min_above
    if less >= half:
        return max_below
    if n - greater >= half:
        return guess
    return min_above


def pdq_hash(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(256 bools in the reference's print order, quality) for an (h, w, 3) uint8 array."""
    y = luma(rgb)
    if min(y.shape) < _MIN_SIDE:
        return np.zeros(_DCT * _DCT, dtype=bool), 0
    small = downsample(y)
    coefficients = dct16(small).ravel()
    # bit k = coefficient k > median, stored in 16-bit words printed from the last word down
    return (coefficients > torben_median(coefficients))[::-1], quality(small)


@METHODS.register()
class PDQHash(InvariantHash):
    """PDQ: 256 bits; duplicates within Hamming distance 31 (the reference's match threshold).

    min_quality: images whose PDQ quality is below this become skips (0 keeps everything).
    draft:       let JPEGs decode at 1/2 to 1/8 scale (no smaller than 512 px, PDQ's own working
                 size): much faster on large photos, changes bits slightly.
    """

    name = "pdq"
    robust_to = "resizing, recompression, mild edits"
    default_threshold: ClassVar[float] = 31

    def __init__(self, min_quality: int = 0, draft: bool = False, **params: Any) -> None:
        if not 0 <= min_quality <= 100:
            raise ValueError(f"min_quality must be between 0 and 100, got {min_quality}")
        super().__init__(min_quality=int(min_quality), draft=bool(draft), **params)
        self.min_quality = int(min_quality)
        self.draft = bool(draft)

    @property
    def variant_size(self) -> int:
        return 256

    @property
    def load_options(self) -> dict[str, Any]:
        return {"draft": (512, 512)} if self.draft else {}

    def hash_image(self, image: Image.Image) -> np.ndarray:
        bits, score = pdq_hash(np.asarray(images.to_rgb(image), dtype=np.uint8))
        if score < self.min_quality:
            raise images.ImageError(f"PDQ quality {score} is below min_quality {self.min_quality}")
        return bits
