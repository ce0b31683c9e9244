"""Ground truth as index arrays: which images are duplicates of which, and how strongly.

A pair's *level* says what kind of duplicate it is:

- ``exact``: the same pixels (a byte copy, or a lossless re-encode);
- ``near``: the same picture, edited (recompressed, resized, cropped, recoloured, overlaid...);
- ``similar``: a different photo of the same scene or object (a hard negative for near-duplicate
  detection; counted as a match only when a benchmark asks for it).

Pairs are unordered and stored once with ``i < j``; id strings appear only at the file edges
(``formats``) and in ``to_map``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from dupbench.errors import DupbenchError
from dupbench.records import canonical_pairs

LEVELS = ("exact", "near", "similar")
#: a pair listed twice keeps its strongest level (exact > near > similar)
_STRENGTH = {level: rank for rank, level in enumerate(LEVELS)}
T = TypeVar("T")


class DatasetError(DupbenchError, ValueError):
    """A dataset or ground-truth file that cannot be used as it is; the message says why."""


class TruthError(DatasetError):
    """Ground truth that is inconsistent: self pairs, unknown ids, asymmetric maps, bad levels."""


def _preview(items: Iterable, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def check_unique_ids(ids: Sequence[str], where: str = "the corpus") -> None:
    """Raise ``DatasetError`` naming the ids that occur more than once."""
    seen, dups = set(), []
    for ident in ids:
        if ident in seen:
            dups.append(ident)
        seen.add(ident)
    if dups:
        raise DatasetError(f"duplicate ids in {where}: {_preview(sorted(set(dups)))}")


def group_pairs(groups: Iterable[Sequence[T]]) -> list[tuple[T, T]]:
    """All unordered pairs inside each group, each once, in group then member order.

    Works for groups of indices and of ids alike (a ``dict`` of groups: pass ``.values()``).
    """
    pairs: list[tuple[T, T]] = []
    for members in groups:
        members = list(members)
        for p, x in enumerate(members):
            pairs.extend((x, y) for y in members[p + 1 :])
    return pairs


@dataclass
class GroundTruth:
    """Duplicate pairs over a corpus: ``pairs`` (m, 2) int64 with i < j, and ``levels`` (m,) str.

    Construction normalises the pairs (orders each pair, drops repeats keeping the strongest
    level, sorts by (i, j)) and rejects self pairs, negative indices and unknown levels.
    """

    pairs: np.ndarray
    levels: np.ndarray

    def __post_init__(self) -> None:
        pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        levels = np.asarray(self.levels, dtype=object).reshape(-1)
        if len(levels) == 1 and len(pairs) != 1:
            levels = np.repeat(levels, len(pairs))
        if len(levels) != len(pairs):
            raise TruthError(f"{len(pairs)} pairs but {len(levels)} levels")
        bad = sorted({str(v) for v in levels} - set(LEVELS))
        if bad:
            raise TruthError(f"unknown level(s) {_preview(bad)}; use one of {LEVELS}")
        i, j = canonical_pairs(pairs[:, 0], pairs[:, 1], what="ground truth", error=TruthError)
        pairs = np.stack([i, j], axis=1)
        strength = np.array([_STRENGTH[str(v)] for v in levels], dtype=np.int64)
        order = np.lexsort((strength, pairs[:, 1], pairs[:, 0]))
        pairs, levels = pairs[order], levels[order]
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
        self.pairs = np.ascontiguousarray(pairs[first])
        self.levels = np.array([str(v) for v in levels[first]], dtype=object)

    def __len__(self) -> int:
        return len(self.pairs)

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=object))

    @classmethod
    def from_groups(cls, groups: Iterable[Sequence[int]], level: str = "near") -> GroundTruth:
        """Every pair of indices inside each group, at ``level`` (groups of one add nothing)."""
        pairs = group_pairs(groups)
        if not pairs:
            return cls.empty()
        return cls(np.array(pairs, dtype=np.int64), np.full(len(pairs), level, dtype=object))

    @classmethod
    def from_id_pairs(
        cls,
        ids: Sequence[str],
        a: Sequence[str],
        b: Sequence[str],
        levels: Sequence[str] | str = "near",
        source: str = "ground truth",
    ) -> GroundTruth:
        """Map id pairs onto corpus indices; ids that are not in the corpus are an error."""
        check_unique_ids(ids)
        index = {ident: k for k, ident in enumerate(ids)}
        unknown = sorted({x for x in (*a, *b) if x not in index})
        if unknown:
            raise TruthError(
                f"{source} names {len(unknown)} id(s) that are not in the corpus: "
                f"{_preview(unknown)}"
            )
        if isinstance(levels, str):
            levels = [levels] * len(a)
        pairs = np.array([[index[x], index[y]] for x, y in zip(a, b)], dtype=np.int64)
        return cls(pairs.reshape(-1, 2), np.asarray(list(levels), dtype=object))

    def select(self, levels: Iterable[str] | None = None) -> GroundTruth:
        """Only the pairs whose level is in ``levels`` (None: all)."""
        if levels is None:
            return self
        levels = (levels,) if isinstance(levels, str) else tuple(levels)
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise TruthError(f"unknown level(s) {_preview(sorted(unknown))}; use one of {LEVELS}")
        keep = np.isin(self.levels.astype(str), list(levels))
        return GroundTruth(self.pairs[keep], self.levels[keep])

    def check_size(self, n: int) -> None:
        """Raise if a pair points past the end of an ``n``-image corpus."""
        if len(self.pairs) and int(self.pairs.max()) >= n:
            raise TruthError(
                f"ground truth refers to image index {int(self.pairs.max())} "
                f"but the corpus has {n} images"
            )

    def to_map(
        self, ids: Sequence[str], levels: Iterable[str] | None = None
    ) -> dict[str, list[str]]:
        """imagededup's ground-truth map: every id a key, its duplicates (symmetric) as values."""
        self.check_size(len(ids))
        out: dict[str, list[str]] = {ident: [] for ident in ids}
        for i, j in self.select(levels).pairs:
            out[ids[i]].append(ids[j])
            out[ids[j]].append(ids[i])
        return out

    def components(self, n: int, levels: Iterable[str] | None = None) -> np.ndarray:
        """Connected-component label of each of the ``n`` images under the selected pairs."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self.check_size(n)
        p = self.select(levels).pairs
        graph = coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n))
        return connected_components(graph, directed=False)[1]

    def is_transitive(self, n: int, levels: Iterable[str] | None = None) -> bool:
        """True when the selected pairs are exactly all pairs inside their components (cliques)."""
        labels = self.components(n, levels)
        sizes = np.bincount(labels)
        return int((sizes * (sizes - 1) // 2).sum()) == len(self.select(levels))

    def counts(self) -> dict[str, int]:
        """Number of pairs at each level."""
        return {level: int((self.levels == level).sum()) for level in LEVELS}
