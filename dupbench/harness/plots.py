"""Figures of stored runs (PNG and PDF): PR curves, metrics vs threshold, score histograms,
recall per transform (at each run's threshold, and at one pair precision for all), quality vs
throughput, memory per stage.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no display needed); scores
come from ``dupbench.evaluation``, never computed here. They stay readable from one run to a
sweep of many: runs with identical stored curves (a threshold sweep of one method) are drawn
once, each drawn group has its own colour × dash × marker, legends sit outside the axes, and
past a few runs labels give way to legends and bars to heatmaps. Exact digests, which have one
operating point, are drawn as points and bars, never as curves over a threshold axis.
"""

from __future__ import annotations

import hashlib
import math
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dupbench import files
from dupbench.evaluation.catalogue import specs
from dupbench.harness import tables
from dupbench.harness.store import CURVE_FILE, SWEEP_FILE, StoredRun
from dupbench.harness.tables import breakdown_table

FORMATS = ("png", "pdf")
STAGES = ("load", "encode", "index", "search", "evaluate")
#: styles of the drawn groups; the lengths are pairwise coprime, so (colour, dash) pairs repeat
#: only after 13 × 5 = 65 groups and whole styles after 65 × 7
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#000000",
    "#000075",
    "#469990",
)
DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: more points than this and quality_vs_throughput uses a legend instead of labels; more runs
#: than this and the memory figure is a heatmap instead of grouped bars
MAX_LABELS, MAX_BAR_GROUPS = 16, 16


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{fmt}" for fmt in FORMATS]
    for path in paths:  # no creation date in PDFs: the same runs give the same bytes
        with files.replacing(path) as tmp:  # a report cut short leaves no empty figure
            fig.savefig(
                tmp, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None
            )
    return paths


def _grid(fig, n: int, ncols: int = 4):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def line_style(k: int) -> dict:
    """Colour, dash and marker of the k-th drawn group (see ``PALETTE``)."""
    return {
        "color": PALETTE[k % len(PALETTE)],
        "ls": DASHES[k % len(DASHES)],
        "marker": MARKERS[k % len(MARKERS)],
    }


def _small_multiples_figure(n: int, extra_height: float = 0.0):
    ncols = max(1, min(4, n))
    return _figure(3.2 * ncols, 2.6 * math.ceil(n / ncols) + extra_height)


# -- groups of runs drawn as one -----------------------------------------------------------------

_THRESHOLD_TWEAK = re.compile(r"threshold=[^,)]*")


def _file_digest(run: StoredRun, name: str) -> str:
    path = run.data_dir / name
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def group_runs(runs: list[StoredRun]) -> list[list[StoredRun]]:
    """Runs whose stored curve and sweep are identical (same dataset, same scored pairs: the
    runs of a threshold sweep of one method), in the order of their first run."""
    groups: dict[tuple, list[StoredRun]] = {}
    for run in runs:
        key = (
            run.record.dataset.checksum,
            run.record.distance,
            _file_digest(run, CURVE_FILE),
            _file_digest(run, SWEEP_FILE),
        )
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def _span(values: list[float]) -> str:
    """ "0–16" for consecutive integers, else the values (at most six, then "…")."""
    values = sorted(set(values))
    text = [f"{v:g}" for v in values]
    consecutive = (
        all(float(v).is_integer() for v in values)
        and len(values) > 2
        and (values[-1] - values[0] == len(values) - 1)
    )
    if consecutive:
        return f"{text[0]}–{text[-1]}"
    return ", ".join(text[:6]) + (", …" if len(text) > 6 else "")


def group_label(group: list[StoredRun]) -> str:
    """The run's label, or for several runs their label without the threshold, the count and
    the thresholds: "phash (17 runs, thresholds 0–16)"."""
    if len(group) == 1:
        return group[0].label
    bases = []
    for run in group:
        base = _THRESHOLD_TWEAK.sub("", run.label).replace("(, ", "(").replace(", )", ")")
        bases.append(base.replace(" ()", "").strip())
    base = " / ".join(dict.fromkeys(bases))
    thresholds = _span([run.record.threshold for run in group])
    return f"{base} ({len(group)} runs, thresholds {thresholds})"


def _one_point(run: StoredRun) -> bool:
    """Exact digests (and any run whose sweep has a single threshold) have one operating point:
    a curve over the threshold would be meaningless."""
    return not run.record.distance.graded or len(run.table(SWEEP_FILE)) <= 1


