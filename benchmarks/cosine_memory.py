"""Peak memory and time of cosine range search: memory must grow like N·d, never N².

For each size N, a fresh child process builds N random unit vectors (d = 576, MobileNetV3's
dimension; 0.1 % of them planted near-copies so the search finds pairs), then runs
``CosineIndex(...).range(threshold)`` and reports its RSS high-water mark (``ru_maxrss``, the whole
process: the vectors themselves included) and wall time.

Exact search is N²·d/2 multiply-adds: 1M × 1M at d = 576 is ~3·10^14, hours on a 2-core machine.
Sizes above ``--full-limit`` therefore run the same tiled search for the first ``--sample-rows``
query rows against all N references (the same tiles, the same memory pattern, over the full index),
and the total time is EXTRAPOLATED as  t_sample · (N / 2) / sample_rows  (within one collection,
each row is compared with the ~N/2 rows after it on average). Such rows are labelled.

    python benchmarks/cosine_memory.py                      # 100k full, 1M sampled
    python benchmarks/cosine_memory.py --sizes 20000 --full-limit 20000
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time

import numpy as np


def planted_unit_vectors(n: int, dim: int, seed: int = 0, dup_fraction: float = 0.001,
                         chunk: int = 65536) -> np.ndarray:
    """Random unit rows (float32), generated in chunks; a fraction are noisy copies of others."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
        x[s : s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    m = int(n * dup_fraction)
    if m:
        src = rng.integers(0, n - m, m)
        noisy = x[src] + rng.normal(0, 0.01, (m, dim)).astype(np.float32)
        x[n - m :] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return x


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(n: int, dim: int, threshold: float, sample_rows: int | None, backend: str) -> dict:
    from dupbench.search.cosine import CosineIndex

    x = planted_unit_vectors(n, dim)
    data_mb = x.nbytes / 2**20
    rss_data = peak_rss_mb()
    t0 = time.perf_counter()
    index = CosineIndex(x, backend)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if sample_rows is None:
        found = index.range(threshold)
        pairs = len(found)
    else:
        found = index.range(threshold, queries=x[:sample_rows])
        pairs = int(np.sum(found.j > found.i))
    search_s = time.perf_counter() - t0
    total_s = search_s if sample_rows is None else search_s * (n / 2) / sample_rows
    return {
        "n": n, "dim": dim, "backend": backend, "threshold": threshold,
        "mode": "full" if sample_rows is None else f"sampled {sample_rows} query rows",
        "vectors_mb": round(data_mb, 1), "rss_after_data_mb": round(rss_data, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), "build_s": round(build_s, 2),
        "search_s_measured": round(search_s, 2),
        "search_s_total": round(total_s, 1), "time_extrapolated": sample_rows is not None,
        "pairs_found": pairs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--backend", default="flat", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--full-limit", type=int, default=100_000,
                    help="largest N searched in full; larger N are sampled (time extrapolated)")
    ap.add_argument("--sample-rows", type=int, default=1024)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child is not None:
        sample = None if args.child <= args.full_limit else args.sample_rows
        print(json.dumps(child(args.child, args.dim, args.threshold, sample, args.backend)))
        return

    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(args.dim),
               "--threshold", str(args.threshold), "--backend", args.backend,
               "--full-limit", str(args.full_limit), "--sample-rows", str(args.sample_rows)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)

    print(f"\n{'N':>9} {'mode':>28} {'vectors MB':>10} {'peak RSS MB':>11} "
          f"{'search s':>10} {'pairs':>7}")
    for r in rows:
        t = f"~{r['search_s_total']}" if r["time_extrapolated"] else f"{r['search_s_total']}"
        print(f"{r['n']:>9} {r['mode']:>28} {r['vectors_mb']:>10} {r['peak_rss_mb']:>11} "
              f"{t:>10} {r['pairs_found']:>7}")
    for a, b in itertools.pairwise(rows):
        print(f"N ×{b['n'] / a['n']:.0f}: peak RSS ×{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}, "
              f"RSS above the vectors ×"
              f"{(b['peak_rss_mb'] - b['vectors_mb']) / (a['peak_rss_mb'] - a['vectors_mb']):.2f}, "
              f"search time ×{b['search_s_total'] / a['search_s_total']:.0f} (N² would be "
              f"×{(b['n'] / a['n']) ** 2:.0f})")
    print("(~ marks a time extrapolated from sampled query rows; memory is always measured)")


if __name__ == "__main__":
    main()
