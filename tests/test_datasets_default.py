"""The embedded default builds offline, deterministically, and the CLI drives it."""

from __future__ import annotations

import argparse
import json
import time

import pytest

from dupbench.cli import datasets as datasets_cli
from dupbench.datasets import load_dataset
from dupbench.datasets.default import (
    DEFAULT_CONFIG,
    DEFAULT_SOURCES,
    DISTRACTORS,
    EVERY_SEVERITY,
    default_sources,
)
from dupbench.datasets.synthetic import _copy_plan


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dupbench")
    datasets_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_default_sources_ship_with_the_installed_packages():
    sources, missing = default_sources()
    assert not missing
    assert {"motorcycle_left", "china_left", "grace_hopper"} <= {s.id for s in sources}
    assert set(DISTRACTORS) <= {s.id for s in sources}


def test_hard_edits_come_at_every_severity_and_the_size_stays_small():
    plan = _copy_plan("x", DEFAULT_CONFIG)
    by_transform: dict[str, list] = {}
    for _, name, severity in plan:
        by_transform.setdefault(name, []).append(severity)
    for name in EVERY_SEVERITY:
        assert sorted(by_transform[name]) == [1, 2, 3], name
    assert {"crop", "pad", "rotate90", "hflip", "text", "text_bar", "logo"} <= set(by_transform)
    originals = len(DEFAULT_SOURCES) - len(DISTRACTORS)
    assert originals * (1 + len(plan)) + len(DISTRACTORS) <= 650  # encode time of a default run


def test_scene_windows_are_disjoint_views_of_photos_not_used_whole():
    """A window that overlapped another, or whose photo were also a source whole, would be a
    crop (a near duplicate) labelled as a hard negative."""
    windows: dict[str, list] = {}
    whole = set()
    for ident, _, name, _, scene, window in DEFAULT_SOURCES:
        if window is None:
            whole.add(name)
        else:
            assert scene is not None, ident
            windows.setdefault(name, []).append(window)
    assert len(windows) >= 2 and not whole & set(windows)
    for boxes in windows.values():
        assert len(boxes) >= 2
        for k, (l1, t1, r1, b1) in enumerate(boxes):
            for l2, t2, r2, b2 in boxes[k + 1 :]:
                assert min(r1, r2) <= max(l1, l2) or min(b1, b2) <= max(t1, t2)


@pytest.mark.slow
def test_default_builds_twice_to_the_same_checksum(tmp_path, monkeypatch):
    start = time.perf_counter()
    first = load_dataset("default", cache=tmp_path / "a", progress=False, workers=2)
    elapsed = time.perf_counter() - start
    second = load_dataset("default", cache=tmp_path / "b", progress=False, workers=1)
    assert first.checksum() == second.checksum()
    assert 600 <= len(first) <= 650 and elapsed < 120
    counts = first.truth.counts()
    assert counts["exact"] > 0 and counts["near"] > 10000 and counts["similar"] > 3 * 1000
    per_transform = first.images["transform"].value_counts()
    assert all(per_transform[name] == 48 for name in EVERY_SEVERITY)  # 16 originals × 3 levels
    assert first.info["builder"]["config"]["seed"] == second.info["builder"]["config"]["seed"]
    reloaded = load_dataset("default", cache=tmp_path / "a")  # second use: no rebuild
    assert reloaded.root == first.root and reloaded.checksum() == first.checksum()

    monkeypatch.setenv("DUPBENCH_CACHE", str(tmp_path / "a"))
    assert _cli(["datasets", "info", "default"]) == 0


def test_cli_list_build_info_export(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(data.chelsea()).save(src / "cat.png")
    Image.fromarray(data.coffee()).save(src / "cup.png")
    assert _cli(["datasets", "list", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names[0] == "default" and "cifar10" in names
    out = tmp_path / "bench"
    assert (
        _cli(
            [
                "datasets",
                "build",
                "--from",
                str(src),
                "--out",
                str(out),
                "--transforms",
                "jpeg,crop",
                "--chains",
                "0",
                "--max-side",
                "64",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "checksum" in capsys.readouterr().out
    assert _cli(["datasets", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 6 and info["pairs"]["near"] == 6
    assert _cli(["datasets", "export", str(out), str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["cat"] == ["cat__crop", "cat__jpeg"]
    from dupbench.cli import main

    assert main(["datasets", "info", str(tmp_path / "nowhere")]) == 1
    assert "not an existing folder" in capsys.readouterr().err
    # a plain folder of images with a truth file in another format: checked, then converted
    (tmp_path / "truth.json").write_text(
        json.dumps({"cat.png": ["cup.png"], "cup.png": ["cat.png"]})
    )
    assert (
        _cli(
            [
                "datasets",
                "export",
                str(src),
                str(tmp_path / "truth.csv"),
                "--truth",
                str(tmp_path / "truth.json"),
            ]
        )
        == 0
    )
    assert (tmp_path / "truth.csv").read_text().splitlines()[1:] == ["cat.png,cup.png,near"]
