"""The truth a run is scored against: a dataset's truth pairs and, per breakdown column, the
label of each pair."""

from __future__ import annotations

from dupbench.harness.schema import RunConfig
from dupbench.harness.store import StoredTruth, label_strings


def run_truth(dataset, cfg: RunConfig) -> StoredTruth:
    """Truth pairs at ``dataset.levels``, with the labels of every ``benchmark.breakdown``
    column that the dataset has and fills for some image."""
    levels = tuple(cfg.dataset.levels)
    groups = {}
    for column in cfg.benchmark.breakdown:
        if column in dataset.images and dataset.images[column].notna().any():
            groups[column] = label_strings(dataset.pair_labels(column, levels=levels))
    return StoredTruth(dataset.truth_pairs(levels), len(dataset), groups)
