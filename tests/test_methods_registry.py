"""One namespace of method names (classes and presets), strict parameters, optional extras."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import dupbench
from dupbench.cli import main
from dupbench.errors import MissingExtraError, UnknownParameterError
from dupbench.methods import available, get_method, method_class, names
from dupbench.methods.presets import presets

PRESET_FILES = sorted(
    p.stem for p in (Path(dupbench.__file__).parent / "configs" / "method").glob("*.yaml")
)


@pytest.fixture()
def without(monkeypatch):
    """without(*modules): make importlib.util.find_spec report those packages as missing."""
    real = importlib.util.find_spec

    def hide(*modules):
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a, **k: None if name in modules else real(name, *a, **k),
        )

    return hide


def test_every_preset_file_is_a_method_name_of_the_api():
    assert set(PRESET_FILES) <= set(names()) and set(available()) <= set(names())


@pytest.mark.parametrize("name", PRESET_FILES)
def test_every_preset_builds_its_class_with_its_parameters(name):
    preset = presets()[name]
    method = get_method(name)
    assert method.name == preset.method and type(method) is method_class(name)
    for key, value in preset.params.items():
        assert method.params[key] == value


def test_explicit_parameters_override_the_preset():
    assert get_method("phash_16").params["hash_size"] == 16
    assert get_method("phash_16", hash_size=8).params["hash_size"] == 8
    assert get_method("phash_16", profile="imagehash").params["hash_size"] == 16


def test_a_preset_carries_its_threshold_and_search():
    regions = get_method("crop_resistant_regions")
    threshold = presets()["crop_resistant_regions"].threshold  # the preset file's
    assert threshold is not None and regions.default_threshold == threshold
    assert regions.preferred_search == ("crop_resistant", {"min_segments": 1})
    assert get_method("crop_resistant").preferred_search is None


def test_a_class_name_takes_its_own_preset_threshold_only_as_configured(monkeypatch):
    """A calibrated threshold in phash.yaml holds for ``phash`` as the file configures it (as in
    ``dupbench run method=phash``), not for other parameters, whose length-scaled default stays."""
    import dataclasses

    from dupbench.methods import registry

    calibrated = {
        **presets(),
        "phash": dataclasses.replace(presets()["phash"], threshold=7),
        "dhash": dataclasses.replace(presets()["dhash"], threshold=None),
    }
    monkeypatch.setattr(registry, "presets", lambda: calibrated)
    assert get_method("phash").default_threshold == 7
    assert get_method("phash", profile="default").default_threshold == 10  # not in the file
    assert get_method("phash", hash_size=16).default_threshold == 40
    assert get_method("phash", trim=True).default_threshold == 10
    assert get_method("dhash").default_threshold == 10  # its file sets none


def test_a_dihedral_hash_keeps_its_search_under_a_preset_without_one():
    assert get_method("phash_16", dihedral=True).preferred_search == ("dihedral", {})
    assert get_method("phash_dihedral").preferred_search == ("dihedral", {})


@pytest.mark.parametrize("name", [*sorted(set(available()) - {"cnn"}), "cnn"])
def test_every_constructor_refuses_an_unknown_parameter(name):
    with pytest.raises(TypeError, match="definitely_not_a_parameter"):
        method_class(name)(definitely_not_a_parameter=1)


def test_a_misspelt_parameter_names_the_right_one():
    with pytest.raises(UnknownParameterError, match="did you mean 'hash_size'"):
        get_method("phash", hashsize=16)
    with pytest.raises(TypeError, match="did you mean 'hash_size'"):
        get_method("dhash_16", hash_sise=8)
    with pytest.raises(KeyError, match="did you mean 'phash_16'"):
        get_method("phash16")


def test_a_missing_extra_is_named(without):
    without("torch")
    with pytest.raises(MissingExtraError, match=r"pip install 'dupbench\[cnn\]'"):
        get_method("cnn")
    with pytest.raises(ImportError, match=r"pip install 'dupbench\[cnn\]'"):
        get_method("cnn_mobilenet_v3")


def test_methods_lists_every_name_with_threshold_and_missing_extras(capsys, without):
    without("torch")
    assert main(["methods"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == names()
    assert "[cnn] (missing)" in rows["cnn"] and "[cnn] (missing)" in rows["cnn_vit"]
    assert "(missing)" not in rows["pdq"] and "(missing)" not in rows["phash"]
    for name in ("phash_16", "crop_resistant_regions", "phash"):  # the preset file's (calibrated)
        assert f"d ≤ {presets()[name].threshold:g} " in rows[name]
    assert f"cos ≥ {presets()['cnn'].threshold:g} " in rows["cnn"]  # read without torch
    assert "cos ≥ 0.9 " in rows["cnn_vit"] and "equal" in rows["file_digest"]  # not calibrated
    assert "crops" in rows["crop_resistant_regions"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Four photos and a crop keeping the top-left 70 % of each side of each."""
    from methods_fixtures import photo

    root = tmp_path_factory.mktemp("crops")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = photo(name)
        image.save(root / f"{name}.png")
        w, h = image.size
        image.crop((0, 0, int(w * 0.7), int(h * 0.7))).save(root / f"{name}_crop.png")
    return root


def _pairs(dups: dict) -> set[tuple[str, str]]:
    return {tuple(sorted((k, d))) for k, v in dups.items() for d in v}


def test_region_preset_matches_regions_in_the_api_and_the_cli(crops, tmp_path):
    from dupbench import find_duplicates

    kwargs = {"progress": False, "num_enc_workers": 1}
    regions = _pairs(find_duplicates(crops, method="crop_resistant_regions", **kwargs))
    explicit = _pairs(
        find_duplicates(
            crops,
            method="crop_resistant",
            max_distance_threshold=presets()["crop_resistant_regions"].threshold,
            search_method="crop_resistant",
            **kwargs,
        )
    )
    assert regions == explicit
    crop_pairs = {
        (f"{n}.png", f"{n}_crop.png") for n in ("astronaut", "coffee", "chelsea", "rocket")
    }
    # at imagehash's 16 bits, matching regions finds the crops; whole-code distance none of them
    wide = {"max_distance_threshold": 16, **kwargs}
    found = _pairs(find_duplicates(crops, method="crop_resistant_regions", **wide))
    assert len(found & crop_pairs) >= 3
    assert not _pairs(find_duplicates(crops, method="crop_resistant", **wide)) & crop_pairs
    out = tmp_path / "dups.json"
    assert (
        main(
            [
                "find",
                str(crops),
                "-m",
                "crop_resistant_regions",
                "-q",
                "--workers",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert {
        tuple(sorted((k, d[0]))) for k, v in json.loads(out.read_text()).items() for d in v
    } == regions
