"""The seeded synthetic builder: catalogue, determinism, levels, persistence and verification."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dupbench import images
from dupbench.datasets import (
    ChecksumError,
    DatasetError,
    GroundTruth,
    SourcePhoto,
    SyntheticConfig,
    build_synthetic,
    from_folder,
    load_dataset,
    read_dataset_dir,
)
from dupbench.datasets import synthetic as synthetic_module
from dupbench.datasets.transforms import SEVERITIES, TRANSFORMS, encode

SMALL = SyntheticConfig(
    transforms=("copy", "png_resave", "jpeg", "crop", "grayscale", "text"),
    chains=1,
    max_side=96,
    seed=7,
)


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    """Real photos (scikit-image) in a folder, including a two-view scene (stereo pair)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("sources")
    left, right, _ = data.stereo_motorcycle()
    for name, array in {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "moto_left": left,
        "moto_right": right,
    }.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    return folder


def _sources(folder: Path) -> list[SourcePhoto]:
    scenes = {"moto_left": "motorcycle", "moto_right": "motorcycle"}
    return synthetic_module.photos_from_folder(folder, scenes=scenes)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_is_seeded_and_changes_the_image(name, photo_small):
    for severity in SEVERITIES:
        a = TRANSFORMS[name].apply(photo_small, np.random.default_rng(3), severity)
        b = TRANSFORMS[name].apply(photo_small, np.random.default_rng(3), severity)
        assert encode(a) == encode(b)
    if name != "png_resave":
        edited = np.asarray(images.load(encode(a)))
        same_shape = edited.shape == np.asarray(photo_small).shape
        assert not same_shape or not np.array_equal(edited, np.asarray(photo_small))


@pytest.fixture(scope="module")
def photo_small() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((120, 80))


def test_severity_grows_the_edit(photo_small):
    base = np.asarray(photo_small, dtype=float)
    errors = []
    for severity in SEVERITIES:
        edit = TRANSFORMS["noise"].apply(photo_small, np.random.default_rng(0), severity)
        errors.append(np.abs(np.asarray(edit.image, dtype=float) - base).mean())
    assert errors[0] < errors[1] < errors[2]


def test_build_is_byte_identical_across_runs_and_worker_counts(tmp_path, source_dir):
    sources = _sources(source_dir)
    a = build_synthetic(sources, tmp_path / "a", SMALL, workers=1, progress=False)
    b = build_synthetic(list(reversed(sources)), tmp_path / "b", SMALL, workers=2, progress=False)
    assert a.checksum() == b.checksum()
    for pa, pb in zip(a.paths, b.paths):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
    c = build_synthetic(
        sources, tmp_path / "c", SyntheticConfig(**{**SMALL.__dict__, "seed": 8}), progress=False
    )
    assert c.checksum() != a.checksum()


def test_levels_follow_pixels_groups_and_scenes(tmp_path, source_dir):
    ds = build_synthetic(_sources(source_dir), tmp_path / "d", SMALL, progress=False)
    ids = ds.ids
    level = {(ids[i], ids[j]): lv for (i, j), lv in zip(ds.truth.pairs, ds.truth.levels)}
    assert level[("astronaut", "astronaut__copy")] == "exact"
    assert level[("astronaut", "astronaut__png_resave")] == "exact"
    assert level[("astronaut", "astronaut__jpeg")] == "near"
    assert level[("moto_left", "moto_right")] == "similar"
    assert level[("moto_left__crop", "moto_right__jpeg")] == "similar"
    assert ("astronaut", "chelsea") not in level
    per_group = 1 + len(SMALL.transforms) + SMALL.chains
    assert len(ds) == 5 * per_group
    near = ds.truth_pairs()
    assert len(near) == 5 * per_group * (per_group - 1) // 2
    assert not np.isin("similar", ds.truth.select(["exact", "near"]).levels)


