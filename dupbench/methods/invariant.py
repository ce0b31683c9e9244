"""Invariance options every hash takes: border trimming and dihedral (rotation/flip) matching.

Global fingerprints move far under edits that keep every pixel of the picture: a letterbox or a
frame shifts and shrinks the content inside the hash's grid, and a 90° rotation or a mirror
permutes it. Both are undone before or around the hash, so any hash gains them the same way:

- ``trim=True``: the uniform borders of the decoded image (rows and columns that are nearly all
  one colour, the colour of that side's outer line) are cropped away before the hash sees it, so
  a padded or framed copy hashes like its original (``trim_borders``).
- ``dihedral=True``: the code holds the hashes of all 8 rotations and flips of the one decoded
  image, identity first (the canonical hash), each in its own whole 64-bit words. Two images are
  as far apart as the closest of one's 8 variants to the other's canonical hash, taken both
  ways (``dupbench.search.dihedral``, the search a dihedral method picks). Hashing the transposed
  *image* rather than transposing a small working array makes it exact for every hash: the
  variants of an image rotated by 90° are the variants of the original, permuted, so its
  distance to the original is 0 whatever the hash's resampling does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError
from dupbench.methods.base import Method

#: the 8 symmetries of the square, identity first; None: the image as it is
DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
#: the search a dihedral method pairs with (``dupbench.search.dihedral``)
DIHEDRAL_SEARCH = "dihedral"

#: a border line's luma, averaged over ``_TRIM_RUN`` pixels along it, stays this close (0-255)
#: to the border's: JPEG ringing and noise along a bar stay within it, image content rarely does.
#: Luma, not colour: a grayscale or recoloured copy is then trimmed as its original is.
TRIM_TOLERANCE = 12
#: share of a line's pixels that must be within the tolerance for the line to be border
TRIM_MIN_SHARE = 0.98
#: borders are found on a copy reduced to at most this side, then mapped back conservatively
_TRIM_ANALYSIS_SIDE = 512
#: pixels averaged along a line before comparing it with the border colour
_TRIM_RUN = 4
#: at most this many rounds of trimming (each removes what the last one uncovered)
_TRIM_ROUNDS = 4


def _along_mean(lines: np.ndarray) -> np.ndarray:
    """Means of ``_TRIM_RUN`` neighbours along each line (lines, length): noise averages out
    (its σ halves) while the line itself stays one line, so a border is still found exactly."""
    run = min(_TRIM_RUN, lines.shape[1])
    sums = np.cumsum(lines, axis=1, dtype=np.int32)
    sums[:, run:] = sums[:, run:] - sums[:, :-run]
    return sums[:, run - 1 :] / run


def _side_run(pixels: np.ndarray, from_end: bool) -> int:
    """Border lines at the start (or end) of ``pixels`` (lines, length: luma), compared with
    the median of that side's outer line.

    Lines are checked in chunks that double in size, so an image without a border (most) costs
    one line, and a border of b lines about 2b.
    """
    lines = pixels[::-1] if from_end else pixels
    if len(lines) == 0:
        return 0
    colour = np.median(lines[0])
    start, step = 0, 1
    while start < len(lines):
        close = np.abs(_along_mean(lines[start : start + step]) - colour) <= TRIM_TOLERANCE
        border = close.mean(axis=1) >= TRIM_MIN_SHARE
        if not border.all():
            return start + int(border.argmin())
        start, step = start + step, 2 * step
    return len(lines)


def _trimmed_lines(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) border lines of ``pixels`` (rows, columns of luma).

    Top and bottom rows go first, then left and right columns among the remaining rows, each side
    with its own colour (a letterbox may be black above and white below). Borders come in pairs:
    an axis is trimmed only where both its ends have one, as letterboxes, pillarboxes and frames
    do; a uniform band at one edge only is as likely a caption bar or a clear sky, which the
    copies of a photo do not share. Rounds repeat until nothing more is trimmed (a frame inside a
    letterbox). An axis is not trimmed where that would leave less than a tenth of it: a flat
    image has no content to find.
    """
    rows, cols = pixels.shape[:2]
    top = bottom = left = right = 0
    for _ in range(_TRIM_ROUNDS):
        view = pixels[top : rows - bottom, left : cols - right]
        more_top, more_bottom = _side_run(view, False), _side_run(view, True)
        if not (more_top and more_bottom) or top + bottom + more_top + more_bottom >= rows * 0.9:
            more_top = more_bottom = 0
        columns = view[more_top : len(view) - more_bottom].T
        more_left, more_right = _side_run(columns, False), _side_run(columns, True)
        if not (more_left and more_right) or left + right + more_left + more_right >= cols * 0.9:
            more_left = more_right = 0
        if not (more_top or more_bottom or more_left or more_right):
            break
        top, bottom = top + more_top, bottom + more_bottom
        left, right = left + more_left, right + more_right
    return top, bottom, left, right


