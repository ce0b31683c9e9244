"""dupbench: find exact and near-duplicate images, and measure how well each method does it.

The one-call API is importable from here; ``evaluate`` and ``plot_duplicates`` load their
modules (pandas, matplotlib) only when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "encode_image": "dupbench.api",
    "encode_images": "dupbench.api",
    "find_duplicates": "dupbench.api",
    "find_duplicates_to_remove": "dupbench.api",
    "search_duplicates": "dupbench.api",
    "duplicate_groups": "dupbench.api",
    "PHash": "dupbench.api",
    "AHash": "dupbench.api",
    "DHash": "dupbench.api",
    "WHash": "dupbench.api",
    "CNN": "dupbench.api",
    "evaluate": "dupbench.evaluation",
    "plot_duplicates": "dupbench.visualize",
    "available_methods": "dupbench.methods",
    "Index": "dupbench.index",
}

__all__ = list(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'dupbench' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_API[name])
    value = getattr(module, "available" if name == "available_methods" else name)
    globals()[name] = value
    return value
