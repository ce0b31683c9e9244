"""Real photos (scikit-image's bundled data) and near-duplicate copies of them, for CNN tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from skimage import data

#: distinct photos; skimage's ``cat`` is ``chelsea`` again, so it is left out
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "coins",
    "clock",
)


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def recompressed(img: Image.Image, quality: int = 40) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def near_duplicates(img: Image.Image) -> dict[str, Image.Image]:
    """Edits that keep the photo the same photo: resize, JPEG recompression, a light crop."""
    w, h = img.size
    dx, dy = int(w * 0.05), int(h * 0.05)
    return {
        "resized": img.resize((w // 2, h // 2), Image.BILINEAR),
        "recompressed": recompressed(img, 40),
        "cropped": img.crop((dx, dy, w - dx, h - dy)),
    }


def write_photo_dir(directory, names=PHOTO_NAMES, with_copies: bool = True) -> dict[str, str]:
    """Write the photos and their copies losslessly (PNG), so each copy differs by its edit only.

    Returns file name → original photo name.
    """
    origin = {}
    for name in names:
        img = photo(name)
        img.save(directory / f"{name}.png")
        origin[f"{name}.png"] = name
        if with_copies:
            for edit, copy in near_duplicates(img).items():
                copy.save(directory / f"{name}_{edit}.png")
                origin[f"{name}_{edit}.png"] = name
    return origin


def random_photo_arrays(n: int, seed: int = 0, size: int = 48) -> list[np.ndarray]:
    """Small random RGB arrays, for shape and batching checks where content does not matter."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size + k % 7, 3), dtype=np.uint8) for k in range(n)]
