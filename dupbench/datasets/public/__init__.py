"""Adapters for public duplicate / near-duplicate benchmarks (download, extract, parse): one
module per set, each registering its ``PublicSet`` in ``PUBLIC_SETS``."""

from __future__ import annotations

from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet, load_public

__all__ = ["PUBLIC_SETS", "Parsed", "PublicSet", "load_public"]
