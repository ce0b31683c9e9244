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

from dupbench.datasets.cache import build_lock, cache_dir, claim_dir
from dupbench.datasets.dataset import Dataset, is_dataset_dir, read_dataset_dir
from dupbench.datasets.download import NotAnArchiveError, Resource, download, extract_once
from dupbench.datasets.truth import DatasetError, GroundTruth
from dupbench.registry import Registry

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
    #: parameters that are secrets (passwords): used, but never written to info.json's stamp
    secret_params: tuple[str, ...] = ()

    def stamp(self, params: dict) -> str:
        """The build parameters as recorded in info.json, secrets left out: a load with the same
        stamp reuses the saved dataset, so a secret neither lands on disk nor forces a rebuild."""
        public = {k: v for k, v in params.items() if k not in self.secret_params}
        return json.dumps(public, sort_keys=True, default=str)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "size": self.size,
            "level": self.level,
            "licence": self.licence,
            "citation": self.citation,
            "homepage": self.homepage,
        }


#: public sets by name: each module of this package registers its ``PublicSet`` with
#: ``PUBLIC_SETS.add(spec.name, spec)``, so a new set is one new file
PUBLIC_SETS: Registry[PublicSet] = Registry("dataset", packages=("dupbench.datasets.public",))


def archive_stem(filename: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def load_public(
    spec: PublicSet,
    *,
    root: str | Path | None = None,
    download_missing: bool = True,
    resources: tuple[Resource, ...] | None = None,
    progress: bool = True,
    rebuild: bool = False,
    **params,
) -> Dataset:
    """Fetch (if needed), extract (once, atomically) and parse a public set into a Dataset.

    ``root`` defaults to ``<cache>/<name>``; ``resources`` replaces the published files (mirrors,
    local copies, test fixtures). Each archive is extracted into ``raw/<archive name>/``.
    An explicit ``root`` must be new, empty or an earlier dupbench build (``RefusedOutput``).
    """
    own_place = root is None
    root = cache_dir() / spec.name if root is None else Path(root)
    stamp = spec.stamp(params)
    saved = None if rebuild else _saved(root, stamp)
    if saved is not None:
        return saved
    with build_lock(root):  # a concurrent load of the same set downloads and parses it once
        saved = None if rebuild else _saved(root, stamp)
        if saved is not None:
            return saved
        # writes only into a folder of its own: a user's --out folder is never written over
        claim_dir(root, f"public:{spec.name}", owned=own_place)
        return _build(spec, root, stamp, download_missing, resources, progress, params)


def _saved(root: Path, stamp: str) -> Dataset | None:
    """The dataset saved in ``root`` by a build with the same parameters, if whole."""
    if not is_dataset_dir(root):
        return None
    try:
        dataset = read_dataset_dir(root, verify="exists")
    except DatasetError:  # a half-written or damaged save: build it again
        return None
    return dataset if dataset.info.get("params") == stamp else None


def _build(
    spec: PublicSet,
    root: Path,
    stamp: str,
    download_missing: bool,
    resources: tuple[Resource, ...] | None,
    progress: bool,
    params: dict,
) -> Dataset:
    files, urls = {}, {}
    for resource in resources if resources is not None else spec.resources(params):
        local = root / "downloads" / resource.filename
        if not local.exists() and not download_missing:
            raise DatasetError(
                f"{spec.name}: {resource.filename} is not in {local.parent}; "
                f"download it from {resource.urls[0]} or allow downloading"
            )
        files[resource.filename] = download(resource, root / "downloads", progress=progress)
        urls[resource.filename] = resource.urls[0] if resource.urls else "its publisher"
    raw = root / "raw"
    options = spec.extract_options(params)
    for filename, path in files.items():
        if filename.lower().endswith(ARCHIVE_SUFFIXES):
            try:
                extract_once([path], raw / archive_stem(filename), **options)
            except NotAnArchiveError:
                path.unlink(missing_ok=True)
                raise DatasetError(
                    f"{spec.name}: the downloaded {filename} is not a zip or tar archive (an "
                    "HTML error page or a truncated download?); it was deleted so the next run "
                    f"fetches it again. If this repeats, download it by hand from "
                    f"{urls[filename]} into {path.parent}"
                ) from None
    parsed = spec.parse(raw, files, progress=progress, **params)
    info = {**spec.describe(), **parsed.info, "params": stamp}
    dataset = Dataset(spec.name, root, parsed.images, parsed.truth, info)
    dataset.save()
    return dataset


def find_files(raw: Path, pattern: str) -> list[Path]:
    """Files under ``raw`` matching a glob (case-insensitive suffix), sorted by relative path."""
    return sorted(
        (p for p in raw.rglob("*") if p.is_file() and p.match(pattern)),
        key=lambda p: p.relative_to(raw).as_posix(),
    )
