"""Look at what was found: one image with its duplicates (imagededup's ``plot_duplicates``, with
its figure size honoured) and a contact sheet of the largest duplicate groups.

Both return a matplotlib ``Figure`` and save it when given ``outfile``; images are read through
``dupbench.images`` and an unreadable one is drawn as a labelled blank, never an exception.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dupbench.duplicates import split_entry
from dupbench.text import plural

#: longest side of the thumbnails drawn (plots never need the full resolution)
THUMBNAIL = 512
#: title sizes (points): the image asked about, and each duplicate or thumbnail
TITLE_PT, THUMB_TITLE_PT = 11, 8
#: inches between two cells; the narrowest thumbnail drawn
GAP, MIN_THUMB = 0.15, 0.6


def _thumbnail(path: Path) -> np.ndarray | str:
    """RGB pixels of a reduced copy, or the reason the file could not be read."""
    from dupbench import images

    try:
        image = images.load(path, draft=(THUMBNAIL, THUMBNAIL))
    except images.ImageError as e:
        return str(e)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


_BREAKS = re.compile(r"[^_\s-]*[_\s-]*")


@functools.cache
def _font():
    from matplotlib import font_manager, ft2font

    return ft2font.FT2Font(font_manager.findfont(font_manager.FontProperties()))


def _text_width(text: str, fontsize: float) -> float:
    """Width of ``text`` in inches in matplotlib's default font (measured as Agg lays it out)."""
    font = _font()
    font.set_size(fontsize, 72)
    font.set_text(text)
    return font.get_width_height()[0] / 64 / 72


def _wrapped(title: str, width_in: float, fontsize: float) -> str:
    """``title`` broken into lines that fit ``width_in`` inches, after a space, "_" or "-"
    where it can (file names have no spaces); a piece wider than a line is cut."""
    lines = [""]
    for piece in _BREAKS.findall(title):
        while piece:
            if _text_width((lines[-1] + piece).strip(), fontsize) <= width_in:
                lines[-1] += piece
                break
            if lines[-1].strip():
                lines.append("")
                continue
            cut = next(
                k
                for k in range(len(piece), 0, -1)  # the longest start that fits
                if k == 1 or _text_width(piece[:k], fontsize) <= width_in
            )
            lines[-1], piece = piece[:cut], piece[cut:]
            lines.append("")
    return "\n".join(line.strip() for line in lines if line.strip()) or title


def _draw(ax, pixels: np.ndarray | str, title: str, fontsize: float) -> None:
    if isinstance(pixels, str):
        ax.text(
            0.5,
            0.5,
            _wrapped(f"unreadable: {pixels}", 1.5, fontsize),
            ha="center",
            va="center",
            fontsize=fontsize,
            transform=ax.transAxes,
        )
    else:
        ax.imshow(pixels)
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def _aspect(pixels: np.ndarray | str) -> float:
    """Height over width of a thumbnail; an unreadable file gets a 4:3 box for its message."""
    return 0.75 if isinstance(pixels, str) else pixels.shape[0] / pixels.shape[1]


def _title_height(title: str, fontsize: float) -> float:
    """Inches a title takes above its axes: its lines and matplotlib's 6 pt pad."""
    return ((title.count("\n") + 1) * fontsize * 1.25 + 6) / 72


def _fit(rows: list[list[tuple]], height: float) -> tuple[float, list, float]:
    """Scale rows of ``(pixels, title, cell width in inches, font size)`` to fit ``height``:
    each image box shaped like its image, so that no row is taller than its pictures need;
    cells shrink together (titles less, down to 7 pt, and wrap to their cell), but never
    under ``MIN_THUMB``. Returns the scale, the laid-out rows and the height they need."""

    def laid_out(scale):
        out = []
        for row in rows:
            cells = []
            for pixels, title, w, pt in row:
                size = max(7.0, pt * min(1.0, math.sqrt(scale)))
                cells.append((pixels, _wrapped(title, w * scale - GAP, size), w * scale, size))
            tallest = (
                max(_title_height(t, pt) + (w - GAP) * _aspect(px) for px, t, w, pt in cells)
                + GAP / 2
            )
            out.append((cells, tallest))
        return out, sum(h for _, h in out)

    scale = 1.0
    if laid_out(scale)[1] > height:  # bisection for the largest scale that fits
        low = min(1.0, (MIN_THUMB + GAP) / min(w for row in rows for _, _, w, _ in row))
        high = 1.0
        for _ in range(10):
            middle = (low + high) / 2
            low, high = (middle, high) if laid_out(middle)[1] <= height else (low, middle)
        scale = low
    return (scale, *laid_out(scale))


def _place(fig, rows_at: list, width: float, height: float) -> None:
    """Draw laid-out rows top down: the first (the original image) centred, the others from
    the left of the grid, each image top-aligned under its title."""
    grid = max(sum(w for _, _, w, _ in cells) for cells, _ in rows_at[1:] or rows_at)
    top = height
    for k, (cells, tallest) in enumerate(rows_at):
        left = (width - (sum(w for _, _, w, _ in cells) if k == 0 else grid)) / 2
        for pixels, title, w, pt in cells:
            box_w = w - GAP
            box_h = box_w * _aspect(pixels)
            bottom = top - _title_height(title, pt) - box_h
            ax = fig.add_axes((left / width, bottom / height, box_w / width, box_h / height))
            _draw(ax, pixels, title, pt)
            left += w
        top -= tallest