def _threshold_marks(ax, group: list[StoredRun]) -> None:
    """The run thresholds of a panel: a dashed line for one run, ticks along the bottom for
    many (so that a sweep does not paint the panel grey)."""
    thresholds = sorted({run.record.threshold for run in group})
    if len(thresholds) <= 2:
        for t in thresholds:
            ax.axvline(t, color="grey", ls="--", lw=0.8)
    else:
        ax.plot(
            thresholds,
            np.zeros(len(thresholds)),
            "|",
            color="grey",
            ms=8,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )


def _panel_title(ax, text: str) -> None:
    ax.set_title(textwrap.fill(text, 42), fontsize=9)


def _outside_legend(fig, handles, labels, fontsize: float = 7, title: str | None = None):
    """A legend to the right of the axes, in as many columns as keep it below ~30 rows."""
    ncol = max(1, math.ceil(len(labels) / 30))
    return fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize=fontsize,
        ncol=ncol,
        title=title,
        title_fontsize=fontsize,
        frameon=False,
    )


def _legend_width(labels: list[str], fontsize: float = 7) -> float:
    """Inches a right-hand legend of ``labels`` takes (a character is about 0.55 em wide)."""
    ncol = max(1, math.ceil(len(labels) / 30))
    longest = max((len(t) for t in labels), default=10)
    return ncol * (0.7 + 0.55 * fontsize / 72 * longest)


# -- the figures ---------------------------------------------------------------------------------


def pr_curves(runs: list[StoredRun], out: Path) -> list[Path]:
    """Pairwise precision against recall over every threshold, one curve per group of runs with
    the same curve, a marker at each run's own threshold; one-point methods are markers only."""
    groups = group_runs(runs)
    labels = [group_label(g) for g in groups]
    fig = _figure(5.5 + _legend_width(labels), max(5.0, 0.16 * min(len(labels), 30) + 1.2))
    ax = fig.subplots()
    handles = []
    for k, group in enumerate(groups):
        style = line_style(k)
        curve = group[0].table(CURVE_FILE)
        recall = [run.metrics["recall"] for run in group]
        precision = [run.metrics["precision"] for run in group]
        points = {
            "color": style["color"],
            "marker": style["marker"],
            "ms": 5,
            "mec": "white",
            "mew": 0.5,
        }
        if curve.empty or _one_point(group[0]):
            (handle,) = ax.plot(recall, precision, ls="none", **points)
        else:
            (handle,) = ax.plot(
                curve["recall"], curve["precision"], lw=1.4, ls=style["ls"], markevery=[], **points
            )
            ax.plot(recall, precision, ls="none", **points)
        handles.append(handle)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.set_title("Precision-recall over the threshold (marker: a run's threshold)", fontsize=10)
    ax.grid(alpha=0.3)
    _outside_legend(fig, handles, labels)
    return _save(fig, out, "pr_curves")


def _sweep_bars(ax, run: StoredRun) -> None:
    """The metrics of a one-point run as bars, in the colours of the sweep lines."""
    lines = specs("plotted")
    names = [s.title for s in lines]
    values = [run.metrics.get(s.name, math.nan) for s in lines]
    bars = ax.bar(names, values, color=[f"C{k}" for k in range(len(names))])
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set(xlabel="one operating point (exact match)", ylim=(0, 1.15))


def metrics_vs_threshold(runs: list[StoredRun], out: Path) -> list[Path]:
    """Precision, recall, F1 and MAP against the threshold, one panel per group of runs with the
    same sweep (ticks: the runs' thresholds); bars for one-point methods."""
    groups = group_runs(runs)
    lines = specs("plotted")
    fig = _small_multiples_figure(len(groups), extra_height=0.3)
    for ax, group in zip(_grid(fig, len(groups)), groups):
        run = group[0]
        _panel_title(ax, group_label(group))
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
        if _one_point(run):
            _sweep_bars(ax, run)
            continue
        sweep = run.table(SWEEP_FILE)
        for k, line in enumerate(lines):
            if line.name in sweep:
                ax.plot(
                    sweep["threshold"],
                    sweep[line.name],
                    marker=".",
                    ms=3,
                    lw=1,
                    label=line.title,
                    color=f"C{k}",
                )
        _threshold_marks(ax, group)
        ax.set(xlabel=f"threshold ({run.record.distance.score_name})")
    if groups:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=f"C{k}", marker=".") for k in range(len(lines))]
        fig.legend(
            handles,
            [line.title for line in lines],
            loc="outside upper center",
            ncol=len(lines),
            fontsize=8,
            frameon=False,
        )
    return _save(fig, out, "metrics_vs_threshold")


