"""The contract between an ``Index`` and the place that keeps its searchable codes.

An ``Index`` owns the files table (paths, sizes, mtimes, digests) and chooses the int64 id of
every row; a backend only stores codes under those ids and answers similarity queries. Keeping
the contract this small lets the same ``Index`` search in process (``local``) or in a Milvus
server or cluster (``milvus``) without either side knowing the other's storage.

Backends are named in ``BACKENDS``: a class, or a ``"module:Class"`` string imported only when
asked for, so an optional engine's package is needed only by those who use it.

Optional, beyond the protocol: ``items() -> (ids, codes)``, every stored row, which
``Index.find_duplicates`` needs (an all-pairs search over the codes); a backend without it can
still add, remove and answer queries.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.errors import MissingExtraError, UnknownNameError, UsageError, did_you_mean
from dupbench.records import Kind


@runtime_checkable
class IndexBackend(Protocol):
    """Where an Index keeps its searchable codes. Rows are int64 ids chosen by the Index."""

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Store ``codes[i]`` under ``ids[i]``: (n, words) uint64 for binary/exact codes, (n, dim)
        float32 for float ones. An id already present is replaced."""

    def remove(self, ids: np.ndarray) -> None:
        """Forget these ids; ids not present are ignored."""

    def query(
        self, codes: np.ndarray, threshold: float, k: int | None
    ) -> list[list[tuple[int, float]]]:
        """Per query row, ``(id, score)`` best first, at most ``k`` (all if None): hamming:
        distance <= threshold; cosine: similarity >= threshold; equal: identical codes (score 0)."""

    def __len__(self) -> int:
        """The number of ids stored."""

    def close(self) -> None:
        """Release files, connections and memory; the backend is unusable afterwards."""


def fitted_codes(codes: np.ndarray, width: int, dtype: Any) -> np.ndarray:
    """``codes`` as contiguous (n, ``width``) rows of ``dtype`` (a single flat row is accepted),
    or a ``UsageError``: what every backend checks before it stores or searches."""
    codes = np.asarray(codes)
    if codes.ndim == 1:
        codes = codes.reshape(1, -1)
    if codes.ndim != 2 or codes.shape[1] != width:
        raise UsageError(
            f"codes of shape {codes.shape} do not fit this index "
            f"({width} {np.dtype(dtype)} per row)"
        )
    return np.ascontiguousarray(codes, dtype)


def check_k(k: int | None) -> None:
    """A query's ``k``: None (all matches) or at least 1."""
    if k is not None and k < 1:
        raise UsageError(f"k must be at least 1, got {k}")


#: backend name -> class, or "module:Class" imported on first use
BACKENDS: dict[str, Any] = {
    "local": "dupbench.index.local:LocalBackend",
    "milvus": "dupbench.index.milvus:MilvusBackend",
}


def backend_class(name: str) -> type:
    """The class registered as ``name``; an unknown name is a one-line ``UnknownNameError``."""
    try:
        entry = BACKENDS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown index backend {name!r}{did_you_mean(name, BACKENDS)}"
            f" (known: {', '.join(BACKENDS)})"
        ) from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise MissingExtraError(
                f"the {name} index backend cannot be loaded ({e}); pip install 'dupbench[{name}]'"
            ) from e
    return entry


def open_backend(
    name: str, folder: str | Path, kind: Kind, distance: DistanceKind, size: int, **options: Any
) -> IndexBackend:
    """Create or reopen backend ``name`` for an index kept in ``folder``.

    Every backend class takes ``(path_or_uri, kind, distance, size, **options)``: the local one keeps
    its files under ``folder``; a remote one gets ``options["uri"]`` if given (e.g. a Milvus server)
    and otherwise a path inside ``folder`` (e.g. a milvus-lite database file). ``size`` is the bits
    of a binary/exact code or the dimension of a float one. ``options`` are recorded in the index
    manifest and passed again on every open.
    """
    cls = backend_class(name)
    return cls(Path(folder), kind, distance, size, **options)
