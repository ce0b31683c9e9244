"""OpenCV img_hash's binary hashes in numpy: Marr-Hildreth and block-mean (modes 0 and 1).

Codes are OpenCV's hash bytes read most significant bit first, so our hex equals the hex of
``cv2.img_hash.*Hash(bgr)`` for the same pixels and the Hamming distance equals OpenCV's
``compare``. The pixel operations are in ``opencv_pixels``; tests/test_methods_img_hash.py checks
the bits against opencv-contrib on every bundled photo and random sizes.

Not here: ColorMomentHash and RadialVarianceHash. Their codes are not bit strings (42 Hu moments
compared by L2 distance; 40 bytes compared by the peak of a cross-correlation over shifts), and
dupbench's searches and metrics know Hamming, cosine and equality only. Cosine would rank Hu
moments differently from L2 (their scales span 20 orders of magnitude), and a quantised version
would be a new hash with nothing to check it against.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.methods import opencv_pixels as cv
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
        pixels = cv.resize_cubic(cv.gaussian_blur_7(cv.gray(rgb)), 512, 512)
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