def score_histograms(runs: list[StoredRun], out: Path) -> list[Path]:
    """Scores of true and of false candidate pairs, one panel per group of runs with the same
    pairs: their overlap is what no threshold separates. One-point methods: two bars."""
    from dupbench.evaluation import score_distributions

    groups = group_runs(runs)
    fig = _small_multiples_figure(len(groups), extra_height=0.3)
    colours = {"false": "tab:red", "true": "tab:blue"}
    for ax, group in zip(_grid(fig, len(groups)), groups):
        run = group[0]
        truth = run.truth()
        dist = score_distributions(run.candidates(), truth.pairs, truth.n)
        true, false = dist["true_pairs"], dist["false_pairs"]
        both = np.concatenate([true, false]).astype(float)
        ax.set_title(
            textwrap.fill(group_label(group), 42) + f"\ntrue {len(true)}, false {len(false)} pairs",
            fontsize=9,
        )
        ax.set(ylabel="pairs")
        if not len(both):
            ax.text(
                0.5, 0.5, "no candidate pairs", ha="center", va="center", transform=ax.transAxes
            )
            continue
        if _one_point(run):
            ax.bar(
                ["false", "true"],
                [len(false), len(true)],
                color=[colours["false"], colours["true"]],
                alpha=0.6,
            )
            ax.set(xlabel="exact matches (one operating point)")
            continue
        discrete = run.record.distance.discrete
        bins: int | np.ndarray = np.arange(both.min() - 0.5, both.max() + 1.5) if discrete else 30
        ax.hist(false, bins=bins, alpha=0.6, color=colours["false"])
        ax.hist(true, bins=bins, alpha=0.6, color=colours["true"])
        _threshold_marks(ax, group)
        ax.set(xlabel=str(run.record.distance), yscale="log")
    if groups:
        from matplotlib.patches import Patch

        handles = [Patch(color=c, alpha=0.6) for c in colours.values()]
        fig.legend(
            handles,
            ["false pairs", "true pairs"],
            loc="outside upper center",
            ncol=2,
            fontsize=8,
            frameon=False,
        )
    return _save(fig, out, "score_histograms")


def _annotated_heatmap(
    fig, ax, values: np.ndarray, rows: list[str], cols: list[str], fmt: str, label: str, **imshow
) -> None:
    """A heatmap with each cell's value written in it (white on dark cells)."""
    image = ax.imshow(values, aspect="auto", **imshow)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    low, high = image.norm.vmin, image.norm.vmax
    for (r, c), v in np.ndenumerate(values):
        if not np.isnan(v):
            dark = (v - low) / (high - low or 1) < 0.6
            ax.text(
                c,
                r,
                format(v, fmt),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if dark else "black",
            )
    fig.colorbar(image, ax=ax, label=label, shrink=min(1.0, 8 / max(8, len(rows))))


def recall_heatmap(runs: list[StoredRun], out: Path, column: str = "transform") -> list[Path]:
    """Recall of each run on each group of truth pairs, as a heatmap: runs as columns, or as
    rows when there are more runs than groups (so that the figure grows downwards)."""
    table = breakdown_table(runs, column)
    if table.empty:
        return []
    values = table.drop(columns=[column, "pairs"])
    groups = [f"{g} ({p})" for g, p in zip(table[column], table["pairs"])]
    matrix, rows, cols = values.to_numpy(dtype=float), groups, list(values.columns)
    if len(cols) > len(rows):
        matrix, rows, cols = matrix.T, cols, rows
    width = 2.5 + 0.5 * len(cols) + 0.05 * max(len(r) for r in rows)
    fig = _figure(width, 1.6 + 0.26 * len(rows))
    ax = fig.subplots()
    _annotated_heatmap(fig, ax, matrix, rows, cols, ".2f", "recall", vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"Recall per {column} at each run's threshold", fontsize=9)
    return _save(fig, out, f"recall_per_{column}")


