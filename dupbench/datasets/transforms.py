"""The catalogue of seeded edits that turn one photo into its near-duplicates.

Each transform takes an RGB image, a numpy ``Generator`` and a severity (1 light, 2 medium,
3 strong) and returns an ``Edit``: the new image, the parameters actually used (recorded in the
manifest), and the file format to save it in. All pixel work is Pillow or numpy; every random
choice comes from the generator, which the builder seeds per image, so an edit never depends on
which images were built before it or in which process.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

SEVERITIES = (1, 2, 3)
_RESAMPLE = Image.Resampling


@dataclass
class Edit:
    """An edited image, the parameters used, and how to save it (format + Pillow save options)."""

    image: Image.Image
    params: dict
    format: str = "PNG"
    save_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Transform:
    name: str
    apply: Callable[[Image.Image, np.random.Generator, int], Edit]
    graded: bool = True  # False: one fixed edit (severity is ignored and recorded as None)
    description: str = ""


EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


#: zlib level for PNG outputs: 1 saves ~60% of the encode time for ~10% larger files
PNG_LEVEL = 1


def encode(edit: Edit) -> bytes:
    """The bytes of an edit saved in its format; deterministic for a given Pillow build."""
    buf = io.BytesIO()
    options = dict(edit.save_options)
    if edit.format == "PNG":
        options.setdefault("compress_level", PNG_LEVEL)
    edit.image.save(buf, edit.format, **options)
    return buf.getvalue()


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _signed(rng: np.random.Generator, magnitude: float) -> float:
    return magnitude if rng.random() < 0.5 else -magnitude


# ---------------------------------------------------------------- encodings


def png_resave(img, rng, severity) -> Edit:
    """Lossless re-encode with other settings and a text chunk: new bytes, identical pixels."""
    info = PngInfo()
    info.add_text("Software", "dupbench")
    return Edit(img.copy(), {"compress_level": 9}, "PNG", {"compress_level": 9, "pnginfo": info})


def jpeg(img, rng, severity) -> Edit:
    quality = {1: 90, 2: 60, 3: 25}[severity]
    return Edit(img, {"quality": quality}, "JPEG", {"quality": quality})


def webp(img, rng, severity) -> Edit:
    quality = {1: 85, 2: 50, 3: 15}[severity]
    return Edit(img, {"quality": quality}, "WEBP", {"quality": quality, "method": 4})


def gif(img, rng, severity) -> Edit:
    colors = {1: 256, 2: 64, 3: 16}[severity]
    paletted = img.quantize(
        colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG
    )
    return Edit(paletted, {"colors": colors}, "GIF")


# ---------------------------------------------------------------- geometry


def _resize(img, scale_x: float, scale_y: float, resample) -> Image.Image:
    size = (max(8, round(img.width * scale_x)), max(8, round(img.height * scale_y)))
    return img.resize(size, resample)


def downscale(img, rng, severity) -> Edit:
    scale = {1: 0.75, 2: 0.5, 3: 0.25}[severity]
    return Edit(_resize(img, scale, scale, _RESAMPLE.LANCZOS), {"scale": scale})


def upscale(img, rng, severity) -> Edit:
    scale = {1: 1.25, 2: 1.5, 3: 2.0}[severity]
    return Edit(_resize(img, scale, scale, _RESAMPLE.BICUBIC), {"scale": scale})


def crop(img, rng, severity) -> Edit:
    """Keep a window of ``keep`` × each side at a random position."""
    keep = {1: 0.9, 2: 0.75, 3: 0.5}[severity]
    w, h = max(1, round(img.width * keep)), max(1, round(img.height * keep))
    x = int(rng.integers(img.width - w + 1))
    y = int(rng.integers(img.height - h + 1))
    return Edit(img.crop((x, y, x + w, y + h)), {"keep": keep, "box": [x, y, x + w, y + h]})


def aspect(img, rng, severity) -> Edit:
    stretch = {1: 1.1, 2: 1.25, 3: 1.5}[severity]
    axis = _pick(rng, ("x", "y"))
    sx, sy = (stretch, 1.0) if axis == "x" else (1.0, stretch)
    return Edit(_resize(img, sx, sy, _RESAMPLE.BICUBIC), {"stretch": stretch, "axis": axis})


def pad(img, rng, severity) -> Edit:
    """Letterbox (bars above and below) or pillarbox (left and right) in black, white or a
    colour; each bar is ``fraction`` of the height (letterbox) or width (pillarbox)."""
    fraction = {1: 0.05, 2: 0.15, 3: 0.3}[severity]
    style = _pick(rng, ("letterbox", "pillarbox"))
    fill = _pick(rng, ("black", "white", "colour"))
    color = {"black": (0, 0, 0), "white": (255, 255, 255)}.get(fill) or tuple(
        int(c) for c in rng.integers(0, 256, size=3)
    )
    if style == "letterbox":
        bar = round(img.height * fraction)
        border = (0, bar, 0, bar)
    else:
        bar = round(img.width * fraction)
        border = (bar, 0, bar, 0)
    return Edit(
        ImageOps.expand(img, border, fill=color),
        {"fraction": fraction, "style": style, "bar": bar, "color": list(color)},
    )


def border(img, rng, severity) -> Edit:
    fraction = {1: 0.02, 2: 0.05, 3: 0.1}[severity]
    width = max(1, round(min(img.size) * fraction))
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return Edit(ImageOps.expand(img, width, fill=color), {"width": width, "color": list(color)})


def rotate(img, rng, severity) -> Edit:
    angle = _signed(rng, {1: 2.0, 2: 5.0, 3: 10.0}[severity])
    return Edit(
        img.rotate(angle, resample=_RESAMPLE.BICUBIC, fillcolor=(0, 0, 0)), {"degrees": angle}
    )


def rotate90(img, rng, severity) -> Edit:
    degrees = {1: 90, 2: 180, 3: 270}[severity]
    op = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }[degrees]
    return Edit(img.transpose(op), {"degrees": degrees})


def hflip(img, rng, severity) -> Edit:
    return Edit(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), {})


def vflip(img, rng, severity) -> Edit:
    return Edit(img.transpose(Image.Transpose.FLIP_TOP_BOTTOM), {})


# ---------------------------------------------------------------- tone and colour


def _enhance(enhancer, img, rng, magnitude: float, name: str) -> Edit:
    factor = 1.0 + _signed(rng, magnitude)
    return Edit(enhancer(img).enhance(factor), {name: round(factor, 4)})


def brightness(img, rng, severity) -> Edit:
    return _enhance(
        ImageEnhance.Brightness, img, rng, {1: 0.1, 2: 0.25, 3: 0.45}[severity], "factor"
    )


def contrast(img, rng, severity) -> Edit:
    return _enhance(ImageEnhance.Contrast, img, rng, {1: 0.15, 2: 0.35, 3: 0.6}[severity], "factor")


def saturation(img, rng, severity) -> Edit:
    return _enhance(ImageEnhance.Color, img, rng, {1: 0.2, 2: 0.5, 3: 0.8}[severity], "factor")


def gamma(img, rng, severity) -> Edit:
    g = {1: 1.15, 2: 1.5, 3: 2.2}[severity]
    g = g if rng.random() < 0.5 else 1.0 / g
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return Edit(img.point(list(lut) * len(img.getbands())), {"gamma": round(g, 4)})


def grayscale(img, rng, severity) -> Edit:
    return Edit(img.convert("L"), {})


# ---------------------------------------------------------------- filters and noise


def blur(img, rng, severity) -> Edit:
    radius = {1: 0.8, 2: 1.6, 3: 3.2}[severity]
    return Edit(img.filter(ImageFilter.GaussianBlur(radius)), {"radius": radius})


def noise(img, rng, severity) -> Edit:
    sigma = {1: 4.0, 2: 10.0, 3: 22.0}[severity]
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
    return Edit(Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8)), {"sigma": sigma})


def sharpen(img, rng, severity) -> Edit:
    percent = {1: 80, 2: 160, 3: 300}[severity]
    return Edit(
        img.filter(ImageFilter.UnsharpMask(radius=2, percent=percent, threshold=2)),
        {"percent": percent},
    )


# ---------------------------------------------------------------- overlays

_WORDS = (
    "sale",
    "copyright",
    "holiday",
    "photo",
    "summer",
    "2024",
    "best",
    "view",
    "news",
    "free",
    "share",
    "like",
    "travel",
    "origin",
    "stock",
    "sample",
)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


def text(img, rng, severity) -> Edit:
    """Caption words at a random place; bigger and longer with severity."""
    height_fraction, n_words = {1: (0.05, 2), 2: (0.08, 3), 3: (0.14, 4)}[severity]
    size = max(8, round(img.height * height_fraction))
    words = " ".join(_pick(rng, _WORDS) for _ in range(n_words))
    out = img.copy()
    draw = ImageDraw.Draw(out)
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), words, font=font)
    x = int(rng.integers(max(1, img.width - (right - left))))
    y = int(rng.integers(max(1, img.height - (bottom - top))))
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw.text(
        (x, y),
        words,
        fill=color,
        font=font,
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0) if sum(color) > 380 else (255, 255, 255),
    )
    return Edit(out, {"text": words, "size": size, "xy": [x, y], "color": list(color)})


def text_bar(img, rng, severity) -> Edit:
    """An opaque band across the top or bottom with a caption, as news, meme and stock edits
    add; the band covers ``fraction`` of the height and hides the picture under it."""
    fraction, n_words = {1: (0.08, 2), 2: (0.15, 3), 3: (0.25, 4)}[severity]
    bar = max(4, round(img.height * fraction))
    place = _pick(rng, ("top", "bottom"))
    background = _pick(rng, ((0, 0, 0), (255, 255, 255), (200, 20, 30), (20, 60, 160)))
    ink = (0, 0, 0) if background == (255, 255, 255) else (255, 255, 255)
    words = " ".join(_pick(rng, _WORDS) for _ in range(n_words)).upper()
    out = img.copy()
    draw = ImageDraw.Draw(out)
    top = 0 if place == "top" else img.height - bar
    draw.rectangle((0, top, img.width - 1, top + bar - 1), fill=background)
    size = max(6, round(bar * 0.6))
    width = draw.textlength(words, font=_font(size))
    if width > 0.94 * img.width:  # shrink the caption to fit the band's width
        size = max(6, int(size * 0.94 * img.width / width))
    draw.text((img.width / 2, top + bar / 2), words, fill=ink, font=_font(size), anchor="mm")
    return Edit(
        out,
        {
            "fraction": fraction,
            "place": place,
            "bar": bar,
            "text": words,
            "size": size,
            "color": list(background),
        },
    )


def logo(img, rng, severity) -> Edit:
    """A semi-transparent badge (disc + initials) in a random corner, like a watermark."""
    fraction, opacity = {1: (0.1, 0.5), 2: (0.2, 0.7), 3: (0.35, 0.9)}[severity]
    side = max(8, round(min(img.size) * fraction))
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    badge = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    alpha = round(255 * opacity)
    draw.ellipse((0, 0, side - 1, side - 1), fill=(*color, alpha))
    font = _font(max(6, side // 3))
    draw.text((side / 2, side / 2), "DB", fill=(255, 255, 255, alpha), font=font, anchor="mm")
    corner = _pick(rng, ("top-left", "top-right", "bottom-left", "bottom-right"))
    margin = max(1, side // 8)
    x = margin if "left" in corner else img.width - side - margin
    y = margin if "top" in corner else img.height - side - margin
    out = img.convert("RGBA")
    out.alpha_composite(badge, (max(0, x), max(0, y)))
    return Edit(
        out.convert("RGB"),
        {"side": side, "opacity": opacity, "corner": corner, "color": list(color)},
    )


# ---------------------------------------------------------------- chains


#: edits a chain may combine (format changes other than its final JPEG are left out)
CHAINABLE = (
    "crop",
    "downscale",
    "aspect",
    "rotate",
    "hflip",
    "pad",
    "border",
    "brightness",
    "contrast",
    "gamma",
    "saturation",
    "blur",
    "noise",
    "sharpen",
    "text",
    "text_bar",
    "logo",
)


def chain(img, rng, severity) -> Edit:
    """Two (light) or three distinct edits in random order, then a JPEG save, as when a photo is
    edited, shared and re-shared."""
    n_steps = 2 if severity == 1 else 3
    names = [CHAINABLE[k] for k in rng.choice(len(CHAINABLE), size=n_steps, replace=False)]
    steps = []
    for name in names:
        edit = TRANSFORMS[name].apply(img, rng, severity)
        img = edit.image.convert("RGB")
        steps.append({"transform": name, **edit.params})
    quality = {1: 85, 2: 70, 3: 50}[severity]
    return Edit(img, {"steps": steps, "quality": quality}, "JPEG", {"quality": quality})


def _catalogue(*entries: tuple[Callable, bool]) -> dict[str, Transform]:
    out = {}
    for fn, graded in entries:
        doc = (fn.__doc__ or "").strip().splitlines()
        out[fn.__name__] = Transform(fn.__name__, fn, graded, doc[0] if doc else "")
    return out


TRANSFORMS: dict[str, Transform] = _catalogue(
    (png_resave, False),
    (jpeg, True),
    (webp, True),
    (gif, True),
    (downscale, True),
    (upscale, True),
    (crop, True),
    (aspect, True),
    (pad, True),
    (border, True),
    (rotate, True),
    (rotate90, True),
    (hflip, False),
    (vflip, False),
    (brightness, True),
    (contrast, True),
    (gamma, True),
    (saturation, True),
    (grayscale, False),
    (blur, True),
    (noise, True),
    (sharpen, True),
    (text, True),
    (text_bar, True),
    (logo, True),
    (chain, True),
)
#: "copy" is a byte-for-byte copy of the original file, handled by the builder
COPY = "copy"
ALL_TRANSFORMS = (COPY, *TRANSFORMS)