def border_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the content inside uniform borders, or None: no border.

    Lines are judged (``_trimmed_lines``) on the luma, reduced by an integer factor f for images
    larger than ``_TRIM_ANALYSIS_SIDE``, and a reduced line stands for f lines of the original: the
    box is exact up to that side, and within f − 1 lines beyond.
    """
    width, height = image.size
    factor = max(1, -(-max(width, height) // _TRIM_ANALYSIS_SIDE))
    small = images.to_rgb(image).convert("L")
    if factor > 1:
        small = small.reduce(factor)
    pixels = np.asarray(small, dtype=np.int16)
    top, bottom, left, right = _trimmed_lines(pixels)
    if not (top or bottom or left or right):
        return None
    rows, cols = pixels.shape[:2]
    return (
        left * factor,
        top * factor,
        min(width, (cols - right) * factor),
        min(height, (rows - bottom) * factor),
    )


def trim_borders(image: Image.Image) -> Image.Image:
    """``image`` without its uniform borders (letterbox, pillarbox, frame, padding), or as is."""
    box = border_box(image)
    return image if box is None else image.crop(box)


def dihedral_variants(image: Image.Image) -> list[Image.Image]:
    """The 8 rotations and flips of ``image``, in ``DIHEDRAL`` order (lossless transposes)."""
    return [image if op is None else image.transpose(op) for op in DIHEDRAL]


def _bool_option(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{name} must be true or false, got {value!r}")
    return bool(value)


class InvariantHash(Method):
    """Base of the binary hashes: ``trim`` and ``dihedral`` around ``hash_image``.

    Subclasses implement ``hash_image`` (the bits of one image) and ``variant_size`` (their
    length); ``encode_image`` trims and makes the variants. The options enter ``params`` only when
    on, so the codes, parameters and stored results of a plain hash are what they were.
    """

    kind = "binary"
    distance = DistanceKind.HAMMING
    #: False where a code's layout means something that 8 variants side by side would break
    supports_dihedral: ClassVar[bool] = True

    def __init__(self, trim: bool = False, dihedral: bool = False, **params: Any) -> None:
        self.trim = _bool_option("trim", trim)
        self.dihedral = _bool_option("dihedral", dihedral)
        if self.dihedral and not self.supports_dihedral:
            raise UsageError(f"{type(self).name} does not take dihedral=True")
        options = {
            key: True for key, on in (("trim", self.trim), ("dihedral", self.dihedral)) if on
        }
        super().__init__(**params, **options)
        if self.dihedral:
            self.preferred_search = (DIHEDRAL_SEARCH, {})

    @property
    def variant_size(self) -> int:
        """Bits of the hash of one image (one orientation)."""
        raise NotImplementedError

    @property
    def slot_size(self) -> int:
        """Bits each variant occupies in a dihedral code: whole 64-bit words."""
        return -(-self.variant_size // 64) * 64

    @property
    def size(self) -> int:
        return len(DIHEDRAL) * self.slot_size if self.dihedral else self.variant_size

    def hash_image(self, image: Image.Image) -> np.ndarray:
        """One decoded image → its hash bits (a bool array of ``variant_size``)."""
        raise NotImplementedError

    def encode_image(self, image: Image.Image) -> np.ndarray:
        if self.trim:
            image = trim_borders(image)
        if not self.dihedral:
            return self.hash_image(image)
        slots = np.zeros((len(DIHEDRAL), self.slot_size), dtype=bool)
        for slot, variant in zip(slots, dihedral_variants(image)):
            bits = np.asarray(self.hash_image(variant), dtype=bool).ravel()
            slot[self.slot_size - len(bits) :] = bits  # left-padded, as hex digits are
        return slots.ravel()


__all__ = [
    "DIHEDRAL",
    "InvariantHash",
    "border_box",
    "dihedral_variants",
    "trim_borders",
]