def recall_at_precision_heatmap(
    runs: list[StoredRun], out: Path, column: str = "transform"
) -> list[Path]:
    """Recall per group of truth pairs at one pair precision (the runs' target, 99 % by default)
    for every method: methods as rows, groups as columns and every pair last. Each method sits at
    its own threshold where precision over all pairs reaches the target, so, unlike
    ``recall_heatmap``, the cells compare methods at one precision. Runs of one sweep (the same
    pairs) are one row: the threshold they were run at does not change this figure."""
    groups = group_runs(runs)
    shown = [replace(group[0], shown_as=group_label(group)) for group in groups]
    precision = tables.common_target_precision(shown)
    table, points = tables.recall_at_precision_table(shown, column, precision)
    if table.empty:
        return []
    methods = list(points.index)
    cols = [f"{g} ({p})" for g, p in zip(table[column], table["pairs"])]
    matrix = table[methods].to_numpy(dtype=float).T
    rows = [f"{m} ({_threshold_text(t)})" for m, t in zip(methods, points["threshold"])]
    width = 3.0 + 0.42 * len(cols) + 0.06 * max(len(r) for r in rows)
    fig = _figure(width, 2.0 + 0.26 * len(rows))
    ax = fig.subplots()
    _annotated_heatmap(fig, ax, matrix, rows, cols, ".2f", "recall", vmin=0, vmax=1, cmap="viridis")
    ax.axvline(len(cols) - 1.5, color="white", lw=2)  # every pair, apart from the groups
    ax.set_title(
        f"Recall per {column} at {precision:.0%} pair precision\n(each method at its own threshold "
        f"t where its precision over all pairs reaches {precision:.0%}; never: no threshold does)",
        fontsize=9,
    )
    return _save(fig, out, f"recall_per_{column}_at_precision")


def _threshold_text(threshold: float) -> str:
    """ "t = 8", "t = 0.9701", or "never" where no threshold reaches the target precision."""
    if math.isnan(threshold):
        return "never"
    return f"t = {threshold:g}" if float(threshold).is_integer() else f"t = {threshold:.4f}"


