"""Look at what was found: one image with its duplicates (imagededup's ``plot_duplicates``, with
its figure size honoured) and a contact sheet of the largest duplicate groups.

Both return a matplotlib ``Figure`` and save it when given ``outfile``; images are read through
``dupbench.images`` and an unreadable one is drawn as a labelled blank, never an exception.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dupbench.duplicates import split_entry

#: longest side of the thumbnails drawn (plots never need the full resolution)
THUMBNAIL = 512


def _thumbnail(path: Path) -> np.ndarray | str:
    """RGB pixels of a reduced copy, or the reason the file could not be read."""
    from dupbench import images

    try:
        image = images.load(path, draft=(THUMBNAIL, THUMBNAIL))
    except images.ImageError as e:
        return str(e)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


def _draw(ax, path: Path, title: str, fontsize: float) -> None:
    pixels = _thumbnail(path)
    if isinstance(pixels, str):
        ax.text(0.5, 0.5, f"unreadable:\n{pixels}", ha="center", va="center", wrap=True,
                fontsize=fontsize, transform=ax.transAxes)
    else:
        ax.imshow(pixels)
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


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
    size of the figure actually drawn and saved. ``show`` (default: when there is no
    ``outfile``) also displays it. Returns the figure.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"image directory {image_dir} does not exist")
    if not isinstance(duplicate_map, Mapping):
        # ValueError, as imagededup raises, so callers' handlers keep working
        raise ValueError("duplicate_map must be a dict {filename: [duplicates]}")  # noqa: TRY004
    if filename not in duplicate_map:
        raise ValueError(f"{filename!r} is not a key of the duplicate map")
    found = list(duplicate_map[filename])
    if not found:
        raise ValueError(f"{filename!r} has no duplicates in the map")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    show = outfile is None if show is None else show
    fig = _new_figure(figsize, show)
    rows = 1 + math.ceil(len(found) / ncols)
    grid = fig.add_gridspec(rows, 2 * ncols)
    top = fig.add_subplot(grid[0, max(0, ncols - 2): ncols + 2])
    _draw(top, image_dir / filename, f"Original image: {filename}", 9)
    for k, entry in enumerate(found):
        name, score = split_entry(entry)
        row, col = 1 + k // ncols, 2 * (k % ncols)
        title = name if score is None else f"{name} ({_score_text(score)})"
        _draw(fig.add_subplot(grid[row, col: col + 2]), image_dir / name, title, 6)
    fig.tight_layout()
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
    groups = duplicate_groups(duplicates) if isinstance(duplicates, Mapping) else [
        list(g) for g in duplicates]
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
                _draw(ax, image_dir / group[c], group[c], 6)
            else:
                ax.axis("off")
        axes[r, 0].set_title(f"group {r + 1} ({len(group)} images): {group[0]}", fontsize=7,
                             loc="left")
    fig.suptitle(f"{len(shown)} largest of {len(groups)} duplicate groups", fontsize=9)
    fig.tight_layout()
    return _finish(fig, outfile, show)
