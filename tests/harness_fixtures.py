"""A tiny labelled dataset built by ``dupbench.datasets`` from real photos, and helpers that run
``dupbench run`` in-process inside a temporary working directory."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

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
