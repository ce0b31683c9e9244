"""One timed pass of the method's stages: encode → index → search, and its pairs mapped back
to dataset rows."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from dupbench.harness.measure import Stopwatch
from dupbench.harness.schema import RunConfig
from dupbench.harness.searching import searcher
from dupbench.records import Candidates, Encodings


def encode_index_search(
    method,
    paths: list[str],
    ids: list[str],
    cfg: RunConfig,
    widest: float,
    watch: Stopwatch,
    warmup: bool = False,
) -> tuple[Encodings, Candidates]:
    """One pass, each stage timed; a warm-up pass is timed as a single "warmup" stage."""
    b = cfg.benchmark

    def stage(name: str, items: int):
        return nullcontext() if warmup else watch.stage(name, items)

    with watch.stage("warmup", len(paths)) if warmup else nullcontext():
        with stage("encode", len(paths)):
            encodings = method.encode(
                paths, ids, workers=b.workers, progress=b.progress and not warmup
            )
        with stage("index", len(encodings)):
            search = searcher(encodings, cfg.search, stage)
        with stage("search", len(encodings)):
            found = search(widest)
    return encodings, found


def to_source_rows(candidates: Candidates, encodings: Encodings) -> Candidates:
    """Pairs of encoded rows (skipped images left out) → pairs of the rows of the sources given
    to ``encode`` (``Encodings.rows``), smaller first."""
    if encodings.rows is None:
        raise ValueError(f"{encodings.method} encodings do not say which source each row is")
    rows = encodings.rows
    i, j = rows[candidates.i], rows[candidates.j]
    return Candidates(
        np.minimum(i, j), np.maximum(i, j), candidates.score, candidates.distance
    ).sorted()
