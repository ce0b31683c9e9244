"""Per-query retrieval metrics against trec_eval (pytrec_eval) and a plain per-query reference."""

import math
import time

import numpy as np
import pytest
from evaluation_fixtures import directed, random_problem
from hypothesis import given, settings
from hypothesis import strategies as st

from dupbench.evaluation import retrieval_scores
from dupbench.records import Candidates

K_VALUES = (1, 2, 3, 5)

problems = st.tuples(
    st.integers(0, 2**32 - 1),  # seed
    st.integers(2, 10),  # n
    st.sampled_from(["hamming", "cosine"]),
    st.booleans(),  # cross
)


def corpus_size(n, cross):
    return (n, n + 2) if cross else n


def reference_lists(candidates, n_queries):
    """R(q) for every query: its candidates, best score first, then by document index."""
    sign = -1 if candidates.higher_is_better else 1
    entries = {q: [] for q in range(n_queries)}
    for i, j, s in zip(candidates.i.tolist(), candidates.j.tolist(), candidates.score.tolist()):
        entries[i].append((sign * s, j))
        if not candidates.cross:
            entries[j].append((sign * s, i))
    return {q: [doc for _, doc in sorted(items)] for q, items in entries.items()}


def reference_truth(truth, n_queries, cross):
    sets = {q: set() for q in range(n_queries)}
    for i, j in np.asarray(truth).tolist():
        sets[i].add(j)
        if not cross:
            sets[j].add(i)
    return sets


def per_query_reference(relevant, ranked, k_values):
    """Each metric for one query, written out the long way (0 for a 0 denominator)."""

    def div(a, b):
        return a / b if b else 0.0

    rel = [doc in relevant for doc in ranked]
    precision_at = [sum(rel[: r + 1]) / (r + 1) for r in range(len(rel))]
    gains = [1 / math.log2(r + 2) if hit else 0.0 for r, hit in enumerate(rel)]

    def ideal(m):
        return sum(1 / math.log2(r + 2) for r in range(m))

    hits = sum(rel)
    out = {
        "map": div(sum(p for p, hit in zip(precision_at, rel) if hit), len(relevant)),
        "ndcg": div(sum(gains), ideal(len(relevant))),
        "ndcg_imagededup": div(sum(gains), ideal(hits)),
        "jaccard": div(hits, len(set(ranked) | relevant)),
    }
    for k in k_values:
        top = rel[:k]
        out[f"p@{k}"] = sum(top) / k
        out[f"r@{k}"] = div(sum(top), len(relevant))
        out[f"map@{k}"] = div(sum(p for p, hit in zip(precision_at[:k], top) if hit), len(relevant))
        out[f"ndcg@{k}"] = div(sum(gains[:k]), ideal(min(k, len(relevant))))
    return out


def reference_scores(candidates, truth, n_queries, k_values, convention):
    lists = reference_lists(candidates, n_queries)
    truth_sets = reference_truth(truth, n_queries, candidates.cross)
    rows = []
    for q in range(n_queries):
        relevant, ranked = truth_sets[q], lists[q]
        if convention == "trec" and not relevant:
            continue
        row = per_query_reference(relevant, ranked, k_values)
        if convention == "imagededup" and not relevant and not ranked:
            row = dict.fromkeys(row, 1.0)
        rows.append(row)
    return {name: np.mean([row[name] for row in rows]) for name in rows[0]} if rows else None


@settings(max_examples=60, deadline=None)
@given(problems, st.sampled_from(["imagededup", "trec"]))
def test_matches_per_query_reference(problem, convention):
    seed, n, distance, cross = problem
    size = corpus_size(n, cross)
    candidates, truth = random_problem(seed, size, distance, cross)
    ours = retrieval_scores(candidates, truth, size, K_VALUES, convention)
    expected = reference_scores(candidates, truth, n, K_VALUES, convention)
    if expected is None:  # trec: no query has a duplicate
        assert ours["queries"] == 0 and math.isnan(ours["map"])
        return
    assert set(ours) == set(expected) | {"queries"}
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


@settings(max_examples=60, deadline=None)
@given(problems)
def test_trec_convention_matches_trec_eval(problem):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    seed, n, distance, cross = problem
    size = corpus_size(n, cross)
    candidates, truth = random_problem(seed, size, distance, cross, p_truth=0.35)
    truth_sets = reference_truth(truth, n, cross)
    lists = reference_lists(candidates, n)
    qrels = {str(q): {str(d): 1 for d in docs} for q, docs in truth_sets.items() if docs}
    if not qrels:
        return
    # trec_eval re-sorts by score; strictly decreasing scores pin our order (ties are ours)
    run = {
        str(q): {str(d): float(len(docs) - r) for r, d in enumerate(docs)}
        for q, docs in lists.items()
        if docs
    }
    cutoffs = ",".join(map(str, K_VALUES))
    measures = {
        "map",
        "ndcg",
        f"P.{cutoffs}",
        f"recall.{cutoffs}",
        f"map_cut.{cutoffs}",
        f"ndcg_cut.{cutoffs}",
    }
    judged = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {"map": "map", "ndcg": "ndcg"}
    for k in K_VALUES:
        names.update(
            {
                f"p@{k}": f"P_{k}",
                f"r@{k}": f"recall_{k}",
                f"map@{k}": f"map_cut_{k}",
                f"ndcg@{k}": f"ndcg_cut_{k}",
            }
        )
    ours = retrieval_scores(candidates, truth, size, K_VALUES, "trec")
    assert ours["queries"] == len(qrels)
    for ours_name, trec_name in names.items():
        # a query trec_eval never saw in the run scores 0 (trec_eval -c)
        expected = np.mean([judged.get(q, {}).get(trec_name, 0.0) for q in qrels])
        assert ours[ours_name] == pytest.approx(expected, abs=1e-12), ours_name


