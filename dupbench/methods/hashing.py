"""Perceptual hashes: aHash, dHash (horizontal, vertical), pHash, pHash-simple, wHash, colorhash.

Each hash is a ``Method`` whose ``profile`` picks how pixels are prepared, so stored hashes from
other libraries stay comparable bit for bit:

- ``"imagehash"``: the image exactly as Pillow opened it (no EXIF rotation, native mode), then
  imagehash's code: gray first, then a Lanczos resize; strict ``>`` comparisons; pHash takes the
  median of all low-frequency DCT terms (DC included); wHash works at the largest power of two
  that fits the image and removes the lowest Haar LL band.
- ``"imagededup"``: imagededup's ``load_image``: only its formats, no EXIF rotation, any mode →
  RGBA → RGB, Lanczos resize of the RGB image, then gray; ``>=`` comparisons; pHash median without
  the DC term; wHash at 256×256 without removing the Haar LL band. Hashes imagededup lacks
  (dHash-vertical, pHash-simple, colorhash) use this preparation with imagehash's maths.
- ``"default"`` (ours): EXIF orientation applied and transparency composited on white (the
  ``images.load`` defaults) so a rotated-by-tag or transparent copy hashes like what people see;
  otherwise imagehash's maths (gray-then-resize: one channel to resample, so faster), except that
  pHash-simple uses the 2-D DCT (imagehash's looks at the top quarter of the image only) and
  wHash uses a fixed ``image_scale`` (256, or ``8 * hash_size`` when larger): a resized copy then
  goes through the same pipeline as its original, the code length never depends on the image,
  and a large photo is not resampled to 2048² first. It also decodes only the pixels a hash
  needs (``draft``, on by default here): a JPEG is scaled down by 1/2, 1/4 or 1/8 inside the
  decoder (DCT-domain scaling), no smaller than 4× the hash's working size, and the brightness
  hashes decode only its luma channel. On 1920×1080 photos that is about 4× faster and moves a
  pHash by a bit or two; benchmarks/hash_throughput.py measures both, and precision and recall on
  the default dataset and on edited 1080p photos. ``draft=False`` gives the full-decode bits.

Codes are left-padded with zero bits to a whole number of hex digits (e.g. colorhash's 42 bits
become 44), which is how imagehash writes its hex; the padding never changes a Hamming distance.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.errors import UsageError
from dupbench.methods.base import int_param
from dupbench.methods.invariant import InvariantHash
from dupbench.methods.registry import METHODS

Profile = Literal["default", "imagededup", "imagehash"]
PROFILES: tuple[str, ...] = get_args(Profile)

#: imagededup's default Hamming threshold, 10 for a 64-bit hash
THRESHOLD_PER_64_BITS = 10
_LANCZOS = Image.Resampling.LANCZOS
#: measured: a 1/8 decode of a 384-px JPEG (48 px) for aHash's 8² thumbnail cost it 3 points of
#: recall at 99 % precision on the default dataset; from 128 px on, no metric moved by more than
#: 0.001 (benchmarks/hash_throughput.py). A 1080p photo still decodes at 1/8 (240×135).
MIN_DRAFT_SIDE = 128


def scaled_threshold(nbits: int) -> int:
    """Default Hamming threshold for an ``nbits`` code: imagededup's 10 of 64 bits, scaled.

    t = round(nbits · 10 / 64). Edits that keep an image a near duplicate flip roughly a fixed
    *fraction* of a hash's bits, so the tolerance scales with the length; unrelated images differ
    in nbits/2 ± √nbits/2 bits, so a longer code keeps them further (in standard deviations) from
    the threshold, not closer.
    """
    return max(1, round(nbits * THRESHOLD_PER_64_BITS / 64))


def nibble_aligned(bits: np.ndarray) -> np.ndarray:
    """Flatten and left-pad with zeros to a multiple of 4 bits (imagehash's right-aligned hex)."""
    flat = np.asarray(bits, dtype=bool).ravel()
    pad = -len(flat) % 4
    return np.concatenate([np.zeros(pad, dtype=bool), flat]) if pad else flat


def imagededup_rgb(image: Image.Image) -> Image.Image:
    """imagededup's mode handling: anything not RGB goes through RGBA (alpha dropped)."""
    return image if image.mode == "RGB" else image.convert("RGBA").convert("RGB")


class HashMethod(InvariantHash):
    """Shared machinery of the perceptual hashes: parameters, profiles, pixel preparation.

    Subclasses implement ``hash_bits(image)`` (a boolean array) and ``bits`` (its length).
    ``default_threshold`` on an instance is ``scaled_threshold`` of one hash's length (one
    orientation's, for a dihedral code); on the class it is the 64-bit value.

    draft: None (the default) takes the profile's choice: on for "default" (reduced JPEG
           decoding, see the module doc), off for "imagededup" and "imagehash", which must stay
           bit-exact. True or False forces it (False: every pixel decoded, the earlier codes).
    """

    default_threshold: ClassVar[float] = THRESHOLD_PER_64_BITS

    #: the hash looks only at brightness, so the default profile loads (and decodes) luma alone
    luma_only: ClassVar[bool] = True
    #: the default profile decodes at reduced size unless told not to (measured for this hash)
    drafts_by_default: ClassVar[bool] = True

    def __init__(
        self, profile: Profile = "default", draft: bool | None = None, **params: Any
    ) -> None:
        if profile not in PROFILES:
            raise UsageError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
        # reduced decoding is the default profile's own choice; the compatibility profiles
        # stay bit-exact unless a caller opts in
        if draft is None:
            draft = profile == "default" and self.drafts_by_default
        if not isinstance(draft, (bool, np.bool_)):  # bool("false") would be True
            raise UsageError(
                f"draft must be True or False (on the command line: -p draft=False), got {draft!r}"
            )
        draft = bool(draft)
        super().__init__(profile=profile, draft=draft, **params)
        self.profile = profile
        self.draft = draft
        self.default_threshold = scaled_threshold(self.variant_size)  # type: ignore[misc]

    @property
    def bits(self) -> int:
        """Number of meaningful hash bits, before nibble padding."""
        raise NotImplementedError

    @property
    def variant_size(self) -> int:
        return self.bits + (-self.bits % 4)

    @property
    def work_side(self) -> int:
        """Largest side the hash resamples to (``draft_side`` is derived from it)."""
        raise NotImplementedError

    @property
    def load_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.profile != "default":
            options.update(mode="native", exif=False)
        elif self.luma_only:
            options["mode"] = "L"  # the same pixels as RGB → L; lets a draft decode luma alone
        if self.profile == "imagededup":
            options["formats"] = images.IMAGEDEDUP_FORMATS
        if self.draft:
            side = self.draft_side
            options["draft"] = (side, side)
        return options

    @property
    def draft_side(self) -> int:
        """Smallest side a reduced JPEG decode may have: 4× the working size, and at least
        ``MIN_DRAFT_SIDE`` so that the hash's own Lanczos resize, not the decoder's block
        averaging, does most of the shrinking for the tiny thumbnails (aHash, dHash)."""
        return max(4 * self.work_side, MIN_DRAFT_SIDE)

    def prepared(self, image: Image.Image) -> Image.Image:
        """The image the hash maths sees (imagededup: RGB; otherwise as loaded)."""
        return imagededup_rgb(image) if self.profile == "imagededup" else image

    def gray_pixels(self, image: Image.Image, width: int, height: int) -> np.ndarray:
        """(height, width) uint8 luma, resized the way the profile's library does it."""
        if self.profile == "imagededup":
            small = imagededup_rgb(image).resize((width, height), _LANCZOS).convert("L")
        else:
            gray = image if image.mode == "L" else image.convert("L")
            small = gray.resize((width, height), _LANCZOS)
        return np.asarray(small)

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        raise NotImplementedError

    def hash_image(self, image: Image.Image) -> np.ndarray:
        return nibble_aligned(self.hash_bits(image))


class SquareHash(HashMethod):
    """A hash of ``hash_size × hash_size`` bits (aHash, dHash, pHash, wHash)."""

    def __init__(self, hash_size: int = 8, **params: Any) -> None:
        self.hash_size = int_param("hash_size", hash_size, 2)
        super().__init__(hash_size=self.hash_size, **params)

    @property
    def bits(self) -> int:
        return self.hash_size**2

    @property
    def strict(self) -> bool:
        """imagehash thresholds with ``>``, imagededup with ``>=`` (for the hashes it has)."""
        return self.profile != "imagededup"


@METHODS.register()
class AverageHash(SquareHash):
    """aHash: each pixel of a hash_size² thumbnail against the thumbnail's mean."""

    name = "ahash"
    robust_to = "resizing, recompression, mild blur"

    @property
    def work_side(self) -> int:
        return self.hash_size

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        pixels = self.gray_pixels(image, self.hash_size, self.hash_size)
        mean = pixels.mean()
        return pixels > mean if self.strict else pixels >= mean


@METHODS.register()
class DifferenceHash(SquareHash):
    """dHash: is each pixel brighter than its left neighbour, on a (hash_size+1)×hash_size thumb."""

    name = "dhash"
    robust_to = "resizing, recompression, brightness changes"

    @property
    def work_side(self) -> int:
        return self.hash_size + 1

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        pixels = self.gray_pixels(image, self.hash_size + 1, self.hash_size)
        return pixels[:, 1:] > pixels[:, :-1]


@METHODS.register()
class VerticalDifferenceHash(DifferenceHash):
    """dHash down the columns: is each pixel brighter than the one above it."""

    name = "dhash_vertical"

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        pixels = self.gray_pixels(image, self.hash_size, self.hash_size + 1)
        return pixels[1:, :] > pixels[:-1, :]


@METHODS.register()
class PerceptualHash(SquareHash):
    """pHash: signs of the low-frequency 2-D DCT-II coefficients of a (4·hash_size)² thumbnail.

    bit(u, v) = [D(u, v) > m] for u, v < hash_size, with D the unnormalised DCT-II along both
    axes and m the median of those hash_size² terms (imagededup: ``>=`` and m excludes D(0, 0)).
    """

    name = "phash"
    robust_to = "resizing, recompression, contrast and brightness changes"

    def __init__(self, hash_size: int = 8, highfreq_factor: int = 4, **params: Any) -> None:
        # imported here, in the process that builds the method, so that forked encoding workers
        # inherit it instead of each importing it again (0.14 s of CPU apiece)
        import scipy.fft  # noqa: F401

        self.highfreq_factor = int_param("highfreq_factor", highfreq_factor, 1)
        super().__init__(hash_size=hash_size, highfreq_factor=self.highfreq_factor, **params)

    @property
    def work_side(self) -> int:
        return self.hash_size * self.highfreq_factor

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        import scipy.fft

        side = self.work_side
        pixels = self.gray_pixels(image, side, side).astype(np.float64)
        coefficients = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)
        low = coefficients[: self.hash_size, : self.hash_size]
        if self.strict:
            return low > np.median(low)
        return low >= np.median(low.ravel()[1:])


