"""Every evaluation metric by name, once: its title, direction, meaning, formula and where it is
shown (the report's main table, the per-threshold sweep, the sweep plot, the one-line run
summary, ``dupbench evaluate``, imagededup's ``evaluate``). Tables, plots and the CLI read the
lists they show from here, in catalogue order.

The built-in metrics are computed by the kernels ``scores_at`` and ``threshold_free_scores``
call; their entries only describe them. A new metric brings its own ``compute`` and is one file
in ``dupbench/evaluation/`` (scanned on first use), registered with ``@metric(...)``::

    @metric("f2", "F2", higher_is_better=True, description="...", reference="...", main=True)
    def f2(within: Candidates, truth_pairs, n) -> float: ...
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dupbench.registry import Registry

_positions = itertools.count()


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``name`` is its key in metrics.json, sweep.csv and runs.csv."""

    name: str
    #: its column, legend and summary title
    title: str
    #: True: higher is better, False: lower is better, None: not ranked (a threshold, a count)
    higher_is_better: bool | None
    description: str
    #: where the formula is: a kernel's docstring (dotted name), a docs anchor or a paper
    reference: str
    #: a column of the report's main table (digits: decimals shown there)
    main: bool = False
    digits: int = 3
    #: kept at every threshold of the sweep (sweep.csv); plotted: a line of metrics_vs_threshold
    sweep: bool = False
    plotted: bool = False
    #: in the one-line summary printed after each run
    summary: bool = False
    #: printed by ``dupbench evaluate`` (without --json)
    shown: bool = False
    #: its name in imagededup's ``evaluate`` output (ranking metrics only)
    compat: str | None = None
    #: for metrics not computed by the built-in kernels: ``(candidates, truth_pairs, n) → float``,
    #: given the candidates within the threshold, or all of them when ``threshold_free``
    compute: Callable[[Any, Any, Any], float] | None = None
    threshold_free: bool = False
    #: catalogue order: the order of definition
    position: int = field(default_factory=lambda: next(_positions), compare=False, repr=False)


#: every metric; modules of ``dupbench.evaluation`` register theirs when first looked up
METRICS: Registry[MetricSpec] = Registry("metric", packages=("dupbench.evaluation",))


def metric(name: str, title: str, **spec: Any) -> Callable[[Callable], Callable]:
    """Decorator: register the decorated ``(candidates, truth_pairs, n) → float`` as the
    ``compute`` of a new metric (``spec``: the other ``MetricSpec`` fields)."""

    def decorate(compute: Callable) -> Callable:
        METRICS.add(name, MetricSpec(name, title, compute=compute, **spec))
        return compute

    return decorate


def specs(where: str | None = None) -> list[MetricSpec]:
    """The metrics shown in one place (``"main"``, ``"sweep"``, ``"plotted"``, ``"summary"``,
    ``"shown"``, ``"compat"``), or all of them, in catalogue order."""
    found = sorted((s for _, s in METRICS.items()), key=lambda s: s.position)
    return [s for s in found if where is None or getattr(s, where)]


def names(where: str | None = None) -> tuple[str, ...]:
    """The names of ``specs(where)``."""
    return tuple(s.name for s in specs(where))


def computed(threshold_free: bool) -> list[tuple[str, Callable[[Any, Any, Any], float]]]:
    """(name, compute) of the metrics that bring their own, threshold-free or at a threshold."""
    return [
        (s.name, s.compute)
        for s in specs()
        if s.compute is not None and s.threshold_free == threshold_free
    ]


def summary_line(label: str, metrics: dict[str, float]) -> str:
    """``label: precision 0.940  recall 0.469  F1 0.626  μAP 0.553``."""
    parts = [f"{s.title} {metrics[s.name]:.3f}" for s in specs("summary")]
    return f"{label}: " + "  ".join(parts)


_PAIRWISE = "dupbench.evaluation.pairwise.pairwise_scores"
_RANKING = "dupbench.evaluation.ranking.ranking_scores"
_POINTS = "dupbench.evaluation.curves.operating_points"
for _spec in (
    MetricSpec(
        "threshold",
        "threshold",
        None,
        "the run's threshold (a distance, or a similarity)",
        "dupbench.harness.thresholds.thresholds",
        main=True,
        digits=2,
        shown=True,
    ),
    MetricSpec(
        "precision",
        "precision",
        True,
        "found pairs that are true duplicates, TP / (TP + FP)",
        _PAIRWISE,
        main=True,
        sweep=True,
        plotted=True,
        summary=True,
        shown=True,
    ),
    MetricSpec(
        "recall",
        "recall",
        True,
        "true duplicate pairs found, TP / (TP + FN)",
        _PAIRWISE,
        main=True,
        sweep=True,
        plotted=True,
        summary=True,
        shown=True,
    ),
    MetricSpec(
        "f1",
        "F1",
        True,
        "harmonic mean of pairwise precision and recall",
        _PAIRWISE,
        main=True,
        sweep=True,
        plotted=True,
        summary=True,
        shown=True,
    ),
    MetricSpec(
        "map",
        "MAP",
        True,
        "mean average precision per query, over all images (imagededup's convention)",
        _RANKING,
        main=True,
        sweep=True,
        plotted=True,
        shown=True,
        compat="map",
    ),
    MetricSpec(
        "ndcg",
        "NDCG",
        True,
        "normalized DCG per query, ideal ranking from the truth",
        _RANKING,
        main=True,
        sweep=True,
        shown=True,
    ),
    MetricSpec(
        "ndcg_imagededup",
        "NDCG (imagededup)",
        True,
        "imagededup's NDCG: ideal DCG from the retrieved list's own relevances",
        _RANKING,
        compat="ndcg",
    ),
    MetricSpec(
        "trec_map",
        "MAP (trec)",
        True,
        "MAP averaged over queries with duplicates only (trec_eval)",
        _RANKING,
        sweep=True,
    ),
    MetricSpec(
        "trec_ndcg",
        "NDCG (trec)",
        True,
        "NDCG averaged over queries with duplicates only (trec_eval)",
        _RANKING,
        sweep=True,
    ),
    MetricSpec(
        "jaccard",
        "Jaccard",
        True,
        "per query, |retrieved ∩ true| / |retrieved ∪ true|, averaged",
        _RANKING,
        sweep=True,
        compat="jaccard",
    ),
    MetricSpec(
        "micro_ap",
        "μAP",
        True,
        "micro average precision over all scored pairs (DISC21)",
        "dupbench.evaluation.curves.micro_ap; arXiv:2106.09672",
        main=True,
        summary=True,
        shown=True,
    ),
    MetricSpec(
        "recall_at_precision",
        "R@P",
        True,
        "the highest recall at a threshold whose precision reaches the target",
        _POINTS,
        main=True,
        shown=True,
    ),
    MetricSpec(
        "best_f1",
        "best F1",
        True,
        "the highest F1 over every threshold searched",
        _POINTS,
        main=True,
        shown=True,
    ),
    MetricSpec(
        "best_f1_threshold",
        "best-F1 thr.",
        None,
        "the threshold of best F1",
        _POINTS,
        main=True,
        digits=2,
        shown=True,
    ),
    MetricSpec(
        "n_candidates",
        "candidates",
        None,
        "candidate pairs the search returned",
        "dupbench.evaluation.all_metrics.threshold_free_scores",
        shown=True,
    ),
    MetricSpec(
        "n_truth",
        "truth pairs",
        None,
        "true duplicate pairs",
        "dupbench.evaluation.all_metrics.scores_at",
        shown=True,
    ),
):
    METRICS.add(_spec.name, _spec)
