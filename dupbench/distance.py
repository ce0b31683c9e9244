"""How two codes are compared, and which way a score points: the one place that knows it.

A ``DistanceKind`` member is also the plain string stored in files and configs ("hamming",
"cosine", "euclidean", "equal"): it compares, hashes, formats and serializes as that string, so run.json,
.npz headers and method configs written before this type existed load unchanged, and
``DistanceKind("cosine")`` turns a stored string back into the kind. Code asks the kind
(``kind.higher_is_closer``, ``kind.within(score, t)``, ``kind.threshold_name``) instead of
comparing names.

The stored name is ``kind.value`` (== ``str(kind)``); ``kind.name`` is the member's ("HAMMING").

To add a kind (``EUCLIDEAN = "euclidean"``, lower is closer, was added so), add the member and its
``Traits`` in ``TRAITS`` (direction, what a score is, how a threshold reads, score dtype, the
score of identical codes, whether a threshold grades pairs, the default widest threshold a
benchmark sweeps). Direction, threshold names, sweeps, sorting and plots follow from them.
Then teach the places that search it: ``search.build_index`` / ``pick_backend`` / ``BACKENDS``,
``index/local.py`` (its query) and the threshold checks of ``api._threshold`` (range of a valid
threshold), and set ``distance = DistanceKind.EUCLIDEAN`` on the methods that produce it
(``img_hash.ColorMomentHash``; its search is ``search/euclidean.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class Traits:
    """What a kind's scores mean; ``DistanceKind`` exposes each field as an attribute."""

    #: True: a higher score is a closer pair (a similarity); False: a distance
    higher_is_closer: bool
    #: what a score is ("distance", "similarity"), as labels and threshold names say it
    score_name: str
    #: how a threshold reads: "d" in "d ≤ 10", "cos" in "cos ≥ 0.9"
    symbol: str
    #: of ``Candidates.score``; an integer dtype makes the kind ``discrete``
    dtype: type[np.generic]
    #: the score of two identical codes
    closest: float
    #: False: every pair found scores ``closest`` and a threshold changes nothing
    graded: bool
    #: the widest threshold a benchmark searches by default: for a discrete kind a fraction of
    #: the code size, else a score
    sweep_to: float


class DistanceKind(str, Enum):
    """A code comparison: its stored name (the member's string value) and its ``Traits``."""

    #: bits that differ between binary codes
    HAMMING = "hamming"
    #: cosine similarity of embeddings, in [-1, 1]
    COSINE = "cosine"
    #: identical digests or nothing
    EQUAL = "equal"
    #: L2 distance of float vectors (OpenCV's colour moment hash), in the codes' units
    EUCLIDEAN = "euclidean"

    # the member is its name wherever a string is made of it (f-strings, str(), JSON)
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def _missing_(cls, value: object) -> DistanceKind:
        """``DistanceKind("nosuch")`` raises ``UnknownNameError`` (a ``ValueError``) naming
        the closest kind."""
        from dupbench.errors import unknown_name

        raise unknown_name("distance kind", str(value), [k.value for k in cls])

    @property
    def traits(self) -> Traits:
        return TRAITS[self]

    @property
    def higher_is_closer(self) -> bool:
        return self.traits.higher_is_closer

    @property
    def score_name(self) -> str:
        return self.traits.score_name

    @property
    def dtype(self) -> type[np.generic]:
        return self.traits.dtype

    @property
    def closest(self) -> float:
        return self.traits.closest

    @property
    def graded(self) -> bool:
        return self.traits.graded

    @property
    def discrete(self) -> bool:
        """Scores are whole numbers (bits), so a threshold sweep steps by one."""
        return bool(np.issubdtype(self.dtype, np.integer))

    @property
    def threshold_name(self) -> str:
        """The API keyword that sets its threshold (imagededup's names)."""
        return f"{'min' if self.higher_is_closer else 'max'}_{self.score_name}_threshold"

    @property
    def threshold_form(self) -> str:
        """How its threshold reads, a format for the value: "d ≤ {:g}" (ungraded: "equal")."""
        if not self.graded:
            return "equal"
        return f"{self.traits.symbol} {'≥' if self.higher_is_closer else '≤'} {{:g}}"

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
        binary code's bits, a similarity of 0.5, an L2 distance of 10, 0 for digests."""
        fraction = self.traits.sweep_to
        return round(size * fraction) if self.discrete else fraction


TRAITS = {
    DistanceKind.HAMMING: Traits(False, "distance", "d", np.int32, 0, True, 1 / 4),
    DistanceKind.COSINE: Traits(True, "similarity", "cos", np.float32, 1.0, True, 0.5),
    DistanceKind.EQUAL: Traits(False, "distance", "=", np.int32, 0, False, 0.0),
    # its scale is the codes': 10 suits the colour moment hash, whose preset sets its own
    DistanceKind.EUCLIDEAN: Traits(False, "distance", "L2", np.float32, 0.0, True, 10.0),
}