@METHODS.register()
class SimplePerceptualHash(PerceptualHash):
    """pHash-simple: low-frequency DCT terms against their mean instead of their median.

    ``default`` profile (Hackerfactor's description): bit(u, v) = [D(u, v) > m] for u, v <
    hash_size, D the 2-D DCT-II as in pHash and m the mean of those terms without D(0, 0).
    imagehash's version (its profiles) transforms only along rows, D = DCT-II of each row, and
    keeps bit(y, x) = [D(y, x + 1) > mean of the block], y, x < hash_size: its bits describe only
    the top quarter of the thumbnail, so photos that differ lower down collide. That is why the
    default profile departs from it.
    """

    name = "phash_simple"
    robust_to = "resizing, recompression, brightness changes"

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        import scipy.fft

        side = self.work_side
        pixels = self.gray_pixels(image, side, side).astype(np.float64)
        if self.profile == "default":
            low = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)[
                : self.hash_size, : self.hash_size
            ]
            return low > low.ravel()[1:].mean()
        low = scipy.fft.dct(pixels, axis=-1)[: self.hash_size, 1 : self.hash_size + 1]
        return low > low.mean()


@METHODS.register()
class WaveletHash(SquareHash):
    """wHash: the approximation (LL) band of a multi-level 2-D wavelet transform against its median.

    The gray image is resized to ``image_scale``² and scaled to [0, 1]; with
    ``remove_max_haar_ll`` the coarsest Haar LL coefficient (the overall brightness) is zeroed
    first; then ``log2(image_scale / hash_size)`` levels of ``wavelet`` leave a hash_size² LL band
    (for Haar; a longer filter such as db4 leaves a border: hash_size + 6 per side once three or
    more levels are taken). bit = [LL > median(LL)] (imagededup: ``>=``).

    image_scale:        a power of two ≥ hash_size; None takes the profile's (see module doc).
    remove_max_haar_ll: None takes the profile's (imagededup: False, otherwise True).
    """

    name = "whash"
    robust_to = "resizing, recompression, blur"

    def __init__(
        self,
        hash_size: int = 8,
        wavelet: str = "haar",
        image_scale: int | None = None,
        remove_max_haar_ll: bool | None = None,
        **params: Any,
    ) -> None:
        import pywt

        hash_size = int_param("hash_size", hash_size, 2)
        if hash_size & (hash_size - 1):
            raise UsageError(f"whash needs a power-of-two hash_size, got {hash_size}")
        if image_scale is not None:
            image_scale = int_param("image_scale", image_scale, hash_size)
            if image_scale & (image_scale - 1):
                raise UsageError(
                    f"image_scale must be a power of two ≥ hash_size, got {image_scale}"
                )
        try:
            self.filter_length = pywt.Wavelet(wavelet).dec_len
        except ValueError:
            raise UsageError(f"unknown discrete wavelet {wavelet!r} (e.g. 'haar', 'db4')") from None
        self.wavelet = wavelet
        self.image_scale = image_scale
        self.remove_max_haar_ll = remove_max_haar_ll
        super().__init__(
            hash_size=hash_size,
            wavelet=wavelet,
            image_scale=image_scale,
            remove_max_haar_ll=remove_max_haar_ll,
            **params,
        )

    def scale_for(self, image: Image.Image | None) -> int:
        """The side the image is resized to (imagehash: largest power of two ≤ its short side)."""
        if self.image_scale is not None:
            return self.image_scale
        if self.profile == "imagehash":
            if image is None:  # no image yet: the scale of a large one, for the code length
                return self.hash_size * 2**3
            natural = 2 ** int(np.log2(min(image.size)))
            return max(natural, self.hash_size)
        return max(256, self.hash_size if self.profile == "imagededup" else 8 * self.hash_size)

    def band_side(self, scale: int) -> int:
        """Side of the LL band after ``log2(scale / hash_size)`` levels of this wavelet."""
        import pywt

        side = scale
        for _ in range(int(np.log2(scale)) - int(np.log2(self.hash_size))):
            side = pywt.dwt_coeff_len(side, self.filter_length, "symmetric")
        return side

    @property
    def bits(self) -> int:
        return self.band_side(self.scale_for(None)) ** 2

    @property
    def work_side(self) -> int:
        return self.scale_for(None)

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        import pywt

        scale = self.scale_for(image)
        side = self.band_side(scale)
        if side**2 != self.bits:
            raise images.ImageError(
                f"image {image.size[0]}x{image.size[1]} is too small for whash({self.wavelet}) "
                f"with hash_size {self.hash_size}: it gives {side}² bits, not {self.bits}; "
                "set image_scale"
            )
        pixels = self.gray_pixels(image, scale, scale) / 255.0
        max_level = int(np.log2(scale))
        remove_ll = self.remove_max_haar_ll
        if remove_ll is None:
            remove_ll = self.profile != "imagededup"
        if remove_ll:
            coefficients = list(pywt.wavedec2(pixels, "haar", level=max_level))
            coefficients[0] = coefficients[0] * 0
            pixels = pywt.waverec2(coefficients, "haar")
        level = max_level - int(np.log2(self.hash_size))
        low = pywt.wavedec2(pixels, self.wavelet, level=level)[0]
        return low > np.median(low) if self.strict else low >= np.median(low)


