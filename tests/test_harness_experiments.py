"""Every experiment config, end to end on a tiny real-photo dataset, as multiruns: the aggregated
table, the report tables and the figures must exist and hold the runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest
from harness_fixtures import build_tiny_dataset, tiny_overrides, working_dir
from PIL import Image

import dupbench
from dupbench.harness.app import run_hydra

EXPERIMENTS = sorted(
    p.stem for p in (Path(dupbench.__file__).parent / "configs" / "experiment").glob("*.yaml")
)
FIGURES = (
    "pr_curves",
    "metrics_vs_threshold",
    "score_histograms",
    "recall_per_transform",
    "quality_vs_throughput",
    "memory",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, photos):
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny"), photos)


def run_experiment(name: str, work: Path, tiny: Path, *extra: str) -> Path:
    """Run ``experiment=name`` in ``work``; returns its multirun directory."""
    with working_dir(work):
        run_hydra([f"experiment={name}", *tiny_overrides(tiny, *extra)])
    (sweep_dir,) = [
        p.parent for p in (work / "results").rglob("runs.csv") if p.parent.name != "report"
    ]
    return sweep_dir


def swept_methods(name: str) -> list[str]:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("dupbench.configs", version_base="1.3"):
        cfg = compose("config", [f"experiment={name}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    return str(cfg.hydra.sweeper.params.method).split(",")


def check_report(sweep_dir: Path, jobs: int) -> pd.DataFrame:
    runs = pd.read_csv(sweep_dir / "runs.csv")
    assert len(runs) == jobs
    assert runs["f1"].between(0, 1).all() and (runs["encode_wall_s"] > 0).all()
    report = sweep_dir / "report"
    for name in (
        "main.md",
        "main.csv",
        "main.tex",
        "runs.csv",
        "report.md",
        "breakdown_transform.md",
        "breakdown_transform.csv",
        "breakdown_transform.tex",
    ):
        assert (report / name).stat().st_size > 0, name
    main = pd.read_csv(report / "main.csv")
    assert len(main) == jobs and main["method"].is_unique
    for figure in FIGURES:
        for fmt in ("png", "pdf"):
            assert (report / f"{figure}.{fmt}").stat().st_size > 2000, (figure, fmt)
        with Image.open(report / f"{figure}.png") as im:
            assert min(im.size) > 200
    return runs


# every experiment is a multirun of several jobs plus the report: tens of seconds each
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in EXPERIMENTS])
def test_experiment_runs_end_to_end(name, tmp_path, tiny, capsys):
    sweep_dir = run_experiment(name, tmp_path, tiny)
    methods = swept_methods(name)
    # the thresholds experiment sweeps one method over several thresholds
    jobs = len(methods) if name != "thresholds" else 9
    runs = check_report(sweep_dir, jobs)
    from dupbench.methods import available

    assert set(runs["method"]) <= set(available()) and runs["label"].is_unique
    printed = capsys.readouterr().out
    assert "| method |" in printed and printed.count("\n|") >= jobs + 1  # the main table


def test_multirun_of_methods_and_thresholds_aggregates_every_job(tmp_path, tiny):
    """The issue's sweep form: -m method=a,b benchmark.threshold=range(...)."""
    with working_dir(tmp_path):
        run_hydra(
            [
                "-m",
                "method=ahash,dhash",
                "benchmark.threshold=range(0,9,4)",
                "report=false",
                *tiny_overrides(tiny),
            ]
        )
    (runs_csv,) = [p for p in (tmp_path / "results").rglob("runs.csv") if p.parent.name != "report"]
    runs = pd.read_csv(runs_csv)
    assert len(runs) == 6 and runs["label"].is_unique
    assert sorted(runs["threshold"].unique()) == [0, 4, 8]
    assert set(runs["method"]) == {"ahash", "dhash"}
    assert "ahash (threshold=4)" in set(runs["label"])
    # recall can only grow with the threshold; precision of exact-ish matches stays defined
    for _, group in runs.groupby("method"):
        assert group.sort_values("threshold")["recall"].is_monotonic_increasing
    # report=false: tables but no figures
    assert (runs_csv.parent / "report" / "main.md").is_file()
    assert not list((runs_csv.parent / "report").glob("*.png"))


