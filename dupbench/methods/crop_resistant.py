"""Crop-resistant hash: dHash each bright or dark region of the image separately.

After imagehash's ``crop_resistant_hash`` (Jain et al., "Efficient Cropping-Resistant Robust Image
Hashing", ARES 2014): the image is reduced to a blurred ``segmentation_image_size``² gray square,
split at ``segment_threshold`` into 4-connected "hills" and "valleys", and every region larger
than ``min_segment_size`` pixels is cropped from the original by its bounding box and dHashed. A
crop keeps most regions whole, so most of their hashes survive.

Fixed-width codes. imagehash's result is a *set* of hashes of varying size; here the ``segments``
largest regions fill ``segments`` slots of ``hash_size²`` bits each (largest first, ties in
imagehash's order). An image with fewer regions repeats its hashes cyclically to fill the slots,
so the code still holds exactly the image's set of hashes. Two ways to match:

- ``crop_resistant_search`` in ``dupbench.search.regions`` (the crop-resistant rule): a pair
  matches when at least ``min_segments`` distinct region hashes of one image lie within
  ``threshold`` bits of some region hash of the other (imagehash's ``matches`` with its 25 %
  bit-error default, taken in the direction that matches more, so the result is symmetric).
  Its score is the smallest region-to-region Hamming distance.
- Plain Hamming distance over the whole code (what ``find_duplicates`` does with any binary
  method): fine for resized or recompressed copies, whose regions come out in the same order,
  but not crop-resistant, because a crop reorders the regions.

The segmentation reproduces imagehash's, including its quirks (it stops collecting dark regions
once its pixel count, which includes the 2·(h + w) border sentinels and leaves out one-pixel
regions, reaches h·w), with ``scipy.ndimage.label`` instead of a per-pixel Python flood fill.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from dupbench.errors import UsageError
from dupbench.methods.base import int_param
from dupbench.methods.hashing import DifferenceHash, HashMethod
from dupbench.methods.registry import METHODS

_LANCZOS = Image.Resampling.LANCZOS


def find_segments(
    pixels: np.ndarray, segment_threshold: float, min_segment_size: int
) -> list[tuple[slice, slice, int]]:
    """Bounding boxes (row slice, column slice, pixel count) of the regions imagehash keeps.

    Order: bright regions, then dark ones, each in raster order of their first pixel (which is
    both ``ndimage.label``'s numbering and imagehash's flood-fill order).
    """
    from scipy import ndimage

    height, width = pixels.shape
    bright = pixels > segment_threshold
    counted = 2 * (height + width)  # imagehash seeds its "segmented" set with the outer border
    kept = []
    for mask, is_bright in ((bright, True), (~bright, False)):
        labels, n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        for index, box in enumerate(ndimage.find_objects(labels)):
            if not is_bright and counted >= height * width:
                break
            size = int(sizes[index])
            counted += size if size > 1 else 0  # a lone start pixel is never marked segmented
            if size > min_segment_size:
                kept.append((box[0], box[1], size))
    return kept


@METHODS.register()
class CropResistantHash(HashMethod):
    """Region dHashes in ``segments`` fixed slots of ``hash_size²`` bits (see the module doc).

    hash_size:   bits per region hash side; a multiple of 8, so each region fills whole words.
    segments:    how many of the largest regions are kept (imagehash's ``limit_segments``).
    segment_threshold, min_segment_size, segmentation_image_size: as in imagehash.
    """

    name = "crop_resistant"
    robust_to = "resizing, recompression (crops: with region matching)"
    supports_dihedral = False  # its search reads the code as region slots

    #: regions are cropped from the decoded image at full size; reduced decoding is unmeasured here
    drafts_by_default = False

    def __init__(
        self,
        hash_size: int = 8,
        segments: int = 8,
        segment_threshold: int = 128,
        min_segment_size: int = 500,
        segmentation_image_size: int = 300,
        **params: Any,
    ) -> None:
        hash_size = int_param("hash_size", hash_size, 1)
        if hash_size % 8:
            raise UsageError(f"crop_resistant needs hash_size a multiple of 8, got {hash_size!r}")
        self.hash_size = hash_size
        self.segments = int_param("segments", segments, 1)
        self.segment_threshold = segment_threshold
        self.min_segment_size = int_param("min_segment_size", min_segment_size, 0)
        self.segmentation_image_size = int_param(
            "segmentation_image_size", segmentation_image_size, 2
        )
        super().__init__(
            hash_size=hash_size,
            segments=self.segments,
            segment_threshold=segment_threshold,
            min_segment_size=self.min_segment_size,
            segmentation_image_size=self.segmentation_image_size,
            **params,
        )
        self.region_hash = DifferenceHash(hash_size, profile=self.profile)

    @property
    def bits(self) -> int:
        return self.segments * self.hash_size**2

    @property
    def work_side(self) -> int:
        return self.segmentation_image_size

    def region_boxes(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """Crop boxes in ``image`` coordinates for the kept regions, largest region first."""
        side = self.segmentation_image_size
        small = self.prepared(image).convert("L").resize((side, side), _LANCZOS)
        small = small.filter(ImageFilter.GaussianBlur()).filter(ImageFilter.MedianFilter())
        pixels = np.asarray(small).astype(np.float32)
        found = find_segments(pixels, self.segment_threshold, self.min_segment_size)
        if not found:  # imagehash: one segment spanning the whole image
            found = [(slice(0, side), slice(0, side), side * side)]
        found = sorted(found, key=lambda s: s[2], reverse=True)[: self.segments]
        scale_w, scale_h = image.size[0] / side, image.size[1] / side
        return [
            (cols.start * scale_w, rows.start * scale_h, cols.stop * scale_w, rows.stop * scale_h)
            for rows, cols, _ in found
        ]

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        hashes = [
            self.region_hash.hash_bits(image.crop(box)).ravel() for box in self.region_boxes(image)
        ]
        slots = [hashes[k % len(hashes)] for k in range(self.segments)]
        return np.concatenate(slots)


__all__ = ["CropResistantHash", "find_segments"]
