"""Ground-truth files in the formats people already have, read and written with validation.

- ``imagededup``: JSON ``{file: [duplicate files]}``, symmetric, every file a key (no levels).
- ``pairs``: CSV with a header; the first two columns are ids (``id_a,id_b``, DISC21's
  ``query_id,reference_id``...), an optional ``level`` column; an empty second id means "no match".
- ``qrels``: TREC qrels lines ``query 0 doc grade``; grade > 0 is relevant (3 exact, 2 near,
  1 similar when written by dupbench).
- ``groups``: CSV ``id,group``; every pair inside a group is a duplicate (no levels).

Readers return ``IdPairs`` (ids as in the file); ``read_truth`` maps them onto a corpus, which is
where ids missing from the corpus are caught. Each format's reader and writer are registered in
``FORMATS``, which the ``format=`` arguments and the CLI's choices read.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from dupbench.datasets.truth import LEVELS, GroundTruth, TruthError, _preview, group_pairs
from dupbench.files import atomic_writer, write_json, write_text
from dupbench.registry import Registry

#: TREC relevance grade written for each level, and read back
LEVEL_GRADES = {"exact": 3, "near": 2, "similar": 1}
GRADE_LEVELS = {grade: level for level, grade in LEVEL_GRADES.items()}
T = TypeVar("T")


@dataclass
class IdPairs:
    """Duplicate pairs as they appear in a file: parallel lists of ids and levels."""

    a: list[str] = field(default_factory=list)
    b: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)

    def add(self, x: str, y: str, level: str) -> None:
        self.a.append(x)
        self.b.append(y)
        self.levels.append(level)

    def check_no_self_pairs(self, path: Path) -> None:
        selfs = sorted({x for x, y in zip(self.a, self.b) if x == y})
        if selfs:
            raise TruthError(f"{path}: {len(selfs)} self pair(s), e.g. {_preview(selfs)}")

    def to_truth(self, ids: Sequence[str], source: str) -> GroundTruth:
        return GroundTruth.from_id_pairs(ids, self.a, self.b, self.levels, source=source)


def _utf8(reader: Callable[..., T]) -> Callable[..., T]:
    """Every format is UTF-8 text: a file that is not becomes a ``TruthError`` naming it."""

    @functools.wraps(reader)
    def read(path: str | Path, *args, **kwargs) -> T:
        try:
            return reader(path, *args, **kwargs)
        except UnicodeDecodeError as e:
            raise TruthError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    return read


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise TruthError(f"ground-truth file not found: {path}")
    return path


def _check_level(level: str, path: Path) -> str:
    if level not in LEVELS:
        raise TruthError(f"{path}: unknown level {level!r}; use one of {LEVELS}")
    return level


# ---------------------------------------------------------------- imagededup JSON


@_utf8
def read_imagededup_json(path: str | Path, level: str = "near", symmetric: bool = True) -> IdPairs:
    """Read ``{file: [dups]}``. Repeated keys, self listings and (with ``symmetric``) one-way
    listings are errors, because imagededup's own evaluation assumes a symmetric map."""
    path = _existing(path)
    _check_level(level, path)

    def no_repeated_keys(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            raise TruthError(f"{path}: key(s) listed more than once: {_preview(repeated)}")
        return dict(items)

    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_repeated_keys)
    except json.JSONDecodeError as e:
        raise TruthError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise TruthError(f"{path}: JSON nested too deeply to be a ground-truth map") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        raise TruthError(f"{path}: expected a JSON object mapping each file to a list of files")
    out = IdPairs()
    for key, dups in data.items():
        for dup in dups:
            out.add(key, dup, level)
    out.check_no_self_pairs(path)
    if symmetric:
        listed = set(zip(out.a, out.b))
        one_way = sorted(f"{x} -> {y}" for x, y in listed if (y, x) not in listed)
        if one_way:
            raise TruthError(
                f"{path}: asymmetric ground truth, {len(one_way)} listing(s) without the reverse: "
                f"{_preview(one_way)} (pass symmetric=False to accept one-way listings)"
            )
    return out


