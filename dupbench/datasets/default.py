"""The embedded default benchmark: real photos shipped inside installed packages, edited with the
transform catalogue, built offline on first use into the user cache.

Sources: scikit-image's bundled data images, scikit-learn's sample images and matplotlib's sample
data. Hard negatives ("similar"): the motorcycle stereo pair (two real photos of one scene) and,
since these packages ship no other multi-view scene, two disjoint windows each of the Hubble deep
field and of the China photo (same scene, light and texture, no shared pixel; the whole photos
are left out, so no window is a crop of another image in the set). Textures, documents, graphics
and scientific images are distractors with no copies. Sources that a package version does not
ship are left out and listed in ``info["missing_sources"]``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from dupbench.datasets.cache import build_lock, cache_dir, clean_partial
from dupbench.datasets.dataset import Dataset, file_digest, is_dataset_dir, read_dataset_dir
from dupbench.datasets.synthetic import (
    BUILDER_VERSION,
    SourcePhoto,
    SyntheticConfig,
    build_synthetic,
    default_workers,
)

_LEFT, _RIGHT = (0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)
_TOP_LEFT, _BOTTOM_RIGHT = (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)

#: (id, package, file, category, scene, window); the first group get copies, DISTRACTORS do not
DEFAULT_SOURCES = (
    ("astronaut", "skimage", "astronaut.png", "portrait", None, None),
    ("chelsea", "skimage", "chelsea.png", "animal", None, None),
    ("coffee", "skimage", "coffee.png", "object", None, None),
    ("rocket", "skimage", "rocket.jpg", "outdoor", None, None),
    ("motorcycle_left", "skimage", "motorcycle_left.png", "object", "motorcycle", None),
    ("motorcycle_right", "skimage", "motorcycle_right.png", "object", "motorcycle", None),
    ("camera", "skimage", "camera.png", "portrait", None, None),
    ("coins", "skimage", "coins.png", "object", None, None),
    ("hubble_top_left", "skimage", "hubble_deep_field.jpg", "astronomy", "hubble", _TOP_LEFT),
    (
        "hubble_bottom_right",
        "skimage",
        "hubble_deep_field.jpg",
        "astronomy",
        "hubble",
        _BOTTOM_RIGHT,
    ),
    ("immunohistochemistry", "skimage", "ihc.png", "microscopy", None, None),
    ("retina", "skimage", "retina.jpg", "medical", None, None),
    ("china_left", "sklearn", "china.jpg", "outdoor", "china", _LEFT),
    ("china_right", "sklearn", "china.jpg", "outdoor", "china", _RIGHT),
    ("flower", "sklearn", "flower.jpg", "outdoor", None, None),
    ("grace_hopper", "matplotlib", "grace_hopper.jpg", "portrait", None, None),
    # distractors: unrelated images that must not be matched to anything
    ("page", "skimage", "page.png", "document", None, None),
    ("brick", "skimage", "brick.png", "texture", None, None),
    ("moon", "skimage", "moon.png", "astronomy", None, None),
    ("cell", "skimage", "cell.png", "microscopy", None, None),
    ("clock_motion", "skimage", "clock_motion.png", "object", None, None),
    ("grass", "skimage", "grass.png", "texture", None, None),
    ("gravel", "skimage", "gravel.png", "texture", None, None),
    ("text", "skimage", "text.png", "document", None, None),
    ("horse", "skimage", "horse.png", "graphic", None, None),
    ("logo", "skimage", "logo.png", "graphic", None, None),
    ("color", "skimage", "color.png", "graphic", None, None),
    ("microaneurysms", "skimage", "microaneurysms.png", "medical", None, None),
    ("phantom", "skimage", "phantom.png", "graphic", None, None),
    ("matplotlib_logo", "matplotlib", "logo2.png", "graphic", None, None),
    ("present", "matplotlib", "Minduka_Present_Blue_Pack.png", "object", None, None),
)
DISTRACTORS = (
    "page",
    "brick",
    "moon",
    "cell",
    "clock_motion",
    "grass",
    "gravel",
    "text",
    "horse",
    "logo",
    "color",
    "microaneurysms",
    "phantom",
    "matplotlib_logo",
    "present",
)
#: one copy at a drawn severity each; upscale and gamma are left out (every method finds them,
#: like downscale and brightness/contrast)
DEFAULT_TRANSFORMS = (
    "copy",
    "png_resave",
    "jpeg",
    "webp",
    "gif",
    "downscale",
    "crop",
    "aspect",
    "pad",
    "border",
    "rotate",
    "rotate90",
    "hflip",
    "vflip",
    "brightness",
    "contrast",
    "saturation",
    "grayscale",
    "blur",
    "noise",
    "sharpen",
    "text",
    "text_bar",
    "logo",
)
#: the edits global fingerprints miss get one copy per severity, so the per-transform table has
#: 16 pairs at each level of each of them
EVERY_SEVERITY = ("crop", "pad", "rotate90", "text", "text_bar", "logo")
DEFAULT_CONFIG = SyntheticConfig(
    transforms=DEFAULT_TRANSFORMS,
    all_severities=EVERY_SEVERITY,
    distractors=DISTRACTORS,
    max_side=384,
    chains=2,
    query_fraction=0.2,
    seed=20240601,
)
INFO = {
    "description": "Embedded default: photos shipped in scikit-image, scikit-learn and matplotlib, "
    "each with 38 seeded edits (catalogue: encodings, geometry, tone, filters, "
    "overlays, chains; crops, pads, 90-degree rotations, captions, text bars and "
    "logos at every severity) plus unrelated distractors and same-scene hard "
    "negatives.",
    "licence": "scikit-image data: public domain / CC0 / BSD-compatible (see skimage/data/README); "
    "scikit-learn china/flower: CC BY 2.0 / public domain; matplotlib sample data: "
    "matplotlib licence (grace_hopper: public domain)",
    "citation": "dupbench embedded default (built locally; cite the checksum)",
}


def _package_file(package: str, name: str) -> Path | None:
    if package == "skimage":
        import skimage.data

        path = Path(skimage.data.__file__).parent / name
    elif package == "sklearn":
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "images" / name
    else:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / name
    return path if path.is_file() else None


def default_sources() -> tuple[list[SourcePhoto], list[str]]:
    """The default's source photos found in this installation, and the ids that are missing."""
    found, missing = [], []
    for ident, package, name, category, scene, window in DEFAULT_SOURCES:
        path = _package_file(package, name)
        if path is None:
            missing.append(ident)
        else:
            found.append(SourcePhoto(ident, str(path), category, scene, window))
    return found, missing


