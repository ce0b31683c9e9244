"""Figures of stored runs (PNG and PDF): PR curves, metrics vs threshold, score histograms,
recall per transform, quality vs throughput, memory per stage.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no display needed); scores
come from ``dupbench.evaluation``, never computed here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dupbench import files
from dupbench.harness.store import CURVE_FILE, SWEEP_FILE, StoredRun
from dupbench.harness.tables import breakdown_table

FORMATS = ("png", "pdf")
SWEEP_LINES = (("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("map", "MAP"))
STAGES = ("load", "encode", "index", "search", "evaluate")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{fmt}" for fmt in FORMATS]
    for path in paths:  # no creation date in PDFs: the same runs give the same bytes
        with files.replacing(path) as tmp:  # a report cut short leaves no empty figure
            fig.savefig(tmp, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf"
                        else None)
    return paths


def _grid(fig, n: int, ncols: int = 4):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _line_style(k: int) -> dict:
    """A distinct colour and dash for the k-th run: ten colours, then the same ten dashed."""
    return {"color": f"C{k % 10}", "ls": ("-", "--", ":", "-.")[(k // 10) % 4]}


def _small_multiples_figure(n: int):
    ncols = max(1, min(4, n))
    return _figure(3.2 * ncols, 2.6 * math.ceil(n / ncols))


def pr_curves(runs: list[StoredRun], out: Path) -> list[Path]:
    """Pairwise precision against recall over every threshold; a dot at each run's threshold."""
    fig = _figure(6.5, 5)
    ax = fig.subplots()
    for k, run in enumerate(runs):
        curve = run.table(CURVE_FILE)
        if curve.empty:
            continue
        style = _line_style(k)
        ax.plot(curve["recall"], curve["precision"], label=run.label, lw=1.4, **style)
        ax.plot(run.metrics["recall"], run.metrics["precision"], "o", color=style["color"], ms=4)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title="Precision-recall over the threshold (dot: run threshold)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, out, "pr_curves")


def metrics_vs_threshold(runs: list[StoredRun], out: Path) -> list[Path]:
    """Precision, recall, F1 and MAP against the threshold, one panel per run."""
    fig = _small_multiples_figure(len(runs))
    for ax, run in zip(_grid(fig, len(runs)), runs):
        sweep = run.table(SWEEP_FILE)
        for key, name in SWEEP_LINES:
            if key in sweep:
                ax.plot(sweep["threshold"], sweep[key], marker=".", ms=3, lw=1, label=name)
        ax.axvline(run.info["threshold"], color="grey", ls="--", lw=0.8)
        unit = "similarity" if run.info["metric"] == "cosine" else "distance"
        ax.set(title=run.label, xlabel=f"threshold ({unit})", ylim=(-0.02, 1.02))
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    if runs:
        fig.axes[0].legend(fontsize=7)
    return _save(fig, out, "metrics_vs_threshold")


def score_histograms(runs: list[StoredRun], out: Path) -> list[Path]:
    """Scores of true and of false candidate pairs, one panel per run: their overlap is what no
    threshold separates."""
    from dupbench.evaluation import score_distributions

    fig = _small_multiples_figure(len(runs))
    for ax, run in zip(_grid(fig, len(runs)), runs):
        truth = run.truth()
        dist = score_distributions(run.candidates(), truth.pairs, truth.n)
        true, false = dist["true_pairs"], dist["false_pairs"]
        both = np.concatenate([true, false]).astype(float)
        if run.info["metric"] == "cosine" or not len(both):
            bins = 30
        else:
            bins = np.arange(both.min() - 0.5, both.max() + 1.5)
        ax.set(title=run.label, xlabel=run.info["metric"], ylabel="pairs")
        ax.title.set_fontsize(9)
        if not len(both):
            ax.text(0.5, 0.5, "no candidate pairs", ha="center", va="center",
                    transform=ax.transAxes)
            continue
        ax.hist(false, bins=bins, alpha=0.6, label=f"false ({len(false)})", color="tab:red")
        ax.hist(true, bins=bins, alpha=0.6, label=f"true ({len(true)})", color="tab:blue")
        ax.axvline(run.info["threshold"], color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    return _save(fig, out, "score_histograms")


def recall_heatmap(runs: list[StoredRun], out: Path, column: str = "transform") -> list[Path]:
    """Recall of each method (columns) on each group of truth pairs (rows), as a heatmap."""
    table = breakdown_table(runs, column)
    if table.empty:
        return []
    values = table.drop(columns=[column, "pairs"])
    fig = _figure(1.2 + 0.75 * values.shape[1], 1.2 + 0.3 * len(values))
    ax = fig.subplots()
    image = ax.imshow(values.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis",
                      aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(values)), [f"{g} ({p})" for g, p in zip(table[column], table["pairs"])],
                  fontsize=7)
    for (r, c), v in np.ndenumerate(values.to_numpy(dtype=float)):
        if not np.isnan(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.6 else "black")
    ax.set_title(f"Recall per {column} at each run's threshold", fontsize=9)
    fig.colorbar(image, ax=ax, label="recall")
    return _save(fig, out, f"recall_per_{column}")


def quality_vs_throughput(runs_df: pd.DataFrame, out: Path) -> list[Path]:
    """F1 at the run threshold and best F1 against encoding throughput (images per second)."""
    fig = _figure(6.5, 4.5)
    ax = fig.subplots()
    ax.scatter(runs_df["images_per_s"], runs_df["f1"], label="F1 at threshold")
    ax.scatter(runs_df["images_per_s"], runs_df["best_f1"], marker="x", label="best F1")
    for _, row in runs_df.iterrows():
        ax.annotate(row["label"], (row["images_per_s"], row["f1"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", xlabel="encode throughput (images/s, log)", ylabel="F1",
           ylim=(-0.02, 1.05), title="Quality vs throughput")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out, "quality_vs_throughput")


def memory_bars(runs_df: pd.DataFrame, out: Path) -> list[Path]:
    """Peak resident memory of each stage, grouped by run."""
    stages = [s for s in STAGES if f"{s}_peak_rss_mb" in runs_df]
    fig = _figure(max(6.0, 0.9 * len(runs_df) + 2), 4.5)
    ax = fig.subplots()
    width = 0.8 / max(1, len(stages))
    x = np.arange(len(runs_df))
    for k, stage in enumerate(stages):
        ax.bar(x + k * width, runs_df[f"{stage}_peak_rss_mb"], width, label=stage)
    ax.set_xticks(x + width * (len(stages) - 1) / 2, runs_df["label"], rotation=45, ha="right",
                  fontsize=8)
    ax.set(ylabel="peak RSS (MB)", title="Peak memory per stage (process and workers)")
    ax.legend(fontsize=7)
    return _save(fig, out, "memory")


def all_plots(runs: list[StoredRun], runs_df: pd.DataFrame, out: Path) -> list[Path]:
    paths = []
    paths += pr_curves(runs, out)
    paths += metrics_vs_threshold(runs, out)
    paths += score_histograms(runs, out)
    paths += recall_heatmap(runs, out, "transform")
    paths += quality_vs_throughput(runs_df, out)
    paths += memory_bars(runs_df, out)
    return paths
