"""numpy copies of the 8-bit OpenCV operations that cv2.img_hash's hashes are built from.

Each function gives the same bytes as the OpenCV call named in its docstring (OpenCV's own C++
code paths; where an IPP build swaps in Intel's resize, see ``resize_cubic``), and
``hu_moments`` the same float64 values to a few units in the last place, so the hashes in
``img_hash`` match cv2.img_hash without making opencv a dependency. The integer arithmetic is
OpenCV's fixed point; where OpenCV rounds in float32, so do we, in its order.
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


#: GaussianBlur's kernels for sigma 0, in 1/256 (OpenCV's fixed tables, not a Gaussian formula)
_GAUSSIAN_TABLES = {
    3: (64, 128, 64),
    5: (16, 64, 96, 64, 16),
    7: (8, 28, 56, 72, 56, 28, 8),
}


def gaussian_taps(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """The 8-bit taps (in 1/256) of ``GaussianBlur(·, (ksize, ksize), sigma)`` for uint8.

    ``ksize`` 0 takes OpenCV's size for uint8, round(6·sigma + 1) made odd. Sigma 0 with a side of
    3, 5 or 7 is OpenCV's table; else exp(−d²/2σ²) normalised and rounded to 1/256 outside in,
    each tap's rounding error carried to the next, the centre taking what the others leave of
    256 (OpenCV's getGaussianKernelFixedPoint_ED).
    """
    if ksize <= 0:
        ksize = int(np.rint(sigma * 6 + 1)) | 1
    if sigma <= 0 and ksize in _GAUSSIAN_TABLES:
        return np.array(_GAUSSIAN_TABLES[ksize], dtype=np.float64)
    if sigma <= 0:
        sigma = ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8
    half = ksize // 2
    values = np.exp(-(np.arange(-half, half + 1, dtype=np.float64) ** 2) / (2 * sigma * sigma))
    values /= values.sum()
    side, error = [], 0.0
    for value in values[:half]:
        adjusted = value * 256 + error
        side.append(float(np.rint(_F32(adjusted))))  # lrintf: float, half to even
        error = adjusted - side[-1]
    return np.array([*side, 256 - 2 * sum(side), *side[::-1]], dtype=np.float64)


def gaussian_blur(image: np.ndarray, ksize: int, sigma: float = 0.0) -> np.ndarray:
    """``GaussianBlur(image, (ksize, ksize), sigma)`` for uint8 (h, w[, c]): OpenCV's bit-exact
    fixed-point path.

    Rows then columns with the 8-bit ``gaussian_taps`` and reflect-101 borders; sums are integers
    below 2^24, exact in float64, rounded once as OpenCV does ((s + 2^15) >> 16).
    """
    from scipy.ndimage import correlate1d

    taps = gaussian_taps(ksize, sigma)
    pixels = image.astype(np.float64)
    rows = correlate1d(pixels, taps, axis=1, mode="mirror")
    both = correlate1d(rows, taps, axis=0, mode="mirror")
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
    """``resize(image, (width, height), interpolation=INTER_CUBIC)`` for uint8 (h, w[, c]),
    OpenCV's own code.

    Integer rows with 11-bit weights; the vertical pass in float32 as OpenCV's SIMD loop has it
    (w0·s0 + (w1·s1 + (w2·s2 + w3·s3)), weights scaled by 2^-22), rounded half to even, except
    the last ``width·c % 8`` values of a row, which its scalar loop sums in integers. An
    OpenCV built with IPP (the pip wheels) runs Intel's cubic resize instead, which rounds a few
    pixels differently; the hashes then differ from ours in rare bits (the tests measure it).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    x_index, x_weight = _cubic_taps(w, width)
    y_index, y_weight = _cubic_taps(h, height)
    rows = image.astype(np.int64).reshape(h, w, -1)[:, x_index]  # (h, width, 4, c)
    # (h, width·c): OpenCV's row buffer interleaves the channels; exact integers below 2^24
    rows = (rows * x_weight[:, :, None]).sum(axis=2).reshape(h, -1)
    taps = rows[y_index]  # (height, 4, width·c)
    length = taps.shape[-1]
    vectorised = length - length % _SIMD_LANES
    scaled = (y_weight.astype(_F32) * _F32(2.0**-22))[:, :, None]
    head = taps[:, :, :vectorised].astype(_F32)
    total = head[:, 3] * scaled[:, 3]
    for k in (2, 1, 0):
        total = head[:, k] * scaled[:, k] + total
    # the last values take OpenCV's scalar loop: integer sum, rounded half up
    tail = ((taps[:, :, vectorised:] * y_weight[:, :, None]).sum(axis=1) + (1 << 21)) >> 22
    out = np.clip(np.concatenate([np.rint(total), tail], axis=1), 0, 255).astype(np.uint8)
    return out.reshape(height, width, *image.shape[2:])


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


#: fixed-point shift of OpenCV's 8-bit HSV conversion (hsv_shift)
_HSV_SHIFT = 12


@lru_cache(maxsize=1)
def _hsv_tables() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's reciprocal tables (255 << 12) / v and (180 << 12) / (6·diff), 0 at 0."""
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        s_div = np.where(i > 0, np.rint((255 << _HSV_SHIFT) / i), 0)
        h_div = np.where(i > 0, np.rint((180 << _HSV_SHIFT) / (6 * i)), 0)
    return s_div.astype(np.int64), h_div.astype(np.int64)


def hsv(rgb: np.ndarray) -> np.ndarray:
    """``cvtColor(bgr, COLOR_BGR2HSV)`` of an RGB array: H in [0, 180), S and V in [0, 255],
    from OpenCV's 12-bit reciprocal tables."""
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    s_div, h_div = _hsv_tables()
    half = 1 << (_HSV_SHIFT - 1)
    s = (diff * s_div[v] + half) >> _HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * h_div[diff] + half) >> _HSV_SHIFT
    h += np.where(h < 0, 180, 0)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def ycrcb(rgb: np.ndarray) -> np.ndarray:
    """``cvtColor(bgr, COLOR_BGR2YCrCb)`` of an RGB array: BT.601 in 14-bit fixed point."""
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    half, delta = 1 << 13, 128 << 14
    y = (b * 1868 + g * 9617 + r * 4899 + half) >> 14
    cr = ((r - y) * 11682 + delta + half) >> 14
    cb = ((b - y) * 9241 + delta + half) >> 14
    return np.clip(np.stack([y, cr, cb], axis=-1), 0, 255).astype(np.uint8)