@METHODS.register()
class ColorHash(HashMethod):
    """colorhash (imagehash): the fractions of the image in 14 colour bins, ``binbits`` bits each.

    Bins: black (luma < 32); gray (saturation < 85, not black); then 6 hue bins each for faint
    (85 ≤ s < 170) and bright (s > 170) colours, as fractions of the coloured pixels. Each fraction
    f becomes v = min(2^b − 1, ⌊f · 2^b⌋), written as imagehash does: bit i = [⌊v / 2^(b−i−1)⌋
    mod 2^(b−i) > 0]. 14·binbits bits (42 for binbits=3, padded to 44). There is no hash_size.
    """

    name = "colorhash"
    robust_to = "any geometric edit (flips, rotations, crops); not colour edits"
    luma_only = False
    _BINS = 14

    def __init__(self, binbits: int = 3, **params: Any) -> None:
        self.binbits = int_param("binbits", binbits, 1)
        super().__init__(binbits=self.binbits, **params)

    @property
    def bits(self) -> int:
        return self._BINS * self.binbits

    @property
    def work_side(self) -> int:
        return 128  # no resize: fractions of a 1/8-scale decode are close enough when opted in

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        image = self.prepared(image)
        intensity = np.asarray(image.convert("L")).ravel()
        hsv = np.asarray(image.convert("HSV")).reshape(-1, 3)
        hue, saturation = hsv[:, 0], hsv[:, 1]
        black = intensity < 256 // 8
        gray = saturation < 256 // 3
        colours = ~black & ~gray
        faint = colours & (saturation < 256 * 2 // 3)
        bright = colours & (saturation > 256 * 2 // 3)
        hue_bins = np.linspace(0, 255, 6 + 1)
        faint_counts = np.histogram(hue[faint], bins=hue_bins)[0]
        bright_counts = np.histogram(hue[bright], bins=hue_bins)[0]
        n_colour = max(1, int(colours.sum()))
        levels = 2**self.binbits
        scaled = np.concatenate(
            [  # the same float operations, in imagehash's order
                [black.mean() * levels, (~black & gray).mean() * levels],
                np.concatenate([faint_counts, bright_counts]) * levels * 1.0 / n_colour,
            ]
        )
        values = np.minimum(levels - 1, scaled.astype(np.int64))
        i = np.arange(self.binbits)
        return (values[:, None] // 2 ** (self.binbits - i - 1)) % 2 ** (self.binbits - i) > 0
