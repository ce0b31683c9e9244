"""The search a run's config names: a search over whole encodings or an index, both looked up
in ``dupbench.search.registry``."""

from __future__ import annotations

from collections.abc import Callable

from dupbench.harness.schema import SearchConfig
from dupbench.records import Candidates, Encodings


def searcher(
    encodings: Encodings, search: SearchConfig, stage: Callable | None = None
) -> Callable[[float], Candidates]:
    """Build the configured search over ``encodings`` (an index is built here); returns
    ``radius → Candidates``. A search that times its own sub-stages gets ``stage``."""
    from dupbench.search import build_index
    from dupbench.search.registry import find_whole_search

    params = dict(search.params)
    whole = find_whole_search(search.backend)
    if whole is not None:
        if whole.timed and stage is not None:
            params["stage"] = stage
        return lambda radius: whole.search(encodings, radius, **params)
    return build_index(encodings, backend=search.backend, **params).range


def backend_used(search: SearchConfig, distance: str, n: int) -> str:
    """The search a run over ``n`` codes used (what "auto" resolved to)."""
    from dupbench.search import pick_backend
    from dupbench.search.registry import find_whole_search

    if find_whole_search(search.backend) is not None:
        return search.backend
    return pick_backend(distance, n, search.backend)
