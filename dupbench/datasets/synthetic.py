"""Build a near-duplicate benchmark from any set of photos with the seeded transform catalogue.

Every source photo becomes an *original* (stored as PNG, optionally shrunk to ``max_side``) with
edited copies, or an unrelated *distractor* with none. Ground truth:

- every pair inside one original's group (original + its copies) is a duplicate: ``exact`` when
  the two decode to identical pixels, ``near`` otherwise;
- sources declared to show the same scene (``SourcePhoto.scene``) make every cross pair between
  their groups ``similar`` (hard negatives for near-duplicate detection). A source may be a
  window of a bigger photo (``SourcePhoto.window``): disjoint windows of one photo are two views
  of one scene that share no pixel.

Randomness comes from a numpy ``Generator`` seeded from (seed, image id, purpose), so a file's
bytes depend only on the config, the seed, the source pixels and the library versions, never on
build order or worker count. The build happens in a temporary folder renamed into place at the
end, so an interrupted build never leaves a half dataset.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dupbench import images as image_io
from dupbench.cpus import usable_cores
from dupbench.datasets.cache import RefusedOutput, atomic_dir
from dupbench.datasets.dataset import Dataset
from dupbench.datasets.transforms import (
    ALL_TRANSFORMS,
    COPY,
    EXTENSIONS,
    SEVERITIES,
    TRANSFORMS,
    Edit,
    encode,
)
from dupbench.datasets.truth import (
    DatasetError,
    GroundTruth,
    _preview,
    check_unique_ids,
    group_pairs,
)
from dupbench.workers import parallel_map

#: bump when a change to the builder changes its output for the same config and seed
BUILDER_VERSION = 3  # 2: build folders carry the .dupbench-build marker; 3: windows, text_bar,
#                       coloured pads, all_severities per transform


@dataclass(frozen=True)
class SourcePhoto:
    """One input photo: a stable id, where to read it, and optional metadata.

    ``window`` (left, top, right, bottom as fractions of the width and height) keeps only that
    part of the file, so one large photo can give several views of a scene.
    """

    id: str
    path: str
    category: str | None = None
    scene: str | None = None  # photos sharing a scene are "similar" to each other
    window: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            left, top, right, bottom = self.window
            if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
                raise DatasetError(
                    f"source {self.id!r}: window {self.window} must be "
                    "(left, top, right, bottom) fractions with left < right and "
                    "top < bottom, all in [0, 1]"
                )


@dataclass(frozen=True)
class SyntheticConfig:
    """What to build. Same config + seed + sources → byte-identical files.

    transforms:    catalogue names ("copy" is a byte copy; chains are set with ``chains``)
    severities:    allowed levels (1 light, 2 medium, 3 strong)
    all_severities: one copy per level instead of one copy at a level drawn per image: True for
                   every graded transform, or a tuple of the transform names that get it
    chains:        number of chained-edit copies per original
    distractors:   how many sources (drawn with the seed) get no copies, or their ids
    max_side:      shrink sources whose longer side exceeds this (None: keep)
    query_fraction: share of images put in the "query" split (None: no split)
    """

    transforms: tuple[str, ...] = tuple(t for t in ALL_TRANSFORMS if t != "chain")
    severities: tuple[int, ...] = SEVERITIES
    all_severities: bool | tuple[str, ...] = False
    chains: int = 2
    distractors: int | tuple[str, ...] = 0
    max_side: int | None = 512
    query_fraction: float | None = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [t for t in self.transforms if t not in ALL_TRANSFORMS]
        if unknown:
            raise DatasetError(
                f"unknown transform(s) {_preview(unknown)}; choose from {', '.join(ALL_TRANSFORMS)}"
            )
        if not isinstance(self.all_severities, bool):
            spread = [t for t in self.all_severities if t not in self.transforms]
            if spread:
                raise DatasetError(
                    f"all_severities names transform(s) not in transforms: {_preview(spread)}"
                )
        if "chain" in self.transforms:
            raise DatasetError("set the number of chained edits with chains=, not in transforms")
        if not self.severities or set(self.severities) - set(SEVERITIES):
            raise DatasetError(f"severities must be a non-empty subset of {SEVERITIES}")
        if self.chains < 0:
            raise DatasetError("chains must be >= 0")
        if self.query_fraction is not None and not 0 <= self.query_fraction <= 1:
            raise DatasetError("query_fraction must be between 0 and 1")
        if self.max_side is not None and self.max_side < 16:
            raise DatasetError("max_side must be at least 16 pixels")


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (never on call order)."""
    digest = hashlib.sha256(json.dumps([seed, *map(str, keys)]).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """A file-name-safe id: path separators become ``__``, other odd characters ``_``."""
    return _UNSAFE.sub("_", text.replace("/", "__").replace("\\", "__")).strip("._") or "image"


def photos_from_folder(
    folder: str | Path,
    recursive: bool = True,
    scenes: dict[str, str] | None = None,
    categories: dict[str, str] | None = None,
) -> list[SourcePhoto]:
    """Every file in ``folder`` as a source (unreadable ones are skipped at build time).

    ids are relative paths without extension, made file-name safe; ``scenes``/``categories``
    map those ids (or the relative paths) to a scene or category name.
    """
    folder = Path(folder)
    out = []
    for path in image_io.list_files(folder, recursive=recursive):
        rel = path.relative_to(folder).as_posix()
        ident = safe_id(rel.rsplit(".", 1)[0])
        scene = (scenes or {}).get(ident, (scenes or {}).get(rel))
        category = (categories or {}).get(ident, (categories or {}).get(rel))
        out.append(SourcePhoto(ident, str(path), category, scene))
    return out


def _pixel_digest(data: bytes) -> str:
    """``images.pixel_digest`` (as the ``pixel_digest`` method computes it) of an encoded file:
    held in memory only, to label a copy exact or near, never stored, so its algorithm is free."""
    return image_io.pixel_digest(image_io.load(data)).hex()


def _copy_plan(source_id: str, config: SyntheticConfig) -> list[tuple[str, str, int | None]]:
    """(copy id, transform, severity) for each copy of one original."""
    plan: list[tuple[str, str, int | None]] = []
    names = [*config.transforms] + ["chain"] * config.chains
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        stem = f"{source_id}__{name}" + (str(counts[name]) if name == "chain" else "")
        graded = name != COPY and TRANSFORMS[name].graded
        if not graded:
            plan.append((stem, name, None))
        elif config.all_severities is True or (
            not isinstance(config.all_severities, bool) and name in config.all_severities
        ):
            plan.extend((f"{stem}-s{sev}", name, sev) for sev in config.severities)
        else:
            rng = rng_for(config.seed, stem, "severity")
            plan.append((stem, name, int(rng.choice(config.severities))))
    return plan


def _build_source(
    source: SourcePhoto, distractor: bool, config: SyntheticConfig, out_dir: str
) -> dict:
    """Worker: write one original and its copies; return their records (or a skip)."""
    try:
        img = image_io.load(source.path)
    except image_io.ImageError as e:
        return {"skipped": [source.path, str(e)]}
    if source.window is not None:
        left, top, right, bottom = source.window
        img = img.crop(
            (
                round(left * img.width),
                round(top * img.height),
                round(right * img.width),
                round(bottom * img.height),
            )
        )
    if config.max_side and max(img.size) > config.max_side:
        scale = config.max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    images_dir = Path(out_dir) / "images"
    records = []

    def write(ident: str, data: bytes, ext: str, **meta) -> None:
        rel = f"images/{ident}.{ext}"
        (images_dir / f"{ident}.{ext}").write_bytes(data)
        records.append(
            {
                "id": ident,
                "path": rel,
                "original": source.id,
                "category": source.category,
                "sha256": hashlib.sha256(data).hexdigest(),
                "pixels": _pixel_digest(data),
                **meta,
            }
        )

    original = encode(Edit(img, {}, "PNG"))
    write(source.id, original, "png", transform=None, severity=None, params=None)
    if not distractor:
        for ident, name, severity in _copy_plan(source.id, config):
            if name == COPY:
                write(ident, original, "png", transform=COPY, severity=None, params="{}")
                continue
            rng = rng_for(config.seed, ident, "edit")
            edit = TRANSFORMS[name].apply(img, rng, severity or 1)
            write(
                ident,
                encode(edit),
                EXTENSIONS[edit.format],
                transform=name,
                severity=severity,
                params=json.dumps(edit.params, sort_keys=True),
            )
    return {"records": records}


def _truth(records: list[dict], scene_of: dict[str, str | None]) -> GroundTruth:
    index = {r["id"]: k for k, r in enumerate(records)}
    groups: dict[str, list[int]] = {}
    for k, r in enumerate(records):
        groups.setdefault(r["original"], []).append(k)
    originals_by_pixels: dict[str, str] = {}
    for orig in groups:
        digest = records[index[orig]]["pixels"]
        if digest in originals_by_pixels:
            raise DatasetError(
                f"sources {originals_by_pixels[digest]!r} and {orig!r} have identical pixels; "
                "remove one (or give them one id) so the ground truth stays correct"
            )
        originals_by_pixels[digest] = orig
    pairs = group_pairs(groups.values())
    levels = ["exact" if records[i]["pixels"] == records[j]["pixels"] else "near" for i, j in pairs]
    by_scene: dict[str, list[str]] = {}
    for orig in groups:
        if scene := scene_of.get(orig):
            by_scene.setdefault(scene, []).append(orig)
    for origs in by_scene.values():
        for p, a in enumerate(origs):
            for b in origs[p + 1 :]:
                pairs.extend((i, j) for i in groups[a] for j in groups[b])
                levels.extend(["similar"] * (len(groups[a]) * len(groups[b])))
    if not pairs:
        return GroundTruth.empty()
    return GroundTruth(np.array(pairs, dtype=np.int64), np.array(levels, dtype=object))


def build_synthetic(
    sources: str | Path | Sequence[SourcePhoto],
    out: str | Path,
    config: SyntheticConfig | None = None,
    *,
    name: str | None = None,
    info: dict | None = None,
    workers: int | None = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Dataset:
    """Build the benchmark into the folder ``out`` (atomically) and return it.

    ``sources`` is a folder of photos or a list of ``SourcePhoto``. Unreadable sources are
    skipped and listed in ``info["skipped"]``. ``out`` must not overlap the sources, and with
    ``overwrite`` only a previous dupbench build is replaced (``RefusedOutput`` otherwise).
    ``workers`` as ``cpus.worker_count``; the files do not depend on it.
    """
    config = config or SyntheticConfig()
    out = Path(out)
    if isinstance(sources, (str, Path)):
        source_root = str(sources)
        sources = photos_from_folder(sources)
    else:
        source_root = None
        sources = list(sources)
    if not sources:
        raise DatasetError("no source photos to build from")
    check_unique_ids([s.id for s in sources], where="the source photos")
    bad = [s.id for s in sources if safe_id(s.id) != s.id]
    if bad:
        raise DatasetError(f"source ids must be file-name safe (see safe_id): {_preview(bad)}")
    sources = sorted(sources, key=lambda s: s.id)
    _check_apart(out, source_root, sources)
    distractors = _choose_distractors(sources, config)

    jobs = [(s, s.id in distractors, config) for s in sources]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        results = _run(jobs, str(tmp), workers, progress)
        skipped = [r["skipped"] for r in results if "skipped" in r]
        records = sorted(
            (rec for r in results for rec in r.get("records", [])), key=lambda rec: rec["id"]
        )
        if not records:
            raise DatasetError(
                f"none of the {len(sources)} sources could be read: {_preview(skipped)}"
            )
        for rec in records:
            rec["split"] = _split(config, rec["id"])
        truth = _truth(records, {s.id: s.scene for s in sources})
        meta = {
            "description": f"synthetic near-duplicates of {len(sources) - len(skipped)} source "
            "photos",
            "level": "exact+near (+similar where sources share a scene)",
            "source": source_root or "list of photos",
            "builder": {
                "version": BUILDER_VERSION,
                "config": asdict(config),
                "versions": _versions(),
            },
            "sources": [
                {
                    "id": s.id,
                    "file": Path(s.path).name,
                    "category": s.category,
                    "scene": s.scene,
                    "window": s.window,
                    "distractor": s.id in distractors,
                }
                for s in sources
            ],
            "skipped": skipped,
            **(info or {}),
        }
        dataset = Dataset(name or out.name, tmp, pd.DataFrame(records), truth, meta)
        dataset.save()
    return _relocated(dataset, out)


def _check_apart(out: Path, source_root: str | None, sources: list[SourcePhoto]) -> None:
    """Refuse an output folder that is, contains or lies inside the input: a rebuild would
    delete the photos, and a build inside the input would read its own output next time."""
    out = out.resolve()
    if source_root is not None:
        root = Path(source_root).resolve()
        if out == root or root in out.parents or out in root.parents:
            raise RefusedOutput(
                f"the output folder {out} overlaps the source folder {root}; "
                "write the benchmark outside the photos"
            )
    inside = [s.path for s in sources if out in Path(s.path).resolve().parents]
    if inside:
        raise RefusedOutput(
            f"{len(inside)} source photo(s) lie inside the output folder {out}, "
            f"e.g. {_preview(inside, 2)}; write the benchmark elsewhere"
        )


def _relocated(dataset: Dataset, root: Path) -> Dataset:
    images = dataset.images.assign(path=dataset.relative_paths())
    return Dataset(dataset.name, root, images, dataset.truth, dataset.info)


def _choose_distractors(sources: list[SourcePhoto], config: SyntheticConfig) -> set[str]:
    ids = [s.id for s in sources]
    if isinstance(config.distractors, int):
        if not 0 <= config.distractors < len(ids):
            raise DatasetError(
                f"distractors={config.distractors} leaves no original among {len(ids)} sources"
            )
        order = rng_for(config.seed, "distractors").permutation(len(ids))
        return {ids[k] for k in order[: config.distractors]}
    unknown = sorted(set(config.distractors) - set(ids))
    if unknown:
        raise DatasetError(f"distractor ids not among the sources: {_preview(unknown)}")
    return set(config.distractors)


def _split(config: SyntheticConfig, ident: str) -> str | None:
    if config.query_fraction is None:
        return None
    draw = rng_for(config.seed, ident, "split").random()
    return "query" if draw < config.query_fraction else "reference"


def _build_job(out_dir: str, job: tuple[SourcePhoto, bool, SyntheticConfig]) -> dict:
    return _build_source(*job, out_dir)


def _run(
    jobs: list[tuple[SourcePhoto, bool, SyntheticConfig]],
    out_dir: str,
    workers: int | None,
    progress: bool,
) -> list[dict]:
    return parallel_map(
        functools.partial(_build_job, out_dir),
        jobs,
        workers,
        desc="building",
        unit="photo",
        progress=progress,
    )


def _versions() -> dict[str, str]:
    import PIL

    from dupbench import __version__

    return {"dupbench": __version__, "Pillow": PIL.__version__, "numpy": np.__version__}


def default_workers() -> int:
    """Processes to build with: the usable cores, at most 4."""
    return max(1, min(4, usable_cores()))
