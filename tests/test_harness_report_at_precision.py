"""Recall per transform at one pair precision (table, figure, benchmark script), on a tiny run
store written by hand: the expected numbers follow from the stored pairs alone."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from harness_fixtures import a_record

from dupbench.evaluation import pr_curve
from dupbench.files import write_json
from dupbench.harness import plots, tables
from dupbench.harness.record import DatasetRecord
from dupbench.harness.store import (
    CANDIDATES_FILE,
    CURVE_FILE,
    METRICS_FILE,
    RUN_FILE,
    TRUTH_FILE,
    StoredTruth,
    find_runs,
)
from dupbench.records import Candidates

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "recall_at_precision.py"
#: 8 images; truth pairs (0, 1) and (2, 3) are JPEG copies, (4, 5) and (6, 7) crops
TRUTH = StoredTruth(
    [[0, 1], [2, 3], [4, 5], [6, 7]], 8, {"transform": ["jpeg", "jpeg", "crop", "crop"]}
)


def write_run(root: Path, name: str, label: str, candidates: Candidates, threshold: float) -> None:
    """A finished run folder as the harness leaves it, with what the tables read."""
    folder = root / name
    folder.mkdir(parents=True)
    candidates.save(folder / CANDIDATES_FILE)
    TRUTH.save(folder / TRUTH_FILE)
    pr_curve(candidates, TRUTH.pairs, TRUTH.n).to_csv(folder / CURVE_FILE, index=False)
    (folder / METRICS_FILE).write_text(json.dumps({"precision": 1.0}))
    record = a_record(
        key=name,
        label=label,
        distance=candidates.distance,
        threshold=threshold,
        target_precision=0.99,
        dataset=DatasetRecord("tiny", "/data", "ab" * 32, TRUTH.n, len(TRUTH.pairs), ["near"]),
    )
    write_json(folder / RUN_FILE, record.to_json())


@pytest.fixture
def store(tmp_path):
    """ "hash" (two runs of one sweep: the same pairs) keeps precision 1 up to distance 3, where
    it has both JPEG copies and one crop; "embedding" never reaches 99 % precision."""
    hash_pairs = Candidates([0, 2, 4, 0, 6], [1, 3, 5, 2, 7], [1, 2, 3, 4, 9], "hamming")
    write_run(tmp_path, "0_hash", "hash (threshold=2)", hash_pairs, 2)
    write_run(tmp_path, "1_hash", "hash (threshold=9)", hash_pairs, 9)
    write_run(
        tmp_path, "2_embedding", "embedding", Candidates([0, 0], [1, 3], [0.9, 0.95], "cosine"), 0.9
    )
    return tmp_path


def test_table_puts_each_run_at_its_own_threshold_of_99_percent_precision(store):
    table, points = tables.recall_at_precision_table(find_runs(store))
    recall = table.set_index("transform")
    assert list(recall.index) == ["crop", "jpeg", tables.ALL_PAIRS]
    assert list(recall["pairs"]) == [2, 2, 4]
    assert list(recall["hash (threshold=2)"]) == [0.5, 1.0, 0.75]
    assert list(recall["embedding"]) == [0.0, 0.0, 0.0]
    assert points.loc["hash (threshold=9)", "threshold"] == 3
    assert points.loc["hash (threshold=9)", "precision"] == 1.0
    assert math.isnan(points.loc["embedding", "threshold"])
    looser, _ = tables.recall_at_precision_table(find_runs(store), precision=0.8)
    assert looser.set_index("transform").loc["crop", "hash (threshold=2)"] == 1.0  # up to 9


def test_figure_has_one_row_per_sweep_and_the_table_values(store, monkeypatch):
    drawn = {}
    heatmap = plots._annotated_heatmap

    def record(fig, ax, values, rows, cols, *args, **kwargs):
        drawn.update(values=values, rows=rows, cols=cols, vmin=kwargs["vmin"], vmax=kwargs["vmax"])
        heatmap(fig, ax, values, rows, cols, *args, **kwargs)

    monkeypatch.setattr(plots, "_annotated_heatmap", record)
    paths = plots.recall_at_precision_heatmap(find_runs(store), store / "report")
    assert [p.name for p in paths] == [
        "recall_per_transform_at_precision.png",
        "recall_per_transform_at_precision.pdf",
    ]
    assert paths[0].stat().st_size > 5000 and paths[1].read_bytes().startswith(b"%PDF")
    assert drawn["rows"] == ["embedding (never)", "hash (2 runs, thresholds 2, 9) (t = 3)"]
    assert drawn["cols"] == ["crop (2)", "jpeg (2)", "(all pairs) (4)"]
    assert drawn["values"].tolist() == [[0.0, 0.0, 0.0], [0.5, 1.0, 0.75]]
    assert (drawn["vmin"], drawn["vmax"]) == (0, 1)


def test_benchmark_script_prints_and_writes_the_same_table(store, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("recall_at_precision", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "recall.csv"
    assert bench.main([str(store), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recall at 99% pair precision" in printed and "0.750*" in printed
    lines = out.read_text().splitlines()
    assert lines[0] == "transform,embedding,hash (threshold=2),hash (threshold=9)"
    assert lines[-2:] == ["(all pairs),0.0,0.75,0.75", "(threshold),,3.0,3.0"]
