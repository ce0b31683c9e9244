"""Turn search results into what people act on: duplicate maps, groups, and files to remove.

``DuplicateResult`` keeps the array form (ids + ``Candidates``) and converts to the edge formats
only when asked: imagededup's ``{file: [dups]}`` map, connected-component groups, and a keep
policy that is explicit and deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from dupbench.files import write_json_mapping
from dupbench.records import Candidates, GroupedCandidates, Skipped, concat_ranges

KeepPolicy = Literal["first", "best", "largest_resolution", "largest_file", "oldest"]
KEEP_POLICIES: tuple[str, ...] = get_args(KeepPolicy)


@dataclass
class DuplicateResult:
    """Pairs found among ``ids`` (within one collection), plus the files that were skipped.

    ``candidates`` may be plain ``Candidates`` or, as the API searches, ``GroupedCandidates``
    (identical codes collapsed); it is kept grouped, and every output below is computed from the
    groups, so a group of k identical files costs O(k) memory, never O(k²).
    ``paths`` maps each id to its file where one exists (needed by the size/date keep policies).
    """

    ids: list[str]
    candidates: GroupedCandidates | Candidates
    skipped: list[Skipped] = field(default_factory=list)
    paths: Sequence[str | None] | None = None

    def __post_init__(self) -> None:
        self.candidates = self.grouped
        if len(self.candidates.classes) != len(self.ids):
            raise ValueError(
                f"{len(self.ids)} ids but the pairs are among {len(self.candidates.classes)} images"
            )

    @property
    def grouped(self) -> GroupedCandidates:
        """``candidates`` as groups (``__post_init__`` stores them so)."""
        if isinstance(self.candidates, GroupedCandidates):
            return self.candidates
        if self.candidates.cross:
            raise ValueError(
                "DuplicateResult needs undirected pairs within one collection "
                "(a range search), not directed query→reference pairs"
            )
        return GroupedCandidates.from_candidates(self.candidates, len(self.ids))

    def to_map(self, scores: bool = False) -> DuplicateMap:
        """imagededup's output: every id a key; duplicates best first (ties by name).

        With ``scores`` each entry is ``(id, score)``: an int Hamming distance, or a float cosine
        similarity. The map is read-only and computes each value when it is read; ``dict(...)``
        makes a plain dict, ``write_map`` writes it to JSON.
        """
        return DuplicateMap(self, scores)

    def write_map(self, path: str | os.PathLike, scores: bool = True) -> Path:
        """Write ``to_map(scores)`` as JSON, atomically and one key at a time (a line per file),
        never holding the whole map: 5,000 identical files are 25 M entries on disk, not in memory."""
        return write_json_mapping(path, self.to_map(scores))

    def groups(self) -> list[list[str]]:
        """Connected components of the duplicate graph with two or more members, largest first.

        Chains join groups (a~b, b~c puts a and c together even when a≁c), which is what a
        person reviewing clusters wants; ``to_remove`` does not rely on it.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        g = self.grouped
        if not self.ids:
            return []
        n = g.n_classes
        b = g.between
        graph = coo_matrix((np.ones(len(b), np.int8), (b.i, b.j)), shape=(n, n))
        labels = connected_components(graph, directed=False)[1][g.classes]
        members: dict[int, list[str]] = {}
        for idx in np.flatnonzero(np.bincount(labels)[labels] > 1):
            members.setdefault(int(labels[idx]), []).append(self.ids[idx])
        return sorted((sorted(m) for m in members.values()), key=lambda m: (-len(m), m[0]))

    def to_remove(self, keep: KeepPolicy = "first") -> list[str]:
        """Files to remove so that no two kept files are duplicates of each other.

        Greedy, like imagededup's ``get_files_to_remove``: visit files in order of preference; a
        file not yet marked keeps itself and marks its duplicates. ``first`` prefers the earlier
        name (imagededup's behaviour); the other policies prefer the larger resolution, the larger
        file or the older modification time, ties broken by name; ``best`` prefers all three in
        that order (a full-size original over its thumbnail). The result is sorted.
        """
        if keep not in KEEP_POLICIES:
            raise ValueError(
                f"unknown keep policy {keep!r}; choose from {', '.join(KEEP_POLICIES)}"
            )
        # A kept file marks the rest of its class and every member of the classes paired with
        # it, so marks are kept per class: O(files + class pairs), whatever the group sizes.
        g = self.grouped
        bounds, paired_with, _ = g.adjacency()
        classes = g.classes.tolist()
        paired = np.flatnonzero(((g.sizes() > 1) | (np.diff(bounds) > 0))[g.classes])
        kept_of = [-1] * g.n_classes  # the file each class keeps
        marked = np.zeros(g.n_classes, dtype=bool)  # every member of the class is removed
        for idx in self._preference(keep, paired.tolist()):
            c = classes[idx]
            if kept_of[c] < 0 and not marked[c]:
                kept_of[c] = idx
                marked[paired_with[bounds[c] : bounds[c + 1]]] = True
        kept = np.array(kept_of, dtype=np.int64)[g.classes[paired]]
        removed = paired[marked[g.classes[paired]] | ((kept >= 0) & (kept != paired))]
        return sorted(self.ids[k] for k in removed.tolist())

    def _preference(self, keep: KeepPolicy, paired: list[int]) -> list[int]:
        """The paired images (only they can be removed), most worth keeping first."""
        by_name = sorted(paired, key=lambda k: self.ids[k])
        if keep == "first":
            return by_name
        paths = self.paths
        if paths is None:
            raise ValueError(f"keep={keep!r} needs files on disk (an image directory), not a map")
        return sorted(by_name, key=lambda k: _keep_key(keep, paths[k]))

    def summary(self, groups: list[list[str]] | None = None) -> dict:
        """Counts for a report; pass ``groups`` when already computed."""
        groups = self.groups() if groups is None else groups
        return {
            "files": len(self.ids) + len(self.skipped),
            "encoded": len(self.ids),
            "skipped": len(self.skipped),
            "pairs": len(self.candidates),  # image pairs, counted without listing them
            "groups": len(groups),
            "files_in_groups": sum(len(g) for g in groups),
        }


