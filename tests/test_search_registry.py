"""One registry of searches: every config name, index backend and whole-encodings search."""

from __future__ import annotations

import pytest

from dupbench.methods.presets import CONFIGS
from dupbench.search import pick_backend
from dupbench.search.registry import (
    SEARCHES,
    IndexBackend,
    WholeSearch,
    find_whole_search,
    index_backends,
)


def test_every_search_config_names_a_registered_search():
    names = {p.stem for p in (CONFIGS / "search").glob("*.yaml")} - {"auto"}
    assert names <= set(SEARCHES.names())


def test_indexes_and_whole_searches_are_told_apart():
    assert index_backends("hamming") == ("bktree", "brute", "faiss", "mih")
    assert index_backends("cosine") == ("flat", "hnsw", "ivf")
    assert isinstance(SEARCHES.get("equal"), IndexBackend)
    for name in ("crop_resistant", "dihedral", "verified"):
        assert isinstance(find_whole_search(name), WholeSearch)
    assert find_whole_search("verified").timed and not find_whole_search("dihedral").timed
    assert find_whole_search("brute") is None and find_whole_search("auto") is None


def test_pick_backend_checks_names_against_the_registry():
    assert pick_backend("hamming", 10, "bktree") == "bktree"
    assert pick_backend("equal", 10, "anything") == "equal"
    with pytest.raises(ValueError, match="unknown hamming backend 'flat'"):
        pick_backend("hamming", 10, "flat")
