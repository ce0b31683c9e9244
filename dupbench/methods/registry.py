"""Method registry: a name → a factory with parameters, so configs, the API and the CLI agree.

A module registers its classes with ``@register``; ``get_method("phash", hash_size=16)`` builds
one. Names are the registered classes' and the presets' (``configs/method/*.yaml``, see
``presets``): ``get_method("phash_16")`` is pHash with ``hash_size=16``. Family modules are
imported on first lookup, and heavy libraries (torch) only when a method that needs them is
instantiated; a method whose optional package is missing fails with the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dupbench.errors import check_parameters, unknown_name
from dupbench.methods.base import Method, accepted_params, check_installed
from dupbench.methods.presets import Preset, presets

_REGISTRY: dict[str, type[Method]] = {}

#: modules whose import registers methods; CNN modules import torch lazily inside their classes
_FAMILY_MODULES = (
    "dupbench.methods.hashing",
    "dupbench.methods.pdq",
    "dupbench.methods.img_hash",
    "dupbench.methods.crop_resistant",
    "dupbench.methods.exact",
    "dupbench.methods.cnn",
    "dupbench.methods.verified",
)

#: searches that are functions of one method's encodings rather than ``dupbench.search``
#: indexes, keyed by the backend name a config or ``search_method`` uses: the method's name, or
#: "dihedral" for any hash with dihedral=True
SEARCH_FUNCTIONS = {
    "crop_resistant": "dupbench.methods.crop_resistant:crop_resistant_search",
    "dihedral": "dupbench.methods.invariant:dihedral_search",
    "verified": "dupbench.search.verified:verified_search",
}


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
    """Registered method class names, sorted (``names()`` adds the presets)."""
    _load_families()
    return sorted(_REGISTRY)


def names() -> list[str]:
    """Every name ``get_method`` accepts: the registered classes and the presets, sorted."""
    return sorted(set(available()) | set(presets()))


def preset(name: str) -> Preset | None:
    """The preset called ``name``; None for a class name (a class's own preset file, such as
    ``phash.yaml``, holds its defaults, so the class name means the class as it is)."""
    _load_families()
    return None if name.lower() in _REGISTRY else presets().get(name.lower())


def method_class(name: str) -> type[Method]:
    """The class behind a class or preset name (``UnknownNameError``, a ``KeyError``, if none)."""
    found = preset(name)
    key = found.method.lower() if found else name.lower()
    if key not in _REGISTRY:
        raise unknown_name("method", name, names())
    return _REGISTRY[key]


def get_method(name: str | Method, **params: Any) -> Method:
    """Instantiate a method by class or preset name (an instance passes through unchanged).

    A class name built as its own preset file configures it (``phash`` with no parameters) takes
    that file's threshold when it sets one, as ``dupbench run method=phash`` does. Explicit
    ``params`` override a preset's; unknown ones raise ``UnknownParameterError`` (a
    ``TypeError``) naming the closest valid one, a missing optional package ``MissingExtraError``.
    """
    if isinstance(name, Method):
        if params:
            raise TypeError("parameters were given together with a method instance")
        return name
    cls = method_class(name)
    check_parameters(params, accepted_params(cls), f"method {name!r}")
    check_installed(cls)
    found = preset(name)
    if found is None:
        method = cls(**params)
        own = presets().get(name.lower())
        if own is not None and own.threshold is not None and _configures(own, method, params):
            method.default_threshold = own.threshold  # type: ignore[misc]
        return method
    method = cls(**{**found.params, **params})
    if found.threshold is not None:
        method.default_threshold = found.threshold  # type: ignore[misc]
    if found.search is not None:  # else the method's own (a dihedral hash's search)
        method.preferred_search = found.search
    return method


def _configures(own: Preset, method: Method, params: dict[str, Any]) -> bool:
    """Whether ``method``, built from its class name with ``params``, is the configuration of the
    class's own preset file, so that the file's threshold (a calibrated one: see
    benchmarks/calibrate_thresholds.py) applies to it as it does in ``dupbench run``."""
    given = all(k in own.params and own.params[k] == v for k, v in params.items())
    return given and all(method.params.get(k) == v for k, v in own.params.items())


def search_function(backend: str) -> Callable | None:
    """The method-specific search called ``backend`` (``SEARCH_FUNCTIONS``), or None."""
    if backend not in SEARCH_FUNCTIONS:
        return None
    module, attribute = SEARCH_FUNCTIONS[backend].split(":")
    return getattr(importlib.import_module(module), attribute)
