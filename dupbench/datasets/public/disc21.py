"""DISC21 (Douze et al. 2021): the Image Similarity Challenge's query/reference copy detection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dupbench.datasets.download import Resource
from dupbench.datasets.formats import read_pairs_csv
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet, find_files
from dupbench.datasets.truth import DatasetError, GroundTruth

_BASE = "https://dl.fbaipublicfiles.com/image_similarity_challenge/public/"
_ISC_LISTS = "https://raw.githubusercontent.com/facebookresearch/isc2021/main/list_files/"
_TRUTH = (_ISC_LISTS + "public_ground_truth.csv",)
N_SHARDS = 20  # references_0.zip … references_19.zip, 50,000 images each


def _resources(params: dict) -> tuple[Resource, ...]:
    shards = params.get("shards", N_SHARDS)
    if not 1 <= shards <= N_SHARDS:
        raise DatasetError(f"shards must be between 1 and {N_SHARDS}")
    return (
        Resource("public_ground_truth.csv", _TRUTH),
        Resource("dev_queries.zip", (_BASE + "dev_queries.zip",)),
        *(Resource(f"references_{k}.zip", (_BASE + f"references_{k}.zip",)) for k in range(shards)),
    )


def parse(raw: Path, files: dict, **params) -> Parsed:
    """Queries ``Q?????.jpg``, references ``R??????.jpg``; the truth CSV ``query_id,
    reference_id`` lists every query, with an empty reference when it has no source. With fewer
    reference shards, pairs whose reference was not downloaded are dropped (and counted)."""
    queries = find_files(raw, "Q*.jpg")
    references = find_files(raw, "R*.jpg")
    if not queries or not references:
        raise DatasetError(f"DISC21: need Q*.jpg queries and R*.jpg references under {raw}")
    images = pd.DataFrame(
        {
            "id": [p.stem for p in queries] + [p.stem for p in references],
            "path": [str(p) for p in queries + references],
            "split": ["query"] * len(queries) + ["reference"] * len(references),
        }
    )
    pairs = read_pairs_csv(files["public_ground_truth.csv"])
    present = set(images["id"])
    keep = [k for k in range(len(pairs.a)) if pairs.a[k] in present and pairs.b[k] in present]
    dropped = len(pairs.a) - len(keep)
    ids = list(images["id"])
    truth = (
        GroundTruth.from_id_pairs(
            ids,
            [pairs.a[k] for k in keep],
            [pairs.b[k] for k in keep],
            "near",
            source="public_ground_truth.csv",
        )
        if keep
        else GroundTruth.empty()
    )
    return Parsed(images, truth, {"pairs_dropped_missing_images": dropped})


SPEC = PublicSet(
    name="disc21",
    description="DISC21 / ISC2021 dev phase: 50,000 queries (edited copies of references, plus "
    "distractor queries) against 1,000,000 references.",
    size="50k queries + 1M references (20 shards of 50k), ~350 GB in all; shards= limits it",
    level="near (query derived from the reference by automatic or manual edits)",
    licence="CC BY-NC 4.0 (dataset); images from YFCC100M (CC) and Casual Conversations",
    citation="M. Douze, G. Tolias, E. Pizzi et al. The 2021 Image Similarity Dataset and "
    "Challenge. arXiv:2106.09672.",
    homepage="https://ai.meta.com/datasets/disc21-dataset/",
    resources=_resources,
    parse=parse,
)
PUBLIC_SETS.add(SPEC.name, SPEC)
