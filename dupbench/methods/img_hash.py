"""OpenCV img_hash's hashes in numpy: Marr-Hildreth, block-mean (modes 0 and 1), colour moment
and radial variance.

The binary ones' codes are OpenCV's hash bytes read most significant bit first, so our hex equals
the hex of ``cv2.img_hash.*Hash(bgr)`` for the same pixels and the Hamming distance equals
OpenCV's ``compare``. The other two are not bit strings: colour moment's 42 Hu moments are
compared by L2 distance (``DistanceKind.EUCLIDEAN``, scaled as OpenCV's compare), radial
variance's 40 bytes by the peak of their correlation over cyclic shifts (a cosine of centred
codes maximised over shifts by ``radial_variance_search``). The pixel operations are in
``opencv_pixels``; tests/test_methods_img_hash.py checks bits, values and compare scores against
opencv-contrib on every bundled photo and random sizes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.methods import opencv_pixels as cv
from dupbench.methods.base import Method, int_param
from dupbench.methods.hashing import scaled_threshold
from dupbench.methods.invariant import InvariantHash
from dupbench.methods.registry import METHODS

_F32 = np.float32


def opencv_order(bits: np.ndarray) -> np.ndarray:
    """Bits OpenCV stores least significant first in each byte, as its bytes' MSB-first bits."""
    padded = np.zeros(-(-bits.size // 8) * 8, dtype=bool)
    padded[: bits.size] = bits
    return np.unpackbits(np.packbits(padded, bitorder="little")).astype(bool)


class _OpenCVHash(InvariantHash):
    """Binary, Hamming; ``bits`` is the number of meaningful bits (the code may pad to bytes)."""

    default_threshold: ClassVar[float] = 10

    @property
    def bits(self) -> int:
        raise NotImplementedError

    @property
    def variant_size(self) -> int:
        return -(-self.bits // 8) * 8

    def hash_bits(self, rgb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def hash_image(self, image: Image.Image) -> np.ndarray:
        return self.hash_bits(np.asarray(images.to_rgb(image), dtype=np.uint8))


def marr_hildreth_kernel(alpha: float, scale: float) -> np.ndarray:
    """OpenCV's "Mexican hat" kernel, float32: (2 − a)·exp(a / 2), a = (x² + y²)·alpha^(−2·scale).

    Side 2·⌊4·alpha^scale⌋ + 1. The exponent's sign is OpenCV's (a true Laplacian of Gaussian has
    exp(−a/2)): the corners dominate; we copy it, since matching its hashes is the point.
    """
    alpha32, scale32 = _F32(alpha), _F32(scale)
    radius = int(_F32(4) * _F32(math.pow(alpha32, scale32)))
    ratio = _F32(math.pow(alpha32, -scale32))
    position = ratio * np.arange(-radius, radius + 1).astype(_F32)
    a = (position * position)[None, :] + (position * position)[:, None]
    exp_half = np.exp((a / _F32(2)).astype(np.float64)).astype(_F32)  # correctly rounded expf
    return (_F32(2) - a) * exp_half


@METHODS.register()
class MarrHildrethHash(_OpenCVHash):
    """Marr-Hildreth (OpenCV img_hash): 576 bits from edge energy in 64 neighbourhoods.

    Gray → 7×7 Gaussian → 512×512 bicubic → histogram equalisation → filter with
    ``marr_hildreth_kernel`` → sums over 31×31 blocks of 16×16 pixels → for each of 8×8 3×3-block
    neighbourhoods (every 4th block), 9 bits: is each block above the neighbourhood's mean.

    alpha, scale: the kernel's parameters (OpenCV's defaults 2 and 1: a 17×17 kernel).
    """

    name = "marr_hildreth"
    robust_to = "resizing, recompression, brightness and contrast"

    def __init__(self, alpha: float = 2.0, scale: float = 1.0, **params: Any) -> None:
        if not (alpha > 0 and scale > 0):
            raise ValueError(f"alpha and scale must be positive, got alpha={alpha}, scale={scale}")
        self.kernel = marr_hildreth_kernel(alpha, scale).astype(np.float64)
        super().__init__(alpha=float(alpha), scale=float(scale), **params)
        self.default_threshold = scaled_threshold(self.bits)  # type: ignore[misc]

    @property
    def bits(self) -> int:
        return 576

    def filtered(self, equalized: np.ndarray) -> np.ndarray:
        """filter2D to float32 with reflect-101 borders (OpenCV: a float32 DFT; ours: float64 FFT).

        The two differ by ~1e-7 of the largest response, which decides a bit only where a block
        ties with its neighbourhood's mean exactly (flat areas): there OpenCV's bits are DFT noise.
        """
        from scipy.signal import correlate

        radius = self.kernel.shape[0] // 2
        padded = np.pad(equalized.astype(np.float64), radius, mode="reflect")
        return correlate(padded, self.kernel, mode="valid", method="fft").astype(_F32)

    def hash_bits(self, rgb: np.ndarray) -> np.ndarray:
        pixels = cv.resize_cubic(cv.gaussian_blur(cv.gray(rgb), 7), 512, 512)
        response = self.filtered(cv.equalize_hist(pixels)).astype(np.float64)
        # OpenCV indexes its 31×31 block sums (x, y): transposed from rows × columns
        blocks = response[:496, :496].reshape(31, 16, 31, 16).sum(axis=(1, 3)).T.astype(_F32)
        bits = []
        for row in range(0, 29, 4):
            for col in range(0, 29, 4):
                group = blocks[row : row + 3, col : col + 3]
                mean = _F32(group.astype(np.float64).sum() / 9.0)
                bits.append((group > mean).ravel())
        return np.concatenate(bits)  # OpenCV shifts these in most significant bit first


@METHODS.register()
class BlockMeanHash(_OpenCVHash):
    """Block-mean (OpenCV img_hash): is each 16×16 block's mean at least the image's mean.

    The RGB image is resized to 256×256 (bilinear, bit-exact), then made gray. mode 0: the 16×16
    grid of blocks, 256 bits; mode 1: blocks every 8 pixels (overlapping), 31×31 = 961 bits,
    stored as OpenCV does in 121 bytes (968 bits, the last 7 always zero).
    """

    name = "block_mean"
    robust_to = "resizing, recompression, brightness and contrast"

    def __init__(self, mode: int = 0, **params: Any) -> None:
        if mode not in (0, 1) or isinstance(mode, bool):
            raise ValueError(f"mode must be 0 (16×16 grid) or 1 (overlapping by 8), got {mode!r}")
        self.mode = int(mode)
        super().__init__(mode=self.mode, **params)
        self.default_threshold = scaled_threshold(self.bits)  # type: ignore[misc]

    @property
    def bits(self) -> int:
        return 256 if self.mode == 0 else 961

    def hash_bits(self, rgb: np.ndarray) -> np.ndarray:
        pixels = cv.gray(cv.resize_linear_exact(rgb, 256, 256)).astype(np.int64)
        integral = np.zeros((257, 257), dtype=np.int64)
        integral[1:, 1:] = pixels.cumsum(axis=0).cumsum(axis=1)
        starts = np.arange(0, 256 - 16 + 1, 16 if self.mode == 0 else 8)
        y, x = starts[:, None], starts[None, :]
        sums = integral[y + 16, x + 16] - integral[y, x + 16] - integral[y + 16, x] + integral[y, x]
        # block mean ≥ image mean, in exact integers: sum/256 ≥ total/65536
        return opencv_order((sums * 256 >= integral[-1, -1]).ravel())


#: OpenCV's ColorMomentHash.compare is the L2 norm of the moments times this
COMPARE_SCALE = 10_000


@METHODS.register()
class ColorMomentHash(Method):
    """Colour moments (OpenCV img_hash): the 7 Hu moments of each HSV and YCrCb channel.

    RGB → 512×512 bicubic → 3×3 Gaussian → HSV and YCrCb → ``hu_moments`` of the 6 channels:
    42 numbers, compared by Euclidean distance. The code is OpenCV's hash × 10⁴ (float32), so
    the distance is what OpenCV's ``compare`` reports (the L2 norm × 10⁴) and thresholds read as
    OpenCV's. Hu moments do not change under rotation and mirroring, so those copies are found
    too, but 42 numbers separate unrelated photos less well than the bit hashes. Against
    OpenCV's own code the values agree to float64 rounding; the pip wheel's IPP cubic resize
    moves them by up to 0.1 compare units on the bundled photos.
    """

    name = "color_moment"
    kind = "float"
    distance = DistanceKind.EUCLIDEAN
    #: a start (the median distance of true copies on the default dataset); benchmarks'
    #: calibrate_thresholds.py derives a 99 %-precision one
    default_threshold: ClassVar[float] = 3.0
    robust_to = "resizing, 90° rotations, mirrors, mild recompression"

    @property
    def size(self) -> int:
        return 42

    def moments(self, rgb: np.ndarray) -> np.ndarray:
        """OpenCV's 42 float64 values: 7 Hu moments of H, S, V, then of Y, Cr, Cb."""
        blurred = cv.gaussian_blur(cv.resize_cubic(rgb, 512, 512), 3)
        spaces = (cv.hsv(blurred), cv.ycrcb(blurred))
        return np.concatenate([cv.hu_moments(s[..., c]) for s in spaces for c in range(3)])

    def encode_image(self, image: Image.Image) -> np.ndarray:
        rgb = np.asarray(images.to_rgb(image), dtype=np.uint8)
        return (self.moments(rgb) * COMPARE_SCALE).astype(_F32)


#: OpenCV's radial variance hash length: DCT coefficients kept, one byte each
RADIAL_HASH_BYTES = 40


def radial_projections(gray: np.ndarray, lines: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's projections: ``lines`` × D pixels along lines through the centre (D the longer
    side), 0 where a line leaves the image, and the number of pixels on each line.

    Angles k·3.14159/lines (float32, as OpenCV). The first quarter walks x with y = tan·(x − cx)
    and mirrors it by transposing to fill angles lines/2 − k; the last quarter walks x likewise
    and fills angles k − 2j from a point reflection through (y_off, y_off), which OpenCV writes
    with the row centre on both axes; copied as is.
    """
    rows, cols = gray.shape
    side = max(rows, cols)
    x_off, y_off = cols // 2, rows // 2
    projections = np.zeros((lines, side), dtype=np.uint8)
    counts = np.zeros(lines, dtype=np.int64)
    x = np.arange(side)

    def line(k: int, offset: int) -> np.ndarray:
        theta = _F32(k) * _F32(3.14159) / _F32(lines)
        alpha = _F32(math.tan(float(theta)))  # a correctly rounded tanf
        y = alpha * (x - offset).astype(_F32)
        return np.floor(y + np.where(y >= 0, _F32(0.5), _F32(-0.5))).astype(np.int64)

    def fill(k: int, keep: np.ndarray, r: np.ndarray, c: np.ndarray) -> None:
        projections[k, keep] = gray[r[keep], c[keep]]
        counts[k] += int(keep.sum())

    for k in range(lines // 4 + 1):
        yd = line(k, x_off)
        fill(k, (yd + y_off >= 0) & (yd + y_off < rows) & (x < cols), yd + y_off, x)
        if k != lines // 4:
            keep = (yd + x_off >= 0) & (yd + x_off < cols) & (x < rows)
            fill(lines // 2 - k, keep, x, yd + x_off)
    start = 3 * lines // 4
    for j, k in enumerate(range(start, lines)):
        yd = line(k, x_off)
        fill(k, (yd + y_off >= 0) & (yd + y_off < rows) & (x < cols), yd + y_off, x)
        if k != start:
            keep = (y_off - yd >= 0) & (y_off - yd < cols) & (2 * y_off - x >= 0)
            keep &= 2 * y_off - x < rows
            fill(k - 2 * j, keep, 2 * y_off - x, y_off - yd)
    return projections, counts


def radial_features(projections: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The variance of each line's pixels, standardised over the lines (float64, OpenCV's order;
    NaN for an image whose lines all have one variance, as OpenCV)."""
    values = projections.astype(np.float64)
    pixels = counts + 0.00001  # OpenCV's guard against a line with no pixel
    line_sum, line_squares = values.sum(axis=1), (values * values).sum(axis=1)
    features = line_squares / pixels - line_sum * line_sum / (pixels * pixels)
    n = len(features)
    total, squares = np.cumsum(features)[-1], np.cumsum(features * features)[-1]  # in order
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(squares / n - total * total / (n * n))
        return (features - total / n) / spread


def radial_hash_bytes(features: np.ndarray) -> np.ndarray:
    """The first 40 DCT-II coefficients of the features (π as 3.14159, as OpenCV), mapped
    linearly from [min(0, c), max(0, c)] to bytes and truncated; all 0 when that range is 0."""
    n = len(features)
    k = np.arange(RADIAL_HASH_BYTES, dtype=np.float64)[:, None]
    basis = np.cos(3.14159 * (2 * np.arange(n, dtype=np.float64) + 1) * k / (2 * n))
    coefficients = np.cumsum(basis * features, axis=1)[:, -1]  # summed in OpenCV's order
    root = math.sqrt(n)
    coefficients = np.where(k[:, 0] == 0, coefficients / root, coefficients * math.sqrt(2) / root)
    with np.errstate(invalid="ignore"):
        high = max(0.0, float(np.max(coefficients, initial=0.0, where=coefficients > 0)))
        low = min(0.0, float(np.min(coefficients, initial=0.0, where=coefficients < 0)))
    if high - low == 0:
        return np.zeros(RADIAL_HASH_BYTES, dtype=np.uint8)
    return (255 * (coefficients - low) / (high - low)).astype(np.uint8)


@METHODS.register()
class RadialVarianceHash(Method):
    """Radial variance (OpenCV img_hash): pixel variance along 180 lines through the centre,
    compressed to 40 DCT coefficients of one byte.

    Gray → Gaussian blur (``sigma``) → ``radial_projections`` → ``radial_features`` →
    ``radial_hash_bytes``. OpenCV compares two hashes by the peak of their correlation
    coefficient over the 40 cyclic shifts of one of them. The code is the hash minus its mean,
    so the correlation at a shift is the cosine of the codes, and ``radial_variance_search``
    finds every pair whose peak is at least the threshold: exact, ``compare``'s value, by brute
    force over all pairs and shifts (seconds at 10k images, minutes at 100k). Other cosine
    searches (and ``dupbench.Index``) score the unshifted correlation only, a lower bound of the
    peak.
    """

    name = "radial_variance"
    kind = "float"
    distance = DistanceKind.COSINE
    default_threshold: ClassVar[float] = 0.9
    robust_to = "resizing, recompression; exhaustive search (all pairs × 40 shifts)"
    threshold_form = "corr ≥ {:g}"
    preferred_search = ("radial_variance", {})

    def __init__(self, sigma: float = 1.0, lines: int = 180, **params: Any) -> None:
        if not sigma >= 1:
            raise ValueError(f"sigma must be at least 1 (as OpenCV requires), got {sigma}")
        self.sigma = float(sigma)
        self.lines = int_param("lines", lines, 4)
        super().__init__(sigma=self.sigma, lines=self.lines, **params)

    @property
    def size(self) -> int:
        return RADIAL_HASH_BYTES

    def hash_bytes(self, rgb: np.ndarray) -> np.ndarray:
        """OpenCV's 40 hash bytes."""
        blurred = cv.gaussian_blur(cv.gray(rgb), 0, self.sigma)
        return radial_hash_bytes(radial_features(*radial_projections(blurred, self.lines)))

    def encode_image(self, image: Image.Image) -> np.ndarray:
        code = self.hash_bytes(np.asarray(images.to_rgb(image), dtype=np.uint8))
        return (code - code.mean()).astype(_F32)
