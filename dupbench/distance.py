"""How two codes are compared, and which way a score points: the one place that knows it.

A ``DistanceKind`` member is also the plain string stored in files and configs ("hamming",
"cosine", "equal"): it compares, hashes, formats and serializes as that string, so run.json,
.npz headers and method configs written before this type existed load unchanged, and
``DistanceKind("cosine")`` turns a stored string back into the kind. Code asks the kind
(``kind.higher_is_closer``, ``kind.within(score, t)``, ``kind.threshold_name``) instead of
comparing names.

The stored name is ``kind.value`` (== ``str(kind)``); ``kind.name`` is the member's ("HAMMING").

To add a kind (e.g. ``EUCLIDEAN = "euclidean", False, "distance", "L2", np.float32, 0.0, 0.5``,
lower is closer), give the member its seven values, in the order of ``__new__``: the stored name,
higher_is_closer, score_name, symbol, score dtype, closest (the score of identical codes) and
the default widest threshold a benchmark sweeps (for whole-number scores a fraction of the code
size, else a score). Direction, threshold names, sweeps, sorting and plots follow from them.
Then teach the places that search it: ``search.build_index`` / ``pick_backend`` / ``BACKENDS``,
``index/local.py`` (its query) and the threshold checks of ``api._threshold`` (range of a valid
threshold), and set ``metric = DistanceKind.EUCLIDEAN`` on the methods that produce it.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class DistanceKind(str, Enum):
    """A code comparison: its name (the member's string value), direction and score type."""

    #: bits that differ between binary codes; lower is closer, whole numbers
    HAMMING = "hamming", False, "distance", "d", np.int32, 0, 1 / 4
    #: cosine similarity of embeddings; higher is closer, in [-1, 1]
    COSINE = "cosine", True, "similarity", "cos", np.float32, 1.0, 0.5
    #: identical digests or nothing: every pair found scores 0 and no threshold changes that
    EQUAL = "equal", False, "distance", "=", np.int32, 0, 0.0

    higher_is_closer: bool
    score_name: str
    symbol: str
    dtype: type[np.generic]
    closest: float
    _sweep_to: float

    def __new__(
        cls,
        name: str,
        higher_is_closer: bool,
        score_name: str,
        symbol: str,
        dtype: type[np.generic],
        closest: float,
        sweep_to: float,
    ) -> DistanceKind:
        member = str.__new__(cls, name)
        member._value_ = name
        member.higher_is_closer = higher_is_closer
        member.score_name = score_name  # what a score is: "distance" or "similarity"
        member.symbol = symbol  # how a threshold reads: "d ≤ 10", "cos ≥ 0.9"
        member.dtype = dtype  # of ``Candidates.score``
        member.closest = closest
        member._sweep_to = sweep_to
        return member

    # the member is its name wherever a string is made of it (f-strings, str(), JSON)
    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def _missing_(cls, value: object) -> DistanceKind:
        """``DistanceKind("nosuch")`` raises ``UnknownNameError`` (a ``ValueError``) naming
        the closest kind."""
        from dupbench.errors import unknown_name

        raise unknown_name("distance kind", str(value), [k.value for k in cls])

    @property
    def threshold_name(self) -> str:
        """The API keyword that sets its threshold (imagededup's names)."""
        return f"{'min' if self.higher_is_closer else 'max'}_{self.score_name}_threshold"

    @property
    def threshold_form(self) -> str:
        """How its threshold reads, a format for the value: "d ≤ {:g}" (EQUAL: "equal")."""
        if not self.graded:
            return "equal"
        return f"{self.symbol} {'≥' if self.higher_is_closer else '≤'} {{:g}}"

    @property
    def discrete(self) -> bool:
        """Scores are whole numbers (bits), so a threshold sweep steps by one."""
        return bool(np.issubdtype(self.dtype, np.integer))

    @property
    def graded(self) -> bool:
        """Scores vary with closeness; False for EQUAL, which has one operating point."""
        return self is not DistanceKind.EQUAL

    def within(self, score, threshold: float):
        """Where ``score`` is at least as close as ``threshold`` (≤ a distance, ≥ a similarity);
        False for NaN."""
        return score >= threshold if self.higher_is_closer else score <= threshold

    def order_key(self, score: np.ndarray) -> np.ndarray:
        """An ascending sort key that puts the closest score first."""
        return -np.asarray(score, dtype=np.float64) if self.higher_is_closer else score

    def widest(self, a: float, b: float) -> float:
        """The wider (more permissive) of two thresholds."""
        return min(a, b) if self.higher_is_closer else max(a, b)

    def is_beyond(self, threshold: float, widest: float) -> bool:
        """Whether ``threshold`` admits pairs a search at ``widest`` did not return."""
        return threshold < widest if self.higher_is_closer else threshold > widest

    def default_sweep_to(self, size: int) -> float:
        """The widest threshold a benchmark searches when none is configured: a quarter of a
        binary code's bits, a similarity of 0.5, 0 for digests."""
        return round(size * self._sweep_to) if self.discrete else self._sweep_to
