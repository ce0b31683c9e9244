"""benchmarks/calibrate_thresholds.py: the threshold at 99% pair precision, recorded and written
into the preset files."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest
from harness_fixtures import build_tiny_dataset

from dupbench.evaluation.curves import pr_curve
from dupbench.harness.store import find_runs
from dupbench.methods import presets as presets_module

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "calibrate_thresholds.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("calibrate_thresholds", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibrated(method: str, threshold, distance: str = "hamming") -> dict:
    return {
        "method": method,
        "metric": distance,
        "threshold": threshold,
        "target_precision": 0.99,
        "dataset": "default",
        "dataset_checksum": "ab" * 32,
        "date": "2026-12-01",
        "status": "ok",
    }


def test_write_puts_the_threshold_and_its_origin_into_flat_and_nested_presets(
    tmp_path, monkeypatch
):
    bench = load_benchmark()
    (tmp_path / "method").mkdir()
    for name in ("phash", "crop_resistant_regions", "cnn"):
        shutil.copy(presets_module.CONFIGS / "method" / f"{name}.yaml", tmp_path / "method")
    shutil.copytree(presets_module.CONFIGS / "search", tmp_path / "search")
    monkeypatch.setattr(bench, "CONFIGS", tmp_path)
    table = pd.DataFrame(
        [
            calibrated("phash", 4),
            calibrated("crop_resistant_regions", 12),
            calibrated("cnn", 0.81234, "cosine"),
            {**calibrated("dhash", None), "status": "failed: no run"},
        ]
    )
    table.loc[2, "threshold"] = bench.strictest_rounding(0.81234, "cosine")
    written = bench.write_presets(table)
    assert sorted(p.name for p in written) == [
        "cnn.yaml",
        "crop_resistant_regions.yaml",
        "phash.yaml",
    ]
    read = {p.stem: presets_module._read(p) for p in (tmp_path / "method").glob("*.yaml")}
    assert read["phash"].threshold == 4 and read["crop_resistant_regions"].threshold == 12
    assert read["cnn"].threshold == 0.8124  # rounded towards the stricter side
    assert read["crop_resistant_regions"].search[0] == "crop_resistant"  # the rest intact
    text = (tmp_path / "method" / "phash.yaml").read_text()
    assert "# 99% pair precision, default@abababababab 2026-12-01, benchmarks/calibrate" in text


@pytest.mark.slow
def test_calibration_reads_the_runs_threshold_at_the_target_precision(
    tmp_path, photos, monkeypatch
):
    """End to end on a tiny dataset: at the recorded threshold the run's pairs have precision
    ≥ 0.99, and no looser threshold of its curve keeps that precision with more recall."""
    monkeypatch.chdir(tmp_path)
    bench = load_benchmark()
    tiny = build_tiny_dataset(tmp_path / "data", photos)
    out = tmp_path / "thresholds.csv"
    bench.main(
        [
            "--methods",
            "phash,phash_dihedral",
            "--dataset",
            "folder",
            "--results-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            f"dataset.name={tiny}",
        ]
    )
    table = pd.read_csv(out).set_index("method")
    for name in ("phash", "phash_dihedral"):
        row = table.loc[name]
        assert row.status == "ok", row.status
        run = max(find_runs(tmp_path / "runs" / name), key=lambda r: r.record.finished)
        truth = run.truth()
        curve = pr_curve(run.candidates(), truth.pairs, truth.n)
        at = curve[curve.threshold == row.threshold].iloc[0]
        assert at.precision >= 0.99 and at.recall == pytest.approx(row.recall, abs=1e-4)
        looser = curve[(curve.threshold > row.threshold) & (curve.recall > at.recall)]
        assert (looser.precision < 0.99).all()
        assert row.dataset_checksum == run.record.dataset.checksum


def test_precision_and_recall_are_read_at_the_rounded_threshold():
    bench = load_benchmark()
    cosine = pd.DataFrame(
        {
            "threshold": [0.99, 0.97005, 0.95],
            "precision": [1.0, 0.995, 0.9],
            "recall": [0.1, 0.2, 0.3],
        }
    )
    rounded = bench.strictest_rounding(0.97005, "cosine")
    assert rounded == 0.9701  # stricter: the pairs at 0.97005 are left out
    assert bench.at_threshold(cosine, rounded, "cosine")["recall"] == 0.1
    assert bench.at_threshold(cosine, 0.999, "cosine") is None
    hamming = pd.DataFrame(
        {"threshold": [0, 2, 4], "precision": [1.0] * 3, "recall": [0.1, 0.2, 0.3]}
    )
    assert bench.at_threshold(hamming, 3, "hamming")["recall"] == 0.2