def test_distractors_have_no_copies_and_no_pairs(tmp_path, source_dir):
    config = SyntheticConfig(**{**SMALL.__dict__, "distractors": ("coffee",)})
    ds = build_synthetic(_sources(source_dir), tmp_path / "d", config, progress=False)
    k = ds.ids.index("coffee")
    assert (ds.images["original"] == "coffee").sum() == 1
    assert not (ds.truth.pairs == k).any()


def test_dataset_views(tmp_path, source_dir):
    ds = build_synthetic(_sources(source_dir), tmp_path / "d", SMALL, progress=False)
    labels = ds.pair_labels("transform")
    pairs = ds.truth_pairs()
    assert len(labels) == len(pairs)
    k = next(
        n
        for n, (i, j) in enumerate(pairs)
        if ds.ids[i] == "chelsea" and ds.ids[j] == "chelsea__crop"
    )
    assert labels[k] == "crop"
    query, reference = ds.query_reference()
    assert len(query) and len(reference) and not set(query) & set(reference)
    cross = ds.cross_pairs()
    assert set(cross[:, 0]) <= set(query) and set(cross[:, 1]) <= set(reference)
    only_near = type(ds)(ds.name, ds.root, ds.images, GroundTruth(ds.truth.pairs[:1], "near"))
    with pytest.warns(UserWarning, match="no similar pairs"):
        assert len(only_near.truth_pairs(["similar"])) == 0


def test_load_verifies_checksums_and_reports_mismatches(tmp_path, source_dir):
    ds = build_synthetic(_sources(source_dir), tmp_path / "d", SMALL, progress=False)
    again = load_dataset(tmp_path / "d")
    assert again.checksum() == ds.checksum() and again.ids == ds.ids
    victim = Path(ds.paths[3])
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumError, match=f"{ds.ids[3]}: sha256 mismatch"):
        read_dataset_dir(tmp_path / "d")
    Path(ds.paths[5]).unlink()
    with pytest.raises(ChecksumError, match="file missing"):
        read_dataset_dir(tmp_path / "d", verify="exists")
    manifest = tmp_path / "d" / "manifest.csv"
    manifest.write_text(manifest.read_text().replace('"{""quality"": ', '"{""quality"": 1', 1))
    with pytest.raises(DatasetError, match="changed after the build"):
        read_dataset_dir(tmp_path / "d", verify=False)


