"""Search over codes: Hamming (binary hashes), equality (digests) and cosine (embeddings).

Every index answers ``range(threshold)`` (all pairs at least that close) and ``topk(k)`` with a
``Candidates`` value: no self pairs, deterministic order, scores returned.
"""
