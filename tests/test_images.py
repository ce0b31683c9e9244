"""images.py: formats, modes, alpha, EXIF orientation, frames, size guard, and clear failures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dupbench import images


@pytest.fixture(scope="module")
def astronaut(photos) -> Image.Image:
    return Image.fromarray(photos["astronaut"]).resize((128, 128))


@pytest.mark.parametrize(
    "fmt,ext",
    [
        ("JPEG", "jpg"),
        ("PNG", "png"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("TIFF", "tif"),
        ("BMP", "bmp"),
        ("PPM", "ppm"),
        ("MPO", "mpo"),
    ],
)
def test_every_common_format_loads_as_rgb(tmp_path, astronaut, fmt, ext):
    path = tmp_path / f"a.{ext}"
    astronaut.save(path, fmt)
    img = images.load(path)
    assert img.mode == "RGB" and img.size == (128, 128)
    # lossless formats give the pixels back; lossy/palette ones stay close
    diff = np.abs(np.asarray(img, int) - np.asarray(astronaut, int)).mean()
    assert diff < (0.5 if fmt in ("PNG", "TIFF", "BMP", "PPM") else 25)


def test_heic_loads_when_pillow_heif_is_installed(tmp_path, astronaut):
    """Written by pillow-heif itself, read in a fresh process: proves images.py registers it."""
    import subprocess
    import sys

    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "a.heic"
    pillow_heif.from_pillow(astronaut).save(path, quality=90)
    code = (
        f"from dupbench import images; im = images.load(r'{path}'); "
        "print(im.mode, im.size[0], im.size[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["RGB", "128", "128"]


def test_gray_pgm_and_wrong_extension(tmp_path, astronaut):
    path = tmp_path / "gray.jpg"  # a PGM named .jpg: content decides, not the name
    astronaut.convert("L").save(path, "PPM")
    img = images.load(path)
    assert img.mode == "RGB"
    r, g, b = (np.asarray(img)[:, :, c] for c in range(3))
    assert np.array_equal(r, g) and np.array_equal(g, b)


def test_bytes_pil_and_ndarray_sources(astronaut):
    buf = io.BytesIO()
    astronaut.save(buf, "PNG")
    from_bytes = images.load(buf.getvalue())
    from_array = images.load(np.asarray(astronaut))
    from_pil = images.load(astronaut)
    assert np.array_equal(np.asarray(from_bytes), np.asarray(astronaut))
    assert np.array_equal(np.asarray(from_array), np.asarray(astronaut))
    assert np.array_equal(np.asarray(from_pil), np.asarray(astronaut))


def test_float_and_uint16_arrays_are_scaled():
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    assert np.asarray(images.load(ramp)).max() == 255
    assert np.asarray(images.load((ramp * 65535).astype(np.uint16))).max() == 255


def test_rgba_is_composited_on_the_background():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red, fully transparent except one pixel
    rgba[0, 0, 3] = 255
    img = images.load(Image.fromarray(rgba, "RGBA"))
    a = np.asarray(img)
    assert tuple(a[0, 0]) == (200, 0, 0)
    assert tuple(a[5, 5]) == (255, 255, 255)
    black = images.load(Image.fromarray(rgba, "RGBA"), background=(0, 0, 0))
    assert tuple(np.asarray(black)[5, 5]) == (0, 0, 0)
    dropped = images.load(Image.fromarray(rgba, "RGBA"), alpha="drop")
    assert tuple(np.asarray(dropped)[5, 5]) == (200, 0, 0)


def test_palette_with_transparency_and_la(tmp_path):
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    p.info["transparency"] = 0
    path = tmp_path / "p.png"
    p.save(path, transparency=0)
    assert tuple(np.asarray(images.load(path))[0, 0]) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (50, 255))
    assert tuple(np.asarray(images.load(la))[0, 0]) == (50, 50, 50)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_odd_modes_convert_to_rgb(astronaut, mode):
    gray = astronaut.convert("L")
    if mode == "I;16":
        src = Image.fromarray(np.asarray(gray).astype("<u2") * 257)
        assert src.mode == "I;16"
    elif mode == "F":
        src = Image.fromarray(np.asarray(gray).astype(np.float32) / 255.0)
    elif mode == "I":
        src = gray.convert("I")
    elif mode in ("CMYK", "YCbCr"):
        src = astronaut.convert(mode)
    else:
        src = gray.convert("1")
    img = images.load(src)
    assert img.mode == "RGB" and img.size == astronaut.size
    if mode in ("I;16", "F", "I"):
        assert np.abs(np.asarray(img)[:, :, 0].astype(int) - np.asarray(gray)).max() <= 1


def test_exif_orientation_applied_unless_disabled(tmp_path, astronaut):
    wide = astronaut.resize((128, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    wide.save(path, exif=exif)
    assert images.load(path).size == (64, 128)
    assert images.load(path, exif=False).size == (128, 64)


def test_frames_of_an_animated_gif(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.asarray(images.load(path))[0, 0, 0] > 200  # first frame by default
    assert np.asarray(images.load(path, frame=1))[0, 0, 2] > 200
    with pytest.raises(images.ImageError, match="frame 5"):
        images.load(path, frame=5)


def test_draft_decodes_jpeg_at_reduced_size(tmp_path, photos):
    path = tmp_path / "big.jpg"
    Image.fromarray(photos["hubble_deep_field"]).save(path)
    img = images.load(path, draft=(128, 128))
    assert img.size[0] < 1000 and img.size[0] >= 128


def test_luma_mode_equals_rgb_then_gray_and_drafts_luma_only(tmp_path, photos):
    path = tmp_path / "big.jpg"
    Image.fromarray(photos["astronaut"]).resize((1024, 1024)).save(path, quality=90)
    gray = images.load(path, mode="L")
    assert gray.mode == "L"
    assert np.array_equal(np.asarray(gray), np.asarray(images.load(path).convert("L")))
    small = images.load(path, mode="L", draft=(128, 128))
    assert small.mode == "L" and small.size == (128, 128)
    rgba = Image.fromarray(photos["astronaut"]).convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white, as in RGB mode
    assert np.asarray(images.load(rgba, mode="L")).min() == 255


def test_pixel_limit_is_checked_before_decoding(tmp_path, astronaut):
    path = tmp_path / "a.png"
    astronaut.save(path)
    with pytest.raises(images.ImageError, match="too many pixels"):
        images.load(path, max_pixels=100)
    assert images.load(path, max_pixels=128 * 128).size == (128, 128)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (b"plain text, not an image\n", "not a recognised image"),
    ],
)
def test_unusable_files_raise_clear_errors(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(images.ImageError, match=reason):
        images.load(path)


def test_truncated_jpeg_is_reported(tmp_path, astronaut):
    buf = io.BytesIO()
    astronaut.save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(images.ImageError, match=r"truncated|corrupt|decode"):
        images.load(path)


def test_missing_file_and_format_filter(tmp_path, astronaut):
    with pytest.raises(images.ImageError, match="no such file"):
        images.load(tmp_path / "nope.png")
    path = tmp_path / "a.ico"
    astronaut.save(path, "ICO")
    with pytest.raises(images.ImageError, match="not accepted"):
        images.load(path, formats=images.IMAGEDEDUP_FORMATS)


def test_every_bad_file_gets_a_reason_and_the_good_ones_load(planted_dir):
    reasons = {}
    for path in images.list_files(planted_dir["dir"]):
        try:
            images.load(path)
        except images.ImageError as e:
            reasons[path.name] = str(e)
    assert set(reasons) == planted_dir["bad"] and all(reasons.values())


def test_max_pixels_can_also_raise_pillows_limit(tmp_path, astronaut, monkeypatch):
    path = tmp_path / "a.png"
    astronaut.save(path)  # 128 x 128 = 16,384 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow itself refuses above 2,000
    with pytest.raises(images.ImageError, match="too many pixels"):
        images.load(path)
    assert images.load(path, max_pixels=20_000).size == (128, 128)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the open


def test_files_are_closed_on_failure_and_after_conversion(tmp_path, astronaut):
    """An image Pillow opened and nobody closed warns (ResourceWarning) when collected."""
    import gc
    import warnings

    png = tmp_path / "a.png"
    astronaut.convert("P").save(png)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leaked = Image.open(png)  # the control: proves an unclosed file is seen here
        del leaked
        gc.collect()
    assert any(w.category is ResourceWarning for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(images.ImageError):
            images.load(png, formats={"JPEG"})
        images.load(png)  # P -> RGB: the opened original is closed after conversion
        gc.collect()
    assert not [w for w in caught if w.category is ResourceWarning]


def test_image_size_reads_the_header_only(tmp_path, astronaut, planted_dir):
    path = tmp_path / "a.png"
    astronaut.save(path)
    assert images.image_size(path) == (128, 128)
    assert images.image_size(planted_dir["dir"] / "notes.jpg") is None


def test_list_files_ignores_hidden_and_recurses_on_request(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for p in ("a.jpg", "sub/b.jpg", ".hidden/c.jpg", ".d.jpg"):
        (tmp_path / p).write_bytes(b"x")
    assert [p.name for p in images.list_files(tmp_path)] == ["a.jpg"]
    assert [p.name for p in images.list_files(tmp_path, recursive=True)] == ["a.jpg", "b.jpg"]
    with pytest.raises(NotADirectoryError):
        images.list_files(tmp_path / "a.jpg")
