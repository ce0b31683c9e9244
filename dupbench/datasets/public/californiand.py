"""California-ND (Jinda-Apiraksa, Vonikakis, Winkler 2013): 701 personal travel photos with
near-duplicate judgements by 10 observers.

The zip is password-protected (the authors send the password on request): pass ``password=`` or
set ``DUPBENCH_CALIFORNIA_ND_PASSWORD``. The observers' judgements are read from every square
701x701 matrix in the archive (.mat, .csv or .txt), averaged into the probability that a pair is a
near-duplicate; pairs with probability >= ``agreement`` (default 0.5, a majority) are "near".
Matrix rows follow the photos sorted by file name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from dupbench.datasets.download import Resource
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet, find_files
from dupbench.datasets.truth import DatasetError, GroundTruth

PASSWORD_ENV = "DUPBENCH_CALIFORNIA_ND_PASSWORD"


def _matrices(raw: Path, n: int) -> list[tuple[str, np.ndarray]]:
    found = []
    for path in sorted(p for p in raw.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        candidates = []
        if suffix == ".mat":
            from scipy.io import loadmat

            candidates = [v for k, v in loadmat(path).items() if not k.startswith("__")]
        elif suffix in (".csv", ".txt"):
            for delimiter in (",", None):
                try:
                    candidates = [np.loadtxt(path, delimiter=delimiter)]
                    break
                except ValueError:
                    continue
        for value in candidates:
            value = np.asarray(value)
            if value.ndim == 2 and value.shape == (n, n) and value.dtype.kind in "biuf":
                found.append((path.name, value.astype(np.float64)))
    return found


def parse(raw: Path, files: dict, agreement: float = 0.5, **params) -> Parsed:
    photos = [p for p in find_files(raw, "*") if p.suffix.lower() in (".jpg", ".jpeg")]
    if not photos:
        raise DatasetError(f"California-ND: no photos under {raw}")
    matrices = _matrices(raw, len(photos))
    if not matrices:
        raise DatasetError(
            f"California-ND: no {len(photos)}x{len(photos)} judgement matrix "
            f"(.mat/.csv/.txt) found under {raw}"
        )
    votes = np.mean([np.clip(m, 0, 1) for _, m in matrices], axis=0)
    votes = np.maximum(votes, votes.T)
    i, j = np.nonzero(np.triu(votes >= agreement, k=1))
    images = pd.DataFrame(
        {"id": [p.relative_to(raw).as_posix() for p in photos], "path": [str(p) for p in photos]}
    )
    truth = (
        GroundTruth(np.stack([i, j], axis=1), np.full(len(i), "near", dtype=object))
        if len(i)
        else GroundTruth.empty()
    )
    return Parsed(
        images, truth, {"observers": [name for name, _ in matrices], "agreement": agreement}
    )


def _extract_options(params: dict) -> dict:
    password = params.get("password") or os.environ.get(PASSWORD_ENV)
    return {"password": password.encode()} if password else {}


SPEC = PublicSet(
    name="californiand",
    description="California-ND: 701 photos from one real travel collection, with near-duplicate "
    "judgements by 10 observers (including the photographer).",
    size="701 JPEG images (1024x768), encrypted zip (password from the authors)",
    level="near (human judgement of same-scene shots; pairs with >= `agreement` of observers)",
    licence="CC BY-NC-ND 3.0",
    citation="A. Jinda-Apiraksa, V. Vonikakis, S. Winkler. California-ND: An annotated dataset "
    "for near-duplicate detection in personal photo collections. QoMEX 2013.",
    homepage="http://vintage.winklerbros.net/californiaND.html",
    resources=lambda params: (
        Resource("californiaND.zip", ("http://vintage.winklerbros.net/californiaND.zip",)),
    ),
    parse=parse,
    extract_options=_extract_options,
    secret_params=("password",),
)
PUBLIC_SETS.add(SPEC.name, SPEC)