def test_within_collection_pair_serves_both_queries():
    # pair (0, 1) is a hit for query 0 and for query 1; image 2 has nothing and finds nothing
    candidates = Candidates([0], [1], [3], "hamming")
    imagededup = retrieval_scores(candidates, [[0, 1]], 3, (1,), "imagededup")
    trec = retrieval_scores(candidates, [[0, 1]], 3, (1,), "trec")
    assert imagededup["map"] == 1.0 and imagededup["queries"] == 3
    assert trec["map"] == 1.0 and trec["queries"] == 2


def test_ndcg_variants_differ_on_a_missed_duplicate():
    # query 0 has duplicates 1 and 2; only 1 is retrieved, at rank 1
    candidates = Candidates([0], [1], [0.9], "cosine", cross=True)
    scores = retrieval_scores(candidates, [[0, 1], [0, 2]], (1, 3), (1,), "trec")
    assert scores["ndcg_imagededup"] == 1.0  # the miss costs nothing
    assert scores["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert scores["map"] == 0.5 and scores["r@1"] == 0.5 and scores["p@1"] == 1.0


def test_order_is_score_then_index():
    # similarities: 3 beats 1 beats 2 (tie 0.5 with 1 broken by index)
    candidates = Candidates([0, 0, 0], [2, 1, 3], [0.5, 0.5, 0.9], "cosine", cross=True)
    at_one = retrieval_scores(candidates, [[0, 1]], (1, 4), (1, 2), "trec")
    assert at_one["p@1"] == 0.0 and at_one["r@2"] == 1.0 and at_one["map"] == 0.5


def test_bad_convention_and_k():
    candidates = Candidates([0], [1], [0], "hamming")
    with pytest.raises(ValueError, match="convention"):
        retrieval_scores(candidates, [[0, 1]], 2, convention="beir")
    with pytest.raises(ValueError, match="positive"):
        retrieval_scores(candidates, [[0, 1]], 2, k_values=(0,))


def test_a_million_queries_cost_only_their_listed_pairs():
    rng = np.random.default_rng(1)
    n = 10**6
    i = 2 * rng.choice(n // 2, 5000, replace=False)  # disjoint pairs (2a, 2a + 1)
    truth = np.stack([i, i + 1], axis=1)
    candidates = Candidates(i[:4000], i[:4000] + 1, rng.integers(0, 10, 4000), "hamming")
    start = time.perf_counter()
    imagededup = retrieval_scores(candidates, truth, n)
    trec = retrieval_scores(candidates, truth, n, convention="trec")
    assert time.perf_counter() - start < 1.0
    # 1000 pairs missed: their 2000 images score 0, every other image scores 1
    assert imagededup["map"] == pytest.approx((n - 2000) / n, abs=1e-12)
    assert imagededup["queries"] == n
    assert trec["queries"] == 10_000
    assert trec["map"] == trec["ndcg"] == trec["r@1"] == pytest.approx(0.8)


def test_directed_top_k_within_one_collection_by_hand():
    # top-k lists within one collection: 0→1, 1→0, 2→0; truth {0, 1} stored once (i < j)
    candidates = Candidates([0, 1, 2], [1, 0, 0], [1, 1, 2], "hamming", cross=True)
    scores = retrieval_scores(candidates, [[0, 1]], 3, k_values=(1,))
    # q0: [1] relevant, AP 1; q1: [0] relevant, AP 1; q2: [0] with no duplicates, AP 0
    assert scores["map"] == pytest.approx(2 / 3)
    assert scores["p@1"] == pytest.approx(2 / 3)
    assert scores["queries"] == 3
    trec = retrieval_scores(candidates, [[0, 1]], 3, k_values=(1,), convention="trec")
    assert (trec["map"], trec["p@1"], trec["queries"]) == (1.0, 1.0, 2.0)
    # as queries × references the same arrays mean something else: only (0, 1) is relevant
    assert retrieval_scores(candidates, [[0, 1]], (3, 3), k_values=(1,))["map"] == pytest.approx(
        1 / 3
    )
    with pytest.raises(ValueError, match="self pairs"):
        retrieval_scores(Candidates([0], [0], [0], "hamming", cross=True), [[0, 1]], 3)


@given(problems.filter(lambda p: not p[3]))
@settings(max_examples=60, deadline=None)
def test_directed_lists_both_ways_equal_the_undirected_pairs(problem):
    seed, n, distance, _ = problem
    candidates, truth = random_problem(seed, n, distance)
    both_ways = directed(candidates, seed, both=True)
    for convention in ("imagededup", "trec"):
        expected = retrieval_scores(candidates, truth, n, K_VALUES, convention)
        got = retrieval_scores(both_ways, truth, n, K_VALUES, convention)
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name] == pytest.approx(expected[name], nan_ok=True), name
