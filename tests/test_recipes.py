"""The recipes of CONTRIBUTING.md, followed once: each recipe's files, taken from the document
itself, are put where the recipe says (a module into its package's search path, a config into a
copy of the config tree), and the new extension is used through the public API. Everything is
undone afterwards (modules, registry entries, package paths)."""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

import dupbench
from dupbench.methods import presets
from dupbench.methods.registry import METHODS, get_method, names
from dupbench.registry import Registry

CONTRIBUTING = Path(__file__).parents[1] / "CONTRIBUTING.md"


def recipe(title: str) -> dict[str, str]:
    """``{path: text}`` of the recipe's "**File N, `path`**" code blocks."""
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = text.split(f"## Recipe: {title}\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"\*\*File \d+, `([^`]+)`\*\*.*?```\w*\n(.*?)```", section, re.S))


@pytest.fixture
def add_module(tmp_path, monkeypatch):
    """``add_module(path, text, registry)``: a module as if it were a new file of the source tree
    (the package's ``__path__`` gains a folder holding it, the registry rescans the package)."""
    added: list[str] = []

    def add(path: str, text: str, registry: Registry) -> None:
        package, module = path.removesuffix(".py").replace("/", ".").rsplit(".", 1)
        folder = tmp_path / package
        folder.mkdir(exist_ok=True)
        (folder / f"{module}.py").write_text(text, encoding="utf-8")
        registry.names()  # load the shipped entries first, so that restoring keeps them
        pkg = importlib.import_module(package)
        monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(folder)])
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_loaded", False)  # as a fresh process would scan it
        added.append(f"{package}.{module}")

    yield add
    for name in added:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)


@pytest.fixture
def config_tree(tmp_path, monkeypatch):
    """A copy of the shipped config tree that the method presets are read from."""
    tree = tmp_path / "configs"
    shutil.copytree(presets.CONFIGS, tree)
    monkeypatch.setattr(presets, "CONFIGS", tree)
    presets.presets.cache_clear()
    yield tree
    presets.presets.cache_clear()


def test_add_a_method(add_module, config_tree, planted_dir):
    files = recipe("add a method")
    assert sorted(files) == [
        "dupbench/configs/method/median_hash.yaml",
        "dupbench/methods/median_hash.py",
    ]
    add_module("dupbench/methods/median_hash.py", files["dupbench/methods/median_hash.py"], METHODS)
    (config_tree / "method" / "median_hash.yaml").write_text(
        files["dupbench/configs/method/median_hash.yaml"], encoding="utf-8"
    )
    assert "median_hash" in names() and presets.presets()["median_hash"].method == "median_hash"
    method = get_method("median_hash")
    assert method.size == 64 and method.default_threshold == 10
    dups = dupbench.find_duplicates(planted_dir["dir"], method="median_hash", progress=False)
    found = {tuple(sorted((a, b))) for a, bs in dups.items() for b in bs}
    assert planted_dir["pairs"] <= found
    with pytest.raises(TypeError, match="did you mean 'hash_size'"):
        get_method("median_hash", hashsize=16)


def test_add_a_cnn_backbone(monkeypatch, tmp_path):
    pytest.importorskip("torchvision")
    from dupbench.methods import cnn_backbones

    files = recipe("add a CNN backbone")
    assert sorted(files) == ["dupbench/methods/cnn_backbones.py", "tests/test_cnn_method.py"]
    monkeypatch.setattr(cnn_backbones.BACKBONES, "_entries", dict(cnn_backbones.BACKBONES._entries))
    # the builder, added to cnn_backbones.py: run in (a copy of) that module's namespace
    exec(files["dupbench/methods/cnn_backbones.py"], dict(vars(cnn_backbones)))
    assert "resnet18" in cnn_backbones.BACKBONES
    test_module = importlib.import_module("test_cnn_method")
    namespace = dict(vars(test_module))
    exec(files["tests/test_cnn_method.py"], namespace)
    namespace["test_resnet18_backbone"](tmp_path)
    method = get_method("cnn", backbone="resnet18", weights=None, input_size=64, device="cpu")
    dups = dupbench.find_duplicates(tmp_path, method=method, min_similarity_threshold=0.999)
    assert dups["astronaut.png"] == ["astronaut_copy.png"]


def test_add_a_dataset(add_module, tmp_path):
    from dupbench.datasets import available, describe, load_dataset
    from dupbench.datasets.public import PUBLIC_SETS

    files = recipe("add a dataset")
    module = "dupbench/datasets/public/example_groups.py"
    assert sorted(files) == [module, "tests/test_datasets_public.py"]
    add_module(module, files[module], PUBLIC_SETS)
    assert "example_groups" in available() and describe("example_groups")["licence"] == "CC0"
    test_module = importlib.import_module("test_datasets_public")
    namespace = dict(vars(test_module))
    exec(files["tests/test_datasets_public.py"], namespace)
    namespace["test_example_groups_folders_are_groups"](tmp_path)
    cached = load_dataset(
        "example_groups", root=tmp_path / "example_groups", download_missing=False
    )
    assert len(cached) == 4 and Image.open(cached.paths[0]).size == (64, 64)
