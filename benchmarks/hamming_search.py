"""Hamming range search at scale: dupbench's backends vs imagededup's, and vs the popcount limit.

    python benchmarks/hamming_search.py                       # 10k, 100k, 1M codes, radius 10
    python benchmarks/hamming_search.py --sizes 20000 --peer-max 20000

Every measurement runs in a fresh process so its peak RSS is its own. The hardware limit is the
time to do N(N-1)/2 64-bit XOR+POPCNT at one per cycle per core (AVX-512 VPOPCNTDQ would do 8; the
flag is reported) at the CPU's nominal clock: a floor no exhaustive search can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def make_codes(n: int, seed: int = 0) -> np.ndarray:
    """Random 64-bit codes, 1% of them near copies (1-6 flipped bits) of others."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, size=(n, 1), dtype=np.uint64, endpoint=True)
    k = max(1, n // 100)
    src = rng.integers(0, n, size=k)
    dst = rng.integers(0, n, size=k)
    for s, d in zip(src, dst):
        flips = rng.choice(64, size=rng.integers(1, 7), replace=False)
        codes[d] = codes[s] ^ np.uint64(sum(1 << int(f) for f in flips))
    return codes


def run_one(backend: str, n: int, radius: int) -> dict:
    codes = make_codes(n)
    start = time.perf_counter()
    if backend.startswith("imagededup"):
        from imagededup.handlers.search.retrieval import HashEval
        from imagededup.methods.hashing import Hashing

        hashes = {str(k): format(int(c), "016x") for k, c in enumerate(codes[:, 0])}
        start = time.perf_counter()
        res = HashEval(hashes, hashes, Hashing.hamming_distance, verbose=False, threshold=radius,
                       search_method=backend.split(":")[1], num_dist_workers=os.cpu_count())
        pairs = sum(len(v) for v in res.retrieve_results().values()) // 2
    else:
        from dupbench.search import range_search

        pairs = len(range_search(codes, radius, backend=backend))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    return {"backend": backend, "n": n, "pairs": pairs, "seconds": seconds, "peak_mib": peak}


def hardware_floor(n: int) -> tuple[float, str]:
    cores = os.cpu_count() or 1
    mhz = 0.0
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
            if line.startswith("flags") and not flags:
                flags = line
    per_cycle = 8 if "avx512_vpopcntdq" in flags else 1
    ops = n * (n - 1) / 2
    return ops / (cores * mhz * 1e6 * per_cycle), f"{cores} cores x {mhz:.0f} MHz x {per_cycle}/cycle"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--radius", type=int, default=10)
    p.add_argument("--peer-max", type=int, default=20_000,
                   help="largest N given to imagededup (its search is O(N^2) in Python/Cython)")
    p.add_argument("--brute-max", type=int, default=100_000,
                   help="largest N for dupbench's numpy brute force")
    p.add_argument("--one", nargs=3, metavar=("BACKEND", "N", "RADIUS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), int(args.one[2]))))
        return
    print(f"{'N':>9} {'backend':<24} {'pairs':>8} {'seconds':>9} {'peak MiB':>9} "
          f"{'vs imagededup':>14} {'floor/actual':>13}")
    for n in args.sizes:
        floor, how = hardware_floor(n)
        plan = ["faiss"] + (["brute"] if n <= args.brute_max else [])
        if n <= args.peer_max:
            plan.append("imagededup:brute_force_cython")  # its BK-tree is far slower still
        results = []
        for backend in plan:
            out = subprocess.run([sys.executable, __file__, "--one", backend, str(n),
                                  str(args.radius)], capture_output=True, text=True,
                                 check=False)
            if out.returncode:
                print(f"{n:>9} {backend:<24} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        peer = next((r["seconds"] for r in results if r["backend"].endswith("cython")), None)
        for r in results:
            ratio = f"{peer / r['seconds']:.1f}x" if peer else "-"
            print(f"{n:>9} {r['backend']:<24} {r['pairs']:>8} {r['seconds']:>9.3f} "
                  f"{r['peak_mib']:>9.0f} {ratio:>14} {floor / r['seconds']:>13.2f}")
        if len({r["pairs"] for r in results}) > 1:
            print(f"  WARNING: backends disagree on the pair count at N={n}")
    print(f"floor = N(N-1)/2 XOR+POPCNT at {how}")


if __name__ == "__main__":
    main()
