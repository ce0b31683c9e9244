"""Single runs on a tiny real-photo dataset: stored outputs, exact re-evaluation, reproducibility,
skipping identical configs, and the stage measurements themselves."""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pytest
from harness_fixtures import build_tiny_dataset, run_dirs, tiny_overrides, working_dir

from dupbench.files import write_json
from dupbench.harness import store
from dupbench.harness.app import run_hydra
from dupbench.harness.execute import reevaluate
from dupbench.methods.presets import presets
from dupbench.records import Candidates

RUN_FILES = (
    "run.json",
    "metrics.json",
    "candidates.npz",
    "truth.npz",
    "skipped.csv",
    "curve.csv",
    "sweep.csv",
    "breakdown.csv",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, photos):
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny"), photos)


@pytest.fixture(scope="module")
def phash_run(tmp_path_factory, tiny):
    """One pHash run searched to distance 32 (unrelated 64-bit hashes differ by ~32 bits, so
    pairs beyond the threshold are stored too); returns its directory."""
    work = tmp_path_factory.mktemp("work")
    with working_dir(work):
        run_hydra(
            [
                "method=phash",
                *tiny_overrides(tiny, "benchmark.store_encodings=true", "benchmark.sweep_to=32"),
            ]
        )
    (run_dir,) = run_dirs(work / "results")
    return run_dir


