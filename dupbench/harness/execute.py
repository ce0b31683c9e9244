"""One benchmark run into its directory: load → encode → index → search → evaluate, each stage
timed, then stored with its ``RunRecord``; or a finished run reused, or re-scored.

Candidates are searched once at the widest threshold (``sweep_to``) and stored, so every smaller
threshold is scored from them without re-encoding (``reevaluate``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from dupbench.distance import DistanceKind
from dupbench.harness import environment, store
from dupbench.harness.components import build_method, load_dataset
from dupbench.harness.measure import MemorySampler, Stopwatch
from dupbench.harness.pipeline import encode_index_search, to_source_rows
from dupbench.harness.record import DatasetRecord, MethodRecord, RunRecord, SearchRecord
from dupbench.harness.schema import RunConfig, as_dict
from dupbench.harness.scoring import Scores, score, sweep_thresholds
from dupbench.harness.searching import backend_used
from dupbench.harness.seeding import seed_everything
from dupbench.harness.thresholds import thresholds
from dupbench.harness.truth import run_truth


def run_key(cfg: RunConfig) -> str:
    """``store.run_key`` of ``cfg`` with this version and the current code."""
    import dupbench

    return store.run_key(as_dict(cfg), dupbench.__version__, environment.code_state())


def execute_run(
    cfg: RunConfig, run_dir: Path, label: str, overrides: list[str], key: str | None = None
) -> dict:
    """Run, measure and store one benchmark in ``run_dir``; returns the metrics. ``key`` is the
    run's ``run_key`` (computed when None)."""
    if key is None:
        key = run_key(cfg)
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
            truth = run_truth(dataset, cfg)
            load.items = len(dataset)
        # again, before any network is built by a method that needs torch; importing torch for
        # one that does not would add its ~500 MB to the method's measured memory (and to every
        # worker process it forks)
        seeds = seed_everything(cfg.benchmark.seed, torch_too="torch" in method.requires)
        threshold, widest = thresholds(cfg, method)
        paths, ids = dataset.paths, dataset.ids
        few = cfg.benchmark.warmup_images
        for _ in range(cfg.benchmark.warmup):
            encode_index_search(method, paths[:few], ids[:few], cfg, widest, watch, warmup=True)
        for _ in range(cfg.benchmark.repeats):
            encodings, found = encode_index_search(method, paths, ids, cfg, widest, watch)
        candidates = to_source_rows(found, encodings)
        sweep = sweep_thresholds(method.distance, threshold, widest, cfg.benchmark.sweep_points)
        with watch.stage("evaluate", len(candidates)):
            scores = score(
                candidates,
                truth,
                threshold,
                cfg.benchmark.k_values,
                cfg.benchmark.target_precision,
                sweep,
            )
    store.save_outputs(run_dir, candidates, truth, encodings, scores, cfg.benchmark.store_encodings)
    record = RunRecord(
        key=key,
        status="done",
        label=label,
        method=MethodRecord(method.name, method.params, method.kind, method.size),
        distance=method.distance,
        threshold=threshold,
        sweep_to=widest,
        k_values=list(cfg.benchmark.k_values),
        target_precision=cfg.benchmark.target_precision,
        dataset=DatasetRecord(
            name=dataset.name,
            root=str(dataset.root),
            checksum=dataset.checksum(),
            images=len(dataset),
            truth_pairs=len(truth.pairs),
            levels=list(cfg.dataset.levels),
        ),
        search=SearchRecord(
            backend_used(cfg.search, method.distance, len(encodings)), dict(cfg.search.params)
        ),
        encoded=len(encodings),
        skipped=len(encodings.skipped),
        candidates=len(candidates),
        stages=watch.summary(),
        seeds=seeds,
        config=as_dict(cfg),
        overrides=list(overrides),
        environment=environment.describe(),
        started=started,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    store.write_record(run_dir, record)
    return scores.metrics


def reuse_run(original: store.StoredRun, run_dir: Path, overrides: list[str]) -> dict:
    """Record in ``run_dir`` that it repeats the finished run ``original``; returns its metrics.
    When ``run_dir`` is the original's own directory, it is left as it is."""
    if run_dir.resolve() == original.dir.resolve():
        return original.metrics
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_record(run_dir, original.record.reused(str(original.dir.resolve()), overrides))
    return original.metrics


def reevaluate(run_dir: str | Path, threshold: float | None = None) -> Scores:
    """Score a stored run again from its candidates (no encoding), at ``threshold`` or its own.

    Raises ``ValueError`` when ``threshold`` lies beyond the widest threshold searched, where the
    stored candidates are incomplete.
    """
    run = store.StoredRun(Path(run_dir))
    if not (run.dir / store.RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {store.RUN_FILE})")
    record = run.record
    t = record.threshold if threshold is None else float(threshold)
    if DistanceKind(record.distance).is_beyond(t, record.sweep_to):
        raise ValueError(
            f"threshold {t} is beyond the widest threshold searched ({record.sweep_to}); "
            "run again with a wider benchmark.sweep_to"
        )
    return score(run.candidates(), run.truth(), t, record.k_values, record.target_precision)
