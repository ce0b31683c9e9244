"""The run record (``run.json``) as typed values: written and read only through ``RunRecord``, so
a key is spelled once, here, and the stores, tables and figures read attributes.

The JSON layout is the one every stored run already has: ``to_json`` writes exactly those keys
(``reused_from`` only on a reused run) and ``from_json`` reads them back; a missing or unknown
key raises ``KeyError`` / ``TypeError`` (a damaged record).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dupbench.distance import DistanceKind


@dataclass(frozen=True)
class StageTiming:
    """One pass of one stage. ``cpu_s`` counts this process and the worker processes it reaped;
    ``added_rss_mb`` is the peak minus the RSS at the stage's start (what the stage itself needed,
    whatever earlier work left resident)."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    added_rss_mb: float
    items: int
    cuda_peak_mb: float | None = None


@dataclass(frozen=True)
class StageSummary:
    """One stage over its passes: median wall and CPU time, the maximum memory, throughput."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    added_rss_mb: float
    cuda_peak_mb: float | None
    items: int
    items_per_s: float
    passes: list[StageTiming]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageSummary:
        return cls(**{**data, "passes": [StageTiming(**p) for p in data["passes"]]})


@dataclass(frozen=True)
class MethodRecord:
    """The method as built (its parameters after presets and defaults)."""

    name: str
    params: dict[str, Any]
    kind: str
    size: int


@dataclass(frozen=True)
class DatasetRecord:
    """The dataset scored against: where it was, its checksum and what counted as truth."""

    name: str
    root: str
    checksum: str
    images: int
    truth_pairs: int
    levels: list[str]


@dataclass(frozen=True)
class SearchRecord:
    """The search a run used: ``backend`` is what "auto" resolved to."""

    backend: str
    params: dict[str, Any]


@dataclass(frozen=True)
class RunRecord:
    """Identity and measurements of one run (see ``store`` for the directory it describes).

    ``status`` is "done", or "reused" for a run that repeats the finished run in
    ``reused_from``, whose outputs it reads."""

    key: str
    status: str
    label: str
    method: MethodRecord
    distance: DistanceKind
    threshold: float
    sweep_to: float
    k_values: list[int]
    target_precision: float
    dataset: DatasetRecord
    search: SearchRecord
    encoded: int
    skipped: int
    candidates: int
    stages: dict[str, StageSummary]
    seeds: dict[str, int]
    config: dict[str, Any]
    overrides: list[str]
    environment: dict[str, Any]
    started: str
    finished: str
    reused_from: str | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """The ``run.json`` object (plain JSON values)."""
        data = dataclasses.asdict(self)
        # run.json keeps the key "metric" for the distance, so old and new readers share files
        data = {("metric" if k == "distance" else k): v for k, v in data.items()}
        if self.reused_from is None:
            del data["reused_from"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """Read a ``run.json`` object; ``KeyError`` / ``TypeError`` when it is not one."""
        return cls(
            **{
                **{k: v for k, v in data.items() if k != "metric"},
                "distance": DistanceKind(data["metric"]),  # the run.json key is still "metric"
                "method": MethodRecord(**data["method"]),
                "dataset": DatasetRecord(**data["dataset"]),
                "search": SearchRecord(**data["search"]),
                "stages": {k: StageSummary.from_json(v) for k, v in data["stages"].items()},
            }
        )

    def reused(self, original_dir: str, overrides: list[str]) -> RunRecord:
        """This finished run's record for a directory that repeats it."""
        return dataclasses.replace(
            self, status="reused", reused_from=original_dir, overrides=list(overrides)
        )
