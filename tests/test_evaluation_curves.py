"""μAP, operating points, score distributions and the per-group breakdown."""

import math

import numpy as np
import pandas as pd
import pytest
from evaluation_fixtures import directed, random_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from dupbench.evaluation import (
    breakdown,
    breakdown_at_precision,
    micro_ap,
    operating_points,
    pairwise_scores,
    pr_curve,
    score_distributions,
)
from dupbench.records import Candidates

problems = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(3, 12),
    st.sampled_from(["hamming", "cosine"]),
)


def sklearn_micro_ap(candidates, truth):
    """Pool the pairs, order best first with non-matches first on ties, give sklearn strictly
    decreasing scores in that order, then rescale from 'positives returned' to 'all positives'."""
    truth = set(map(tuple, np.asarray(truth).tolist()))
    sign = -1 if candidates.higher_is_better else 1
    pooled = sorted(
        (
            (sign * s, (i, j) in truth)
            for i, j, s in zip(
                candidates.i.tolist(), candidates.j.tolist(), candidates.score.tolist()
            )
        ),
    )  # False < True: non-matches first among equal scores
    y_true = np.array([hit for _, hit in pooled])
    if not y_true.any():
        return 0.0
    ap_over_returned = average_precision_score(y_true, -np.arange(len(y_true)))
    return ap_over_returned * y_true.sum() / len(truth)


@settings(max_examples=60, deadline=None)
@given(problems)
def test_micro_ap_matches_sklearn(problem):
    seed, n, distance = problem
    candidates, truth = random_problem(seed, n, distance)
    if len(truth) == 0:
        assert math.isnan(micro_ap(candidates, truth))
        return
    assert micro_ap(candidates, truth) == pytest.approx(sklearn_micro_ap(candidates, truth))


def test_micro_ap_puts_non_matches_first_on_ties():
    # one match and one non-match at the same distance: the match is ranked second
    candidates = Candidates([0, 2], [1, 3], [4, 4], "hamming")
    assert micro_ap(candidates, [[0, 1]]) == 0.5
    # a missed truth pair halves it
    assert micro_ap(candidates, [[0, 1], [4, 5]]) == 0.25


@settings(max_examples=40, deadline=None)
@given(problems, st.sampled_from([0.5, 0.8, 1.0]))
def test_operating_points_are_the_best_of_all_thresholds(problem, target):
    seed, n, distance = problem
    candidates, truth = random_problem(seed, n, distance)
    points = operating_points(pr_curve(candidates, truth), target)
    at = {t: pairwise_scores(candidates, truth, n, t) for t in np.unique(candidates.score)}
    best_f1 = max((s["f1"] for s in at.values()), default=0.0)
    assert points["best_f1"] == pytest.approx(best_f1)
    if at and best_f1 > 0:
        chosen = at[points["best_f1_threshold"]]
        assert chosen["f1"] == pytest.approx(best_f1)
        assert (points["best_f1_precision"], points["best_f1_recall"]) == pytest.approx(
            (chosen["precision"], chosen["recall"])
        )
    feasible = [s["recall"] for s in at.values() if s["precision"] >= target]
    assert points["recall_at_precision"] == pytest.approx(max(feasible, default=0.0))
    if feasible:
        chosen = at[points["recall_at_precision_threshold"]]
        assert chosen["precision"] >= target
    else:
        assert math.isnan(points["recall_at_precision_threshold"])


def test_operating_points_on_a_known_curve():
    curve = pd.DataFrame(
        {
            "threshold": [1, 2, 3, 4],
            "tp": [2, 4, 6, 7],
            "fp": [0, 0, 2, 7],
            "fn": [6, 4, 2, 1],
            "precision": [1.0, 1.0, 0.75, 0.5],
            "recall": [0.25, 0.5, 0.75, 0.875],
            "f1": [0.4, 2 / 3, 0.75, 0.636],
        }
    )
    points = operating_points(curve, target_precision=0.99)
    assert (points["best_f1"], points["best_f1_threshold"]) == (0.75, 3.0)
    assert (points["recall_at_precision"], points["recall_at_precision_threshold"]) == (0.5, 2.0)
    assert points["target_precision"] == 0.99


def test_operating_points_needs_a_curve():
    with pytest.raises(ValueError, match="pr_curve"):
        operating_points(pd.DataFrame({"threshold": [1]}))
    empty = operating_points(pr_curve(Candidates.empty("hamming"), [[0, 1]]))
    assert empty["best_f1"] == 0.0 and math.isnan(empty["best_f1_threshold"])


def test_score_distributions_split_candidates_by_truth():
    candidates = Candidates([0, 0, 1, 2], [1, 2, 2, 3], [1, 5, 2, 7], "hamming")
    split = score_distributions(candidates, [[0, 1], [2, 3], [4, 5]])
    assert sorted(split["true_pairs"].tolist()) == [1, 7]
    assert sorted(split["false_pairs"].tolist()) == [2, 5]