def recipe_key(sources: list[SourcePhoto], config: SyntheticConfig = DEFAULT_CONFIG) -> str:
    """A short hash of everything that determines the build (config, source bytes, versions):
    a new scikit-image image or a builder change gives a new cache folder, never a stale one."""
    from dupbench.datasets.synthetic import _versions

    recipe = {
        "config": asdict(config),
        "builder": BUILDER_VERSION,
        "versions": _versions(),
        "sources": [[s.id, file_digest(s.path), s.category, s.scene, s.window] for s in sources],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _recipe() -> tuple[list[SourcePhoto], list[str], SyntheticConfig]:
    sources, missing = default_sources()
    distractors = tuple(d for d in DISTRACTORS if d not in missing)
    return (
        sources,
        missing,
        SyntheticConfig(**{**asdict(DEFAULT_CONFIG), "distractors": distractors}),
    )


def build_default(
    out: str | Path, *, workers: int | None = None, progress: bool = True, overwrite: bool = False
) -> Dataset:
    """Build the default recipe into the folder ``out`` (atomically)."""
    sources, missing, config = _recipe()
    return build_synthetic(
        sources,
        out,
        config,
        name="default",
        info={**INFO, "missing_sources": missing},
        workers=default_workers() if workers is None else workers,
        progress=progress,
        overwrite=overwrite,
    )


def default_dataset(
    *,
    cache: str | Path | None = None,
    rebuild: bool = False,
    workers: int | None = None,
    progress: bool = True,
    verify: bool | str = True,
) -> Dataset:
    """The embedded default, built on first use (offline, atomically) and loaded afterwards.

    The folder name carries ``recipe_key``, so a changed recipe builds afresh beside the old one.
    Concurrent first uses build once: the others wait for the build lock, then load the result.
    """
    sources, _, config = _recipe()
    parent = Path(cache) if cache is not None else cache_dir()
    target = parent / f"default-{recipe_key(sources, config)}"
    if is_dataset_dir(target) and not rebuild:
        return read_dataset_dir(target, verify=verify)
    with build_lock(target):  # a build started at the same time finishes first, then is reused
        if is_dataset_dir(target) and not rebuild:
            return read_dataset_dir(target, verify=verify)
        clean_partial(parent)  # leftovers of killed builds (older recipes too), owners dead
        build_default(target, workers=workers, progress=progress, overwrite=rebuild)
    return read_dataset_dir(target, verify="exists")
