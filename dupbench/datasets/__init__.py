"""Labelled duplicate datasets: types and file formats, the seeded synthetic builder, the
embedded default benchmark and adapters for public sets."""

from __future__ import annotations

from dupbench.datasets.catalog import available, describe, load_dataset
from dupbench.datasets.dataset import (
    ChecksumError,
    Dataset,
    from_folder,
    is_dataset_dir,
    read_dataset_dir,
)
from dupbench.datasets.default import build_default, default_dataset
from dupbench.datasets.formats import read_truth, write_truth
from dupbench.datasets.synthetic import (
    SourcePhoto,
    SyntheticConfig,
    build_synthetic,
    photos_from_folder,
)
from dupbench.datasets.transforms import ALL_TRANSFORMS
from dupbench.datasets.truth import LEVELS, DatasetError, GroundTruth, TruthError

__all__ = [
    "ALL_TRANSFORMS",
    "LEVELS",
    "ChecksumError",
    "Dataset",
    "DatasetError",
    "GroundTruth",
    "SourcePhoto",
    "SyntheticConfig",
    "TruthError",
    "available",
    "build_default",
    "build_synthetic",
    "default_dataset",
    "describe",
    "from_folder",
    "is_dataset_dir",
    "load_dataset",
    "photos_from_folder",
    "read_dataset_dir",
    "read_truth",
    "write_truth",
]
