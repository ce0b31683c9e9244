"""Pair-level classification and the precision-recall curve, checked against enumerating all pairs."""

import time

import numpy as np
import pandas as pd
import pytest
from evaluation_fixtures import all_pairs, directed, random_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

from dupbench.evaluation import pairwise_scores, pr_curve
from dupbench.records import Candidates

problems = st.tuples(
    st.integers(0, 2**32 - 1),  # seed
    st.integers(2, 9),  # n
    st.sampled_from(["hamming", "cosine"]),
    st.booleans(),  # cross
)


def corpus_size(n, cross):
    return (n, n + 1) if cross else n


def brute_force(candidates, truth, n, cross):
    """Label every pair of the corpus and let sklearn count."""
    retrieved = set(zip(candidates.i.tolist(), candidates.j.tolist()))
    truth = set(map(tuple, np.asarray(truth).tolist()))
    pairs = all_pairs(corpus_size(n, cross), cross)
    y_true = [p in truth for p in pairs]
    y_pred = [p in retrieved for p in pairs]
    return precision_recall_fscore_support(y_true, y_pred, labels=[False, True], zero_division=0)


@settings(max_examples=60, deadline=None)
@given(problems, st.integers(0, 5))
def test_pairwise_matches_enumeration(problem, threshold_index):
    seed, n, distance, cross = problem
    candidates, truth = random_problem(seed, corpus_size(n, cross), distance, cross)
    threshold = np.linspace(0, 1, 6)[threshold_index] if distance == "cosine" else threshold_index
    ours = pairwise_scores(candidates, truth, corpus_size(n, cross), threshold)
    precision, recall, f1, support = brute_force(candidates.within(threshold), truth, n, cross)
    assert ours["precision_neg"] == pytest.approx(precision[0])
    assert ours["precision"] == pytest.approx(precision[1])
    assert ours["recall_neg"] == pytest.approx(recall[0])
    assert ours["recall"] == pytest.approx(recall[1])
    assert ours["f1_neg"] == pytest.approx(f1[0])
    assert ours["f1"] == pytest.approx(f1[1])
    assert (ours["support_neg"], ours["support_pos"]) == tuple(support)
    assert ours["tp"] + ours["fp"] + ours["fn"] + ours["tn"] == len(
        all_pairs(corpus_size(n, cross), cross)
    )


@settings(max_examples=40, deadline=None)
@given(problems)
def test_pr_curve_rows_equal_pairwise_scores_at_their_threshold(problem):
    seed, n, distance, cross = problem
    candidates, truth = random_problem(seed, corpus_size(n, cross), distance, cross)
    curve = pr_curve(candidates, truth)
    assert list(curve.columns) == ["threshold", "tp", "fp", "fn", "precision", "recall", "f1"]
    assert curve["threshold"].is_unique
    assert len(curve) == len(np.unique(candidates.score))
    for row in curve.itertuples():
        at = pairwise_scores(candidates, truth, corpus_size(n, cross), row.threshold)
        assert (row.tp, row.fp, row.fn) == (at["tp"], at["fp"], at["fn"])
        assert (row.precision, row.recall, row.f1) == pytest.approx(
            (at["precision"], at["recall"], at["f1"])
        )


@pytest.mark.parametrize("distance", ["hamming", "cosine"])
def test_pr_curve_runs_from_strict_to_loose(distance):
    candidates, truth = random_problem(3, 40, distance)
    curve = pr_curve(candidates, truth)
    thresholds = curve["threshold"].to_numpy()
    # strictest first: distances grow, similarities shrink
    steps = np.diff(thresholds) if distance == "hamming" else -np.diff(thresholds)
    assert np.all(steps > 0)
    for column in ("tp", "fp", "recall"):
        assert curve[column].is_monotonic_increasing
    assert curve["fn"].is_monotonic_decreasing
    assert curve["tp"].iloc[-1] + curve["fn"].iloc[-1] == len(truth)
    assert curve["tp"].iloc[-1] + curve["fp"].iloc[-1] == len(candidates)


def test_repeated_pairs_count_once_with_their_best_score():
    # (0, 1) arrives twice (e.g. from two top-k queries), once in reversed order
    candidates = Candidates([0, 1, 2], [1, 0, 3], [5, 2, 1], "hamming")
    scores = pairwise_scores(candidates, [[0, 1]], 4, threshold=2)
    assert (scores["tp"], scores["fp"]) == (1, 1)
    curve = pr_curve(candidates, [[0, 1]])
    assert curve["threshold"].tolist() == [1, 2]
    assert curve["tp"].tolist() == [0, 1]


