"""Names → datasets: the embedded default, public sets, and dataset folders on disk."""

from __future__ import annotations

from pathlib import Path

from dupbench.datasets.dataset import Dataset, is_dataset_dir, read_dataset_dir
from dupbench.datasets.truth import DatasetError

DEFAULT = "default"


def available() -> list[str]:
    """Every dataset name ``load_dataset`` accepts (besides paths)."""
    from dupbench.datasets.public import PUBLIC_SETS

    return [DEFAULT, *PUBLIC_SETS]


def describe(name: str) -> dict:
    """Size, ground-truth level, licence and citation of a named dataset."""
    from dupbench.datasets.default import INFO
    from dupbench.datasets.public import PUBLIC_SETS

    if name == DEFAULT:
        return {
            "name": DEFAULT,
            "size": "~460 images, built locally in < 1 min",
            "level": "exact + near (+ similar: motorcycle stereo pair)",
            **INFO,
        }
    if name in PUBLIC_SETS:
        return PUBLIC_SETS.get(name).describe()
    raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(available())}")


def load_dataset(name_or_path: str | Path = DEFAULT, **params) -> Dataset:
    """Load ``"default"`` (built on first use), a public set by name (downloaded on first use),
    or a dataset folder written by dupbench (manifest.csv + truth.csv).

    Parameters go to the loader: ``default_dataset`` (cache, rebuild, workers, progress,
    verify), ``load_public`` (root, download_missing, resources, progress, rebuild and the set's
    own options) or ``read_dataset_dir`` (verify).
    """
    from dupbench.datasets.default import default_dataset
    from dupbench.datasets.public import PUBLIC_SETS, load_public

    key = str(name_or_path)
    if key == DEFAULT:
        return default_dataset(**params)
    if key in PUBLIC_SETS:
        return load_public(PUBLIC_SETS.get(key), **params)
    path = Path(name_or_path).expanduser()
    if is_dataset_dir(path):
        return read_dataset_dir(path, **params)
    if path.exists():
        raise DatasetError(
            f"{path} is not a dataset folder (no manifest.csv/truth.csv); for a "
            "plain folder of images with a truth file use datasets.from_folder"
        )
    raise DatasetError(
        f"unknown dataset {key!r}: not one of {', '.join(available())} and not an existing folder"
    )
