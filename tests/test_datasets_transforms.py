"""The hard edits of the catalogue do exactly what their parameters say: exact rotations and
mirrors, borders of the stated size, crops of the stated window, overlays confined to their area."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dupbench.datasets.transforms import SEVERITIES, TRANSFORMS

SEEDS = range(8)  # enough draws to meet every style, colour, corner and place


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((150, 100))


def _apply(name: str, photo: Image.Image, seed: int, severity: int):
    edit = TRANSFORMS[name].apply(photo, np.random.default_rng(seed), severity)
    return np.asarray(edit.image.convert("RGB")), edit.params


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=-1)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_rotate90_is_an_exact_quarter_turn(photo, severity):
    out, params = _apply("rotate90", photo, 0, severity)
    assert params["degrees"] == 90 * severity
    assert np.array_equal(out, np.rot90(np.asarray(photo), k=severity))


def test_mirrors_are_exact(photo):
    assert np.array_equal(_apply("hflip", photo, 0, 1)[0], np.fliplr(np.asarray(photo)))
    assert np.array_equal(_apply("vflip", photo, 0, 1)[0], np.flipud(np.asarray(photo)))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_crop_keeps_the_stated_window(photo, severity):
    source = np.asarray(photo)
    for seed in SEEDS:
        out, params = _apply("crop", photo, seed, severity)
        x0, y0, x1, y1 = params["box"]
        assert out.shape[:2] == (round(100 * params["keep"]), round(150 * params["keep"]))
        assert np.array_equal(out, source[y0:y1, x0:x1])
    assert params["keep"] == {1: 0.9, 2: 0.75, 3: 0.5}[severity]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pad_adds_bars_of_the_stated_fraction(photo, severity):
    source = np.asarray(photo)
    h, w = source.shape[:2]
    seen = set()
    for seed in SEEDS:
        out, params = _apply("pad", photo, seed, severity)
        color = np.array(params["color"], dtype=np.uint8)
        if params["style"] == "letterbox":
            bar = round(h * params["fraction"])
            assert out.shape[:2] == (h + 2 * bar, w)
            inner, bars = out[bar : bar + h], [out[:bar], out[bar + h :]]
        else:
            bar = round(w * params["fraction"])
            assert out.shape[:2] == (h, w + 2 * bar)
            inner, bars = out[:, bar : bar + w], [out[:, :bar], out[:, bar + w :]]
        assert bar == params["bar"] > 0
        assert np.array_equal(inner, source)
        assert all(np.all(b == color) for b in bars)
        seen.add((params["style"], tuple(params["color"]) in {(0, 0, 0), (255, 255, 255)}))
    assert len(seen) >= 3  # letterbox and pillarbox, plain and coloured fills all occur


@pytest.mark.parametrize("severity", SEVERITIES)
def test_border_frames_the_photo_with_the_stated_width(photo, severity):
    out, params = _apply("border", photo, 1, severity)
    width = params["width"]
    assert width == max(1, round(100 * {1: 0.02, 2: 0.05, 3: 0.1}[severity]))
    assert out.shape[:2] == (100 + 2 * width, 150 + 2 * width)
    assert np.array_equal(out[width:-width, width:-width], np.asarray(photo))
    assert np.all(out[:width] == np.array(params["color"], dtype=np.uint8))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_text_bar_covers_only_its_band(photo, severity):
    source = np.asarray(photo)
    places = set()
    for seed in SEEDS:
        out, params = _apply("text_bar", photo, seed, severity)
        bar = params["bar"]
        assert bar == round(100 * params["fraction"]) and out.shape == source.shape
        band = slice(0, bar) if params["place"] == "top" else slice(100 - bar, 100)
        outside = np.ones(100, dtype=bool)
        outside[band] = False
        assert np.array_equal(out[outside], source[outside])
        pixels = out[band].reshape(-1, 3)
        background = np.all(pixels == np.array(params["color"], dtype=np.uint8), axis=1)
        assert 0.5 < background.mean() < 1.0  # an opaque band with a caption written on it
        places.add(params["place"])
    assert places == {"top", "bottom"}
    fractions = [_apply("text_bar", photo, 0, s)[1]["fraction"] for s in SEVERITIES]
    assert fractions == sorted(fractions) and len(set(fractions)) == 3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_logo_changes_only_its_corner_badge(photo, severity):
    source = np.asarray(photo)
    corners = set()
    for seed in SEEDS:
        out, params = _apply("logo", photo, seed, severity)
        side = params["side"]
        margin = max(1, side // 8)
        x = margin if "left" in params["corner"] else 150 - side - margin
        y = margin if "top" in params["corner"] else 100 - side - margin
        changed = _changed(out, source)
        inside = np.zeros_like(changed)
        inside[y : y + side, x : x + side] = True
        assert changed.any() and not changed[~inside].any()
        assert changed.mean() <= side * side / changed.size
        corners.add(params["corner"])
    assert len(corners) >= 3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_text_caption_changes_a_bounded_area_that_grows_with_severity(photo, severity):
    source = np.asarray(photo)
    for seed in SEEDS:
        out, params = _apply("text", photo, seed, severity)
        changed = _changed(out, source)
        rows = np.flatnonzero(changed.any(axis=1))
        assert changed.any() and out.shape == source.shape
        # the caption stays within a line of its font size (plus its outline) of its anchor
        assert rows.min() >= params["xy"][1] - 2 and rows.max() - rows.min() <= 2 * params["size"]
        assert changed.mean() < 0.3


def test_overlays_grow_with_severity(photo):
    source = np.asarray(photo)
    for name in ("text", "text_bar", "logo"):
        shares = [
            np.mean([_changed(_apply(name, photo, seed, s)[0], source).mean() for seed in SEEDS])
            for s in SEVERITIES
        ]
        assert shares[0] < shares[1] < shares[2], (name, shares)