def test_unordered_truth_is_canonicalised():
    candidates = Candidates([0], [1], [0], "hamming")
    assert pairwise_scores(candidates, [[1, 0], [0, 1]], 3)["tp"] == 1


def test_empty_inputs():
    empty = Candidates.empty("hamming")
    scores = pairwise_scores(empty, np.zeros((0, 2), dtype=int), 5)
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (0, 0, 0, 10)
    assert scores["precision"] == scores["recall"] == 0.0
    assert scores["recall_neg"] == 1.0
    assert pr_curve(empty, [[0, 1]]).empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"truth_pairs": [[0, 9]], "n": 5}, "out of range"),
        ({"truth_pairs": [[2, 2]], "n": 5}, "self pairs"),
        ({"truth_pairs": [[-1, 2]], "n": 5}, "negative"),
        ({"truth_pairs": [0, 1, 2], "n": 5}, "shape"),
        ({"truth_pairs": [[0.5, 1.0]], "n": 5}, "integer"),
        ({"truth_pairs": [[0, 1]], "n": (5, 5)}, "int n"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pairwise_scores(Candidates([0], [1], [0], "hamming"), **kwargs)


def test_cross_needs_both_collection_sizes():
    # an int n with cross candidates now means directed pairs within one collection
    with pytest.raises(ValueError, match="n_queries, n_references"):
        pairwise_scores(Candidates([0], [1], [0], "hamming", cross=True), [[0, 1]], (5, 5, 5))


def test_directed_pairs_within_one_collection_count_each_pair_once():
    # top-k within one collection: 0→1, 1→0 and 2→0; truth {0, 1} stored once, i < j
    candidates = Candidates([0, 1, 2], [1, 0, 0], [1, 2, 3], "hamming", cross=True)
    scores = pairwise_scores(candidates, [[0, 1]], 3)
    # folded: {0,1} (best score 1) is true, {0,2} is false; N = 3 pairs
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (1, 1, 0, 1)
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0
    assert pairwise_scores(candidates, [[0, 1]], 3, threshold=1)["fp"] == 0
    # the truth may be listed either way round
    assert pairwise_scores(candidates, [[1, 0]], 3) == scores
    with pytest.raises(ValueError, match="self pairs"):
        pairwise_scores(Candidates([1], [1], [0], "hamming", cross=True), [[0, 1]], 3)


@given(problems.filter(lambda p: not p[3]), st.booleans())
@settings(max_examples=60, deadline=None)
def test_directed_within_one_collection_equals_undirected(problem, both):
    seed, n, distance, _ = problem
    candidates, truth = random_problem(seed, n, distance)
    directed_candidates = directed(candidates, seed, both)
    for threshold in (None, 2 if distance == "hamming" else 0.5):
        assert pairwise_scores(directed_candidates, truth, n, threshold) == pairwise_scores(
            candidates, truth, n, threshold
        )
    pd.testing.assert_frame_equal(
        pr_curve(directed_candidates, truth, n), pr_curve(candidates, truth, n)
    )


def test_candidates_must_be_candidates():
    with pytest.raises(TypeError, match="Candidates"):
        pairwise_scores(pd.DataFrame({"i": [0], "j": [1]}), [[0, 1]], 3)


def test_a_million_images_cost_only_their_listed_pairs():
    """n = 10**6 has 5·10^11 pairs; the work must scale with the 5000 listed ones."""
    rng = np.random.default_rng(0)
    n = 10**6
    i = rng.choice(n - 1, 5000, replace=False)
    truth = np.stack([i, i + 1], axis=1)
    candidates = Candidates(i[:4000], i[:4000] + 1, rng.integers(0, 10, 4000), "hamming")
    start = time.perf_counter()
    scores = pairwise_scores(candidates, truth, n, threshold=9)
    curve = pr_curve(candidates, truth)
    elapsed = time.perf_counter() - start
    assert scores["tp"] == 4000 and scores["fn"] == 1000
    assert scores["tn"] == n * (n - 1) // 2 - 5000
    assert curve["tp"].iloc[-1] == 4000
    assert elapsed < 1.0
