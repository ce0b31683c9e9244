"""``dupbench report``: tables in three formats with the best values marked, breakdowns per
transform and severity, figures; and the table formatting itself."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
from harness_fixtures import TINY_TRANSFORMS, build_tiny_dataset, tiny_overrides, working_dir

from dupbench.harness import plots, tables
from dupbench.harness.app import run_hydra
from dupbench.harness.report import write_report
from dupbench.harness.store import find_runs, runs_table, survey_runs


@pytest.fixture(scope="module")
def results(tmp_path_factory, photos):
    """Three methods of different kinds (hash, digest, hash) run on the tiny dataset."""
    root = tmp_path_factory.mktemp("report")
    tiny = build_tiny_dataset(root, photos)
    with working_dir(root):
        run_hydra(["-m", "method=ahash,pixel_digest,dhash", "report=false", *tiny_overrides(tiny)])
    return root / "results"


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return write_report(results, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, photos):
    """One multirun: aHash at thresholds 10, 2 and 1, and a dHash job that fails (its method
    cannot be built), as a missing optional package would make it."""
    from dupbench.harness import execute

    root = tmp_path_factory.mktemp("sweep")
    tiny = build_tiny_dataset(root, photos)
    build = execute.build_method

    def failing_dhash(cfg):
        if cfg.method.name == "dhash":
            raise ImportError("the dhash method needs the nosuch package")
        return build(cfg)

    with working_dir(root), pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute, "build_method", failing_dhash)
        with pytest.raises((ImportError, SystemExit)):  # Hydra raises after every job ran
            run_hydra(
                [
                    "-m",
                    "method=ahash,dhash",
                    "benchmark.threshold=10,2,1",
                    "report=false",
                    *tiny_overrides(tiny),
                ]
            )
    (sweep_dir,) = (root / "results" / "runs").glob("*/*_multirun")
    return sweep_dir


def test_main_table_in_three_formats(report):
    csv = pd.read_csv(report.out / "main.csv")
    assert list(csv["method"]) == ["ahash", "dhash", "pixel_digest"]
    assert [c.title for c in tables.main_columns()] == list(csv.columns)
    runs = report.runs.set_index("label")
    for _, row in csv.iterrows():  # the table shows the stored numbers, not recomputed ones
        assert row["F1"] == runs.loc[row["method"], "f1"]
        assert row["μAP"] == runs.loc[row["method"], "micro_ap"]
    markdown = (report.out / "main.md").read_text()
    latex = (report.out / "main.tex").read_text()
    assert markdown.count("\n") == 2 + len(csv)
    assert r"\begin{tabular}" in latex and r"\bottomrule" in latex and r"$\mu$AP" in latex
    best_recall = csv["recall"].max()
    winners = csv.loc[csv["recall"] == best_recall, "method"]
    for name in winners:
        line = next(x for x in markdown.splitlines() if x.startswith(f"| {name} |"))
        assert f"**{best_recall:.3f}**" in line
        assert rf"\textbf{{{best_recall:.3f}}}" in latex


def test_pixel_digest_finds_only_exact_copies(report):
    """A sanity check of the whole pipeline: the tiny dataset has no byte/pixel copies among its
    edits (jpeg, downscale, crop, hflip, brightness), so the digest finds no true pairs."""
    digest = report.runs.set_index("label").loc["pixel_digest"]
    assert digest["threshold"] == 0 and digest["metric"] == "equal"
    assert digest["tp"] == 0 and digest["recall"] == 0


def test_breakdown_tables_per_transform_and_severity(report, results):
    per_transform = pd.read_csv(report.out / "breakdown_transform.csv")
    assert set(per_transform["transform"]) == set(TINY_TRANSFORMS) | {"mixed"}
    assert {"ahash", "dhash", "pixel_digest"} <= set(per_transform.columns)
    assert per_transform[["ahash", "dhash"]].stack().between(0, 1).all()
    # one run's recall on one transform equals what its own breakdown.csv stored
    (ahash,) = [r for r in find_runs(results) if r.label == "ahash"]
    stored = ahash.table("breakdown.csv").query("column == 'transform'").set_index("group")
    mine = per_transform.set_index("transform")
    for transform in TINY_TRANSFORMS:
        assert mine.loc[transform, "ahash"] == stored.loc[transform, "recall"]
        assert mine.loc[transform, "pairs"] == stored.loc[transform, "pairs"]
    assert (report.out / "breakdown_severity.csv").is_file()
    combined = pd.read_csv(report.out / "breakdown_transform_severity.csv")
    assert any(str(v).startswith("jpeg/") for v in combined.iloc[:, 0])


def test_figures_are_written_as_png_and_pdf(report):
    pngs = sorted(p.stem for p in report.out.glob("*.png"))
    assert pngs == sorted(
        [
            "pr_curves",
            "metrics_vs_threshold",
            "score_histograms",
            "recall_per_transform",
            "recall_per_transform_at_precision",
            "quality_vs_throughput",
            "memory",
        ]
    )
    for stem in pngs:
        assert (report.out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (report.out / f"{stem}.png").stat().st_size > 5000
    text = (report.out / "report.md").read_text()
    assert "![pr_curves](pr_curves.png)" in text and "## Recall per transform" in text


def test_report_command(results, tmp_path, capsys):
    from dupbench.cli import report as report_cli

    args = argparse.Namespace(results_dir=results, out=tmp_path / "r", no_figures=True)
    assert report_cli.report(args) == 0
    assert "| method |" in capsys.readouterr().out
    assert (tmp_path / "r" / "main.tex").is_file() and not list((tmp_path / "r").glob("*.png"))
    from dupbench.cli import main

    assert main(["report", str(tmp_path / "r"), "--no-figures"]) == 1
    assert "no finished runs" in capsys.readouterr().err


def test_best_values_respect_the_direction_of_each_column():
    table = pd.DataFrame(
        {
            "method": ["a", "b", "c"],
            "F1": [0.5, 0.9, 0.9],
            "encode s": [3.0, 1.0, 2.0],
            "threshold": [1.0, 9.0, 5.0],
            "peak MB": [math.nan, 50.0, 70.0],
        }
    )
    best = tables.best_mask(table)
    assert list(best["F1"]) == [False, True, True]  # ties are all marked
    assert list(best["encode s"]) == [False, True, False]  # lower is better
    assert not best["threshold"].any() and not best["method"].any()  # not ranked
    assert list(best["peak MB"]) == [False, True, False]  # NaN never wins
    per_row = tables.best_mask(
        pd.DataFrame({"g": ["x"], "a": [0.2], "b": [0.7]}),
        (tables.Column("g", "g", None),),
        per_row=True,
    )
    assert list(per_row.iloc[0]) == [False, False, True]


def test_formatting_of_cells_and_latex_escapes():
    table = pd.DataFrame({"method": ["my_hash & co"], "F1": [np.nan], "images/s": [1234.56]})
    markdown = tables.to_markdown(table)
    assert "| my_hash & co | – | 1234.6 |" in markdown
    latex = tables.to_latex(table, caption="50% of 100_000")
    assert r"my\_hash \& co" in latex and r"50\% of 100\_000" in latex


def test_sweep_rows_in_numeric_threshold_order(sweep, tmp_path):
    report = write_report(sweep, tmp_path, figures=False)
    csv = pd.read_csv(tmp_path / "main.csv")
    # as text, "threshold=10" would come before "threshold=2"
    assert list(csv["method"]) == [f"ahash (threshold={t})" for t in (1, 2, 10)]
    assert list(csv["threshold"]) == [1, 2, 10]
    assert list(report.runs["label"]) == list(csv["method"])


def test_failed_jobs_are_listed_in_the_report(sweep, tmp_path, capsys):
    from dupbench.cli import report as report_cli

    runs, broken = survey_runs(sweep)
    assert len(runs) == 3
    assert sorted(b.dir.name for b in broken) == ["3_dhash", "4_dhash", "5_dhash"]
    assert {b.kind for b in broken} == {"failed"}
    assert all(b.reason == "ImportError: the dhash method needs the nosuch package" for b in broken)
    args = argparse.Namespace(results_dir=sweep, out=tmp_path, no_figures=True)
    assert report_cli.report(args) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("3 runs finished, 3 failed: 3_dhash (ImportError: the dhash")
    text = (tmp_path / "report.md").read_text()
    assert "3 runs finished below" in text and "## Runs left out (3)" in text
    assert "- `4_dhash` (failed): ImportError: the dhash method needs the nosuch package" in text


def test_a_job_folder_without_run_json_is_listed_as_unfinished(results, tmp_path):
    import shutil

    shutil.copytree(results, tmp_path / "results")
    killed = next((tmp_path / "results").rglob("*_dhash"))
    (killed / "run.json").unlink()  # as a job killed before it finished leaves it
    report = write_report(tmp_path / "results", tmp_path / "out", figures=False)
    assert report.summary() == (
        f"2 runs finished, 1 unfinished: {killed.name} (no run.json: "
        "killed, failed or still running)"
    )
    assert "dhash" not in set(report.runs["label"])


def test_a_run_with_an_empty_candidates_file_is_skipped_with_one_line(results, tmp_path, capsys):
    import shutil

    from dupbench.cli import report as report_cli

    shutil.copytree(results, tmp_path / "results")
    damaged = next((tmp_path / "results").rglob("*_ahash"))
    (damaged / "candidates.npz").write_bytes(b"")  # as a write cut short leaves it
    args = argparse.Namespace(
        results_dir=tmp_path / "results", out=tmp_path / "out", no_figures=False
    )
    assert report_cli.report(args) == 0  # figures read candidates: no EOFError
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        f"2 runs finished, 1 damaged: {damaged.name} (candidates.npz is empty (0 bytes)); "
    )
    assert err[0].endswith(f" files in {tmp_path / 'out'}")
    assert (tmp_path / "out" / "score_histograms.png").stat().st_size > 5000
    assert list(pd.read_csv(tmp_path / "out" / "main.csv")["method"]) == ["dhash", "pixel_digest"]
    # a cut-short file (not a complete zip) is caught the same way
    (damaged / "candidates.npz").write_bytes(b"PK\x03\x04 cut short")
    (_, broken) = survey_runs(tmp_path / "results")
    assert [b.reason for b in broken] == ["candidates.npz is damaged (not a complete .npz file)"]


def test_an_interrupted_report_leaves_the_previous_files_whole(
    results, report, tmp_path, monkeypatch
):
    import shutil

    from matplotlib.figure import Figure

    out = tmp_path / "out"
    shutil.copytree(report.out, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed_while_saving(fig, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        write_report(results, out)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no temporary file left, no figure truncated


# -- figures at many runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_runs(results, tmp_path_factory):
    """51 stored runs with 51 different curves: copies of the aHash run, each with its own
    label, threshold and a slightly lowered precision curve."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("many")
    (source,) = [r for r in find_runs(results) if r.label == "ahash"]
    for k in range(51):
        copy = root / f"{k}_ahash"
        shutil.copytree(source.dir, copy)
        info = json.loads((copy / "run.json").read_text())
        info.update(key=f"key{k}", label=f"ahash variant {k}", threshold=k % 17)
        (copy / "run.json").write_text(json.dumps(info))
        curve = pd.read_csv(copy / "curve.csv")
        curve["precision"] *= 1 - k / 200
        curve.to_csv(copy / "curve.csv", index=False)
    return find_runs(root)


