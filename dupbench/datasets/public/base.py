"""What a public-set adapter declares, and the one loader that fetches, extracts and parses it.

An adapter is a ``PublicSet``: descriptive metadata for ``docs/datasets.md`` and ``datasets
list``, the files to download (possibly depending on parameters), and ``parse``, which turns the
extracted files, laid out exactly as the publisher ships them, into an images table and ground
truth. The result is saved as a dataset folder in the cache, so later loads are instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dupbench.datasets.cache import cache_dir
from dupbench.datasets.dataset import Dataset, is_dataset_dir, read_dataset_dir
from dupbench.datasets.download import Resource, download, extract_once
from dupbench.datasets.truth import DatasetError, GroundTruth

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class Parsed:
    """What ``parse`` returns: one row per image (paths relative to the dataset root allowed)."""

    images: pd.DataFrame
    truth: GroundTruth
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PublicSet:
    name: str
    description: str
    size: str
    level: str
    licence: str
    citation: str
    homepage: str
    resources: Callable[[dict], tuple[Resource, ...]]
    parse: Callable[..., Parsed]  # parse(raw: Path, files: dict[str, Path], **params)
    extract_options: Callable[[dict], dict] = lambda params: {}

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "size": self.size,
                "level": self.level, "licence": self.licence, "citation": self.citation,
                "homepage": self.homepage}


def archive_stem(filename: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def load_public(spec: PublicSet, *, root: str | Path | None = None, download_missing: bool = True,
                resources: tuple[Resource, ...] | None = None, progress: bool = True,
                rebuild: bool = False, **params) -> Dataset:
    """Fetch (if needed), extract (once, atomically) and parse a public set into a Dataset.

    ``root`` defaults to ``<cache>/<name>``; ``resources`` replaces the published files (mirrors,
    local copies, test fixtures). Each archive is extracted into ``raw/<archive name>/``.
    """
    root = Path(root) if root is not None else cache_dir() / spec.name
    stamp = json.dumps(params, sort_keys=True, default=str)
    if is_dataset_dir(root) and not rebuild:
        dataset = read_dataset_dir(root, verify="exists")
        if dataset.info.get("params") == stamp:
            return dataset
    files = {}
    for resource in resources if resources is not None else spec.resources(params):
        local = root / "downloads" / resource.filename
        if not local.exists() and not download_missing:
            raise DatasetError(f"{spec.name}: {resource.filename} is not in {local.parent}; "
                               f"download it from {resource.urls[0]} or allow downloading")
        files[resource.filename] = download(resource, root / "downloads", progress=progress)
    raw = root / "raw"
    options = spec.extract_options(params)
    for filename, path in files.items():
        if filename.lower().endswith(ARCHIVE_SUFFIXES):
            extract_once([path], raw / archive_stem(filename), **options)
    parsed = spec.parse(raw, files, progress=progress, **params)
    info = {**spec.describe(), **parsed.info, "params": stamp}
    dataset = Dataset(spec.name, root, parsed.images, parsed.truth, info)
    dataset.save()
    return dataset


def group_pairs(groups: dict[object, list[int]]) -> list[tuple[int, int]]:
    """All unordered pairs of indices inside each group."""
    pairs = []
    for members in groups.values():
        for p, i in enumerate(members):
            pairs.extend((i, j) for j in members[p + 1:])
    return pairs


def truth_from_groups(groups: dict[object, list[int]], level: str) -> GroundTruth:
    pairs = group_pairs(groups)
    if not pairs:
        return GroundTruth.empty()
    return GroundTruth(pairs, [level] * len(pairs))


def find_files(raw: Path, pattern: str) -> list[Path]:
    """Files under ``raw`` matching a glob (case-insensitive suffix), sorted by relative path."""
    return sorted((p for p in raw.rglob("*") if p.is_file() and p.match(pattern)),
                  key=lambda p: p.relative_to(raw).as_posix())
