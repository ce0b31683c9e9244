"""One benchmark run: load → encode → index → search → evaluate, each stage timed, then stored.

Candidates are searched once at the widest threshold (``sweep_to``) and stored, so every smaller
threshold is scored from them without re-encoding (``reevaluate``).
"""

from __future__ import annotations

import importlib.util
import inspect
import random
import sys
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dupbench.harness import environment, store
from dupbench.harness.measure import MemorySampler, Stopwatch
from dupbench.harness.schema import RunConfig
from dupbench.harness.scoring import Scores, score, sweep_thresholds
from dupbench.records import Candidates, Encodings


def seed_everything(seed: int, torch_too: bool = False) -> dict[str, int]:
    """Seed Python, NumPy and torch (when already imported, or ``torch_too`` and installed);
    returns what was seeded."""
    random.seed(seed)
    np.random.seed(seed)
    seeded = {"python": seed, "numpy": seed}
    torch = sys.modules.get("torch")
    if torch is None and torch_too and importlib.util.find_spec("torch") is not None:
        import torch
    if torch is not None:
        torch.manual_seed(seed)
        seeded["torch"] = seed
    return seeded


def build_method(cfg: RunConfig):
    """The configured method; ``benchmark.device`` goes to methods that take a ``device``."""
    from dupbench.methods import get_method, method_class
    from dupbench.methods.base import accepted_params

    name = cfg.method.name
    params = dict(cfg.method.params)
    if "device" in accepted_params(method_class(name)) and "device" not in params:
        params["device"] = cfg.benchmark.device
    return get_method(name, **params)


def load_dataset(cfg: RunConfig):
    """The configured dataset (an unknown name raises a message listing the valid ones)."""
    from dupbench.datasets import load_dataset

    return load_dataset(cfg.dataset.name, **dict(cfg.dataset.params))


def thresholds(cfg: RunConfig, method) -> tuple[float, float]:
    """(operating threshold, widest threshold searched): benchmark overrides method config,
    which overrides the method's own default. The widest defaults to a quarter of a Hamming
    code's bits, a cosine similarity of 0.5 and 0 for exact digests (never inside the threshold),
    so that the threshold-free metrics (μAP, best F1) do not change with the threshold."""
    threshold = cfg.benchmark.threshold
    if threshold is None:
        threshold = cfg.method.threshold
    if threshold is None:
        threshold = method.default_threshold
    widest = cfg.benchmark.sweep_to if cfg.benchmark.sweep_to is not None else cfg.method.sweep_to
    if widest is None:
        widest = {"hamming": round(method.size / 4), "cosine": 0.5}.get(method.metric, 0.0)
    # the widest search must include the operating threshold
    widest = min(widest, threshold) if method.metric == "cosine" else max(widest, threshold)
    return float(threshold), float(widest)


def to_dataset_indices(candidates: Candidates, encodings: Encodings, ids: list[str]) -> Candidates:
    """Map candidate rows of ``encodings`` (skipped images left out) to dataset image indices."""
    position = {ident: k for k, ident in enumerate(ids)}
    rows = np.array([position[ident] for ident in encodings.ids], dtype=np.int64)
    i, j = rows[candidates.i], rows[candidates.j]
    return Candidates(
        np.minimum(i, j), np.maximum(i, j), candidates.score, candidates.metric
    ).sorted()


def _truth(dataset, cfg: RunConfig) -> store.StoredTruth:
    levels = tuple(cfg.dataset.levels)
    groups = {}
    for column in cfg.benchmark.breakdown:
        if column in dataset.images and dataset.images[column].notna().any():
            groups[column] = np.asarray(
                [str(v) for v in dataset.pair_labels(column, levels=levels)], dtype=str
            )
    return store.StoredTruth(dataset.truth_pairs(levels), len(dataset), groups)


def _searcher(encodings: Encodings, cfg: RunConfig, stage=None):
    """Build the configured index; returns ``radius → Candidates``. A search function that
    takes ``stage`` times its own sub-stages with it (``stage(name, items)``)."""
    from dupbench.methods.registry import search_function

    backend, params = cfg.search.backend, dict(cfg.search.params)
    search = search_function(backend)
    if search is not None:
        if stage is not None and "stage" in inspect.signature(search).parameters:
            params["stage"] = stage
        return lambda radius: search(encodings, radius, **params)
    from dupbench.search import build_index

    return build_index(encodings, backend=backend, **params).range


def search_backend(cfg: RunConfig, metric: str, n: int) -> str:
    """The backend a run used (what "auto" resolved to)."""
    from dupbench.methods.registry import SEARCH_FUNCTIONS
    from dupbench.search import pick_backend

    backend = cfg.search.backend
    return backend if backend in SEARCH_FUNCTIONS else pick_backend(metric, n, backend)


def _encode_index_search(
    method,
    paths: list[str],
    ids: list[str],
    cfg: RunConfig,
    widest: float,
    watch: Stopwatch,
    warmup: bool = False,
):
    """One pass; a warm-up pass is timed as a single "warmup" stage."""
    b = cfg.benchmark

    def stage(name: str, items: int):
        return nullcontext() if warmup else watch.stage(name, items)

    with watch.stage("warmup", len(paths)) if warmup else nullcontext():
        with stage("encode", len(paths)):
            encodings = method.encode(
                paths, ids, workers=b.workers, progress=b.progress and not warmup
            )
        with stage("index", len(encodings)):
            search = _searcher(encodings, cfg, stage)
        with stage("search", len(encodings)):
            found = search(widest)
    return encodings, found