def _new_figure(figsize, show: bool):
    """A pyplot figure when it is to be shown, else a standalone one (no global state kept)."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _finish(fig, outfile, show: bool):
    if outfile is not None:
        fig.savefig(outfile, bbox_inches="tight")
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig


def _score_text(score) -> str:
    return f"{score:.3f}" if isinstance(score, float | np.floating) else str(score)


def plot_duplicates(
    image_dir: str | os.PathLike,
    duplicate_map: dict,
    filename: str,
    outfile: str | os.PathLike | None = None,
    figsize: tuple[float, float] = (10, 14),
    ncols: int = 4,
    show: bool | None = None,
):
    """Draw ``filename`` (top, centred) and its duplicates from ``duplicate_map`` below it.

    Same arguments as imagededup's ``plot_duplicates``; map values may be names or
    ``(name, score)`` pairs (the score goes in the title). Unlike imagededup, ``figsize`` is the
    size of the figure actually drawn (saved cropped to what is drawn); only duplicates too
    many to fit at a readable size make it taller. ``ncols`` columns of duplicates, or more
    where they give larger thumbnails (many duplicates in a tall figure). ``show`` (default: when there is no
    ``outfile``) also displays it. Returns the figure.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"image directory {image_dir} does not exist")
    if not isinstance(duplicate_map, Mapping):
        # ValueError, as imagededup raises, so callers' handlers keep working
        raise ValueError("duplicate_map must be a dict {filename: [duplicates]}")
    if filename not in duplicate_map:
        raise ValueError(f"{filename!r} is not a key of the duplicate map")
    found = list(duplicate_map[filename])
    if not found:
        raise ValueError(f"{filename!r} has no duplicates in the map")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    width, height = figsize
    original = (_thumbnail(image_dir / filename), f"Original image: {filename}")
    duplicates = []
    for entry in found:
        name, score = split_entry(entry)
        title = name if score is None else f"{name} ({_score_text(score)})"
        duplicates.append((_thumbnail(image_dir / name), title))

    def layout(columns: int):
        cell = width / columns
        rows = [[(*original, min(width, 2 * width / ncols), TITLE_PT)]]
        rows += [
            [(*d, cell, THUMB_TITLE_PT) for d in duplicates[k : k + columns]]
            for k in range(0, len(duplicates), columns)
        ]
        scale, rows_at, needed = _fit(rows, height)
        return cell * scale, rows_at, needed

    # ncols columns, or more when that many rows would shrink the thumbnails (the widest wins)
    widest = max(ncols, min(len(duplicates), int(width / (MIN_THUMB + GAP))))
    _, rows_at, needed = max(
        (layout(c) for c in range(ncols, widest + 1)), key=lambda fitted: fitted[0]
    )
    show = outfile is None if show is None else show
    fig = _new_figure((width, max(height, needed)), show)
    _place(fig, rows_at, width, max(height, needed))
    return _finish(fig, outfile, show)


def contact_sheet(
    image_dir: str | os.PathLike,
    duplicates: dict | list[list[str]],
    outfile: str | os.PathLike | None = None,
    max_groups: int = 10,
    max_per_group: int = 8,
    thumb_size: float = 1.6,
    show: bool | None = None,
):
    """The ``max_groups`` largest duplicate groups, one row each (at most ``max_per_group``
    thumbnails of ``thumb_size`` inches; a row title gives the group's full size).

    ``duplicates`` is a duplicate map (groups are its connected components, as
    ``dupbench.api.duplicate_groups`` forms them) or a list of groups. Returns the figure.
    """
    from dupbench.api import duplicate_groups

    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"image directory {image_dir} does not exist")
    groups = (
        duplicate_groups(duplicates)
        if isinstance(duplicates, Mapping)
        else [list(g) for g in duplicates]
    )
    groups = sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), min(g)))
    if not groups:
        raise ValueError("no duplicate groups to draw")
    shown = groups[:max_groups]
    cols = min(max_per_group, max(len(g) for g in shown))
    show = outfile is None if show is None else show
    fig = _new_figure((thumb_size * cols, thumb_size * len(shown) + 0.4), show)
    axes = np.atleast_2d(fig.subplots(len(shown), cols, squeeze=False))
    for r, group in enumerate(shown):
        for c in range(cols):
            ax = axes[r, c]
            if c < len(group):
                _draw(
                    ax,
                    _thumbnail(image_dir / group[c]),
                    _wrapped(group[c], thumb_size, THUMB_TITLE_PT - 1),
                    THUMB_TITLE_PT - 1,
                )
            else:
                ax.axis("off")
        # the group's caption replaces its first image's title (two titles would overlap)
        axes[r, 0].set_title("")
        axes[r, 0].set_title(
            _wrapped(
                f"group {r + 1} ({len(group)} images): {group[0]}", thumb_size, THUMB_TITLE_PT - 1
            ),
            fontsize=THUMB_TITLE_PT - 1,
            loc="left",
            fontweight="bold",
        )
    count = plural(len(groups), "duplicate group")
    fig.suptitle(
        count if len(shown) == len(groups) else f"{len(shown)} largest of {count}",
        fontsize=TITLE_PT,
    )
    fig.set_layout_engine("constrained")  # room for the suptitle and every title
    return _finish(fig, outfile, show)