def hu_moments(channel: np.ndarray) -> np.ndarray:
    """``HuMoments(moments(channel))`` of a uint8 image: the 7 invariants, float64.

    The raw moments are exact integers (below 2^53 up to 512×512); central and normalised
    moments and the invariants follow OpenCV's formulas in its order of operations, so the
    values agree with OpenCV's to a few units in the last place.
    """
    pixels = channel.astype(np.int64)
    x = np.arange(pixels.shape[1], dtype=np.int64)
    y = np.arange(pixels.shape[0], dtype=np.int64)
    by_row = [pixels @ x**p for p in range(4)]  # Σ_x x^p·v per row
    m = {(p, q): float((by_row[p] * y**q).sum()) for p in range(4) for q in range(4 - p)}
    inv_m00 = 1.0 / m[0, 0] if abs(m[0, 0]) > np.finfo(np.float64).eps else 0.0
    cx, cy = m[1, 0] * inv_m00, m[0, 1] * inv_m00
    mu20 = m[2, 0] - m[1, 0] * cx
    mu11 = m[1, 1] - m[1, 0] * cy
    mu02 = m[0, 2] - m[0, 1] * cy
    mu30 = m[3, 0] - cx * (3 * mu20 + cx * m[1, 0])
    mu21 = m[2, 1] - cx * (2 * mu11 + cx * m[0, 1]) - cy * mu20
    mu12 = m[1, 2] - cy * (2 * mu11 + cy * m[1, 0]) - cx * mu02
    mu03 = m[0, 3] - cy * (3 * mu02 + cy * m[0, 1])
    s2 = inv_m00 * inv_m00
    s3 = s2 * np.sqrt(abs(inv_m00))
    n20, n11, n02 = mu20 * s2, mu11 * s2, mu02 * s2
    n30, n21, n12, n03 = mu30 * s3, mu21 * s3, mu12 * s3, mu03 * s3
    t0, t1 = n30 + n12, n21 + n03
    q0, q1 = t0 * t0, t1 * t1
    n4, s, d = 4 * n11, n20 + n02, n20 - n02
    hu = [s, d * d + n4 * n11, 0.0, q0 + q1, 0.0, d * (q0 - q1) + n4 * t0 * t1, 0.0]
    t0 *= q0 - 3 * q1
    t1 *= 3 * q0 - q1
    q0, q1 = n30 - 3 * n12, 3 * n21 - n03
    hu[2] = q0 * q0 + q1 * q1
    hu[4] = q0 * t0 + q1 * t1
    hu[6] = q1 * t0 - q0 * t1
    return np.array(hu, dtype=np.float64)
