"""Method presets: the named configurations of ``dupbench/configs/method/*.yaml``.

The same files name the rows of the benchmark tables (``dupbench run method=phash_16``) and, read
here, the methods of the API and the CLI (``find_duplicates(method="phash_16")``, ``dupbench find
-m crop_resistant_regions``), so one list of names serves every command. A preset is a registry
method plus parameters, and optionally an operating threshold and the search it needs (a
``# @package _global_`` preset overrides ``/search``, as ``crop_resistant_regions`` does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Preset:
    """One ``configs/method/<name>.yaml`` file."""

    name: str
    #: the registry name of the method class it configures
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    #: operating threshold; None: the method's own default
    threshold: float | None = None
    #: overrides the class's ``robust_to`` where the preset changes it (e.g. region matching)
    robust_to: str | None = None
    #: (backend, params) of the search the preset selects; None: the distance's usual search
    search: tuple[str, dict[str, Any]] | None = None


@functools.cache
def presets() -> dict[str, Preset]:
    """Every shipped preset by name (the YAML file's stem)."""
    return {path.stem: _read(path) for path in sorted((CONFIGS / "method").glob("*.yaml"))}


def _load(path: Path) -> dict:
    from omegaconf import OmegaConf

    return cast(dict, OmegaConf.to_container(OmegaConf.load(path), resolve=False))


def _read(path: Path) -> Preset:
    doc = _load(path)
    node = doc.get("method", doc)  # a global-package preset nests its method under "method"
    search = None
    for entry in doc.get("defaults", []):
        if isinstance(entry, dict):
            for key, choice in entry.items():
                if key.split()[-1].strip("/") == "search":  # "override /search: <choice>"
                    chosen = _load(CONFIGS / "search" / f"{choice}.yaml")
                    search = (chosen["backend"], dict(chosen.get("params") or {}))
    return Preset(
        name=path.stem,
        method=node["name"],
        params=dict(node.get("params") or {}),
        label=node.get("label"),
        threshold=node.get("threshold"),
        robust_to=node.get("robust_to"),
        search=search,
    )
