"""INRIA Holidays (Jégou et al. 2008): 1,491 holiday photos in 500 scene groups."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dupbench.datasets.download import Resource
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet, find_files
from dupbench.datasets.truth import DatasetError, GroundTruth


def parse(raw: Path, files: dict, **params) -> Parsed:
    """``jpg/NNNNNN.jpg``: number // 100 is the scene; the number ending in 00 is its query."""
    paths = [p for p in find_files(raw, "*.jpg") if p.stem.isdigit()]
    if not paths:
        raise DatasetError(f"no Holidays images (NNNNNN.jpg) under {raw}")
    paths.sort(key=lambda p: int(p.stem))
    numbers = [int(p.stem) for p in paths]
    groups: dict[int, list[int]] = {}
    for k, n in enumerate(numbers):
        groups.setdefault(n // 100, []).append(k)
    images = pd.DataFrame(
        {
            "id": [p.stem for p in paths],
            "path": [str(p) for p in paths],
            "category": [f"scene{n // 100}" for n in numbers],
            "split": ["query" if n % 100 == 0 else "reference" for n in numbers],
        }
    )
    return Parsed(images, GroundTruth.from_groups(groups.values(), "similar"))


_HOSTS = (
    "ftp://ftp.inrialpes.fr/pub/lear/douze/data/",
    "http://pascal.inrialpes.fr/data/holidays/",
)

SPEC = PublicSet(
    name="holidays",
    description="INRIA Holidays: personal holiday photos; each scene shot several times "
    "(viewpoint, lighting, rotation changes). The first image of a scene is its query.",
    size="1,491 JPEG images in 500 groups, ~1.1 GB",
    level="similar (same scene, different photo)",
    licence="INRIA: free for research",
    citation="H. Jégou, M. Douze, C. Schmid. Hamming embedding and weak geometric consistency for "
    "large scale image search. ECCV 2008.",
    homepage="https://thoth.inrialpes.fr/~jegou/data.php.html#holidays",
    resources=lambda params: tuple(
        Resource(f"jpg{k}.tar.gz", tuple(h + f"jpg{k}.tar.gz" for h in _HOSTS)) for k in (1, 2)
    ),
    parse=parse,
)
PUBLIC_SETS.add(SPEC.name, SPEC)
