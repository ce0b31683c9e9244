"""Turn search results into what people act on: duplicate maps, groups, and files to remove.

``DuplicateResult`` keeps the array form (ids + ``Candidates``) and converts to the edge formats
only when asked: imagededup's ``{file: [dups]}`` map, connected-component groups, and a keep
policy that is explicit and deterministic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dupbench.records import Candidates, Skipped

KeepPolicy = Literal["first", "best", "largest_resolution", "largest_file", "oldest"]
KEEP_POLICIES: tuple[str, ...] = ("first", "best", "largest_resolution", "largest_file", "oldest")


@dataclass
class DuplicateResult:
    """Pairs found among ``ids`` (within one collection), plus the files that were skipped.

    ``paths`` maps each id to its file where one exists (needed by the size/date keep policies).
    """

    ids: list[str]
    candidates: Candidates
    skipped: list[Skipped] = field(default_factory=list)
    paths: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.candidates.cross:
            raise ValueError("DuplicateResult needs undirected pairs within one collection "
                             "(a range search), not directed query→reference pairs")

    def to_map(self, scores: bool = False) -> dict[str, list]:
        """imagededup's output: every id a key; duplicates best first (ties by name).

        With ``scores`` each entry is ``(id, score)``: an int Hamming distance, or a float cosine
        similarity.
        """
        out: dict[str, list] = {k: [] for k in self.ids}
        c = self.candidates
        both_i = np.concatenate([c.i, c.j])
        both_j = np.concatenate([c.j, c.i])
        both_s = np.concatenate([c.score, c.score])
        names = np.array(self.ids, dtype=object)
        key = -both_s.astype(np.float64) if c.higher_is_better else both_s
        # order by query, then score, then the duplicate's name
        order = np.lexsort((names[both_j].astype(str), key, both_i))
        cast = float if c.metric == "cosine" else int
        for q, d, s in zip(both_i[order], both_j[order], both_s[order]):
            out[self.ids[q]].append((self.ids[d], cast(s)) if scores else self.ids[d])
        return out

    def groups(self) -> list[list[str]]:
        """Connected components of the duplicate graph with two or more members, largest first.

        Chains join groups (a~b, b~c puts a and c together even when a≁c), which is what a
        person reviewing clusters wants; ``to_remove`` does not rely on it.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(self.ids)
        c = self.candidates
        graph = coo_matrix((np.ones(len(c), np.int8), (c.i, c.j)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        members: dict[int, list[str]] = {}
        for idx in np.flatnonzero(np.bincount(labels, minlength=1)[labels] > 1):
            members.setdefault(int(labels[idx]), []).append(self.ids[idx])
        return sorted((sorted(g) for g in members.values()), key=lambda g: (-len(g), g[0]))

    def to_remove(self, keep: KeepPolicy = "first") -> list[str]:
        """Files to remove so that no two kept files are duplicates of each other.

        Greedy, like imagededup's ``get_files_to_remove``: visit files in order of preference; a
        file not yet marked keeps itself and marks its duplicates. ``first`` prefers the earlier
        name (imagededup's behaviour); the other policies prefer the larger resolution, the larger
        file or the older modification time, ties broken by name; ``best`` prefers all three in
        that order (a full-size original over its thumbnail). The result is sorted.
        """
        if keep not in KEEP_POLICIES:
            raise ValueError(f"unknown keep policy {keep!r}; choose from {', '.join(KEEP_POLICIES)}")
        neighbours: dict[int, list[int]] = {}
        for a, b in zip(self.candidates.i.tolist(), self.candidates.j.tolist()):
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
        removed: set[int] = set()
        for idx in self._preference(keep, sorted(neighbours)):
            if idx not in removed:
                removed.update(neighbours[idx])
        return sorted(self.ids[k] for k in removed)

    def _preference(self, keep: KeepPolicy, paired: list[int]) -> list[int]:
        """The paired images (only they can be removed), most worth keeping first."""
        by_name = sorted(paired, key=lambda k: self.ids[k])
        if keep == "first":
            return by_name
        if self.paths is None:
            raise ValueError(f"keep={keep!r} needs files on disk (an image directory), not a map")
        return sorted(by_name, key=lambda k: _keep_key(keep, self.paths[k]))

    def summary(self, groups: list[list[str]] | None = None) -> dict:
        """Counts for a report; pass ``groups`` when already computed."""
        groups = self.groups() if groups is None else groups
        return {
            "files": len(self.ids) + len(self.skipped),
            "encoded": len(self.ids),
            "skipped": len(self.skipped),
            "pairs": len(self.candidates),
            "groups": len(groups),
            "files_in_groups": sum(len(g) for g in groups),
        }


def split_entry(entry) -> tuple[str, float | None]:
    """One entry of a ``find_duplicates`` list: a name, or ``(name, score)`` with scores."""
    return (entry[0], entry[1]) if isinstance(entry, (tuple, list)) else (entry, None)


def _keep_key(keep: KeepPolicy, path: str | None) -> float | tuple[float, float, float]:
    """Lower sorts first (is kept): larger area, larger file, older file. Unreadable: last."""
    if keep == "best":
        return tuple(_keep_key(k, path) for k in ("largest_resolution", "largest_file", "oldest"))
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
