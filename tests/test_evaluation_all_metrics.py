"""``evaluate_run`` as the harness uses it, on pHash distances of real photos and edited copies."""

import io
import itertools
import math

import numpy as np
import pytest
from evaluation_fixtures import random_problem
from PIL import Image
from skimage import data

from dupbench import images
from dupbench.evaluation import (
    breakdown,
    evaluate_run,
    micro_ap,
    pairwise_scores,
    retrieval_scores,
)
from dupbench.records import Candidates

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry"]


def jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return images.load(buffer.getvalue())


EDITS = {
    "resize": lambda im: im.resize((im.width // 2, im.height // 2), Image.BILINEAR),
    "jpeg": lambda im: jpeg(im, 25),
    "crop": lambda im: im.crop((im.width // 25, im.height // 25, im.width, im.height)),
    "rotate90": lambda im: im.rotate(90, expand=True),
}


@pytest.fixture(scope="module")
def photo_benchmark():
    """Each photo plus its four edits; truth = every pair within one photo's family, labelled
    by the edit (``edit+edit`` when neither is the original)."""
    imagehash = pytest.importorskip("imagehash")
    members, family = [], []
    for photo_index, name in enumerate(PHOTOS):
        original = images.load(getattr(data, name)())
        members.append(("original", original))
        members.extend((edit, make(original)) for edit, make in EDITS.items())
        family.extend([photo_index] * (1 + len(EDITS)))
    hashes = [imagehash.phash(image) for _, image in members]
    pairs = list(itertools.combinations(range(len(members)), 2))
    distance = np.array([hashes[a] - hashes[b] for a, b in pairs])
    near = distance <= 32  # the search radius: half the bits
    kept = np.array(pairs)[near]
    candidates = Candidates(kept[:, 0], kept[:, 1], distance[near], "hamming").sorted()
    truth = np.array([(a, b) for a, b in pairs if family[a] == family[b]])
    labels = [
        members[b][0] if members[a][0] == "original" else "edit+edit" for a, b in truth.tolist()
    ]
    return candidates, truth, labels, len(members)


def test_evaluate_run_on_real_photos(photo_benchmark):
    candidates, truth, labels, n = photo_benchmark
    row = evaluate_run(candidates, truth, n, threshold=10, k_values=(1, 4))
    assert all(isinstance(value, float) for value in row.values())
    assert row["n_truth"] == len(truth) == 60
    # different photos are never within 10 bits of pHash
    assert row["precision"] == 1.0
    # resized and recompressed copies of the original are within 10 bits; 90° turns are not
    table = breakdown(candidates, truth, labels, threshold=10).set_index("group")
    assert table.loc["resize", "recall"] == 1.0
    assert table.loc["jpeg", "recall"] == 1.0
    assert table.loc["rotate90", "recall"] == 0.0
    assert table.loc["rotate90", "pairs"] == len(PHOTOS)
    assert 0.4 < row["recall"] < 1.0
    # a threshold sweep can only do as well or better than one fixed threshold
    assert row["best_f1"] >= row["f1"]
    assert row["true_score_median"] < row["false_score_median"]


def test_evaluate_run_collects_the_individual_metrics():
    candidates, truth = random_problem(11, 12, "cosine")
    row = evaluate_run(candidates, truth, 12, threshold=0.5, k_values=(1, 3))
    at = candidates.within(0.5)
    assert row["tp"] == pairwise_scores(at, truth, 12)["tp"]
    assert row["micro_ap"] == micro_ap(candidates, truth)
    assert row["map"] == retrieval_scores(at, truth, 12, (1, 3))["map"]
    assert row["trec_ndcg@3"] == retrieval_scores(at, truth, 12, (1, 3), "trec")["ndcg@3"]
    assert row["threshold"] == 0.5 and row["target_precision"] == 0.99
    assert row["n_candidates"] == len(candidates)


def test_evaluate_run_key_names_are_stable():
    candidates, truth = random_problem(5, 8, "hamming")
    keys = set(evaluate_run(candidates, truth, 8, threshold=2, k_values=(1, 5)))
    ranking = {"map", "ndcg", "ndcg_imagededup", "jaccard", "queries"} | {
        f"{m}@{k}" for m in ("p", "r", "map", "ndcg") for k in (1, 5)
    }
    expected = (
        {
            "threshold",
            "precision",
            "recall",
            "f1",
            "precision_neg",
            "recall_neg",
            "f1_neg",
            "support_pos",
            "support_neg",
            "tp",
            "fp",
            "fn",
            "tn",
        }
        | ranking
        | {f"trec_{name}" for name in ranking}
        | {
            "micro_ap",
            "best_f1",
            "best_f1_threshold",
            "best_f1_precision",
            "best_f1_recall",
            "target_precision",
            "recall_at_precision",
            "recall_at_precision_threshold",
            "true_score_median",
            "false_score_median",
            "n_candidates",
            "n_truth",
        }
    )
    assert keys == expected


def test_evaluate_run_with_no_candidates():
    row = evaluate_run(Candidates.empty("hamming"), [[0, 1]], 4, threshold=3)
    assert row["recall"] == 0.0 and row["micro_ap"] == 0.0
    assert math.isnan(row["best_f1_threshold"]) and math.isnan(row["true_score_median"])
    assert row["map"] == pytest.approx(2 / 4)  # images 2, 3: nothing to find, nothing found


@pytest.mark.parametrize("distance, threshold", [("hamming", 2), ("cosine", 0.5)])
def test_evaluate_run_is_scores_at_plus_threshold_free_scores(distance, threshold):
    from dupbench.evaluation import pr_curve, scores_at, threshold_free_scores

    candidates, truth = random_problem(3, 10, distance)
    row = evaluate_run(
        candidates, truth, 10, threshold=threshold, k_values=(1, 5), target_precision=0.9
    )
    at = scores_at(candidates, truth, 10, threshold, (1, 5))
    free = threshold_free_scores(candidates, truth, 0.9)

    def same(a, b):
        return a.keys() == b.keys() and all(
            a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
        )

    assert not set(at) & set(free) and same(row, {**at, **free})
    assert same(
        free, threshold_free_scores(candidates, truth, 0.9, curve=pr_curve(candidates, truth))
    )
    assert (
        at["trec_map"]
        == retrieval_scores(candidates.within(threshold), truth, 10, (1, 5), "trec")["map"]
    )