class DuplicateMap(Mapping):
    """imagededup's ``{file: [duplicates]}``, each value computed when it is read.

    Nothing is stored per pair: a key's value is built from its class (identical codes) and the
    classes paired with it, in O(its duplicates). It iterates, compares, indexes and ``len``s like
    the dict it stands for (keys in id order; values best first, ties by name); it is read-only.
    ``result`` is the ``DuplicateResult`` it comes from (groups, files to remove).
    """

    def __init__(self, result: DuplicateResult, scores: bool) -> None:
        self.result = result
        ids = self._ids = result.ids
        self._index = {name: k for k, name in enumerate(ids)}
        grouped = self._grouped = result.grouped
        self._scores = scores
        self._members, self._member_bounds = grouped.members()
        self._pair_bounds, self._paired, self._pair_scores = grouped.adjacency()
        self._class_of = grouped.classes.tolist()  # plain ints: one lookup per key read
        self._alone = (grouped.sizes() == 1).tolist()
        self._rank = np.empty(len(ids), dtype=np.int64)  # position of each id in name order
        self._rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))

    def __getitem__(self, name: str) -> list:
        return self._entries(self._index[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        """Equal to any mapping with the same keys and values; compared one key at a time."""
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and all(
            k in other and self[k] == other[k] for k in self._index
        )

    def __repr__(self) -> str:
        return repr(dict(self))

    def _entries(self, idx: int) -> list:
        g, mb = self._grouped, self._member_bounds
        c = self._class_of[idx]
        lo, hi = self._pair_bounds[c], self._pair_bounds[c + 1]
        if lo == hi and self._alone[c]:  # most files of a collection have no duplicate
            return []
        classes = np.concatenate([[c], self._paired[lo:hi]])
        score = np.concatenate([np.zeros(1, self._pair_scores.dtype), self._pair_scores[lo:hi]])
        sizes = mb[classes + 1] - mb[classes]
        who = self._members[concat_ranges(mb[classes], sizes)]
        score = np.repeat(score, sizes)
        not_self = who != idx
        who, score = who[not_self], score[not_self]
        order = np.lexsort((self._rank[who], g.between.distance.order_key(score)))
        names = [self._ids[k] for k in who[order].tolist()]
        if not self._scores:
            return names
        return list(zip(names, score[order].tolist()))


def split_entry(entry) -> tuple[str, float | None]:
    """One entry of a ``find_duplicates`` list: a name, or ``(name, score)`` with scores."""
    return (entry[0], entry[1]) if isinstance(entry, (tuple, list)) else (entry, None)


def _keep_key(keep: KeepPolicy, path: str | None) -> float | tuple[float, ...]:
    """Lower sorts first (is kept): larger area, larger file, older file. Unreadable: last."""
    if keep == "best":
        return tuple(_keep_value(k, path) for k in ("largest_resolution", "largest_file", "oldest"))
    return _keep_value(keep, path)


def _keep_value(keep: KeepPolicy, path: str | None) -> float:
    """``_keep_key`` of one policy (not ``best``)."""
    if path is None:
        return float("inf")
    if keep == "largest_resolution":
        from dupbench.images import image_size

        size = image_size(path)
        return -float(size[0] * size[1]) if size else float("inf")
    try:
        stat = os.stat(path)
    except OSError:
        return float("inf")
    return -float(stat.st_size) if keep == "largest_file" else stat.st_mtime
