"""Exact duplicates: a digest of the file's bytes, and a digest of the decoded pixels.

Both are BLAKE2b with a 128-bit output, stored as two uint64 words (the hex of the words is the
digest's ``hexdigest()``), compared by equality. 128 bits keep accidental collisions out of
reach for any real collection (birthday bound ≈ 2⁶⁴ files) at half the storage of SHA-256.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.filebytes import DIGEST_BYTES, content_digest, digest
from dupbench.methods.base import Method, int_param
from dupbench.methods.registry import METHODS


def digest_words(digest: bytes) -> np.ndarray:
    """Big-endian uint64 words of a digest, so their hex equals the digest's hex."""
    return np.frombuffer(digest, dtype=">u8").astype(np.uint64)


def pixel_digest_words(image: Image.Image) -> np.ndarray:
    """``images.pixel_digest`` as two words."""
    return digest_words(images.pixel_digest(image))


class DigestMethod(Method):
    """Shared declaration of the 128-bit exact digests."""

    kind = "exact"
    distance = DistanceKind.EQUAL
    default_threshold: ClassVar[float] = 0

    @property
    def size(self) -> int:
        return DIGEST_BYTES * 8


@METHODS.register()
class FileDigest(DigestMethod):
    """BLAKE2b-128 of the file's bytes: byte-identical copies, whatever the file holds.

    It reads bytes and never decodes, so it is as fast as the disk, and it does not judge whether
    a file is an image (only missing, unreadable and empty files are skipped). Sources without
    file bytes fall back sensibly: ``bytes`` are digested as they are; a PIL image or an array
    (already decoded, its original bytes unknown) gets the pixel digest.
    """

    name = "file_digest"
    robust_to = "nothing: byte-identical copies only"

    def __init__(self, chunk_size: int = 1 << 20) -> None:
        self.chunk_size = int_param("chunk_size", chunk_size, 1)
        super().__init__(chunk_size=self.chunk_size)

    def encode_source(self, source: images.Source) -> np.ndarray:
        if isinstance(source, bytes):
            if not source:
                raise images.ImageError("empty data (0 bytes)")
            return digest_words(digest(source))
        if isinstance(source, (str, os.PathLike)):
            return self._file_words(Path(source))
        return pixel_digest_words(images.load(source))

    def encode_image(self, image: Image.Image) -> np.ndarray:
        return pixel_digest_words(image)

    def _file_words(self, path: Path) -> np.ndarray:
        try:
            digest, size = content_digest(path, self.chunk_size)
        except FileNotFoundError:
            raise images.ImageError(f"no such file: {path}") from None
        except IsADirectoryError:
            raise images.ImageError(f"is a directory: {path}") from None
        except OSError as e:
            raise images.ImageError(f"cannot read: {e.strerror or e}") from None
        if size == 0:
            raise images.ImageError("empty file (0 bytes)")
        return digest_words(digest)


@METHODS.register()
class PixelDigest(DigestMethod):
    """BLAKE2b-128 of the decoded RGB pixels and the size: same picture, whatever the file.

    Catches copies whose bytes differ but whose pixels do not: metadata edited or stripped, a
    lossless re-save (PNG ↔ BMP ↔ TIFF, other compression level), an EXIF orientation tag
    replaced by really rotated pixels. Decoding follows ``images.load``'s defaults (EXIF applied,
    transparency composited on white, first frame). A lossy re-encode changes pixels: that is
    a near duplicate, for the perceptual hashes.
    """

    name = "pixel_digest"
    robust_to = "metadata edits, lossless re-saves and format changes"

    def encode_image(self, image: Image.Image) -> np.ndarray:
        return pixel_digest_words(image)
