"""plot_duplicates (imagededup-compatible, figure size honoured) and the contact sheet."""

from __future__ import annotations

import pytest
from PIL import Image

from dupbench.visualize import contact_sheet, plot_duplicates


@pytest.fixture()
def photo_dir(planted_dir):
    return planted_dir["dir"]


def _flat(text: str) -> str:
    """A title without its line breaks (titles wrap to the width of their cell)."""
    return "".join(text.split())


def _boxes(fig, what):
    fig.draw_without_rendering()
    return [what(ax).get_window_extent() for ax in fig.axes]


def _overlapping(boxes) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[i + 1 :], i + 1)
        if a.overlaps(b)
    ]


def test_plot_duplicates_honours_figsize_and_saves(photo_dir, tmp_path):
    dup_map = {
        "astronaut.png": [("astronaut_small.jpg", 2), ("corrupt.jpg", 5)],
        "astronaut_small.jpg": [("astronaut.png", 2)],
    }
    out = tmp_path / "plot.png"
    fig = plot_duplicates(photo_dir, dup_map, "astronaut.png", outfile=out, figsize=(6, 4))
    assert tuple(fig.get_size_inches()) == (6, 4)
    titles = [_flat(ax.get_title()) for ax in fig.axes]
    assert _flat("Original image: astronaut.png") in titles
    assert "astronaut_small.jpg(2)" in titles and "corrupt.jpg(5)" in titles
    assert any("unreadable" in t.get_text() for ax in fig.axes for t in ax.texts)
    with Image.open(out) as im:
        # saved with a tight box: no larger than the figure (plus the box's 0.1 inch pad), and
        # its height used (the original above two duplicates is taller than wide, so the height
        # is what limits it)
        assert im.size[0] <= 6.2 * fig.dpi + 1 and im.size[1] <= 4.2 * fig.dpi + 1
        assert im.size[1] > 0.85 * 4 * fig.dpi


def test_plot_duplicates_other_figsize_gives_other_image(photo_dir, tmp_path):
    dup_map = {"chelsea.png": ["chelsea_small.jpg"]}
    small, large = tmp_path / "s.png", tmp_path / "l.png"
    plot_duplicates(photo_dir, dup_map, "chelsea.png", outfile=small, figsize=(4, 4))
    plot_duplicates(photo_dir, dup_map, "chelsea.png", outfile=large, figsize=(12, 12))
    with Image.open(small) as a, Image.open(large) as b:
        assert b.size[0] > 2 * a.size[0]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"filename": "nope.png"}, "not a key"),
        ({"filename": "motorcycle.jpg"}, "no duplicates"),
        ({"duplicate_map": [1, 2]}, "must be a dict"),
        ({"image_dir": "/no/such/dir"}, "does not exist"),
    ],
)
def test_plot_duplicates_rejects_bad_input(photo_dir, kwargs, message):
    args = {
        "image_dir": photo_dir,
        "duplicate_map": {"motorcycle.jpg": []},
        "filename": "motorcycle.jpg",
        "outfile": None,
        "show": False,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        plot_duplicates(**args)


def test_contact_sheet_shows_largest_groups_first(photo_dir, tmp_path):
    dup_map = {
        "astronaut.png": ["astronaut_small.jpg", "coffee.png"],
        "astronaut_small.jpg": ["astronaut.png"],
        "coffee.png": ["astronaut.png"],
        "chelsea.png": ["chelsea_small.jpg"],
        "chelsea_small.jpg": ["chelsea.png"],
        "motorcycle.jpg": [],
    }
    out = tmp_path / "sheet.png"
    fig = contact_sheet(photo_dir, dup_map, outfile=out, thumb_size=1.0)
    row_titles = [_flat(ax.get_title(loc="left")) for ax in fig.axes if ax.get_title(loc="left")]
    assert row_titles[0].startswith(_flat("group 1 (3 images)"))
    assert row_titles[1].startswith(_flat("group 2 (2 images)"))
    # the caption replaces the first image's centred title: the two never overlap
    assert not any(ax.get_title() for ax in fig.axes if ax.get_title(loc="left"))
    assert tuple(fig.get_size_inches()) == (3.0, 2.4)  # 3 columns, 2 rows of 1-inch thumbs
    assert out.stat().st_size > 1000
    fig = contact_sheet(
        photo_dir,
        [["coffee.png", "rocket.png", "chelsea.png"]],
        max_groups=1,
        max_per_group=2,
        show=False,
    )
    assert len([ax for ax in fig.axes if ax.images]) == 2


def test_contact_sheet_needs_a_group(photo_dir):
    with pytest.raises(ValueError, match="no duplicate groups"):
        contact_sheet(photo_dir, {"a.png": []}, show=False)


def test_plot_duplicates_leaves_no_gap_and_readable_titles(photo_dir):
    """imagededup's default 10 × 14 inches with three duplicates: the row of duplicates sits
    right under the original (no half-page gap), titles are at least 7 pt and overlap nothing."""
    dup_map = {"astronaut.png": ["astronaut_small.jpg", "chelsea.png", "coffee_small.jpg"]}
    fig = plot_duplicates(photo_dir, dup_map, "astronaut.png", show=False)
    assert tuple(fig.get_size_inches()) == (10, 14)
    images = _boxes(fig, lambda ax: ax)
    titles = _boxes(fig, lambda ax: ax.title)
    assert all(ax.title.get_fontsize() >= 7 for ax in fig.axes)
    assert not _overlapping(images) and not _overlapping(titles)
    original = images[0]
    highest_title = max(t.y1 for t in titles[1:])
    assert 0 <= original.y0 - highest_title < 0.5 * fig.dpi  # under half an inch between rows


@pytest.mark.parametrize("figsize", [(10, 14), (4, 3)])
def test_plot_duplicates_with_many_duplicates_shrinks_to_fit(photo_dir, figsize):
    """40 duplicates fit imagededup's default size by shrinking; in a 4 × 3 inch figure they
    cannot at a readable size, so the figure grows taller rather than overlap."""
    names = [
        "astronaut_small.jpg",
        "chelsea.png",
        "chelsea_small.jpg",
        "coffee.png",
        "coffee_small.jpg",
        "rocket.png",
        "rocket_small.jpg",
        "motorcycle.jpg",
    ]
    dup_map = {"astronaut.png": [(n, k) for k in range(5) for n in names]}
    fig = plot_duplicates(photo_dir, dup_map, "astronaut.png", figsize=figsize, show=False)
    width, height = fig.get_size_inches()
    assert width == figsize[0] and (height == figsize[1]) == (figsize == (10, 14))
    images = _boxes(fig, lambda ax: ax)
    titles = _boxes(fig, lambda ax: ax.title)
    assert len(images) == 41
    assert not _overlapping(images) and not _overlapping(titles)
    assert all(ax.title.get_fontsize() >= 7 for ax in fig.axes)
    assert all(b.width >= 0.59 * fig.dpi for b in images[1:])
    assert min(b.y0 for b in images) >= 0 and max(t.y1 for t in titles) <= height * fig.dpi
    assert min(t.x0 for t in titles) >= 0 and max(t.x1 for t in titles) <= width * fig.dpi
