"""Real photos (scikit-image's bundled data) written as files in every mode the hashes must handle."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

#: every bundled colour photo (``cat`` is ``chelsea`` again) and every bundled gray photo
COLOUR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
)
GRAY_PHOTOS = (
    "camera",
    "coins",
    "moon",
    "clock",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "cell",
    "microaneurysms",
)
#: the pictures of scenes used for near-duplicate tests; the gray textures (brick, grass, gravel),
#: document scans (page, text) and tiny or cropped microscopy are kept to the bit-exact tests
SCENE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle",
    "camera",
    "coins",
    "moon",
    "clock",
)

EXIF_ORIENTATION = 0x0112


def photo_array(name: str) -> np.ndarray:
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def photo(name: str) -> Image.Image:
    return Image.fromarray(photo_array(name))


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def half_size(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)


def with_alpha(img: Image.Image) -> Image.Image:
    """RGBA with a horizontal alpha ramp: hidden colour under transparency must not matter."""
    rgba = img.convert("RGBA")
    ramp = np.tile(np.linspace(0, 255, img.width, dtype=np.uint8), (img.height, 1))
    rgba.putalpha(Image.fromarray(ramp))
    return rgba


def rotated_with_exif(img: Image.Image) -> tuple[Image.Image, Image.Exif]:
    """Pixels stored rotated 90° counter-clockwise, tagged Orientation=6 so viewers undo it."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return img.transpose(Image.Transpose.ROTATE_90), exif


def write_reference_files(root: Path) -> dict[str, Path]:
    """Every photo as a file, plus RGBA, P (with transparency), LA, GIF and EXIF-rotated ones."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in COLOUR_PHOTOS:
        files[name] = root / f"{name}.jpg"
        photo(name).save(files[name], quality=90)
    for name in GRAY_PHOTOS:
        files[name] = root / f"{name}.png"
        photo(name).save(files[name])
    specials = {
        "astronaut_rgba.png": with_alpha(photo("astronaut")),
        "coffee_p_transparent.png": photo("coffee").quantize(64),
        "camera_la.png": with_alpha(photo("camera")).convert("LA"),
        "chelsea.gif": photo("chelsea").convert("P", palette=Image.Palette.ADAPTIVE),
        "logo_rgba.png": Image.fromarray(data.logo()),
    }
    specials["coffee_p_transparent.png"].info["transparency"] = 0
    for filename, img in specials.items():
        files[filename] = root / filename
        img.save(files[filename])
    stored, exif = rotated_with_exif(photo("rocket"))
    files["rocket_exif.jpg"] = root / "rocket_exif.jpg"
    stored.save(files["rocket_exif.jpg"], quality=90, exif=exif)
    return files


def unpack_bits(words: np.ndarray, nbits: int) -> np.ndarray:
    """Inverse of ``records.pack_bits``: (n, nwords) uint64 → (n, nbits) bool, to look at bits."""
    words = np.ascontiguousarray(np.atleast_2d(words).astype(">u8"))
    return np.unpackbits(words.view(np.uint8), axis=1)[:, :nbits].astype(bool)
