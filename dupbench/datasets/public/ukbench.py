"""UKBench (Nistér & Stewénius 2006): 10,200 photos, 2,550 objects × 4 viewpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dupbench.datasets.download import Resource
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet
from dupbench.datasets.truth import DatasetError, GroundTruth

_NAME = re.compile(r"ukbench(\d{5})\.jpg$", re.IGNORECASE)


def parse(raw: Path, files: dict, **params) -> Parsed:
    """``full/ukbenchNNNNN.jpg``; images 4k..4k+3 show one object (thumbnails are ignored)."""
    found: dict[int, Path] = {}
    for path in sorted(raw.rglob("*")):
        match = _NAME.search(path.name)
        if match and path.is_file() and "thumb" not in path.as_posix().lower():
            found.setdefault(int(match.group(1)), path)
    if not found:
        raise DatasetError(f"no ukbenchNNNNN.jpg images under {raw}")
    numbers = sorted(found)
    groups: dict[int, list[int]] = {}
    for k, number in enumerate(numbers):
        groups.setdefault(number // 4, []).append(k)
    incomplete = sum(len(m) != 4 for m in groups.values())
    images = pd.DataFrame(
        {
            "id": [f"ukbench{n:05d}" for n in numbers],
            "path": [str(found[n]) for n in numbers],
            "category": [f"object{n // 4:04d}" for n in numbers],
        }
    )
    truth = GroundTruth.from_groups(groups.values(), "similar")
    return Parsed(images, truth, {"incomplete_groups": incomplete})


SPEC = PublicSet(
    name="ukbench",
    description="UKBench: 2,550 objects, each photographed 4 times from different viewpoints.",
    size="10,200 JPEG images (640x480), 1.5 GB zip",
    level="similar (same object, different photo); no near-duplicate edits",
    licence="research use; no explicit licence (University of Kentucky)",
    citation="D. Nistér and H. Stewénius. Scalable recognition with a vocabulary tree. CVPR 2006.",
    homepage="https://archive.org/details/ukbench",
    resources=lambda params: (
        Resource("ukbench.zip", ("https://archive.org/download/ukbench/ukbench.zip",)),
    ),
    parse=parse,
    extract_options=lambda params: {
        "keep": lambda name: name.lower().endswith(".jpg") and "thumb" not in name.lower()
    },
)
PUBLIC_SETS.add(SPEC.name, SPEC)
