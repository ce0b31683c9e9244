"""The one place that opens image files: source → PIL image, or a clear ``ImageError``.

Everything else (methods, dataset builders, plots) asks this module for pixels, so format support,
mode conversion, EXIF orientation, frame choice, reduced-size decoding and the decompression-bomb
guard are decided once. Failures are ``ImageError`` with a one-line reason, which the encoders
record as ``Skipped`` so that one bad file never stops a run. Listing a folder (``scan_files``)
lives here too, so that which entries count as image files is decided in the same place.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dupbench.errors import DupbenchError
from dupbench.filebytes import digest, file_kind
from dupbench.records import Skipped

Source = str | os.PathLike | bytes | Image.Image | np.ndarray

#: Formats imagededup accepts (its ``IMG_FORMATS``); the ``imagededup`` profile rejects others.
IMAGEDEDUP_FORMATS = frozenset(
    {"JPEG", "PNG", "BMP", "MPO", "PPM", "TIFF", "GIF", "SVG", "PGM", "PBM", "WEBP"}
)

_heif_registered: bool | None = None


class ImageError(DupbenchError):
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


def to_gray(
    img: Image.Image,
    *,
    alpha: Literal["composite", "drop"] = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Any Pillow mode → 8-bit luma (L): RGB first (see ``to_rgb``), then Pillow's ITU-R 601-2."""
    if img.mode == "L":
        return img
    return to_rgb(img, alpha=alpha, background=background).convert("L")


def pixel_digest(img: Image.Image) -> bytes:
    """BLAKE2b-128 of the RGB pixels, salted with the size so a transposed image differs: equal
    for the same picture whatever the file. The ``pixel_digest`` method and the dataset
    builder's exact-or-near label both use it, so they agree on what "identical pixels" means."""
    rgb = to_rgb(img)
    return digest(f"{rgb.width}x{rgb.height}:".encode(), rgb.tobytes())


def load(
    source: Source,
    *,
    mode: Literal["RGB", "L", "native"] = "RGB",
    exif: bool = True,
    alpha: Literal["composite", "drop"] = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
    frame: int = 0,
    draft: tuple[int, int] | None = None,
    max_pixels: int | None = None,
    formats: Iterable[str] | None = None,
) -> Image.Image:
    """Decode one image.

    mode:       "RGB" converts (see ``to_rgb``); "L" to luma (``to_gray``: for methods that only
                look at brightness); "native" returns the decoded mode untouched, for methods
                that replicate another library's own conversion bit for bit.
    exif:       apply the EXIF orientation tag (compatibility profiles turn it off).
    frame:      which frame of an animated/multi-page file (GIF, TIFF, MPO, WebP).
    draft:      let the JPEG decoder scale down by 1/2, 1/4 or 1/8 in the DCT domain, keeping
                both sides at least this (width, height); with mode "L" it also decodes only
                the luma channel (no chroma upsampling or colour conversion). Faster, and
                changes pixels slightly: the caller decides (hash methods measured it).
    max_pixels: refuse images larger than this (default: Pillow's ``Image.MAX_IMAGE_PIXELS``),
                checked from the header before any pixel is decoded.
    formats:    accepted Pillow format names (e.g. ``IMAGEDEDUP_FORMATS``); None accepts all.

    Raises ``ImageError`` with a one-line reason for anything unusable.
    """
    name = source_name(source)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    img = _decode(source, name, limit, frame, draft, formats, "L" if mode == "L" else "RGB")
    out = _finish(img, source, name, mode, exif, alpha, background)
    if out is not img and img is not source:
        img.close()  # the converted copy holds the pixels; release the file and the original
    return out


def _finish(
    img: Image.Image,
    source: Source,
    name: str,
    mode: str,
    exif: bool,
    alpha: Literal["composite", "drop"],
    background: tuple[int, int, int],
) -> Image.Image:
    """A decoded frame as the caller asked for it: EXIF-oriented (files only), then RGB."""
    if exif and not isinstance(source, np.ndarray):
        img = _apply_orientation(img, name)
    if mode == "RGB":
        return to_rgb(img, alpha=alpha, background=background)
    if mode == "L":
        return to_gray(img, alpha=alpha, background=background)
    return img


