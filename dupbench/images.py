"""The one place that opens image files: source → PIL image, or a clear ``ImageError``.

Everything else (methods, dataset builders, plots) asks this module for pixels, so format support,
mode conversion, EXIF orientation, frame choice, reduced-size decoding and the decompression-bomb
guard are decided once. Callers that iterate use ``iter_load``, which turns failures into
``Skipped`` records instead of exceptions so that one bad file never stops a run.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from dupbench.records import Skipped

Source = str | os.PathLike | bytes | Image.Image | np.ndarray

#: Formats imagededup accepts (its ``IMG_FORMATS``); the ``imagededup`` profile rejects others.
IMAGEDEDUP_FORMATS = frozenset(
    {"JPEG", "PNG", "BMP", "MPO", "PPM", "TIFF", "GIF", "SVG", "PGM", "PBM", "WEBP"}
)

_heif_registered: bool | None = None


class ImageError(Exception):
    """An image that cannot be used; ``str(err)`` is the reason recorded in a ``Skipped``."""


def register_heif() -> bool:
    """Teach Pillow HEIC/AVIF when the optional ``pillow-heif`` package is installed."""
    global _heif_registered
    if _heif_registered is None:
        try:
            import pillow_heif
        except ImportError:
            _heif_registered = False
        else:
            pillow_heif.register_heif_opener()
            if hasattr(pillow_heif, "register_avif_opener"):
                pillow_heif.register_avif_opener()
            _heif_registered = True
    return _heif_registered


def source_name(source: Source) -> str:
    """A human-readable name for messages and ``Skipped`` records."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, np.ndarray):
        return f"<ndarray {source.dtype} {source.shape}>"
    return repr(source)


def _open(source: Source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    register_heif()
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty data (0 bytes)")
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.exists():
        raise ImageError(f"no such file: {path}")
    if path.is_dir():
        raise ImageError(f"is a directory: {path}")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    return Image.open(path)


def _from_array(array: np.ndarray) -> Image.Image:
    """ndarray → PIL: HxW (gray), HxWx3 (RGB), HxWx4 (RGBA); floats in [0, 1] are scaled."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {a.shape} is not an image (need HxW, HxWx3 or HxWx4)")
    if a.dtype.kind == "f":
        scale = 255.0 if np.nanmax(a, initial=0) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a) * scale, 0, 255).round()
    elif a.dtype == np.uint16:
        a = a / 257.0
    return Image.fromarray(a.astype(np.uint8))


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth gray modes (I;16*, I, F) → L, mapping the mode's full range onto 0..255."""
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        a = a / 257.0
    elif img.mode == "I":
        hi = a.max(initial=0)
        a = a / 257.0 if hi > 255 else a
    else:  # F: [0, 1] floats or arbitrary range
        lo, hi = float(np.nanmin(a, initial=0)), float(np.nanmax(a, initial=0))
        if hi <= 1.0 and lo >= 0.0:
            a = a * 255.0
        elif hi > 255 or lo < 0:
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "L")


def to_rgb(
    img: Image.Image,
    *,
    alpha: Literal["composite", "drop"] = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Any Pillow mode → RGB. Transparency is composited onto ``background`` (or dropped)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        if alpha == "drop":
            return img.convert("RGB")
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load(
    source: Source,
    *,
    mode: Literal["RGB", "native"] = "RGB",
    exif: bool = True,
    alpha: Literal["composite", "drop"] = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
    frame: int = 0,
    draft: tuple[int, int] | None = None,
    max_pixels: int | None = None,
    formats: Iterable[str] | None = None,
) -> Image.Image:
    """Decode one image.

    mode:       "RGB" converts (see ``to_rgb``); "native" returns the decoded mode untouched, for
                methods that replicate another library's own conversion bit for bit.
    exif:       apply the EXIF orientation tag (compatibility profiles turn it off).
    frame:      which frame of an animated/multi-page file (GIF, TIFF, MPO, WebP).
    draft:      let the JPEG decoder scale down by 1/2, 1/4 or 1/8 towards this size (faster, and
                changes pixels: opt-in).
    max_pixels: refuse images larger than this (default: Pillow's ``Image.MAX_IMAGE_PIXELS``),
                checked from the header before any pixel is decoded.
    formats:    accepted Pillow format names (e.g. ``IMAGEDEDUP_FORMATS``); None accepts all.

    Raises ``ImageError`` with a one-line reason for anything unusable.
    """
    name = source_name(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open(source)
            _check_size(img, max_pixels)
            from_file = not isinstance(source, (Image.Image, np.ndarray))
            if formats is not None and from_file and img.format not in set(formats):
                raise ImageError(f"format {img.format} is not accepted here")
            if frame:
                n = getattr(img, "n_frames", 1)
                if frame >= n:
                    raise ImageError(f"frame {frame} requested but the image has {n}")
                img.seek(frame)
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", draft)
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"too many pixels (decompression-bomb guard): {e}") from None
    except UnidentifiedImageError:
        raise ImageError("not a recognised image format") from None
    except PermissionError as e:
        raise ImageError(f"cannot read: permission denied ({e.filename or name})") from None
    except OSError as e:
        msg = str(e)
        if "truncated" in msg or "broken data stream" in msg or "premature end" in msg.lower():
            raise ImageError(f"truncated or corrupt data: {msg}") from None
        raise ImageError(f"cannot decode: {msg}") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise ImageError(f"cannot decode: {type(e).__name__}: {e}") from None
    if exif and not isinstance(source, np.ndarray):
        img = _apply_orientation(img, name)
    if mode == "RGB":
        img = to_rgb(img, alpha=alpha, background=background)
    return img


def _apply_orientation(img: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation tag; without one, return the image itself (no copy)."""
    try:
        if img.getexif().get(0x0112, 1) in (1, None):
            return img
        return ImageOps.exif_transpose(img)
    except Exception as e:  # noqa: BLE001 (malformed EXIF must not lose a good image)
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({e})", stacklevel=3)
        return img


def load_frames(source: Source, **options) -> list[Image.Image]:
    """Every frame of an animated or multi-page image, each converted as ``load`` would."""
    first = load(source, mode="native", exif=False, max_pixels=options.get("max_pixels"))
    frames = []
    for i, _ in enumerate(ImageSequence.Iterator(first)):
        frames.append(load(source, frame=i, **options))
    return frames


def _check_size(img: Image.Image, max_pixels: int | None) -> None:
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    w, h = img.size
    if limit and w * h > limit:
        raise ImageError(
            f"too many pixels: {w}x{h} = {w * h:,} exceeds the limit of {limit:,} "
            "(decompression-bomb guard; raise it with max_pixels= / --max-pixels)"
        )
    if w == 0 or h == 0:
        raise ImageError(f"image has zero size {w}x{h}")


def iter_load(
    sources: Iterable[Source], **options
) -> Iterator[tuple[int, Image.Image | Skipped]]:
    """Yield ``(index, image)`` or ``(index, Skipped)`` for each source; never raises ImageError."""
    for k, src in enumerate(sources):
        try:
            yield k, load(src, **options)
        except ImageError as e:
            yield k, Skipped(source_name(src), str(e))


def list_files(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Every non-hidden regular file under ``directory``, sorted, whatever its extension.

    Files are not filtered by extension: a PNG named .jpg is still an image, and a text file named
    .jpg becomes a recorded skip instead of silently disappearing.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    pattern = root.rglob("*") if recursive else root.iterdir()
    files = [
        p for p in pattern
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files)

