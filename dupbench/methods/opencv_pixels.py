"""numpy copies of the 8-bit OpenCV operations that cv2.img_hash's hashes are built from.

Each function gives the same bytes as the OpenCV call named in its docstring (OpenCV's own C++
code paths; where an IPP build swaps in Intel's resize, see ``resize_cubic``), so the hashes in
``img_hash`` match cv2.img_hash bit for bit without making opencv a dependency. The integer
arithmetic is OpenCV's fixed point; where OpenCV rounds in float32, so do we, in its order.
tests/test_methods_img_hash.py checks every function here against cv2 on photos and random sizes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_F32 = np.float32


def gray(rgb: np.ndarray) -> np.ndarray:
    """``cvtColor(bgr, COLOR_BGR2GRAY)`` of an RGB array: BT.601 in 15-bit fixed point."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    return ((b * 3735 + g * 19235 + r * 9798 + (1 << 14)) >> 15).astype(np.uint8)


def _linear_exact_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left/right source index and 8-bit weights per output index, and which outputs are borders.

    OpenCV maps output centres back (x + 0.5)·src/dst − 0.5 in double, rounds the fractional
    weight to 1/256, and copies the edge pixel for outputs that fall before the first or after
    the last source pixel.
    """
    position = (1.0 / (dst / src)) * (np.arange(dst) + 0.5) - 0.5
    left = np.floor(position).astype(np.int64)
    weight = np.rint((position - left) * 256).astype(np.int64)
    before, after = left < 0, left >= src - 1
    if src == 1:
        before, after = np.ones(dst, bool), np.zeros(dst, bool)
    border = before | after
    left = np.where(before, 0, np.where(after, src - 1, left))
    right = np.where(border, left, left + 1)
    return left, right, np.where(border, 0, weight), border


def resize_linear_exact(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``resize(image, (width, height), interpolation=INTER_LINEAR_EXACT)`` for uint8 (h, w[, c]).

    Bit-exact by OpenCV's design: 8.8 fixed-point weights, products summed in integers, one
    rounding at the end. An exact 2× reduction is INTER_AREA there (the 2×2 mean, rounded).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    if (h, w) == (2 * height, 2 * width) and image.ndim in (2, 3):
        quad = image.astype(np.int32)
        total = quad[0::2, 0::2] + quad[0::2, 1::2] + quad[1::2, 0::2] + quad[1::2, 1::2]
        return ((total + 2) >> 2).astype(np.uint8)
    x_left, x_right, x_weight, _ = _linear_exact_taps(w, width)
    y_left, y_right, y_weight, y_border = _linear_exact_taps(h, height)
    per_x = (slice(None),) + (None,) * (image.ndim - 2)
    per_y = (slice(None),) + (None,) * (image.ndim - 1)

    def horizontal(rows: np.ndarray) -> np.ndarray:  # in 1/256
        rows = image[rows].astype(np.int64)
        return rows[:, x_left] * (256 - x_weight)[per_x] + rows[:, x_right] * x_weight[per_x]

    top, bottom = horizontal(y_left), horizontal(y_right)
    out = (top * (256 - y_weight)[per_y] + bottom * y_weight[per_y] + (1 << 15)) >> 16
    out[y_border] = (top[y_border] + (1 << 7)) >> 8  # edge rows: the horizontal pass alone
    return np.clip(out, 0, 255).astype(np.uint8)


#: GaussianBlur's 7-tap kernel for sigma 0, in 1/256 (OpenCV's fixed table, not a Gaussian formula)
_GAUSSIAN_7 = np.array([8, 28, 56, 72, 56, 28, 8], dtype=np.float64)


def gaussian_blur_7(image: np.ndarray) -> np.ndarray:
    """``GaussianBlur(gray, (7, 7), 0)`` for uint8 gray: OpenCV's bit-exact fixed-point path.

    Rows then columns with the 8-bit taps and reflect-101 borders; sums are integers below 2^24,
    exact in float64, rounded once as OpenCV does ((s + 2^15) >> 16).
    """
    from scipy.ndimage import correlate1d

    pixels = image.astype(np.float64)
    rows = correlate1d(pixels, _GAUSSIAN_7, axis=1, mode="mirror")
    both = correlate1d(rows, _GAUSSIAN_7, axis=0, mode="mirror")
    return ((both.astype(np.int64) + (1 << 15)) >> 16).astype(np.uint8)


def _cubic_weights(fraction: np.ndarray) -> np.ndarray:
    """Keys' cubic (A = −0.75) weights of the 4 taps, in float32 as OpenCV's interpolateCubic."""
    a, one = _F32(-0.75), _F32(1)
    x, x1, y = fraction, fraction + one, one - fraction
    w0 = ((a * x1 - _F32(5) * a) * x1 + _F32(8) * a) * x1 - _F32(4) * a
    w1 = ((a + _F32(2)) * x - (a + _F32(3))) * x * x + one
    w2 = ((a + _F32(2)) * y - (a + _F32(3))) * y * y + one
    return np.stack([w0, w1, w2, one - w0 - w1 - w2], axis=1)


#: int16 lanes of OpenCV's vertical cubic loop (its SSE baseline build: 128-bit vectors)
_SIMD_LANES = 8


@lru_cache(maxsize=64)
def _cubic_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """(dst, 4) source indices (edge-clamped) and weights in 1/2048 (OpenCV's 11-bit shorts)."""
    position = ((1.0 / (dst / src)) * (np.arange(dst) + 0.5) - 0.5).astype(_F32)
    left = np.floor(position).astype(np.int64)
    fraction = position - left.astype(_F32)
    weights = np.rint(_cubic_weights(fraction) * _F32(2048)).astype(np.int64)
    indices = np.clip(left[:, None] + np.arange(-1, 3), 0, src - 1)
    return indices, weights


def resize_cubic(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``resize(gray, (width, height), interpolation=INTER_CUBIC)`` for uint8, OpenCV's own code.

    Integer rows with 11-bit weights; the vertical pass in float32 as OpenCV's SIMD loop has it
    (w0·s0 + (w1·s1 + (w2·s2 + w3·s3)), weights scaled by 2^-22), rounded half to even, except
    the last ``width % 8`` columns, which its scalar loop sums in integers. An
    OpenCV built with IPP (the pip wheels) runs Intel's cubic resize instead, which rounds a few
    pixels differently; the hashes then differ from ours in rare bits (the tests measure it).
    """
    h, w = image.shape
    if (h, w) == (height, width):
        return image.copy()
    x_index, x_weight = _cubic_taps(w, width)
    y_index, y_weight = _cubic_taps(h, height)
    rows = image.astype(np.int64)[:, x_index]
    rows = (rows * x_weight).sum(axis=-1)  # (h, width), exact integers below 2^24
    taps = rows[y_index]  # (height, 4, width)
    vectorised = width - width % _SIMD_LANES
    scaled = (y_weight.astype(_F32) * _F32(2.0**-22))[:, :, None]
    head = taps[:, :, :vectorised].astype(_F32)
    total = head[:, 3] * scaled[:, 3]
    for k in (2, 1, 0):
        total = head[:, k] * scaled[:, k] + total
    # the last width % 8 columns take OpenCV's scalar loop: integer sum, rounded half up
    tail = ((taps[:, :, vectorised:] * y_weight[:, :, None]).sum(axis=1) + (1 << 21)) >> 22
    return np.clip(np.concatenate([np.rint(total), tail], axis=1), 0, 255).astype(np.uint8)


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """``equalizeHist(gray)``: the cumulative histogram above the darkest level × 255 / the rest.

    The product is float32, rounded half to even, as OpenCV's lookup table is built.
    """
    histogram = np.bincount(image.ravel(), minlength=256)
    darkest = int(np.flatnonzero(histogram)[0])
    rest = image.size - int(histogram[darkest])
    if rest == 0:
        return image.copy()
    scale = _F32(255.0) / _F32(rest)
    above = (np.cumsum(histogram) - histogram[darkest]).astype(_F32)
    lut = np.rint(np.clip(above * scale, 0, 255)).astype(np.uint8)
    lut[: darkest + 1] = 0
    return lut[image]