def test_user_config_dir_adds_a_method_preset(tmp_path, tiny):
    """--config-dir: a user's own folder of configs joins the shipped ones."""
    mine = tmp_path / "my_configs" / "method"
    mine.mkdir(parents=True)
    (mine / "phash_wide.yaml").write_text(
        "name: phash\nparams: {hash_size: 12}\nlabel: my_phash\nthreshold: 20\nsweep_to: null\n"
    )
    with working_dir(tmp_path):
        run_hydra(
            [
                "--config-dir",
                str(tmp_path / "my_configs"),
                "method=phash_wide",
                *tiny_overrides(tiny),
            ]
        )
    (run_json,) = (tmp_path / "results").rglob("run.json")
    from dupbench.harness.store import read_json

    info = read_json(run_json)
    assert info["label"] == "my_phash" and info["threshold"] == 20
    assert info["method"]["params"]["hash_size"] == 12 and info["method"]["size"] == 144


def test_cli_run_passes_overrides_to_hydra_and_defaults_to_the_default_experiment():
    from dupbench.cli import benchmark as run_cli

    parser = argparse.ArgumentParser(prog="dupbench")
    run_cli.add_parser(parser.add_subparsers(dest="command"))
    args, extra = parser.parse_known_args(["run", "-m", "method=ahash,dhash", "--cfg", "job"])
    assert args.accepts_overrides and extra == ["-m", "method=ahash,dhash", "--cfg", "job"]
    assert run_cli.with_default_experiment([]) == ["experiment=default"]
    assert run_cli.with_default_experiment(["--cfg", "job"]) == [
        "experiment=default",
        "--cfg",
        "job",
    ]
    assert run_cli.with_default_experiment(["method=phash"]) == ["method=phash"]
    assert run_cli.with_default_experiment(["experiment=cnn"]) == ["experiment=cnn"]
    assert run_cli.with_default_experiment(["+method.params.x=1"]) == ["+method.params.x=1"]
    assert run_cli.with_default_experiment(["dataset=ukbench", "force=true"]) == [
        "experiment=default",
        "dataset=ukbench",
        "force=true",
    ]
    assert run_cli.with_default_experiment(["--hydra-help"]) == ["--hydra-help"]


def test_default_experiment_leaves_out_methods_whose_package_is_missing(monkeypatch):
    import importlib.util

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from dupbench.cli import benchmark as run_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "torch" else real(name, *a, **k),
    )
    overrides, note = run_cli.without_uninstalled(run_cli.with_default_experiment(["force=true"]))
    assert "cnn (needs torch: pip install 'dupbench[cnn]')" in note and "\n" not in note
    GlobalHydra.instance().clear()
    with initialize_config_module("dupbench.configs", version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    swept = str(cfg.hydra.sweeper.params.method).split(",")
    assert swept == [m for m in swept_methods("default") if m != "cnn"]
    # asked for explicitly, a method is not left out: running it names the extra instead
    assert run_cli.without_uninstalled(["method=cnn"]) == (["method=cnn"], None)
    assert run_cli.without_uninstalled(["experiment=hashes"]) == (["experiment=hashes"], None)


def test_run_of_a_method_whose_package_is_missing_is_one_line(tiny, tmp_path, monkeypatch, capsys):
    import importlib.util

    from dupbench.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "torch" else real(name, *a, **k),
    )
    with working_dir(tmp_path):
        status = main(["run", "method=cnn", *tiny_overrides(tiny)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 1 and lines[-1].startswith("dupbench run: error: the cnn method needs")
    assert "pip install 'dupbench[cnn]'" in lines[-1]
    assert not list(tmp_path.rglob("run.json"))