def _decode(
    source: Source,
    name: str,
    limit: int | None,
    frame: int,
    draft: tuple[int, int] | None,
    formats: Iterable[str] | None,
    draft_mode: Literal["RGB", "L"] = "RGB",
) -> Image.Image:
    """Open, check and decode one frame; every failure becomes an ``ImageError``.

    With ``draft``, a JPEG is decoded at reduced scale (and as luma for ``draft_mode`` "L"; a
    CMYK or gray JPEG keeps its mode), so the pixels nobody looks at are never computed.
    """
    img = None
    try:
        with warnings.catch_warnings(), _pillow_guard_above(limit):
            # Pillow warns above its own limit; ours (``limit``) decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = _open(source)
            _check_size(img, limit)
            from_file = not isinstance(source, (Image.Image, np.ndarray))
            if formats is not None and from_file and img.format not in set(formats):
                raise ImageError(f"format {img.format} is not accepted here")
            if frame:
                n = getattr(img, "n_frames", 1)
                if frame >= n:
                    raise ImageError(f"frame {frame} requested but the image has {n}")
                img.seek(frame)
            if draft is not None and img.format == "JPEG":
                img.draft(draft_mode, draft)
            img.load()
            return img
    except BaseException as e:
        if img is not None and img is not source:
            img.close()
        raise _as_image_error(e, name) from None


def _as_image_error(e: BaseException, name: str) -> BaseException:
    """The one-line reason for a decode failure (other exceptions pass through unchanged)."""
    if isinstance(e, ImageError):
        return e
    if isinstance(e, Image.DecompressionBombError):
        return ImageError(f"too many pixels (decompression-bomb guard): {e}")
    if isinstance(e, UnidentifiedImageError):
        return ImageError("not a recognised image format")
    if isinstance(e, PermissionError):
        return ImageError(f"cannot read: permission denied ({e.filename or name})")
    if isinstance(e, OSError):
        msg = str(e)
        if "truncated" in msg or "broken data stream" in msg or "premature end" in msg.lower():
            return ImageError(f"truncated or corrupt data: {msg}")
        return ImageError(f"cannot decode: {msg}")
    if isinstance(e, (ValueError, SyntaxError, EOFError, MemoryError)):
        return ImageError(f"cannot decode: {type(e).__name__}: {e}")
    return e


_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_guard_above(limit: int | None):
    """Let Pillow open images up to ``limit`` when that is above its own (process-wide) guard.

    Pillow refuses images over twice ``Image.MAX_IMAGE_PIXELS`` inside ``Image.open``; a caller
    who asks for a higher ``max_pixels`` gets it for this one open, under a lock.
    """
    pillow = Image.MAX_IMAGE_PIXELS
    if pillow is None or (limit is not None and 0 < limit <= 2 * pillow):
        yield
        return
    with _PILLOW_LIMIT_LOCK:
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pillow


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of an image file from its header alone, or None when it is not usable."""
    register_heif()
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _apply_orientation(img: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation tag; without one, return the image itself (no copy)."""
    try:
        if img.getexif().get(0x0112, 1) in (1, None):
            return img
        return ImageOps.exif_transpose(img)
    except Exception as e:
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({e})", stacklevel=3)
        return img


def _check_size(img: Image.Image, max_pixels: int | None) -> None:
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    w, h = img.size
    if limit and w * h > limit:
        raise ImageError(
            f"too many pixels: {w}x{h} = {w * h:,} exceeds the limit of {limit:,} "
            "(decompression-bomb guard; raise it with max_pixels= or PIL.Image.MAX_IMAGE_PIXELS)"
        )
    if w == 0 or h == 0:
        raise ImageError(f"image has zero size {w}x{h}")


@dataclass(frozen=True)
class ScannedFile:
    """A regular file a scan found, with its size and mtime then: actions refuse changed files.

    ``linked_from``: the scanned symbolic links that point to it (moving it would break them).
    """

    path: Path
    size: int
    mtime_ns: int
    linked_from: tuple[Path, ...] = ()


@dataclass
class Scan:
    """What a folder scan found, what it could not use (with reasons), and what it did not enter."""

    files: list[ScannedFile]
    skipped: list[Skipped]
    unsearched_folders: int = 0


