"""DistanceKind: the stored names stay plain strings, and each kind answers for its direction."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from dupbench.distance import DistanceKind
from dupbench.errors import UnknownNameError
from dupbench.records import Candidates

HAMMING, COSINE, EQUAL = DistanceKind.HAMMING, DistanceKind.COSINE, DistanceKind.EQUAL


def test_a_kind_is_its_stored_name() -> None:
    assert [str(k) for k in DistanceKind] == ["hamming", "cosine", "equal", "euclidean"]
    assert DistanceKind("cosine") is COSINE and COSINE == "cosine" and f"{COSINE}" == "cosine"
    assert json.dumps({"metric": HAMMING}) == '{"metric": "hamming"}'
    assert pickle.loads(pickle.dumps(EQUAL)) is EQUAL
    with pytest.raises(UnknownNameError, match="did you mean 'cosine'"):
        DistanceKind("cosin")


def test_direction_and_thresholds() -> None:
    score = np.array([0.2, 0.5, 0.9, np.nan])
    assert COSINE.within(score, 0.5).tolist() == [False, True, True, False]
    assert HAMMING.within(score, 0.5).tolist() == [True, True, False, False]
    assert np.argsort(COSINE.order_key(score[:3])).tolist() == [2, 1, 0]
    assert np.argsort(HAMMING.order_key(score[:3])).tolist() == [0, 1, 2]
    assert (COSINE.widest(0.9, 0.5), HAMMING.widest(4, 10)) == (0.5, 10)
    assert COSINE.is_beyond(0.4, 0.5) and not COSINE.is_beyond(0.6, 0.5)
    assert HAMMING.is_beyond(11, 10) and not HAMMING.is_beyond(10, 10)
    assert (HAMMING.threshold_name, COSINE.threshold_name) == (
        "max_distance_threshold",
        "min_similarity_threshold",
    )
    forms = ["d ≤ 3", "cos ≥ 3", "equal", "L2 ≤ 3"]
    assert [k.threshold_form.format(3) for k in DistanceKind] == forms
    assert [k.default_sweep_to(64) for k in DistanceKind] == [16, 0.5, 0, 10.0]
    assert (HAMMING.discrete, COSINE.discrete, EQUAL.graded) == (True, False, False)


def test_candidates_take_a_name_and_keep_the_kind(tmp_path) -> None:
    c = Candidates([0], [1], [0.5], "cosine")
    assert c.distance is COSINE and c.higher_is_better
    assert Candidates.empty("hamming").score.dtype == np.int32
    c.save(tmp_path / "c.npz")
    assert Candidates.load(tmp_path / "c.npz").distance is COSINE