def test_interrupted_build_leaves_no_dataset(tmp_path, source_dir, monkeypatch):
    calls = {"n": 0}
    real = synthetic_module._build_source

    def dies_on_third(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(synthetic_module, "_build_source", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_synthetic(_sources(source_dir), tmp_path / "out", SMALL, progress=False)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_sources_and_config_are_reported(tmp_path, source_dir):
    folder = tmp_path / "src"
    shutil.copytree(source_dir, folder)
    (folder / "notes.png").write_text("not an image")
    ds = build_synthetic(folder, tmp_path / "d", SMALL, progress=False)
    assert [Path(p).name for p, _ in ds.info["skipped"]] == ["notes.png"]
    # 6 sources, 1 unreadable: the description counts source photos, not images minus sources
    assert ds.info["description"] == "synthetic near-duplicates of 5 source photos"
    shutil.copy(folder / "chelsea.png", folder / "chelsea_again.png")
    with pytest.raises(DatasetError, match="identical pixels"):
        build_synthetic(folder, tmp_path / "e", SMALL, progress=False)
    with pytest.raises(DatasetError, match="unknown transform"):
        SyntheticConfig(transforms=("jpeg", "sepia"))
    with pytest.raises(FileExistsError):
        build_synthetic(source_dir, tmp_path / "d", SMALL, progress=False)


def test_windows_of_one_photo_are_similar_views_and_severities_spread_per_transform(
    tmp_path, source_dir
):
    """Two disjoint windows of one photo: each original holds exactly its part of the file's
    pixels, and their groups are similar (not duplicates); all_severities may name transforms."""
    path = str(source_dir / "coffee.png")
    sources = [
        SourcePhoto("cup_left", path, scene="cup", window=(0.0, 0.0, 0.5, 1.0)),
        SourcePhoto("cup_right", path, scene="cup", window=(0.5, 0.0, 1.0, 1.0)),
        SourcePhoto("cat", str(source_dir / "chelsea.png")),
    ]
    config = SyntheticConfig(
        transforms=("jpeg", "crop"), all_severities=("crop",), chains=0, max_side=None, seed=3
    )
    ds = build_synthetic(sources, tmp_path / "w", config, progress=False)
    whole = np.asarray(images.load(path))
    width = whole.shape[1]
    left = np.asarray(images.load(ds.paths[ds.ids.index("cup_left")]))
    right = np.asarray(images.load(ds.paths[ds.ids.index("cup_right")]))
    assert np.array_equal(left, whole[:, : round(width / 2)])
    assert np.array_equal(right, whole[:, round(width / 2) :])
    assert sorted(i for i in ds.ids if i.startswith("cat")) == [
        "cat",
        "cat__crop-s1",
        "cat__crop-s2",
        "cat__crop-s3",
        "cat__jpeg",
    ]
    ids = ds.ids
    level = {(ids[i], ids[j]): lv for (i, j), lv in zip(ds.truth.pairs, ds.truth.levels)}
    assert level[("cup_left", "cup_right")] == "similar"
    assert level[("cup_left__crop-s3", "cup_right__jpeg")] == "similar"
    assert level[("cup_left", "cup_left__crop-s2")] == "near"
    assert ds.truth.counts()["similar"] == 5 * 5
    saved = read_dataset_dir(tmp_path / "w").info["sources"]
    recorded = {row["id"]: row["window"] for row in saved}
    assert recorded == {
        "cat": None,
        "cup_left": [0.0, 0.0, 0.5, 1.0],
        "cup_right": [0.5, 0.0, 1.0, 1.0],
    }
    with pytest.raises(DatasetError, match="window"):
        SourcePhoto("bad", path, window=(0.5, 0.0, 0.4, 1.0))
    with pytest.raises(DatasetError, match="all_severities"):
        SyntheticConfig(transforms=("jpeg",), all_severities=("crop",))


def test_plain_folder_with_truth_file(tmp_path, source_dir):
    truth = tmp_path / "truth.json"
    truth.write_text('{"moto_left.png": ["moto_right.png"], "moto_right.png": ["moto_left.png"]}')
    ds = from_folder(source_dir, truth)
    assert len(ds) == 5 and ds.truth.pairs.tolist() == [[3, 4]]
    truth.write_text('{"moto_left.png": ["gone.png"], "gone.png": ["moto_left.png"]}')
    with pytest.raises(DatasetError, match=r"not found in.*gone.png"):
        from_folder(source_dir, truth)


def test_save_replaces_each_file_atomically_and_writes_info_last(tmp_path, monkeypatch):
    import pandas as pd

    from dupbench.datasets import dataset as dataset_module

    table = pd.DataFrame({"id": ["a", "b", "c"], "path": ["a.png", "b.png", "c.png"]})
    dataset_module.Dataset("d", tmp_path, table, GroundTruth([[0, 1]], "near")).save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.json", "manifest.csv", "truth.csv"]
    real_write_text, written = dataset_module.write_text, []

    def record(path, text):
        written.append(Path(path).name)
        return real_write_text(path, text)

    def crash_on_info(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(dataset_module, "write_text", record)
    monkeypatch.setattr(dataset_module, "write_json", crash_on_info)  # info.json is JSON, last
    second = dataset_module.Dataset("d", tmp_path, table, GroundTruth([[1, 2]], "near"))
    with pytest.raises(OSError, match="disk full"):
        second.save()
    assert written == ["manifest.csv", "truth.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # the new truth is whole but the recorded checksum is the old one: refused, not mixed
    with pytest.raises(DatasetError, match="changed after the build"):
        read_dataset_dir(tmp_path, verify=False)
