"""plot_duplicates (imagededup-compatible, figure size honoured) and the contact sheet."""

from __future__ import annotations

import pytest
from PIL import Image

from dupbench.visualize import contact_sheet, plot_duplicates


@pytest.fixture()
def photo_dir(planted_dir):
    return planted_dir["dir"]


def test_plot_duplicates_honours_figsize_and_saves(photo_dir, tmp_path):
    dup_map = {"astronaut.png": [("astronaut_small.jpg", 2), ("corrupt.jpg", 5)],
               "astronaut_small.jpg": [("astronaut.png", 2)]}
    out = tmp_path / "plot.png"
    fig = plot_duplicates(photo_dir, dup_map, "astronaut.png", outfile=out, figsize=(6, 4))
    assert tuple(fig.get_size_inches()) == (6, 4)
    titles = [ax.get_title() for ax in fig.axes]
    assert "Original image: astronaut.png" in titles
    assert "astronaut_small.jpg (2)" in titles and "corrupt.jpg (5)" in titles
    assert any("unreadable" in t.get_text() for ax in fig.axes for t in ax.texts)
    with Image.open(out) as im:
        # saved with a tight box: no larger than the figure, and clearly wider than tall
        assert im.size[0] <= 6 * fig.dpi + 1 and im.size[0] > im.size[1]


def test_plot_duplicates_other_figsize_gives_other_image(photo_dir, tmp_path):
    dup_map = {"chelsea.png": ["chelsea_small.jpg"]}
    small, large = tmp_path / "s.png", tmp_path / "l.png"
    plot_duplicates(photo_dir, dup_map, "chelsea.png", outfile=small, figsize=(4, 4))
    plot_duplicates(photo_dir, dup_map, "chelsea.png", outfile=large, figsize=(12, 12))
    with Image.open(small) as a, Image.open(large) as b:
        assert b.size[0] > 2 * a.size[0]


@pytest.mark.parametrize("kwargs,message", [
    ({"filename": "nope.png"}, "not a key"),
    ({"filename": "motorcycle.jpg"}, "no duplicates"),
    ({"duplicate_map": [1, 2]}, "must be a dict"),
    ({"image_dir": "/no/such/dir"}, "does not exist"),
])
def test_plot_duplicates_rejects_bad_input(photo_dir, kwargs, message):
    args = {"image_dir": photo_dir, "duplicate_map": {"motorcycle.jpg": []},
            "filename": "motorcycle.jpg", "outfile": None, "show": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        plot_duplicates(**args)


def test_contact_sheet_shows_largest_groups_first(photo_dir, tmp_path):
    dup_map = {"astronaut.png": ["astronaut_small.jpg", "coffee.png"],
               "astronaut_small.jpg": ["astronaut.png"], "coffee.png": ["astronaut.png"],
               "chelsea.png": ["chelsea_small.jpg"], "chelsea_small.jpg": ["chelsea.png"],
               "motorcycle.jpg": []}
    out = tmp_path / "sheet.png"
    fig = contact_sheet(photo_dir, dup_map, outfile=out, thumb_size=1.0)
    row_titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert row_titles[0].startswith("group 1 (3 images)")
    assert row_titles[1].startswith("group 2 (2 images)")
    assert tuple(fig.get_size_inches()) == (3.0, 2.4)  # 3 columns, 2 rows of 1-inch thumbs
    assert out.stat().st_size > 1000
    fig = contact_sheet(photo_dir, [["coffee.png", "rocket.png", "chelsea.png"]], max_groups=1,
                        max_per_group=2, show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 2


def test_contact_sheet_needs_a_group(photo_dir):
    with pytest.raises(ValueError, match="no duplicate groups"):
        contact_sheet(photo_dir, {"a.png": []}, show=False)
