"""The ``Dataset`` type and its on-disk form: a folder with a manifest, the truth and an info file.

```
<root>/manifest.csv   id, path (relative to root), original, transform, severity, category,
                      split, params (JSON), sha256 (of the file's bytes, when known)
<root>/truth.csv      the pairs CSV of ``formats`` (id_a, id_b, level)
<root>/info.json      description, level, licence, citation, source, build config, checksum
```

The checksum is a sha256 over the canonical manifest and truth text, with paths relative to
the root, so identical builds give identical checksums wherever they live.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from dupbench.datasets.formats import format_pairs_csv, read_pairs_csv
from dupbench.datasets.truth import DatasetError, GroundTruth, _preview, check_unique_ids
from dupbench.files import write_json, write_text

#: every manifest column, in file order; ``Dataset.images`` has these plus the absolute ``path``
COLUMNS = (
    "id",
    "path",
    "original",
    "transform",
    "severity",
    "category",
    "split",
    "params",
    "sha256",
)
SPLITS = ("query", "reference")
MANIFEST, TRUTH, INFO = "manifest.csv", "truth.csv", "info.json"


class ChecksumError(DatasetError):
    """Files on disk that are missing or differ from the manifest."""


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (``hashlib`` algorithm name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _cell(value) -> str:
    """Canonical text of a manifest cell: None/NaN → "", integral floats without ".0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Dataset:
    """Images (one row each, in index order) plus ground truth over their indices.

    ``images`` columns: id (unique str), path (absolute str), original (id of the source photo or
    None), transform, severity, category, split ("query" | "reference" | None), params (JSON
    text of the edit's parameters), sha256 (of the file, or None).
    """

    name: str
    root: Path
    images: pd.DataFrame
    truth: GroundTruth
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        images = self.images.reset_index(drop=True).copy()
        if "id" not in images or "path" not in images:
            raise DatasetError("images need at least the columns 'id' and 'path'")
        for column in COLUMNS:
            if column not in images:
                images[column] = None
        images = images.astype(object).where(images.notna(), None)
        images["id"] = images["id"].astype(str)
        images["severity"] = pd.Series([_number(v) for v in images["severity"]], dtype=object)
        check_unique_ids(list(images["id"]), where=f"dataset {self.name!r}")
        images["path"] = [str(self._absolute(p)) for p in images["path"]]
        bad_split = sorted({s for s in images["split"] if s is not None and s not in SPLITS})
        if bad_split:
            raise DatasetError(f"unknown split value(s) {_preview(bad_split)}; use {SPLITS}")
        self.images = images[list(COLUMNS)]
        self.truth.check_size(len(self.images))

    def _absolute(self, path) -> Path:
        p = Path(str(path))
        return p if p.is_absolute() else self.root / p

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.truth.counts().items() if v)
        return f"Dataset({self.name!r}, {len(self)} images, pairs: {counts or 'none'})"

    @property
    def ids(self) -> list[str]:
        return list(self.images["id"])

    @property
    def paths(self) -> list[str]:
        return list(self.images["path"])

    # ------------------------------------------------------------ truth views

    def truth_pairs(self, levels: Iterable[str] = ("exact", "near")) -> np.ndarray:
        """(m, 2) int64 truth pairs at the given levels; "similar" pairs only when asked."""
        levels = (levels,) if isinstance(levels, str) else tuple(levels)
        selected = self.truth.select(levels)
        if len(self.truth) and not len(selected):
            warnings.warn(
                f"dataset {self.name!r} has no {'/'.join(levels)} pairs; its truth is "
                f"{self.truth.counts()} (pass levels= to choose)",
                stacklevel=2,
            )
        return selected.pairs

    def pair_labels(
        self,
        column: str = "transform",
        levels: Iterable[str] = ("exact", "near"),
        mixed: str = "mixed",
    ) -> np.ndarray:
        """A label per row of ``truth_pairs(levels)``, taken from the edited image of the pair.

        A pair (original, edit) takes the edit's value; a pair of two edits takes their common
        value, or ``mixed`` when they differ; a pair with no edited side takes the first's value.
        """
        if column not in self.images:
            raise KeyError(f"no column {column!r}; columns are {list(self.images.columns)}")
        pairs = self.truth.select(levels).pairs
        values = self.images[column].to_numpy(dtype=object)
        edited = self.images["original"].notna().to_numpy() & (
            self.images["original"].to_numpy(dtype=object) != self.images["id"].to_numpy()
        )
        out = np.empty(len(pairs), dtype=object)
        for k, (i, j) in enumerate(pairs):
            if edited[i] and edited[j]:
                out[k] = values[i] if values[i] == values[j] else mixed
            elif edited[j]:
                out[k] = values[j]
            else:
                out[k] = values[i]
        return out

    def query_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the query and of the reference images (for leakage / cross checks)."""
        split = self.images["split"].to_numpy(dtype=object)
        query = np.flatnonzero(split == "query")
        reference = np.flatnonzero(split == "reference")
        if not len(query) or not len(reference):
            raise DatasetError(f"dataset {self.name!r} has no query/reference split")
        return query, reference

    def cross_pairs(self, levels: Iterable[str] = ("exact", "near")) -> np.ndarray:
        """Truth pairs with one image in each split, as (query index, reference index) rows."""
        self.query_reference()  # raises when there is no split
        pairs = self.truth.select(levels).pairs
        split = self.images["split"].to_numpy(dtype=object)
        a, b = split[pairs[:, 0]], split[pairs[:, 1]]
        cross = ((a == "query") & (b == "reference")) | ((a == "reference") & (b == "query"))
        pairs = pairs[cross]
        swap = split[pairs[:, 0]] != "query"
        pairs[swap] = pairs[swap][:, ::-1]
        return pairs

    # ------------------------------------------------------------ integrity

    def relative_paths(self) -> list[str]:
        out = []
        for p in self.paths:
            path = Path(p)
            try:
                out.append(path.relative_to(self.root).as_posix())
            except ValueError:
                out.append(path.as_posix())
        return out

    def manifest_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        table = self.images.assign(path=self.relative_paths())
        for row in table.itertuples(index=False):
            writer.writerow([_cell(v) for v in row])
        return buf.getvalue()

    def truth_text(self) -> str:
        return format_pairs_csv(self.truth, self.ids)

    def checksum(self) -> str:
        """sha256 over the canonical manifest and truth: equal for identical builds."""
        digest = hashlib.sha256(self.manifest_text().encode())
        digest.update(b"\0")
        digest.update(self.truth_text().encode())
        return digest.hexdigest()

    def verify(self, content: bool = True) -> list[str]:
        """Problems with the files on disk: missing files, and (``content``) sha256 mismatches."""
        problems = []
        for ident, path, expected in self.images[["id", "path", "sha256"]].itertuples(index=False):
            if not Path(path).is_file():
                problems.append(f"{ident}: file missing ({path})")
            elif content and expected and file_digest(path) != expected:
                problems.append(f"{ident}: sha256 mismatch ({path})")
        return problems

    def summary(self) -> dict:
        """Counts for ``dupbench datasets info``."""
        imgs = self.images
        return {
            "name": self.name,
            "root": str(self.root),
            "images": len(self),
            "originals": int((imgs["original"] == imgs["id"]).sum()),
            "pairs": self.truth.counts(),
            "transforms": {str(k): int(v) for k, v in imgs["transform"].value_counts().items()},
            "splits": {str(k): int(v) for k, v in imgs["split"].value_counts().items()},
            "categories": {str(k): int(v) for k, v in imgs["category"].value_counts().items()},
            "checksum": self.checksum(),
        }

    # ------------------------------------------------------------ persistence

    def save(self) -> Path:
        """Write manifest, truth and info (with the checksum) into ``root``.

        Each file is replaced atomically (temporary file, then rename), info.json last: after a
        crash every file is whole, and a manifest or truth newer than the recorded checksum
        makes ``read_dataset_dir`` raise ``DatasetError`` rather than load a mixed dataset.
        """
        outside = [
            p
            for p in self.relative_paths()
            if PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts
        ]
        if outside:  # a manifest that read_dataset_dir would refuse
            raise DatasetError(
                f"{len(outside)} image(s) lie outside the dataset folder "
                f"{self.root}, e.g. {_preview(outside, 2)}; copy them in first"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(self.root / MANIFEST, self.manifest_text())
        write_text(self.root / TRUTH, self.truth_text())
        info = {**self.info, "name": self.name, "checksum": self.checksum()}
        write_json(self.root / INFO, info)
        return self.root


def is_dataset_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / MANIFEST).is_file() and (path / TRUTH).is_file()


def read_dataset_dir(root: str | Path, verify: bool | str = True) -> Dataset:
    """Load a dataset folder; ``verify`` True checks every file's sha256, "exists" only presence.

    Raises ``ChecksumError`` listing missing or changed files, and ``DatasetError`` when the
    stored checksum does not match the manifest and truth (someone edited them) or the manifest
    names files outside ``root`` (absolute paths, ``..``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no dataset folder at {root}")
    for name in (MANIFEST, TRUTH):
        if not (root / name).is_file():
            raise DatasetError(f"{root} is not a dataset folder: {name} is missing")
    table = pd.read_csv(root / MANIFEST, dtype=str, keep_default_na=False)
    missing = [c for c in ("id", "path") if c not in table]
    if missing:
        raise DatasetError(f"{root / MANIFEST}: missing column(s) {missing}")
    check_confined(root, table["path"], root / MANIFEST)
    table = table.replace("", None)
    info = json.loads((root / INFO).read_text()) if (root / INFO).is_file() else {}
    ids = list(table["id"])
    check_unique_ids(ids, where=str(root / MANIFEST))
    truth = read_pairs_csv(root / TRUTH).to_truth(ids, source=str(root / TRUTH))
    dataset = Dataset(info.get("name", root.name), root, table, truth, info)
    stored = info.get("checksum")
    if stored and stored != dataset.checksum():
        raise DatasetError(
            f"{root}: manifest/truth checksum {dataset.checksum()[:12]} does not match the "
            f"recorded {stored[:12]}; the files were changed after the build"
        )
    if verify:
        problems = dataset.verify(content=verify is True)
        if problems:
            raise ChecksumError(
                f"{root}: {len(problems)} file problem(s): {_preview(problems)}; "
                "rebuild or re-download the dataset"
            )
    return dataset


def check_confined(root: Path, paths: Iterable[str], source: Path) -> None:
    """Refuse manifest paths that are empty, absolute, or lead out of ``root`` (``..``, or a
    folder link): a dataset folder must never make dupbench read, digest or move other files.
    Folders are resolved once each, so this stays cheap for a million images."""
    base, parents, bad = root.resolve(), {}, []
    for text in paths:
        rel = PurePosixPath(str(text).replace("\\", "/"))
        lexical = (
            not str(text)
            or rel.is_absolute()
            or ".." in rel.parts
            or (rel.parts and ":" in rel.parts[0])
        )
        if not lexical:
            parent = rel.parent
            if parent not in parents:
                real = (base / parent).resolve()
                parents[parent] = real == base or base in real.parents
            lexical = not parents[parent]
        if lexical:
            bad.append(text)
    if bad:
        raise DatasetError(
            f"{source}: {len(bad)} path(s) outside the dataset folder "
            f"{root}: {_preview(bad)}; refusing to read it"
        )


def _number(value):
    """Severity as int where integral (CSV text and pandas floats both come back as 2, not 2.0)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def from_folder(
    folder: str | Path,
    truth_file: str | Path | None = None,
    *,
    name: str | None = None,
    format: str | None = None,
    recursive: bool = True,
    **read_options,
) -> Dataset:
    """A dataset from any folder of images plus a truth file whose ids are paths relative to
    the folder (file names for a flat folder, as imagededup writes them)."""
    from dupbench import images as image_io
    from dupbench.datasets.formats import read_id_pairs

    folder = Path(folder)
    files = image_io.list_files(folder, recursive=recursive)
    ids = [p.relative_to(folder).as_posix() for p in files]
    if truth_file is None:
        truth = GroundTruth.empty()
    else:
        id_pairs = read_id_pairs(truth_file, format, **read_options)
        known = set(ids)
        missing = sorted({x for x in (*id_pairs.a, *id_pairs.b) if x not in known})
        if missing:
            raise DatasetError(
                f"{truth_file} names {len(missing)} file(s) not found in {folder}: "
                f"{_preview(missing)}"
            )
        truth = id_pairs.to_truth(ids, source=str(truth_file))
    table = pd.DataFrame({"id": ids, "path": [str(p) for p in files]})
    return Dataset(
        name or folder.name,
        folder,
        table,
        truth,
        {"source": str(folder), "truth_file": str(truth_file) if truth_file else None},
    )
