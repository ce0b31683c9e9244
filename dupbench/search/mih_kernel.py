"""Compiled bucket join for multi-index hashing: the optional numba fast path.

Why compiled: a self-join at 16-bit substrings visits tens of millions of (bucket, neighbour
bucket) pairs holding a handful of codes each; numpy would have to materialise every one of them
as index arrays (several passes over memory per candidate), a loop does one lookup per bucket pair
and one XOR + POPCNT per candidate word. Importing this module needs numba; ``mih`` falls back to
its numpy join when numba is missing.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from dupbench.cpus import usable_cores


@intrinsic
def _popcount(typingctx, x):
    """LLVM's ctpop on a uint64: one POPCNT instruction (numba has no popcount of its own)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _search_run(keys, lo, hi, target):
    """Rows ``[start, end)`` of the bucket with key ``target`` by bisection of the sorted
    ``keys``; empty when there is none."""
    at = np.searchsorted(keys, target)
    if at < keys.shape[0] and keys[at] == target:
        return lo[at], hi[at]
    return np.int64(0), np.int64(0)


@numba.njit(nogil=True, cache=True)
def _join_range(
    a_codes,
    a_heads,
    a_ids,
    a_keys,
    a_lo,
    a_hi,
    b_codes,
    b_heads,
    b_ids,
    b_keys,
    b_lo,
    b_hi,
    offsets,
    masks,
    top,
    group_end,
    self_join,
    radius,
    stop,
    u0,
    e0,
    p0,
    out_i,
    out_j,
    out_d,
):
    """Join buckets ``u0..stop`` of table a with the buckets of table b whose keys differ by a
    mask; in a self-join (a is b) mask 0 pairs a bucket with itself (later rows only) and other
    masks only reach larger keys, so every pair of rows is met once. Masks come sorted by their
    top bit ``top``; ``group_end`` is the index after the last mask with the same top bit.

    Resumable: before a row whose candidates might overflow ``out_*`` it returns
    (written, bucket, mask, row) to continue from; (written, stop, 0, 0) when done.
    """
    cap = out_i.shape[0]
    words = a_codes.shape[1]
    one = np.uint64(1)
    n = 0
    for u in range(u0, stop):
        key = a_keys[u]
        e = (e0 if u == u0 else 0) - 1
        while e + 1 < masks.shape[0]:
            e += 1
            target = key ^ masks[e]
            tri = self_join and masks[e] == 0
            # key ^ mask > key exactly when key has a 0 at the mask's top bit: skip the group
            if self_join and not tri and (key >> top[e]) & 1:
                e = group_end[e] - 1
                continue
            if offsets.shape[0] > 0:  # dense table: one read
                b_start, q_end = np.int64(offsets[target]), np.int64(offsets[target + one])
            else:
                b_start, q_end = _search_run(b_keys, b_lo, b_hi, target)
            if q_end <= b_start:
                continue
            first = p0 if (u == u0 and e == e0 and p0 >= 0) else a_lo[u]
            for p in range(first, a_hi[u]):
                q0 = p + 1 if tri else b_start
                if n + (q_end - q0) > cap:
                    return n, u, e, p
                head = a_heads[p]
                hits = 0  # a branch-free pass (vectorised) first: nearly every run has no hit
                for q in range(q0, q_end):
                    hits += _popcount(head ^ b_heads[q]) <= radius
                if hits == 0:
                    continue
                for q in range(q0, q_end):
                    d = _popcount(head ^ b_heads[q])
                    if d > radius:
                        continue
                    for w in range(1, words):  # later words only for survivors of the first
                        d += _popcount(a_codes[p, w] ^ b_codes[q, w])
                    if d <= radius:
                        out_i[n] = a_ids[p]
                        out_j[n] = b_ids[q]
                        out_d[n] = d
                        n += 1
    return n, stop, 0, -1


def _join_chunk(args: tuple, start: int, stop: int) -> list[tuple[np.ndarray, ...]]:
    """Buckets ``start..stop``, growing the output buffers as needed: a huge bucket costs time
    but never an oversized allocation up front."""
    cap, parts = 1 << 16, []
    u, e, p = start, 0, -1
    while u < stop:
        out = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int32))
        n, u, e, p = _join_range(*args, stop, u, e, p, *out)
        parts.append(tuple(x[:n] for x in out))
        if n == 0 and u < stop:  # a single row's candidates exceed the buffer
            cap *= 4
    return parts


def join_tables(
    src, dst, masks: np.ndarray, self_join: bool, radius: int, threads: int | None = None
) -> tuple[np.ndarray, ...]:
    """(src id, dst id, distance) of every row pair within ``radius`` whose keys differ by one of
    ``masks`` (which include 0); the bucket range is split over ``threads`` (GIL released)."""
    top = np.array([int(m).bit_length() - 1 for m in masks], np.int64)
    order = np.argsort(top, kind="stable")
    masks, top = masks[order], top[order]
    group_end = np.searchsorted(top, top, side="right")
    args = (
        src.codes,
        src.heads,
        src.ids,
        src.keys,
        src.lo,
        src.hi,
        dst.codes,
        dst.heads,
        dst.ids,
        dst.keys,
        dst.lo,
        dst.hi,
        np.zeros(0, np.int32) if dst.offsets is None else dst.offsets,
        masks,
        np.maximum(top, 0).astype(np.uint64),
        group_end,
        self_join,
        radius,
    )
    threads = threads or usable_cores()
    # chunks of about equal row counts, several per thread so uneven buckets even out
    cuts = np.searchsorted(src.lo, np.linspace(0, src.lo[-1] + 1, 4 * threads + 1)[1:-1])
    bounds = np.unique(np.r_[0, cuts, len(src.keys)])
    with ThreadPoolExecutor(threads) as pool:
        chunks = pool.map(lambda b: _join_chunk(args, *b), itertools.pairwise(bounds))
        parts = [part for chunk in chunks for part in chunk]
    return tuple(np.concatenate(x) for x in zip(*parts))
