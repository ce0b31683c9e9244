"""PDQ, Facebook's 256-bit perceptual hash, through the optional ``pdqhash`` package.

PDQ downsamples luma with a Jarosz tent filter to 64×64, takes a 16×16 DCT block and thresholds
each coefficient at the block's median (Torben's method). It also rates the image's "quality"
(0-100, from gradient energy): flat or tiny images give unreliable hashes, and the reference
implementation recommends ignoring those below 50; ``min_quality`` turns them into skips.

Bits are ordered as the reference implementation prints them, so our hex equals its hex.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.methods.base import Method
from dupbench.methods.registry import register


def _pdqhash():
    try:
        import pdqhash
    except ImportError:
        raise ImportError(
            "the pdq method needs the pdqhash package: pip install 'dupbench[pdq]'"
        ) from None
    return pdqhash


@register
class PDQHash(Method):
    """PDQ: 256 bits; duplicates within Hamming distance 31 (the reference's match threshold).

    min_quality: images whose PDQ quality is below this become skips (0 keeps everything).
    draft:       let JPEGs decode at 1/2 to 1/8 scale (no smaller than 512 px, PDQ's own working
                 size): much faster on large photos, changes bits slightly.
    """

    name = "pdq"
    robust_to = "resizing, recompression, mild edits"
    requires = ("pdqhash",)
    extra = "pdq"
    kind = "binary"
    metric = "hamming"
    default_threshold: ClassVar[float] = 31

    def __init__(self, min_quality: int = 0, draft: bool = False) -> None:
        if not 0 <= min_quality <= 100:
            raise ValueError(f"min_quality must be between 0 and 100, got {min_quality}")
        _pdqhash()  # fail at construction, not on the first image, when the package is missing
        super().__init__(min_quality=int(min_quality), draft=bool(draft))
        self.min_quality = int(min_quality)
        self.draft = bool(draft)

    @property
    def size(self) -> int:
        return 256

    @property
    def load_options(self) -> dict[str, Any]:
        return {"draft": (512, 512)} if self.draft else {}

    def encode_image(self, image: Image.Image) -> np.ndarray:
        rgb = np.ascontiguousarray(np.asarray(images.to_rgb(image), dtype=np.uint8))
        bits, quality = _pdqhash().compute(rgb)
        if quality < self.min_quality:
            raise images.ImageError(f"PDQ quality {quality} is below min_quality {self.min_quality}")
        return np.asarray(bits, dtype=bool)