def same(a: dict, b: dict) -> bool:
    """Equal dicts of floats, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def test_run_directory_is_self_describing(phash_run, tiny):
    for name in RUN_FILES:
        assert (phash_run / name).is_file(), name
    assert (phash_run / ".hydra" / "config.yaml").is_file()
    info = json.loads((phash_run / "run.json").read_text())
    from dupbench.datasets import load_dataset

    dataset = load_dataset(str(tiny))
    assert info["dataset"]["checksum"] == dataset.checksum()
    assert info["dataset"]["images"] == len(dataset) == info["encoded"] + info["skipped"]
    assert info["config"]["method"]["name"] == "phash"
    assert f"dataset.name={tiny}" in info["overrides"]
    assert info["seeds"]["numpy"] == 0
    env = info["environment"]
    assert env["packages"]["numpy"] == np.__version__ and env["cpu"] and env["cpu_count"] >= 1
    assert set(info["stages"]) == {"load", "warmup", "encode", "index", "search", "evaluate"}
    encode = info["stages"]["encode"]
    assert encode["items"] == len(dataset) and encode["wall_s"] > 0 and encode["peak_rss_mb"] > 10
    assert encode["items_per_s"] == pytest.approx(len(dataset) / encode["wall_s"])


def test_stored_candidates_reach_the_widest_threshold(phash_run):
    info = json.loads((phash_run / "run.json").read_text())
    candidates = Candidates.load(phash_run / "candidates.npz")
    assert info["threshold"] == presets()["phash"].threshold and info["sweep_to"] == 32
    assert len(candidates) == info["candidates"] > 0
    assert candidates.score.max() <= 32 and (candidates.i < candidates.j).all()
    assert (candidates.score > info["threshold"]).any()  # pairs beyond the threshold are kept
    enc = store.StoredRun(phash_run)
    assert (phash_run / "encodings.npz").is_file() and enc.truth().n == info["dataset"]["images"]


def test_reevaluation_gives_exactly_the_stored_metrics(phash_run):
    stored = json.loads((phash_run / "metrics.json").read_text())
    again = reevaluate(phash_run).metrics
    assert same(stored, again)


def test_reevaluation_at_another_threshold_matches_the_stored_sweep(phash_run):
    sweep = store.StoredRun(phash_run).table("sweep.csv").set_index("threshold")
    at_4 = reevaluate(phash_run, 4).metrics
    assert at_4["threshold"] == 4
    for name in ("precision", "recall", "f1", "map"):
        assert at_4[name] == pytest.approx(sweep.loc[4.0, name], abs=1e-12)
    assert at_4["recall"] <= reevaluate(phash_run).metrics["recall"]


def test_reevaluation_beyond_the_searched_radius_is_refused(phash_run):
    with pytest.raises(ValueError, match="beyond the widest threshold searched"):
        reevaluate(phash_run, 33)


def test_evaluate_command_prints_and_writes_the_metrics(phash_run, tmp_path, capsys):
    from dupbench.cli import report as report_cli

    out = tmp_path / "again.json"
    args = argparse.Namespace(run_dir=phash_run, threshold=None, json=True, out=out)
    assert report_cli.evaluate(args) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((phash_run / "metrics.json").read_text())
    assert same(printed, stored) and same(json.loads(out.read_text()), stored)
    from dupbench.cli import main

    assert main(["evaluate", str(tmp_path)]) == 1  # a failure (no such run), not a usage error
    assert "not a run directory" in capsys.readouterr().err
    assert main(["evaluate", str(phash_run), "--threshold", "1000"]) == 2
    assert "beyond the widest threshold" in capsys.readouterr().err


def test_identical_config_is_reused_unless_forced(tmp_path, tiny, capsys):
    overrides = ["method=dhash", *tiny_overrides(tiny)]
    with working_dir(tmp_path):
        run_hydra(overrides)
        time.sleep(1.1)  # Hydra names run directories by the second
        run_hydra(overrides)
        time.sleep(1.1)
        run_hydra([*overrides, "force=true"])
    first, second, third = (store.StoredRun(d) for d in run_dirs(tmp_path / "results"))
    assert "reused" in capsys.readouterr().err
    assert first.record.status == "done" and third.record.status == "done"
    assert second.record.status == "reused"
    assert second.record.reused_from == str(first.dir.resolve())
    assert same(second.metrics, first.metrics)
    assert first.record.key == second.record.key == third.record.key  # force is not measured
    # a report shows the configuration once: the latest finished original
    (shown,) = store.find_runs(tmp_path / "results")
    assert shown.dir == third.dir


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_the_same_metrics(tmp_path, tiny):
    """A randomly initialised CNN (its weights come from torch's seeded generator), twice:
    identical metrics and candidate scores."""
    overrides = [
        "method=cnn",
        "method.params.weights=null",
        "+method.params.input_size=96",
        "force=true",
        *tiny_overrides(tiny),
    ]
    with working_dir(tmp_path):
        run_hydra(overrides)
        time.sleep(1.1)
        run_hydra(overrides)
    a, b = (store.StoredRun(d) for d in run_dirs(tmp_path / "results"))
    assert a.record.status == b.record.status == "done"
    assert same(a.metrics, b.metrics)
    np.testing.assert_array_equal(a.candidates().score, b.candidates().score)
    assert a.record.distance == "cosine" and a.record.sweep_to == 0.5
    assert a.record.threshold == presets()["cnn"].threshold  # the preset file's
    assert a.record.seeds["torch"] == 0


_STOPWATCH_SCENARIO = """
import json, time
from dataclasses import asdict
import numpy as np
from dupbench.harness.measure import MemorySampler, Stopwatch

with MemorySampler(interval=0.002) as sampler:
    watch = Stopwatch(sampler)
    with watch.stage("alloc", items=10):
        block = np.ones(80 * 1024 * 1024 // 8)  # 80 MB, touched
        time.sleep(0.05)
        sampler.sample()  # while the block lives, whatever the thread's scheduling
        del block
    with watch.stage("spin", items=10) as spin:
        deadline = time.process_time() + 0.1
        while time.process_time() < deadline:
            pass
        spin.items = 20
print(json.dumps({k: asdict(v) for k, v in watch.summary().items()}))
"""


def test_stopwatch_records_time_cpu_and_peak_memory():
    """In a fresh process: a long-lived test worker may hand the 80 MB out of pages that earlier
    tests freed but the allocator kept resident, so its RSS would honestly not grow."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _STOPWATCH_SCENARIO], capture_output=True, text=True, check=True
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["alloc"]["added_rss_mb"] > 70
    assert summary["alloc"]["wall_s"] >= 0.05
    assert summary["spin"]["cpu_s"] >= 0.1 and summary["spin"]["items"] == 20
    assert summary["spin"]["added_rss_mb"] < 40


def test_peak_memory_includes_worker_processes():
    """RSS of child processes counts: a child holding 100 MB raises the sampled peak."""
    import subprocess
    import sys

    from dupbench.harness.measure import MemorySampler, tree_rss

    before = tree_rss()
    with MemorySampler(interval=0.005) as sampler:
        code = "import numpy, time; a = numpy.ones(100 * 2**20 // 8); time.sleep(0.6)"
        subprocess.run([sys.executable, "-c", code], check=True)
        peak = sampler.peak
    assert peak - before > 80 * 2**20


def test_run_json_is_written_atomically_and_keeps_nan(tmp_path):
    path = tmp_path / "deep" / "metrics.json"
    write_json(path, {"a": float("nan"), "b": np.float32(0.5), "c": np.arange(2), "d": tmp_path})
    back = store.read_json(path)
    assert math.isnan(back["a"]) and back["b"] == 0.5 and back["c"] == [0, 1]
    assert back["d"] == str(tmp_path)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left


def test_run_key_depends_on_the_code():
    config = {"method": {"name": "phash"}, "benchmark": {"progress": True}, "force": False}
    a = store.run_key(config, "1.0", {"commit": "abc", "source": "1"})
    assert a == store.run_key({**config, "force": True}, "1.0", {"commit": "abc", "source": "1"})
    assert a != store.run_key(config, "1.0", {"commit": "abd", "source": "1"})
    assert a != store.run_key(config, "1.0", {"commit": "abc", "source": "2"})
    from dupbench.harness import environment

    state = environment.code_state()
    assert set(state) == {"commit", "source"} and len(state["source"]) == 64


def test_a_finished_run_is_not_reused_when_code_or_data_changed(
    tmp_path, tiny, capsys, monkeypatch
):
    from dupbench.harness import environment

    overrides = ["method=ahash", *tiny_overrides(tiny)]
    with working_dir(tmp_path):
        run_hydra(overrides)
        (first,) = run_dirs(tmp_path / "results")
        # the stored dataset checksum no longer matches the dataset: run again
        info = store.read_json(first / "run.json")
        info["dataset"]["checksum"] = "0" * 64
        write_json(first / "run.json", info)
        run_hydra(overrides)
        assert "the dataset changed" in capsys.readouterr().err
        second = [d for d in run_dirs(tmp_path / "results") if d != first]
        assert len(second) == 1 and store.StoredRun(second[0]).record.status == "done"
        # other code: another key, so nothing to reuse
        state = environment.code_state()
        monkeypatch.setattr(environment, "code_state", lambda: {**state, "source": "edited"})
        run_hydra(overrides)
    runs = [store.StoredRun(d) for d in run_dirs(tmp_path / "results")]
    assert [r.record.status for r in runs] == ["done", "done", "done"]
    assert runs[1].record.key == runs[0].record.key != runs[2].record.key
    assert "reused" not in capsys.readouterr().err


def test_runs_in_the_same_second_get_their_own_directories(tmp_path, tiny):
    overrides = ["method=ahash", "force=true", *tiny_overrides(tiny)]
    with working_dir(tmp_path):
        run_hydra(overrides)
        run_hydra(overrides)
    dirs = run_dirs(tmp_path / "results")
    assert len(dirs) == 2 and all(store.StoredRun(d).record.status == "done" for d in dirs)


def test_a_failed_run_leaves_no_finished_marker(tmp_path, tiny, monkeypatch):
    from dupbench.harness import execute

    run_dir = tmp_path / "again"
    overrides = ["method=ahash", "force=true", f"hydra.run.dir={run_dir}", *tiny_overrides(tiny)]
    with working_dir(tmp_path):
        run_hydra(overrides)
        assert store.StoredRun(run_dir).record.status == "done"

        def broken(cfg):
            raise RuntimeError("encoder crashed")

        monkeypatch.setattr(execute, "build_method", broken)
        with pytest.raises((RuntimeError, SystemExit)):
            run_hydra(overrides)
    assert not (run_dir / "run.json").exists()
    assert store.find_runs(tmp_path) == []
    # the Hydra callback recorded why, so reports can name the failure
    assert store.read_json(run_dir / "failed.json")["error"] == "RuntimeError: encoder crashed"
    runs, broken = store.survey_runs(tmp_path)
    assert runs == [] and [(b.dir, b.kind) for b in broken] == [(run_dir, "failed")]


def test_runs_whose_outputs_are_gone_are_skipped_with_a_warning(phash_run, tmp_path):
    import shutil

    shutil.copytree(phash_run, tmp_path / "good")
    info = store.read_json(phash_run / "run.json")
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    write_json(
        orphan / "run.json",
        {**info, "status": "reused", "key": "other", "reused_from": str(tmp_path / "deleted")},
    )
    no_metrics = tmp_path / "no_metrics"
    shutil.copytree(phash_run, no_metrics)
    (no_metrics / "metrics.json").unlink()
    write_json(no_metrics / "run.json", {**info, "key": "third"})
    with pytest.warns(UserWarning, match="skipping the run"):
        runs = store.find_runs(tmp_path)
    assert [r.dir for r in runs] == [tmp_path / "good"]
    with pytest.warns(UserWarning, match="out of the table"):
        table = store.runs_table([*runs, store.StoredRun(orphan)])
    assert len(table) == 1


def test_stored_metrics_are_evaluate_run_of_the_stored_pairs(phash_run):
    from dupbench.evaluation import evaluate_run

    run = store.StoredRun(phash_run)
    record, truth = run.record, run.truth()
    again = evaluate_run(
        run.candidates(),
        truth.pairs,
        truth.n,
        record.threshold,
        record.k_values,
        record.target_precision,
    )
    assert same(run.metrics, again)
