"""Hostile or damaged stored files are refused with a clear error before they cost memory or
lead dupbench out of a dataset folder (issue 9)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from harness_fixtures import a_record

from dupbench.datasets import DatasetError, GroundTruth, load_dataset, read_dataset_dir
from dupbench.datasets.dataset import Dataset
from dupbench.files import write_json
from dupbench.harness.store import StoredRun, StoredTruth
from dupbench.records import Candidates, DamagedFile

REPO = Path(__file__).resolve().parents[1]


def _dataset_folder(tmp_path: Path) -> Path:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (root / "images" / f"{name}.png").write_bytes(name.encode())
    table = pd.DataFrame({"id": list("abc"), "path": [f"images/{x}.png" for x in "abc"]})
    Dataset("d", root, table, GroundTruth([[0, 1]], "near")).save()
    return root


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "images/../../secret.png", "", "C:/Windows/win.ini"]
)
def test_manifest_paths_outside_the_folder_are_refused(tmp_path, path):
    root = _dataset_folder(tmp_path)
    manifest = root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("images/b.png", path))
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        read_dataset_dir(root, verify=False)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        load_dataset(str(root))


def test_manifest_paths_through_a_folder_link_out_are_refused(tmp_path):
    root = _dataset_folder(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.png").write_bytes(b"private")
    (root / "pics").symlink_to(outside, target_is_directory=True)
    manifest = root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("images/b.png", "pics/b.png"))
    with pytest.raises(DatasetError, match=r"pics/b.png"):
        read_dataset_dir(root, verify=False)
    assert len(read_dataset_dir(_dataset_folder(tmp_path / "clean"))) == 3  # a clean one loads


def test_a_dataset_with_images_outside_its_folder_is_not_saved(tmp_path):
    table = pd.DataFrame({"id": ["a"], "path": [str(tmp_path / "elsewhere.png")]})
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        Dataset("d", tmp_path / "d", table, GroundTruth.empty()).save()
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------- stored candidates


def _real_candidates(path: Path) -> Path:
    Candidates(
        np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([1, 2, 3], dtype=np.int32), "hamming"
    ).save(path)
    return path


def test_a_zero_byte_or_truncated_file_raises_damaged_file(tmp_path):
    empty = tmp_path / "candidates.npz"
    empty.touch()
    with pytest.raises(DamagedFile, match=f"{empty}: the file is empty"):
        Candidates.load(empty)
    good = _real_candidates(tmp_path / "good.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DamagedFile, match=r"cut.npz"):
        Candidates.load(cut)
    assert len(Candidates.load(good, n=4)) == 3


def test_pickles_wrong_dtypes_and_bad_metadata_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    objects = np.array([{"x": 1}, None], dtype=object)
    np.savez(path, i=objects, j=objects, score=objects, meta=np.array("{}"))
    with pytest.raises(DamagedFile, match="'i' is object"):
        Candidates.load(path)
    np.savez(
        path,
        i=np.zeros(2, int),
        j=np.zeros(2, int),
        score=np.zeros(2),
        meta=np.array(json.dumps({"metric": "rm -rf", "cross": False})),
    )
    with pytest.raises(DamagedFile, match="unknown metric"):
        Candidates.load(path)


def test_indices_and_counts_are_checked_against_the_corpus(tmp_path):
    path = _real_candidates(tmp_path / "c.npz")
    with pytest.raises(DamagedFile, match="outside the 3 images"):
        Candidates.load(path, n=3)
    many = tmp_path / "many.npz"
    Candidates(np.zeros(50, int), np.ones(50, int), np.zeros(50), "cosine").save(many)
    with pytest.raises(DamagedFile, match="more than 4 images can have"):
        Candidates.load(many, n=4)


_BOMB = r"""
import re, sys, time
from pathlib import Path
from dupbench.records import Candidates, DamagedFile
start = time.perf_counter()
try:
    Candidates.load(sys.argv[1], n=1000)
except DamagedFile as e:
    print("refused:", e)
# VmHWM is this program's own peak (kB); ru_maxrss would carry the forking parent's across exec
status = Path("/proc/self/status").read_text()
print(time.perf_counter() - start, re.search(r"VmHWM:\s+(\d+)", status).group(1))
"""


def _npz_claiming(path: Path, length: int) -> Path:
    """A candidates file whose ``i`` really holds ``length`` zeros (int64), compressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("i.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<i8", "fortran_order": False, "shape": (length,)}
            )
            block, left = bytes(8 << 20), length * 8
            while left:
                f.write(block[: min(left, len(block))])
                left -= min(left, len(block))
        for name, value in (
            ("j", np.ones(1, int)),
            ("score", np.zeros(1)),
            ("meta", np.array(json.dumps({"metric": "hamming", "cross": False}))),
        ):
            with zf.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, value)
    return path


def test_a_crafted_file_unpacking_to_800mb_is_refused_quickly_in_bounded_memory(tmp_path):
    bomb = _npz_claiming(tmp_path / "candidates.npz", 100_000_000)
    assert bomb.stat().st_size < 4 << 20
    proc = subprocess.run(
        [sys.executable, "-c", _BOMB, str(bomb)],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    refusal, figures = proc.stdout.strip().splitlines()
    seconds, peak_kb = figures.split()
    assert "more than" in refusal and str(bomb) in refusal
    assert float(seconds) < 2 and int(peak_kb) < 300_000  # the array alone would be 800 MB


def test_a_stored_run_checks_its_files_against_its_image_count(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    record = a_record()
    record = a_record(dataset=dataclasses.replace(record.dataset, images=3))
    write_json(run / "run.json", record.to_json())
    write_json(run / "metrics.json", {})
    _real_candidates(run / "candidates.npz")  # index 3 among 3 images
    StoredTruth(np.array([[0, 1]]), 3, {"transform": np.array(["jpeg"])}).save(run / "truth.npz")
    stored = StoredRun(run)
    with pytest.raises(DamagedFile, match="outside the 3 images"):
        stored.candidates()
    assert stored.truth().n == 3
    StoredTruth(np.array([[0, 7]]), 9, {}).save(run / "truth.npz")
    with pytest.raises(DamagedFile, match="do not fit"):
        stored.truth()
    start = time.perf_counter()
    (run / "truth.npz").write_bytes(b"")
    with pytest.raises(DamagedFile, match="empty"):
        stored.truth()
    assert time.perf_counter() - start < 1