def run(
    cfg: RunConfig,
    run_dir: Path,
    label: str,
    config: dict,
    overrides: list[str],
    key: str | None = None,
) -> dict:
    """Run, measure and store one benchmark in ``run_dir``; returns the metrics. ``key`` is the
    run's ``store.run_key`` (computed from ``config`` and the current code when None)."""
    import dupbench

    if key is None:
        key = store.run_key(config, dupbench.__version__, environment.code_state())
    run_dir.mkdir(parents=True, exist_ok=True)
    # run.json marks a finished run: an old one must never stand beside new, partial outputs
    # (nor old encodings beside a run that does not store any)
    for stale in (store.RUN_FILE, store.ENCODINGS_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    seeds = seed_everything(cfg.benchmark.seed)
    with MemorySampler() as sampler:
        watch = Stopwatch(sampler)
        with watch.stage("load") as load:
            dataset = load_dataset(cfg)
            method = build_method(cfg)
            truth = _truth(dataset, cfg)
            load.items = len(dataset)
        # again, before any network is built by a method that needs torch; importing torch for
        # one that does not would add its ~500 MB to the method's measured memory (and to every
        # worker process it forks)
        seeds = seed_everything(cfg.benchmark.seed, torch_too="torch" in method.requires)
        threshold, widest = thresholds(cfg, method)
        paths, ids = dataset.paths, dataset.ids
        few = cfg.benchmark.warmup_images
        for _ in range(cfg.benchmark.warmup):
            _encode_index_search(method, paths[:few], ids[:few], cfg, widest, watch, warmup=True)
        for _ in range(cfg.benchmark.repeats):
            encodings, found = _encode_index_search(method, paths, ids, cfg, widest, watch)
        candidates = to_dataset_indices(found, encodings, dataset.ids)
        sweep = sweep_thresholds(method.metric, threshold, widest, cfg.benchmark.sweep_points)
        with watch.stage("evaluate", len(candidates)):
            scores = score(
                candidates,
                truth,
                threshold,
                cfg.benchmark.k_values,
                cfg.benchmark.target_precision,
                sweep,
            )
    _save_outputs(run_dir, candidates, truth, encodings, scores, cfg.benchmark.store_encodings)
    info = {
        "key": key,
        "status": "done",
        "label": label,
        "method": {
            "name": method.name,
            "params": method.params,
            "kind": method.kind,
            "size": method.size,
        },
        "metric": method.metric,
        "threshold": threshold,
        "sweep_to": widest,
        "k_values": list(cfg.benchmark.k_values),
        "target_precision": cfg.benchmark.target_precision,
        "dataset": {
            "name": dataset.name,
            "root": str(dataset.root),
            "checksum": dataset.checksum(),
            "images": len(dataset),
            "truth_pairs": len(truth.pairs),
            "levels": list(cfg.dataset.levels),
        },
        "search": {
            "backend": search_backend(cfg, method.metric, len(encodings)),
            "params": dict(cfg.search.params),
        },
        "encoded": len(encodings),
        "skipped": len(encodings.skipped),
        "candidates": len(candidates),
        "stages": watch.summary(),
        "seeds": seeds,
        "config": config,
        "overrides": list(overrides),
        "environment": environment.describe(),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    store.save_skipped(encodings.skipped, run_dir / store.SKIPPED_FILE)
    store.write_json(run_dir / store.RUN_FILE, info)
    return scores.metrics


def _save_outputs(
    run_dir: Path,
    candidates: Candidates,
    truth: store.StoredTruth,
    encodings: Encodings,
    scores: Scores,
    keep_encodings: bool,
) -> None:
    candidates.save(run_dir / store.CANDIDATES_FILE)
    truth.save(run_dir / store.TRUTH_FILE)
    if keep_encodings:
        encodings.save(run_dir / store.ENCODINGS_FILE)
    store.write_json(run_dir / store.METRICS_FILE, scores.metrics)
    scores.curve.to_csv(run_dir / store.CURVE_FILE, index=False)
    scores.sweep.to_csv(run_dir / store.SWEEP_FILE, index=False)
    scores.breakdown.to_csv(run_dir / store.BREAKDOWN_FILE, index=False)


def reuse(original: store.StoredRun, run_dir: Path, overrides: list[str]) -> dict:
    """Record in ``run_dir`` that it repeats the finished run ``original``; returns its metrics.
    When ``run_dir`` is the original's own directory, it is left as it is."""
    if run_dir.resolve() == original.dir.resolve():
        return original.metrics
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {
        **original.info,
        "status": "reused",
        "reused_from": str(original.dir.resolve()),
        "overrides": list(overrides),
    }
    store.write_json(run_dir / store.RUN_FILE, info)
    return original.metrics


def reevaluate(run_dir: str | Path, threshold: float | None = None) -> Scores:
    """Score a stored run again from its candidates (no encoding), at ``threshold`` or its own.

    Raises ``ValueError`` when ``threshold`` lies beyond the widest threshold searched, where the
    stored candidates are incomplete.
    """
    run = store.StoredRun(Path(run_dir))
    if not (run.dir / store.RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {store.RUN_FILE})")
    info = run.info
    t = info["threshold"] if threshold is None else float(threshold)
    widest = info["sweep_to"]
    beyond = t < widest if info["metric"] == "cosine" else t > widest
    if beyond:
        raise ValueError(
            f"threshold {t} is beyond the widest threshold searched ({widest}); "
            "run again with a wider benchmark.sweep_to"
        )
    return score(run.candidates(), run.truth(), t, info["k_values"], info["target_precision"])