def write_imagededup_json(
    truth: GroundTruth, ids: Sequence[str], path: str | Path, levels: Sequence[str] | None = None
) -> Path:
    return write_json(path, truth.to_map(ids, levels), sort_keys=False)


# ---------------------------------------------------------------- pairs CSV


@_utf8
def read_pairs_csv(path: str | Path, level: str = "near") -> IdPairs:
    """Read a CSV of pairs; the first two columns are ids, ``level`` (if present) per pair."""
    path = _existing(path)
    _check_level(level, path)
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise TruthError(f"{path}: expected a header with at least two id columns")
        lower = [h.strip().lower() for h in header]
        level_col = lower.index("level") if "level" in lower else None
        out = IdPairs()
        for lineno, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise TruthError(f"{path}:{lineno}: expected two ids, got {row!r}")
            x, y = row[0].strip(), row[1].strip()
            if not y:  # a query without a match (DISC21 lists every query)
                continue
            if level_col is not None and level_col >= len(row):
                raise TruthError(
                    f"{path}:{lineno}: expected a level in column {level_col + 1} "
                    f"(as the header says), got {row!r}"
                )
            pair_level = (row[level_col].strip() if level_col is not None else "") or level
            out.add(x, y, _check_level(pair_level, path))
    out.check_no_self_pairs(path)
    return out


def format_pairs_csv(truth: GroundTruth, ids: Sequence[str]) -> str:
    """The pairs CSV text (also the canonical truth text that dataset checksums cover)."""
    truth.check_size(len(ids))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id_a", "id_b", "level"])
    for (i, j), level in zip(truth.pairs, truth.levels):
        writer.writerow([ids[i], ids[j], level])
    return buf.getvalue()


def write_pairs_csv(truth: GroundTruth, ids: Sequence[str], path: str | Path) -> Path:
    return write_text(path, format_pairs_csv(truth, ids), newline="")


# ---------------------------------------------------------------- TREC qrels


@_utf8
def read_qrels(path: str | Path, grade_levels: dict[int, str] | None = None) -> IdPairs:
    """Read ``query iteration doc grade`` lines; grades <= 0 are non-relevant and skipped.
    Grades map to levels through ``grade_levels`` (default 3 exact, 2 near, 1 similar; any other
    positive grade is near)."""
    path = _existing(path)
    grade_levels = GRADE_LEVELS if grade_levels is None else grade_levels
    out = IdPairs()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise TruthError(f"{path}:{lineno}: expected 'query iter doc grade', got {line!r}")
            try:
                grade = int(float(parts[3]))
            except (ValueError, OverflowError):  # "x", "nan", "inf"
                raise TruthError(
                    f"{path}:{lineno}: grade {parts[3]!r} is not a finite number"
                ) from None
            if grade > 0:
                out.add(parts[0], parts[2], _check_level(grade_levels.get(grade, "near"), path))
    out.check_no_self_pairs(path)
    return out


def write_qrels(truth: GroundTruth, ids: Sequence[str], path: str | Path) -> Path:
    """Both directions of every pair, so each image is a query with its duplicates relevant."""
    path = Path(path)
    truth.check_size(len(ids))
    rows = []
    for (i, j), level in zip(truth.pairs, truth.levels):
        rows.append((i, j, LEVEL_GRADES[level]))
        rows.append((j, i, LEVEL_GRADES[level]))
    rows.sort()
    with atomic_writer(path) as f:
        for q, d, grade in rows:
            f.write(f"{ids[q]} 0 {ids[d]} {grade}\n")
    return path


# ---------------------------------------------------------------- groups CSV


