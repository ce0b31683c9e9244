"""INRIA Copydays (Jégou et al. 2008): 157 originals with JPEG, crop and "strong" attacks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dupbench.datasets.download import Resource
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet, find_files
from dupbench.datasets.truth import DatasetError, GroundTruth

_HOSTS = (
    "https://dl.fbaipublicfiles.com/vissl/datasets/",
    "http://pascal.inrialpes.fr/data/holidays/",
)
#: sha256 as recorded by others for the FAIR mirror (original, strong); the rest are unverified
_SHA256 = {
    "copydays_original.tar.gz": "8b85b7914fd0145bc258bde3440f6a622243ca91ee085fe2025ce7bdeb0bfb8e",
    "copydays_strong.tar.gz": "7852c64aa4a37e8329ce08159fc947c16f09c66737db0a2479a90fc9ae40760c",
}
ATTACKS = ("original", "crop", "jpeg", "strong")


def _resources(params: dict) -> tuple[Resource, ...]:
    return tuple(
        Resource(
            f"copydays_{attack}.tar.gz",
            tuple(host + f"copydays_{attack}.tar.gz" for host in _HOSTS),
            sha256=_SHA256.get(f"copydays_{attack}.tar.gz"),
        )
        for attack in params.get("attacks", ATTACKS)
    )


def parse(raw: Path, files: dict, **params) -> Parsed:
    """Files are named by a 6-digit number; number // 100 is the group. The original archive
    holds ``NNNNNN.jpg``; crops are ``crops/<percent removed>/``, JPEGs ``jpegqual/<quality>/``,
    strong attacks a flat folder."""
    rows = []
    for attack in params.get("attacks", ATTACKS):
        folder = raw / f"copydays_{attack}"
        for path in find_files(folder, "*.jpg"):
            stem = path.stem
            if not stem.isdigit():
                continue
            group = int(stem) // 100
            level = path.parent.name if attack in ("crop", "jpeg") else None
            if attack in ("crop", "jpeg") and not (level or "").isdigit():
                raise DatasetError(f"{path}: expected a numeric {attack} level folder")
            ident = "/".join(x for x in (attack, level, stem) if x)
            rows.append(
                {
                    "id": ident,
                    "path": str(path),
                    "group": group,
                    "transform": None if attack == "original" else attack,
                    "severity": int(level) if level else None,
                }
            )
    if not rows:
        raise DatasetError(f"no Copydays images under {raw}")
    table = pd.DataFrame(rows).sort_values("id", kind="stable").reset_index(drop=True)
    originals = {r.group: r.id for r in table.itertuples() if pd.isna(r.transform)}
    orphans = sorted(set(table["group"]) - set(originals))
    if orphans:
        raise DatasetError(f"Copydays: edits without an original for group(s) {orphans[:5]}")
    table["original"] = [originals[g] for g in table["group"]]
    groups: dict[int, list[int]] = {}
    for k, g in enumerate(table["group"]):
        groups.setdefault(g, []).append(k)
    return Parsed(table.drop(columns="group"), GroundTruth.from_groups(groups.values(), "near"))


SPEC = PublicSet(
    name="copydays",
    description="INRIA Copydays: 157 holiday photos, each attacked by JPEG (9 qualities), "
    "cropping (9 fractions) and 'strong' manual edits (print-scan, paint, blur...).",
    size="157 originals + 3,055 edits (229 strong), ~0.5 GB",
    level="near (edits of the same picture)",
    licence="INRIA: free for research; images by the authors' holiday collection",
    citation="H. Jégou, M. Douze, C. Schmid. Hamming embedding and weak geometric consistency for "
    "large scale image search. ECCV 2008.",
    homepage="https://thoth.inrialpes.fr/~jegou/data.php.html#copydays",
    resources=_resources,
    parse=parse,
)
PUBLIC_SETS.add(SPEC.name, SPEC)
