"""Method registry: a name → a factory with parameters, so configs, the API and the CLI agree.

A module registers its classes with ``@register``; ``get_method("phash", hash_size=16)`` builds
one. Family modules are imported on first lookup, and heavy libraries (torch) only when a method
that needs them is instantiated.
"""

from __future__ import annotations

import importlib
from typing import Any

from dupbench.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}

#: modules whose import registers methods; CNN modules import torch lazily inside their classes
_FAMILY_MODULES = (
    "dupbench.methods.hashing",
    "dupbench.methods.pdq",
    "dupbench.methods.img_hash",
    "dupbench.methods.crop_resistant",
    "dupbench.methods.exact",
    "dupbench.methods.cnn",
)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    key = cls.name.lower()
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[key] = cls
    return cls


def _load_families() -> None:
    for module in _FAMILY_MODULES:
        importlib.import_module(module)


def available() -> list[str]:
    """Registered method names, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def method_class(name: str) -> type[Method]:
    _load_families()
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def get_method(name: str | Method, **params: Any) -> Method:
    """Instantiate a method by registry name (an instance passes through unchanged)."""
    if isinstance(name, Method):
        if params:
            raise TypeError("parameters were given together with a method instance")
        return name
    return method_class(name)(**params)
