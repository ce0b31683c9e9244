"""imagededup-compatible ``evaluate``: its published cases, and agreement with the real package."""

import random

import numpy as np
import pytest

from dupbench.evaluation import evaluate, retrieval_scores
from dupbench.records import Candidates

TRUTH = {"1": ["2", "3", "4"], "2": ["1", "3"], "3": ["1", "2"], "4": ["1"]}
RETRIEVED = {"1": ["2", "3"], "2": ["1"], "3": ["1"], "4": []}


def test_published_map_case():
    result = evaluate(TRUTH, RETRIEVED)
    assert result["map"] == 0.41666666666666663
    assert result["ndcg"] == 0.75
    assert result["jaccard"] == pytest.approx(5 / 12)
    np.testing.assert_array_equal(result["precision"], [0.5, 1.0])
    np.testing.assert_array_equal(result["recall"], [1.0, 0.5])
    np.testing.assert_allclose(result["f1_score"], [2 / 3, 2 / 3])
    np.testing.assert_array_equal(result["support"], [2, 4])
    assert set(result) == {"map", "ndcg", "jaccard", "precision", "recall", "f1_score", "support"}


@pytest.mark.parametrize("metric", ["map", "ndcg", "jaccard", "MAP"])
def test_single_metric_returns_one_key(metric):
    assert set(evaluate(TRUTH, RETRIEVED, metric)) == {metric.lower()}


def test_classification_only():
    result = evaluate(TRUTH, RETRIEVED, "classification")
    assert set(result) == {"precision", "recall", "f1_score", "support"}


def test_published_single_query_case():
    """imagededup's per-list case: truth [1, 2, 3, 4], retrieved [1, 33, 2, 4] in that order."""
    retrieved = Candidates([0, 0, 0, 0], [1, 33, 2, 4], [1, 2, 3, 4], "hamming", cross=True)
    truth = [[0, 1], [0, 2], [0, 3], [0, 4]]
    scores = retrieval_scores(retrieved, truth, (1, 34), convention="trec")
    assert scores["map"] == 0.6041666666666666
    assert scores["ndcg_imagededup"] == 0.9060254355346823
    assert scores["jaccard"] == 0.6


def test_repeated_file_in_a_list_counts_once():
    retrieved = {"1": ["2", "2", "3"], "2": ["1"], "3": ["1"], "4": []}
    np.testing.assert_equal(evaluate(TRUTH, retrieved), evaluate(TRUTH, RETRIEVED))


def test_all_empty_maps_score_one():
    empty = {"a": [], "b": []}
    result = evaluate(empty, empty)
    assert (result["map"], result["ndcg"], result["jaccard"]) == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(result["support"], [1, 0])


@pytest.mark.parametrize(
    ("truth", "retrieved", "message"),
    [
        ({"a": ["b"], "b": []}, {"a": [], "b": []}, "not symmetric"),
        ({"a": ["c"], "b": []}, {"a": [], "b": []}, "not one of its keys"),
        ({"a": [], "b": []}, {"a": [], "c": []}, "same keys"),
        ({"a": ["a"], "b": []}, {"a": [], "b": []}, "itself"),
    ],
)
def test_invalid_maps_are_refused_clearly(truth, retrieved, message):
    with pytest.raises(ValueError, match=message):
        evaluate(truth, retrieved)


def test_unknown_metric():
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate(TRUTH, RETRIEVED, "auc")


def random_symmetric_map(files, rng, density):
    """A symmetric duplicate map; list order shuffled so ranking order matters."""
    mapping = {f: [] for f in files}
    for a_pos, a in enumerate(files):
        for b in files[a_pos + 1 :]:
            if rng.random() < density:
                mapping[a].append(b)
                mapping[b].append(a)
    for values in mapping.values():
        rng.shuffle(values)
    return mapping


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_agrees_with_real_imagededup_on_random_maps():
    imagededup_evaluation = pytest.importorskip("imagededup.evaluation")
    rng = random.Random(7)
    compared = 0
    for trial in range(40):
        files = [f"img{k}.jpg" for k in range(rng.randint(2, 12))]
        truth = random_symmetric_map(files, rng, rng.choice([0.1, 0.3, 0.6]))
        retrieved = random_symmetric_map(files, rng, rng.choice([0.1, 0.3, 0.6]))
        theirs = imagededup_evaluation.evaluate(truth, retrieved, "all")
        ours = evaluate(truth, retrieved, "all")
        assert set(ours) == set(theirs)
        for name in ("map", "ndcg", "jaccard"):
            assert ours[name] == pytest.approx(theirs[name], abs=1e-12), (trial, name)
        if len(theirs["support"]) < 2:
            # sklearn drops a class absent from both truth and retrieval; dupbench keeps both
            continue
        compared += 1
        for name in ("precision", "recall", "f1_score", "support"):
            np.testing.assert_allclose(ours[name], theirs[name], atol=1e-12, err_msg=name)
    assert compared >= 30
