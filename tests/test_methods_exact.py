"""Exact digests: byte-identical files, and re-saved files whose pixels did not change."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from methods_fixtures import photo, rotated_with_exif
from PIL import Image, PngImagePlugin

from dupbench.methods import get_method


@pytest.fixture()
def saved(tmp_path):
    """The same pixels as: a PNG, its byte copy, a PNG with other metadata, a BMP, a TIFF."""
    img = photo("chelsea")
    files = {
        k: tmp_path / f"{k}.{ext}"
        for k, ext in [
            ("png", "png"),
            ("copy", "png"),
            ("meta", "png"),
            ("bmp", "bmp"),
            ("tiff", "tiff"),
        ]
    }
    img.save(files["png"])
    files["copy"].write_bytes(files["png"].read_bytes())
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "re-saved by another program")
    img.save(files["meta"], pnginfo=info, compress_level=9)
    img.save(files["bmp"])
    img.save(files["tiff"], compression="tiff_lzw")
    return files


def hexes(method_name, paths) -> list[str]:
    encodings = get_method(method_name).encode(paths)
    assert not encodings.skipped
    return list(encodings.to_hex().values())


def test_file_digest_is_blake2b_128_of_the_bytes(saved):
    path = saved["png"]
    (h,) = hexes("file_digest", [path])
    assert h == hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    encodings = get_method("file_digest").encode([path])
    assert encodings.kind == "exact" and encodings.distance == "equal" and encodings.size == 128
    assert encodings.codes.shape == (1, 2) and encodings.codes.dtype == np.uint64


def test_identical_bytes_match_and_resaved_files_differ_by_bytes_only(saved):
    files = [saved[k] for k in ("png", "copy", "meta", "bmp", "tiff")]
    by_file = hexes("file_digest", files)
    by_pixels = hexes("pixel_digest", files)
    assert by_file[0] == by_file[1]
    assert len(set(by_file[1:])) == 4  # metadata / container changed the bytes
    assert len(set(by_pixels)) == 1  # but not one pixel


def test_pixel_digest_tells_different_pixels_apart(saved, tmp_path):
    img = photo("chelsea")
    arr = np.asarray(img).copy()
    arr[10, 10, 0] ^= 1  # one bit of one pixel
    one_off = tmp_path / "one_off.png"
    Image.fromarray(arr).save(one_off)
    lossy = tmp_path / "lossy.jpg"
    img.save(lossy, quality=95)
    transposed = tmp_path / "transposed.png"
    # same bytes per row count but other geometry: the size salt keeps them apart
    Image.fromarray(np.asarray(img).reshape(img.width, img.height, 3)).save(transposed)
    values = hexes("pixel_digest", [saved["png"], one_off, lossy, transposed])
    assert len(set(values)) == 4


def test_pixel_digest_follows_exif_orientation(tmp_path):
    img = photo("rocket")
    stored, exif = rotated_with_exif(img)
    tagged, plain = tmp_path / "tagged.png", tmp_path / "plain.png"
    stored.save(tagged, exif=exif)
    img.save(plain)
    a, b = hexes("pixel_digest", [tagged, plain])
    assert a == b
    assert len(set(hexes("file_digest", [tagged, plain]))) == 2


def test_in_memory_sources(saved):
    data = saved["png"].read_bytes()
    (from_bytes,) = get_method("file_digest").encode([data], ids=["b"]).to_hex().values()
    assert from_bytes == hashlib.blake2b(data, digest_size=16).hexdigest()
    pil, array = Image.open(saved["png"]), np.asarray(Image.open(saved["png"]))
    by_pixels = hexes("pixel_digest", [saved["png"]])[0]
    # decoded images have no bytes: file_digest falls back to the pixel digest
    assert get_method("file_digest").encode([pil, array], ids=["p", "a"]).to_hex() == {
        "p": by_pixels,
        "a": by_pixels,
    }


@pytest.mark.parametrize("name", ["file_digest", "pixel_digest"])
def test_unreadable_sources_become_skips(tmp_path, saved, name):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    encodings = get_method(name).encode([saved["png"], empty, missing, tmp_path, b""])
    assert encodings.ids == [str(saved["png"])]
    reasons = [s.reason for s in encodings.skipped]
    assert len(reasons) == 4
    assert "empty" in reasons[0] and "no such file" in reasons[1] and "directory" in reasons[2]


def test_file_digest_does_not_decode(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    assert len(get_method("file_digest").encode([text])) == 1
    assert len(get_method("pixel_digest").encode([text]).skipped) == 1


def test_file_digest_reads_in_chunks(saved):
    small_chunks = get_method("file_digest", chunk_size=7).encode([saved["png"]])
    assert small_chunks.to_hex() == get_method("file_digest").encode([saved["png"]]).to_hex()