@settings(max_examples=30, deadline=None)
@given(problems, st.integers(0, 5))
def test_breakdown_recall_per_group_by_hand(problem, threshold_index):
    seed, n, distance = problem
    candidates, truth = random_problem(seed, n, distance)
    threshold = threshold_index / 5 if distance == "cosine" else threshold_index
    groups = np.array(["crop", "jpeg", "resize"])[np.arange(len(truth)) % 3]
    table = breakdown(candidates, truth, groups, threshold)
    found_pairs = set(
        zip(*[a.tolist() for a in (candidates.within(threshold).i, candidates.within(threshold).j)])
    )
    assert list(table.columns) == ["group", "pairs", "found", "recall", "median_score"]
    for row in table.itertuples():
        members = [tuple(p) for p, g in zip(truth.tolist(), groups) if g == row.group]
        found = sum(p in found_pairs for p in members)
        assert (row.pairs, row.found) == (len(members), found)
        assert row.recall == pytest.approx(found / len(members))
    assert table["found"].sum() == pairwise_scores(candidates, truth, n, threshold)["tp"]


def test_breakdown_median_score_and_label_checks():
    candidates = Candidates([0, 2, 4], [1, 3, 5], [2, 8, 4], "hamming")
    truth = [[1, 0], [2, 3], [4, 5], [6, 7]]
    table = breakdown(candidates, truth, ["jpeg", "rotate", "jpeg", "rotate"], threshold=5)
    jpeg, rotate = table.set_index("group").loc["jpeg"], table.set_index("group").loc["rotate"]
    assert (jpeg["found"], jpeg["recall"], jpeg["median_score"]) == (2, 1.0, 3.0)
    assert (rotate["found"], rotate["recall"], rotate["median_score"]) == (0, 0.0, 8.0)
    with pytest.raises(ValueError, match="one label per truth pair"):
        breakdown(candidates, truth, ["jpeg"], threshold=5)


def test_breakdown_at_precision_takes_the_widest_threshold_that_keeps_the_precision():
    # distances: truth pairs at 1, 2, 3 (jpeg, jpeg, crop), a false pair at 4, a truth pair at 5
    # (crop), false pairs at 6: precision 1, 1, 1, 0.75, 0.8, 0.57; at 0.8 the widest is 5
    candidates = Candidates([0, 2, 4, 8, 6, 10], [1, 3, 5, 9, 7, 11], [1, 2, 3, 4, 5, 6], "hamming")
    truth = [[0, 1], [2, 3], [4, 5], [6, 7], [12, 13]]  # the last one never retrieved
    groups = ["jpeg", "jpeg", "crop", "crop", "rotate"]
    table, point = breakdown_at_precision(candidates, truth, groups, 0.8)
    assert point == {"threshold": 5.0, "precision": 0.8, "recall": 0.8}
    assert table.equals(breakdown(candidates, truth, groups, 5.0))
    recall = table.set_index("group")["recall"]
    assert (recall["jpeg"], recall["crop"], recall["rotate"]) == (1.0, 1.0, 0.0)
    table, point = breakdown_at_precision(candidates, truth, groups, 0.99)  # strict: up to 3
    assert point["threshold"] == 3.0 and table.set_index("group")["recall"]["crop"] == 0.5
    never = Candidates([8], [9], [0], "hamming")  # only a false pair: no threshold reaches 0.99
    table, point = breakdown_at_precision(never, truth, groups, 0.99)
    assert math.isnan(point["threshold"]) and point["recall"] == 0.0
    assert (table["recall"] == 0).all() and (table["found"] == 0).all()


def test_curves_fold_directed_pairs_within_one_collection():
    # top-k within one collection: 0→1 (score 3), 1→0 (score 1), 2→0 (score 2); truth {0, 1}
    candidates = Candidates([0, 1, 2], [1, 0, 0], [3, 1, 2], "hamming", cross=True)
    curve = pr_curve(candidates, [[0, 1]], n=3)
    assert curve[["threshold", "tp", "fp"]].values.tolist() == [[1, 1, 0], [2, 1, 1]]
    assert micro_ap(candidates, [[0, 1]], n=3) == 1.0
    distributions = score_distributions(candidates, [[0, 1]], n=3)
    assert distributions["true_pairs"].tolist() == [1] and distributions[
        "false_pairs"
    ].tolist() == [2]
    table = breakdown(candidates, [[0, 1]], ["jpeg"], threshold=1, n=3)
    assert (table["found"].item(), table["median_score"].item()) == (1, 1.0)
    # without n the arrays stay queries × references: 1→0 is not the truth pair (0, 1)
    assert breakdown(candidates, [[0, 1]], ["jpeg"], threshold=1)["found"].item() == 0


@given(problems, st.booleans())
def test_curves_of_directed_pairs_equal_the_undirected_ones(problem, both):
    seed, n, distance = problem
    candidates, truth = random_problem(seed, n, distance)
    directed_candidates = directed(candidates, seed, both)
    assert micro_ap(directed_candidates, truth, n) == pytest.approx(
        micro_ap(candidates, truth), nan_ok=True
    )
    got = score_distributions(directed_candidates, truth, n)
    expected = score_distributions(candidates, truth)
    for name in ("true_pairs", "false_pairs"):
        assert sorted(got[name].tolist()) == sorted(expected[name].tolist())
    threshold = 0.5 if distance == "cosine" else 2
    groups = np.array(["a", "b"])[np.arange(len(truth)) % 2]
    pd.testing.assert_frame_equal(
        breakdown(directed_candidates, truth, groups, threshold, n),
        breakdown(candidates, truth, groups, threshold),
    )
