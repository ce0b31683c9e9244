"""Every search by the name a config (``search.backend=``), ``search_method=`` or a method's
``preferred_search`` uses, in one ``Registry``. Two kinds register here, each where it is defined:

- ``IndexBackend`` (``@index_backend(name, distance)``): an index over the codes of one distance,
  built once, then asked ``range(threshold)`` / ``topk(k)``; ``build_index`` picks one.
- ``WholeSearch`` (``@whole_search(name)``): a search that needs more than codes and reads the
  encodings of the methods that pick it (region matching, the dihedral minimum, verification):
  ``search(encodings, threshold, **params) → Candidates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dupbench.distance import DistanceKind
from dupbench.records import Candidates
from dupbench.registry import Registry


@dataclass(frozen=True)
class IndexBackend:
    """``build(codes, **params)`` → an index over codes of ``distance``."""

    name: str
    distance: DistanceKind
    build: Callable[..., Any]


@dataclass(frozen=True)
class WholeSearch:
    """``search(encodings, threshold, **params)`` → Candidates. ``timed``: it takes
    ``stage(name, items)`` (a stopwatch's) to time its own sub-stages."""

    name: str
    search: Callable[..., Candidates]
    timed: bool = False


SEARCHES: Registry[IndexBackend | WholeSearch] = Registry(
    "search",
    modules=(
        "dupbench.search.hamming",
        "dupbench.search.mih",
        "dupbench.search.cosine",
        "dupbench.search.exact",
        "dupbench.search.regions",
        "dupbench.search.dihedral",
        "dupbench.search.radial_variance",
        "dupbench.search.euclidean",
        "dupbench.search.verified",
    ),
)


def index_backend(name: str, distance: DistanceKind | str) -> Callable:
    """Decorator: register an index class (or a function building one) under ``name``."""

    def decorate(build: Callable) -> Callable:
        SEARCHES.add(name, IndexBackend(name, DistanceKind(distance), build))
        return build

    return decorate


def whole_search(name: str, timed: bool = False) -> Callable:
    """Decorator: register a search over whole encodings under ``name``."""

    def decorate(search: Callable) -> Callable:
        SEARCHES.add(name, WholeSearch(name, search, timed))
        return search

    return decorate


def index_backends(distance: DistanceKind | str) -> tuple[str, ...]:
    """The names of the indexes over codes of ``distance``, sorted."""
    return tuple(
        name
        for name, entry in SEARCHES.items()
        if isinstance(entry, IndexBackend) and entry.distance == distance
    )


def find_whole_search(name: str) -> WholeSearch | None:
    """The ``WholeSearch`` called ``name``, or None (an index backend, or "auto")."""
    entry = SEARCHES.get(name) if name in SEARCHES else None
    return entry if isinstance(entry, WholeSearch) else None