def _place_labels(fig, ax, xs, ys, texts: list[str], fontsize: float = 7) -> None:
    """Label each point beside it where the label overlaps no other label nor point (first free
    spot of a ring of candidates, further out when the near ones are taken; a thin line joins
    a label set apart to its point)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # measures text as the PNG draws it
    fig.draw_without_rendering()  # the final layout, so that display coordinates hold
    points = ax.transData.transform(np.column_stack([xs, ys]))
    frame = ax.get_window_extent(renderer)
    taken = [(x - 4, y - 4, x + 4, y + 4) for x, y in points]
    ring = [(6, 3), (6, -11), (-6, 3), (-6, -11), (0, 9), (0, -16)]
    offsets = (
        ring + [(dx * 2.5, dy * 2.5) for dx, dy in ring] + [(dx * 4, dy * 4) for dx, dy in ring]
    )
    scale = fig.dpi / 72
    for (x, y), text in zip(points, texts):
        best: tuple | None = None  # (clashes, dx, dy, ha, box) of the best offset so far
        for dx, dy in offsets:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            note = ax.annotate(text, (0, 0), xycoords="axes pixels", fontsize=fontsize, ha=ha)
            w, h = (note.get_window_extent(renderer).width, note.get_window_extent(renderer).height)
            note.remove()
            x0 = x + dx * scale - {"left": 0, "right": w, "center": w / 2}[ha]
            box = (x0, y + dy * scale, x0 + w, y + dy * scale + h)
            inside = (
                frame.x0 <= box[0]
                and box[2] <= frame.x1
                and box[3] <= frame.y1
                and (frame.y0 <= box[1])
            )
            clashes = sum(_overlap(box, other) for other in taken) + (0 if inside else 1e9)
            if best is None or clashes < best[0]:
                best = (clashes, dx, dy, ha, box)
            if clashes == 0:
                break
        assert best is not None  # offsets is not empty
        _, dx, dy, ha, box = best
        far = abs(dx) > 8 or abs(dy) > 16
        ax.annotate(
            text,
            ax.transData.inverted().transform((x, y)),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=fontsize,
            ha=ha,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if far else None,
        ).set_in_layout(False)
        taken.append(box)


def _overlap(a: tuple, b: tuple) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def quality_vs_throughput(
    runs_df: pd.DataFrame, out: Path, runs: list[StoredRun] | None = None
) -> list[Path]:
    """F1 at the run's threshold (filled) and best F1 over all thresholds (hollow) against
    encoding throughput, in the style of each group of ``runs`` (as in the PR curves). Few
    points are labelled beside themselves; many get a legend instead."""
    from matplotlib.ticker import LogFormatter

    if runs:
        groups = group_runs(runs)
        labels = [group_label(g) for g in groups]
        number = {str(run.dir): k for k, group in enumerate(groups) for run in group}
        shown = runs_df.assign(_k=[number[d] for d in runs_df["run_dir"]])
    else:
        labels = list(runs_df["label"])
        shown = runs_df.assign(_k=range(len(runs_df)))
    direct = len(shown) <= MAX_LABELS
    legend_labels = [] if direct else labels
    fig = _figure(6.5 + _legend_width(legend_labels) if legend_labels else 7.5, 5.0)
    ax = fig.subplots()
    handles = []
    for k in range(len(labels)):
        rows = shown[shown["_k"] == k]
        style = line_style(k)
        marks = {"marker": style["marker"], "color": style["color"], "ls": "none", "ms": 6}
        (handle,) = ax.plot(rows["images_per_s"], rows["f1"], **marks)
        ax.plot(rows["images_per_s"], rows["best_f1"], mfc="none", **marks)
        handles.append(handle)
    ax.set(
        xscale="log", xlabel="encode throughput (images/s, log)", ylabel="F1", ylim=(-0.02, 1.05)
    )
    ax.xaxis.set_major_formatter(LogFormatter())  # 300, not 3×10²
    ax.xaxis.set_minor_formatter(LogFormatter())
    ax.set_title(
        "Quality vs throughput (filled: F1 at the run's threshold; hollow: best F1)", fontsize=9
    )
    ax.grid(alpha=0.3)
    if direct:
        _place_labels(fig, ax, shown["images_per_s"], shown["f1"], list(shown["label"]))
    else:
        _outside_legend(fig, handles, labels)
    return _save(fig, out, "quality_vs_throughput")


def memory_bars(runs_df: pd.DataFrame, out: Path) -> list[Path]:
    """Peak resident memory of each stage per run: grouped bars, or a heatmap for many runs."""
    stages = [s for s in STAGES if f"{s}_peak_rss_mb" in runs_df]
    title = "Peak memory per stage, MB (process and workers)"
    if len(runs_df) > MAX_BAR_GROUPS:
        labels = list(runs_df["label"])
        fig = _figure(
            3.0 + 0.7 * len(stages) + 0.05 * max(map(len, labels)), 1.6 + 0.26 * len(labels)
        )
        ax = fig.subplots()
        values = runs_df[[f"{s}_peak_rss_mb" for s in stages]].to_numpy(dtype=float)
        _annotated_heatmap(fig, ax, values, labels, stages, ".0f", "peak RSS (MB)", cmap="magma")
        ax.set_title(title, fontsize=9)
        return _save(fig, out, "memory")
    fig = _figure(max(6.0, 0.9 * len(runs_df) + 2), 4.5)
    ax = fig.subplots()
    width = 0.8 / max(1, len(stages))
    x = np.arange(len(runs_df))
    for k, stage in enumerate(stages):
        ax.bar(x + k * width, runs_df[f"{stage}_peak_rss_mb"], width, label=stage)
    ax.set_xticks(
        x + width * (len(stages) - 1) / 2, runs_df["label"], rotation=45, ha="right", fontsize=8
    )
    ax.set(ylabel="peak RSS (MB)")
    ax.set_title(title, fontsize=10)
    fig.legend(fontsize=7, loc="outside right upper", frameon=False)
    return _save(fig, out, "memory")


def all_plots(runs: list[StoredRun], runs_df: pd.DataFrame, out: Path) -> list[Path]:
    paths = []
    paths += pr_curves(runs, out)
    paths += metrics_vs_threshold(runs, out)
    paths += score_histograms(runs, out)
    paths += recall_heatmap(runs, out, "transform")
    paths += recall_at_precision_heatmap(runs, out, "transform")
    paths += quality_vs_throughput(runs_df, out, runs)
    paths += memory_bars(runs_df, out)
    return paths