def _drawn(monkeypatch, draw, *args):
    """The figure a plot function builds (instead of saving it), laid out."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out, name: figures.append(fig) or [])
    draw(*args)
    (fig,) = figures
    fig.draw_without_rendering()
    return fig


def _outside(legend, ax) -> bool:
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    return box.x0 >= frame.x1 or box.y0 >= frame.y1


def test_pr_curves_of_51_runs_keep_the_axes_and_a_distinct_style_each(
    many_runs, tmp_path, monkeypatch
):
    fig = _drawn(monkeypatch, plots.pr_curves, many_runs, tmp_path)
    (ax,) = fig.axes
    (legend,) = fig.legends
    assert len(legend.get_texts()) == 51 and _outside(legend, ax)
    frame = ax.get_window_extent()
    assert frame.width > 0.45 * fig.bbox.width and frame.height > 0.8 * fig.bbox.height
    # each curve is drawn in its group's style, and no two of the 51 styles share colour and dash
    # (Line2D reports every custom dash pattern as "--", so the dashes are read from the styles)
    styles = [plots.line_style(k) for k in range(51)]
    drawn = [(h.get_color(), h.get_marker()) for h in legend.legend_handles]
    assert drawn == [(s["color"], s["marker"]) for s in styles]
    assert len({(s["color"], str(s["ls"])) for s in styles}) == 51


def test_13_styles_have_13_colours():
    assert len({plots.line_style(k)["color"] for k in range(13)}) == 13


def test_a_threshold_sweep_is_one_curve(sweep, tmp_path, monkeypatch):
    runs = find_runs(sweep)
    (group,) = plots.group_runs(runs)
    assert plots.group_label(group) == "ahash (3 runs, thresholds 1, 2, 10)"
    fig = _drawn(monkeypatch, plots.pr_curves, runs, tmp_path)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [plots.group_label(group)]
    fig = _drawn(monkeypatch, plots.metrics_vs_threshold, runs, tmp_path)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1


def test_quality_vs_throughput_labels_few_points_apart_and_legends_many(
    results, many_runs, tmp_path, monkeypatch
):
    runs = find_runs(results)
    fig = _drawn(monkeypatch, plots.quality_vs_throughput, runs_table(runs), tmp_path, runs)
    (ax,) = fig.axes
    notes = [t for t in ax.texts if t.get_text() in {r.label for r in runs}]
    assert len(notes) == 3 and not fig.legends
    boxes = [t.get_window_extent() for t in notes]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    fig = _drawn(
        monkeypatch, plots.quality_vs_throughput, runs_table(many_runs), tmp_path, many_runs
    )
    (ax,) = fig.axes
    assert not ax.texts and _outside(fig.legends[0], ax)


def test_a_digest_has_bars_not_a_threshold_axis(results, tmp_path, monkeypatch):
    import shutil

    from dupbench.records import Candidates

    (digest,) = [r for r in find_runs(results) if r.label == "pixel_digest"]
    fig = _drawn(monkeypatch, plots.metrics_vs_threshold, [digest], tmp_path)
    (ax,) = fig.axes
    assert not ax.lines and len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["precision", "recall", "F1", "MAP"]
    fig = _drawn(monkeypatch, plots.pr_curves, [digest], tmp_path)
    (line,) = fig.axes[0].lines  # one marker at its one operating point, no curve
    assert line.get_linestyle() == "None" and len(line.get_xdata()) == 1
    # the tiny dataset has no exact copies; with one true and one false exact match stored,
    # the histogram panel is two bars of one pair each
    shutil.copytree(digest.dir, tmp_path / "run")
    (a, b) = digest.truth().pairs[0]
    Candidates([min(a, b), 0], [max(a, b), digest.truth().n - 1], [0, 0], "equal").save(
        tmp_path / "run" / "candidates.npz"
    )
    (copy,) = find_runs(tmp_path / "run")
    fig = _drawn(monkeypatch, plots.score_histograms, [copy], tmp_path)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["false", "true"]
    assert [p.get_height() for p in ax.patches] == [1, 1]