@_utf8
def read_groups_csv(path: str | Path, level: str = "near") -> IdPairs:
    """Read ``id,group`` rows; all pairs within a group become duplicates; empty group = none."""
    path = _existing(path)
    _check_level(level, path)
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if header[:2] != ["id", "group"]:
            raise TruthError(f"{path}: expected the header 'id,group', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise TruthError(f"{path}:{lineno}: expected 'id,group', got {row!r}")
            ident, group = row[0].strip(), row[1].strip()
            if ident in seen:
                raise TruthError(f"{path}:{lineno}: id {ident!r} is listed more than once")
            seen.add(ident)
            if group:
                groups.setdefault(group, []).append(ident)
    out = IdPairs()
    for x, y in group_pairs(groups.values()):
        out.add(x, y, level)
    return out


def write_groups_csv(
    truth: GroundTruth,
    ids: Sequence[str],
    path: str | Path,
    levels: Sequence[str] | None = ("exact", "near"),
) -> Path:
    """Write every id with its group; refuses truth that is not a union of cliques, since a
    groups file would then claim pairs that the truth does not have."""
    path = Path(path)
    if not truth.is_transitive(len(ids), levels):
        raise TruthError(
            "this ground truth is not transitive (some duplicates of duplicates are not "
            "duplicates), so it cannot be written as groups; use the pairs or qrels format"
        )
    labels = truth.components(len(ids), levels)
    sizes = np.bincount(labels)
    with atomic_writer(path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "group"])
        for ident, label in zip(ids, labels):
            writer.writerow([ident, f"g{label}" if sizes[label] > 1 else ""])
    return path


# ---------------------------------------------------------------- dispatch


@_utf8
def detect_format(path: str | Path) -> str:
    """Guess the format from the extension and, for CSV, the header."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "imagededup"
    if suffix in (".qrels", ".txt", ".trec"):
        return "qrels"
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig") as f:
            header = [h.strip().lower() for h in f.readline().split(",")]
        return "groups" if header[:2] == ["id", "group"] else "pairs"
    raise TruthError(
        f"{path}: cannot tell the format from the name; pass format= one of {', '.join(FORMATS)}"
    )


@dataclass(frozen=True)
class TruthFormat:
    """One ground-truth file format: ``read(path, **options) -> IdPairs`` and
    ``write(truth, ids, path, **options) -> Path``."""

    read: Callable[..., IdPairs]
    write: Callable[..., Path]


#: the formats by name; ``format=`` of the readers and writers, the CLI's choices
FORMATS: Registry[TruthFormat] = Registry("ground-truth format")
FORMATS.add("imagededup", TruthFormat(read_imagededup_json, write_imagededup_json))
FORMATS.add("pairs", TruthFormat(read_pairs_csv, write_pairs_csv))
FORMATS.add("qrels", TruthFormat(read_qrels, write_qrels))
FORMATS.add("groups", TruthFormat(read_groups_csv, write_groups_csv))


def read_id_pairs(path: str | Path, format: str | None = None, **options) -> IdPairs:
    """Read any supported ground-truth file into ``IdPairs`` (ids as written in the file)."""
    return FORMATS.get(format or detect_format(path)).read(path, **options)


def read_truth(
    path: str | Path, ids: Sequence[str], format: str | None = None, **options
) -> GroundTruth:
    """Read a ground-truth file and map it onto the corpus ``ids`` (unknown ids are an error)."""
    return read_id_pairs(path, format, **options).to_truth(ids, source=str(path))


def write_truth(
    truth: GroundTruth, ids: Sequence[str], path: str | Path, format: str | None = None, **options
) -> Path:
    """Write ground truth in ``format`` (default: guessed from the extension; .csv → pairs)."""
    if format is None:
        suffix = Path(path).suffix.lower()
        format = {".json": "imagededup", ".qrels": "qrels", ".txt": "qrels"}.get(suffix, "pairs")
    return FORMATS.get(format).write(truth, ids, path, **options)
