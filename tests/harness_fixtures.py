"""A tiny labelled dataset built by ``dupbench.datasets`` from real photos, and helpers that run
``dupbench run`` in-process inside a temporary working directory."""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from dupbench.harness.record import (
    DatasetRecord,
    MethodRecord,
    RunRecord,
    SearchRecord,
    StageSummary,
    StageTiming,
)

#: photos that get edited copies, and one that stays alone (a distractor)
TINY_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
TINY_TRANSFORMS = ("jpeg", "downscale", "crop", "hflip", "brightness")


def build_tiny_dataset(root: Path, photos: dict) -> Path:
    """~19 images: 3 photos × 5 edits at severity 2 plus a distractor; 128 px at most."""
    from dupbench.datasets import SourcePhoto, SyntheticConfig, build_synthetic

    src = root / "sources"
    src.mkdir(parents=True)
    sources = []
    for name in TINY_PHOTOS:
        Image.fromarray(photos[name]).save(src / f"{name}.png")
        sources.append(SourcePhoto(name, str(src / f"{name}.png"), category="photo"))
    config = SyntheticConfig(
        transforms=TINY_TRANSFORMS,
        severities=(2,),
        chains=0,
        distractors=("rocket",),
        max_side=128,
        query_fraction=None,
        seed=7,
    )
    out = root / "tiny"
    build_synthetic(sources, out, config, name="tiny", progress=False)
    return out


@contextmanager
def working_dir(path: Path):
    saved = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(saved)


def tiny_overrides(dataset_dir: Path, *extra: str) -> list[str]:
    """Overrides that point a run at the tiny dataset, quietly."""
    return ["dataset=folder", f"dataset.name={dataset_dir}", "benchmark.progress=false", *extra]


def run_dirs(results: Path) -> list[Path]:
    """Run directories (with a run.json) below ``results``, oldest first."""
    return sorted((p.parent for p in results.rglob("run.json")), key=lambda p: str(p))


def a_record(**changes) -> RunRecord:
    """A complete run record; ``changes`` replace its fields."""
    timing = StageTiming(wall_s=1.5, cpu_s=1.25, peak_rss_mb=100.0, added_rss_mb=2.0, items=3)
    record = RunRecord(
        key="k" * 64,
        status="done",
        label="phash (threshold=4)",
        method=MethodRecord("phash", {"hash_size": 8}, "binary", 64),
        distance="hamming",
        threshold=4.0,
        sweep_to=16.0,
        k_values=[1, 5, 10],
        target_precision=0.99,
        dataset=DatasetRecord("default", "/data", "c" * 64, 3, 2, ["exact", "near"]),
        search=SearchRecord("brute", {}),
        encoded=3,
        skipped=0,
        candidates=2,
        stages={"encode": StageSummary(1.5, 1.25, 100.0, 2.0, None, 3, 2.0, [timing])},
        seeds={"python": 0, "numpy": 0},
        config={"method": {"name": "phash"}},
        overrides=["method=phash"],
        environment={"python": "3.11"},
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:01:00+00:00",
    )
    return dataclasses.replace(record, **changes)
