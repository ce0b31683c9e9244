"""Random scored-pair problems for the evaluation tests, small enough to enumerate every pair."""

import itertools

import numpy as np

from dupbench.records import Candidates


def all_pairs(n, cross=False):
    """Every pair of the corpus: i<j within one collection of n, or queries × references."""
    if cross:
        return list(itertools.product(range(n[0]), range(n[1])))
    return list(itertools.combinations(range(n), 2))


def random_problem(seed, n, distance="hamming", cross=False, p_candidate=0.4, p_truth=0.25):
    """Candidates (with tied scores) and truth pairs drawn independently over all pairs."""
    rng = np.random.default_rng(seed)
    pairs = np.array(all_pairs(n, cross), dtype=np.int64).reshape(-1, 2)
    picked = pairs[rng.random(len(pairs)) < p_candidate]
    truth = pairs[rng.random(len(pairs)) < p_truth]
    if distance == "cosine":
        score = rng.integers(0, 5, len(picked)) / 4.0  # few distinct values: ties
    else:
        score = rng.integers(0, 6, len(picked))
    candidates = Candidates(picked[:, 0], picked[:, 1], score, distance, cross).sorted()
    return candidates, truth


def directed(candidates, seed, both=False):
    """The undirected ``candidates`` as a top-k search returns them within one collection:
    ``cross=True`` pairs, each pair listed as (i, j), (j, i) or (with ``both``, always) both
    ways, with its score."""
    rng = np.random.default_rng(seed)
    way = np.full(len(candidates), 2) if both else rng.integers(0, 3, len(candidates))
    forward, backward = way != 1, way != 0  # 0: i→j, 1: j→i, 2: both
    i = np.concatenate([candidates.i[forward], candidates.j[backward]])
    j = np.concatenate([candidates.j[forward], candidates.i[backward]])
    score = np.concatenate([candidates.score[forward], candidates.score[backward]])
    return Candidates(i, j, score, candidates.distance, cross=True).sorted()
