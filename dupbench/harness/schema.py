"""Structured-config schemas for ``dupbench run``: Hydra merges every YAML file onto these, so a
mistyped key or a wrong type fails before anything runs, and ``validate`` checks value ranges.

The schemas are registered in Hydra's ConfigStore as ``run_schema`` (the primary config's first
default) when this module is imported.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from dupbench.datasets.truth import LEVELS
from dupbench.errors import UsageError, unknown_name

_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


class ConfigError(UsageError):
    """A configuration value that cannot be run; the message names the key and the valid values."""


@dataclass
class MethodConfig:
    """One method adapter with its parameters (``dupbench.methods.get_method(name, **params)``)."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)
    #: short name in tables and plots; None: the config file name (plus any parameter overrides)
    label: str | None = None
    #: operating threshold (Hamming distance, or cosine similarity); None: the method's default
    threshold: float | None = None
    #: widest threshold searched and stored, so any threshold up to it can be re-evaluated
    sweep_to: float | None = None
    #: what the preset still finds, for ``dupbench methods``; None: the method class's own
    robust_to: str | None = None


@dataclass
class DatasetConfig:
    """A dataset (``dupbench.datasets.load_dataset(name, **params)``) and which truth counts."""

    #: a name from ``dupbench.datasets.available()`` or a dataset folder
    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)
    levels: list[str] = field(default_factory=lambda: ["exact", "near"])


@dataclass
class SearchConfig:
    """The index that turns codes into scored pairs (``dupbench.search.build_index``)."""

    backend: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchmarkConfig:
    """How one run is measured: thresholds, retrieval cut-offs, repetitions, resources, seed."""

    #: overrides ``method.threshold`` when set
    threshold: float | None = None
    #: overrides ``method.sweep_to`` when set
    sweep_to: float | None = None
    #: points in the metrics-vs-threshold sweep of a cosine method (Hamming sweeps every integer)
    sweep_points: int = 21
    k_values: list[int] = field(default_factory=lambda: [1, 5, 10])
    target_precision: float = 0.99
    #: passes of encode → index → search over the first ``warmup_images`` images before the
    #: measured ones (model loading, caches); timed apart as the "warmup" stage
    warmup: int = 1
    warmup_images: int = 32
    #: timed passes; times are reported as the median, memory as the maximum
    repeats: int = 1
    #: encoding processes (``cpus.worker_count``: 0 one per usable core, 1 in this process)
    workers: int = 1
    #: passed to methods that take a ``device`` parameter (the CNNs)
    device: str = "auto"
    seed: int = 0
    #: dataset columns whose values split the recall of the truth pairs
    breakdown: list[str] = field(default_factory=lambda: ["transform", "severity", "category"])
    store_encodings: bool = False
    progress: bool = True


@dataclass
class RunConfig:
    """The primary config: one method on one dataset, searched and measured one way."""

    method: MethodConfig = MISSING
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    #: root of the results store; runs go to ``<results_dir>/runs/...``
    results_dir: str = "results"
    #: run even when a finished run with the identical config exists
    force: bool = False
    #: write the tables and plots when a multirun ends (always aggregates and prints the table)
    report: bool = True


def validate(cfg: RunConfig) -> RunConfig:
    """Range checks a type schema cannot express; raises ``ConfigError`` naming the key."""
    b = cfg.benchmark
    problems = []
    if b.repeats < 1:
        problems.append(f"benchmark.repeats must be at least 1, got {b.repeats}")
    if b.warmup < 0 or b.warmup_images < 1:
        problems.append(
            f"benchmark.warmup must not be negative and benchmark.warmup_images must "
            f"be positive, got {b.warmup} and {b.warmup_images}"
        )
    if not b.k_values or any(k < 1 for k in b.k_values):
        problems.append(f"benchmark.k_values must be positive integers, got {list(b.k_values)}")
    if not 0 < b.target_precision <= 1:
        problems.append(f"benchmark.target_precision must be in (0, 1], got {b.target_precision}")
    if b.sweep_points < 2:
        problems.append(f"benchmark.sweep_points must be at least 2, got {b.sweep_points}")
    if not _DEVICE.match(b.device):
        problems.append(f"benchmark.device must be cpu, auto, mps or cuda[:N], got {b.device!r}")
    bad_levels = sorted(set(cfg.dataset.levels) - set(LEVELS))
    if bad_levels or not cfg.dataset.levels:
        problems.append(
            f"dataset.levels must be a non-empty subset of {LEVELS}, got {list(cfg.dataset.levels)}"
        )
    problems += _method_problems(cfg.method)
    problems += _search_problems(cfg.search.backend)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return cfg


def _search_problems(backend: str) -> list[str]:
    """An unknown search backend, found before any job encodes (with a suggestion); whether it
    fits the method's codes is checked when the index is built."""
    from dupbench.search.registry import SEARCHES

    if backend == "auto" or backend in SEARCHES:
        return []
    return [f"search.backend: {unknown_name('search', backend, [*SEARCHES.names(), 'auto'])}"]


def _method_problems(method: MethodConfig) -> list[str]:
    """An unknown method name or parameter, found before any job runs (with a suggestion)."""
    from dupbench.errors import check_parameters
    from dupbench.methods.base import accepted_params
    from dupbench.methods.registry import method_class

    try:
        check_parameters(
            method.params,
            accepted_params(method_class(method.name)),
            f"method.params of {method.name!r}",
        )
    except UsageError as e:
        return [f"method.name: {e}" if isinstance(e, KeyError) else str(e)]
    return []


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that ``schema`` (a dataclass) and its nested dataclasses do not declare:
    a ``+key=value`` override slips past Hydra's struct check and would be dropped silently."""
    hints = typing.get_type_hints(schema)
    out: list[str] = []
    for key in node:
        if key not in hints:
            out.append(f"{prefix}{key!s}")
        elif dataclasses.is_dataclass(hints[key]) and isinstance(node[key], DictConfig):
            out += unknown_keys(node[key], hints[key], f"{prefix}{key}.")
    return out


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A composed config without Hydra's own ``hydra`` node: what a run is configured by."""
    return OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])


def to_run_config(cfg: DictConfig) -> RunConfig:
    """A composed Hydra config (without its ``hydra`` node) → a validated ``RunConfig``."""
    plain = without_hydra(cfg)
    unknown = unknown_keys(plain, RunConfig)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; see `dupbench run --cfg job` for the valid ones"
        )
    missing = sorted(OmegaConf.missing_keys(plain))
    if missing:
        raise ConfigError(
            f"missing value(s) for {', '.join(missing)} (marked ??? in the config); "
            f"set them on the command line, e.g. {missing[0]}=..."
        )
    typed = OmegaConf.merge(OmegaConf.structured(RunConfig), plain)
    return validate(typing.cast(RunConfig, OmegaConf.to_object(typed)))


def as_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain JSON values: what a run records, and computes its key from."""
    return dataclasses.asdict(cfg)


def register_schemas() -> None:
    """Make ``run_schema`` available to the primary config's defaults list."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)
