"""Shared fixtures: real photos from scikit-image, and a folder with planted duplicates and bad files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

# Property tests check results, not speed: on a loaded 2-core CI machine one example can take
# longer than Hypothesis's 200 ms default deadline, which would fail a correct test.
settings.register_profile("dupbench", deadline=None)
settings.load_profile("dupbench")

#: scikit-image's bundled colour photos (real pictures, different scenes)
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
)


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """name → RGB uint8 array, for every bundled colour photo."""
    return {name: _photo(name) for name in PHOTO_NAMES}


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture()
def planted_dir(tmp_path: Path, photos) -> dict:
    """A folder of originals, edited copies (resized, recompressed), and three bad files.

    Returns {"dir": Path, "pairs": set of (a, b) planted duplicate names, "bad": set of names}.
    """
    root = tmp_path / "photos"
    root.mkdir()
    pairs = set()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        img = Image.fromarray(photos[name])
        img.save(root / f"{name}.png")
        small = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
        small.save(root / f"{name}_small.jpg", quality=70)
        pairs.add((f"{name}.png", f"{name}_small.jpg"))
    Image.fromarray(photos["motorcycle"]).save(root / "motorcycle.jpg", quality=90)
    (root / "corrupt.jpg").write_bytes(jpeg_bytes(photos["coffee"])[:600])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    return {"dir": root, "pairs": pairs, "bad": {"corrupt.jpg", "empty.png", "notes.jpg"}}


def pytest_collection_modifyitems(config, items):
    """Network tests run only where DUPBENCH_NETWORK=1 says a network exists."""
    if os.environ.get("DUPBENCH_NETWORK") == "1":
        return
    skip = pytest.mark.skip(reason="needs network; set DUPBENCH_NETWORK=1 to run")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
