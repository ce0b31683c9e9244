"""``dupbench report``: tables in three formats with the best values marked, breakdowns per
transform and severity, figures; and the table formatting itself."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
from harness_fixtures import TINY_TRANSFORMS, build_tiny_dataset, tiny_overrides, working_dir

from dupbench.harness import tables
from dupbench.harness.app import run_hydra
from dupbench.harness.report import write_report
from dupbench.harness.store import find_runs


@pytest.fixture(scope="module")
def results(tmp_path_factory, photos):
    """Three methods of different kinds (hash, digest, hash) run on the tiny dataset."""
    root = tmp_path_factory.mktemp("report")
    tiny = build_tiny_dataset(root, photos)
    with working_dir(root):
        run_hydra(["-m", "method=ahash,pixel_digest,dhash", "report=false",
                   *tiny_overrides(tiny)])
    return root / "results"


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return write_report(results, tmp_path_factory.mktemp("out"))


def test_main_table_in_three_formats(report):
    csv = pd.read_csv(report.out / "main.csv")
    assert list(csv["method"]) == ["ahash", "dhash", "pixel_digest"]
    assert [c.title for c in tables.MAIN_COLUMNS] == list(csv.columns)
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
    assert pngs == sorted(["pr_curves", "metrics_vs_threshold", "score_histograms",
                           "recall_per_transform", "quality_vs_throughput", "memory"])
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
    table = pd.DataFrame({"method": ["a", "b", "c"], "F1": [0.5, 0.9, 0.9],
                          "encode s": [3.0, 1.0, 2.0], "threshold": [1.0, 9.0, 5.0],
                          "peak MB": [math.nan, 50.0, 70.0]})
    best = tables.best_mask(table)
    assert list(best["F1"]) == [False, True, True]  # ties are all marked
    assert list(best["encode s"]) == [False, True, False]  # lower is better
    assert not best["threshold"].any() and not best["method"].any()  # not ranked
    assert list(best["peak MB"]) == [False, True, False]  # NaN never wins
    per_row = tables.best_mask(pd.DataFrame({"g": ["x"], "a": [0.2], "b": [0.7]}),
                               (tables.Column("g", "g", None),), per_row=True)
    assert list(per_row.iloc[0]) == [False, False, True]


def test_formatting_of_cells_and_latex_escapes():
    table = pd.DataFrame({"method": ["my_hash & co"], "F1": [np.nan], "images/s": [1234.56]})
    markdown = tables.to_markdown(table)
    assert "| my_hash & co | – | 1234.6 |" in markdown
    latex = tables.to_latex(table, caption="50% of 100_000")
    assert r"my\_hash \& co" in latex and r"50\% of 100\_000" in latex