def scan_files(
    directory: str | os.PathLike, recursive: bool = False, exclude: Iterable[str | os.PathLike] = ()
) -> Scan:
    """Every non-hidden regular file under ``directory``, sorted, each name of a file once.

    Nothing vanishes silently and nothing stops the scan: an unlistable folder, a path longer than
    the system allows, a broken link, a FIFO, socket or device becomes a ``Skipped`` with its
    reason. Folders in ``exclude`` (a --move-to destination) are not entered. Symbolic links are
    resolved; two names of one file (a link and its target, hard links) count once, as the real
    name (the others are skipped as "another name of ..."), so a file is never its own duplicate.
    Without ``recursive`` the sub-folders are counted in ``unsearched_folders``.
    """
    root = Path(directory)
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    excluded = {os.path.realpath(e) for e in exclude}
    found: list[tuple[Path, os.stat_result, bool]] = []
    scan = Scan([], [])
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            scan.skipped.append(Skipped(str(folder), f"cannot list folder: {_os_reason(e)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_link = False
            try:
                is_link = entry.is_symlink()
                st = os.stat(path)
            except OSError as e:
                scan.skipped.append(Skipped(str(path), _stat_failure(path, e, is_link)))
                continue
            real = os.path.realpath(path)
            if any(real == x or real.startswith(x + os.sep) for x in excluded):
                if is_link:
                    scan.skipped.append(Skipped(str(path), "link into the excluded folder"))
            elif stat.S_ISDIR(st.st_mode):
                if is_link:
                    scan.skipped.append(Skipped(str(path), "link to a folder (not followed)"))
                elif recursive:
                    folders.append(path)
                else:
                    scan.unsearched_folders += 1
            elif stat.S_ISREG(st.st_mode):
                found.append((path, st, is_link))
            else:
                scan.skipped.append(
                    Skipped(str(path), f"not a regular file: a {file_kind(st.st_mode)}")
                )
    scan.files, other_names = _one_name_per_file(root, found)
    scan.skipped.extend(other_names)
    scan.skipped.sort(key=lambda s: s.path)
    return scan


def _one_name_per_file(
    root: Path, found: list[tuple[Path, os.stat_result, bool]]
) -> tuple[list[ScannedFile], list[Skipped]]:
    """Keep one name per (device, inode): the real name before links, then the first by path."""
    names: dict[tuple[int, int], list[tuple[Path, os.stat_result, bool]]] = {}
    for item in found:
        names.setdefault((item[1].st_dev, item[1].st_ino), []).append(item)
    files, skipped = [], []
    for same in names.values():
        same.sort(key=lambda item: (item[2], item[0]))
        path, st, _ = same[0]
        links = tuple(other for other, _, is_link in same[1:] if is_link)
        files.append(ScannedFile(path, st.st_size, st.st_mtime_ns, links))
        for other, _, is_link in same[1:]:
            kind = "a symbolic link to it" if is_link else "a hard link"
            skipped.append(
                Skipped(
                    str(other),
                    f"another name of {path.relative_to(root)} "
                    f"({kind}; the same file, not a duplicate)",
                )
            )
    return sorted(files, key=lambda f: f.path), skipped


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ENAMETOOLONG:
        return (
            f"path too long ({len(os.fsencode(e.filename or ''))} bytes; the system limit "
            f"is {os.pathconf('/', 'PC_PATH_MAX')})"
        )
    return e.strerror or str(e)


def _stat_failure(path: Path, e: OSError, is_link: bool) -> str:
    """Why an entry cannot be used: the broken-link and loop cases named as such."""
    if is_link and e.errno == errno.ENOENT:
        return f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
    if is_link and e.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot read: {_os_reason(e)}"


def list_files(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Every non-hidden regular file under ``directory``, sorted, whatever its extension.

    Files are not filtered by extension: a PNG named .jpg is still an image, and a text file named
    .jpg becomes a recorded skip instead of silently disappearing. Entries that are not files
    (see ``scan_files``) are left out here; ``scan_files`` returns them with reasons.
    """
    return [f.path for f in scan_files(directory, recursive).files]
