"""A run's thresholds: the operating one, and the widest one searched and stored."""

from __future__ import annotations

from dupbench.harness.schema import RunConfig


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
        widest = method.distance.default_sweep_to(method.size)
    # the widest search must include the operating threshold
    widest = method.distance.widest(widest, threshold)
    return float(threshold), float(widest)
