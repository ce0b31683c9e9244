"""Hamming range search at scale: multi-index hashing vs FAISS flat, numpy brute force and the
popcount floor, on uniform codes and on codes with real pHash bit statistics.

    python benchmarks/hamming_search.py                       # 200k and 1M codes, radius 10
    python benchmarks/hamming_search.py --sizes 200000 --codes phash --bits 256 --radius 40
    python benchmarks/hamming_search.py --sizes 1000000 --faiss-max 1000000   # FAISS at 1M (~5 min)

Every measurement runs in a fresh process so its time and peak RSS are its own; the load average
before each run is printed because the machine may be shared. Every backend's pairs are hashed
(i, j, distance after sorting) and compared with the reference (FAISS, else numpy brute force).
``--queries Q`` measures query-vs-collection search (Q queries, a tenth near copies) instead.
"phash" codes: pHashes of the default dataset's photos, each bit flipped with probability
``--flip`` (clusters around real codes with real bit balance and correlations). Both kinds get 1%
planted near copies (1-6 flipped bits). The floor is N(N-1)/2 XOR+POPCNT at the CPU's nominal
clock on every core (8 per cycle with AVX-512 VPOPCNTDQ): no exhaustive search can beat it; MIH
is not exhaustive, so floor/actual above 1 is possible. Results go to results/benchmarks/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent.parent / "results" / "benchmarks" / "hamming_search"


def real_phashes(bits: int) -> np.ndarray:
    """pHashes (hash_size = √bits) of the default dataset's photos: the seeds of "phash" codes."""
    from dupbench.datasets import load_dataset
    from dupbench.methods.registry import get_method

    side = round(bits**0.5)
    if side * side != bits:
        raise SystemExit(f"--codes phash needs a square bit count (64, 256), got {bits}")
    dataset = load_dataset("default")
    return get_method("phash", hash_size=side).encode(dataset.paths).codes


def make_codes(
    n: int, bits: int, kind: str, flip: float, seeds: np.ndarray | None, seed: int = 0
) -> np.ndarray:
    """n codes of ``bits`` bits ("uniform", or "phash": noisy copies of ``seeds``), 1% of them
    near copies (1-6 flipped bits) of others."""
    rng = np.random.default_rng(seed)
    words = -(-bits // 64)
    if kind == "uniform":
        codes = rng.integers(0, 2**64 - 1, size=(n, words), dtype=np.uint64, endpoint=True)
    else:
        noise = np.packbits(rng.random((n, words * 64)) < flip, axis=1, bitorder="little")
        codes = seeds[rng.integers(0, len(seeds), n)] ^ noise.view("<u8").astype(np.uint64)
    k = max(1, n // 100)
    src, dst = rng.integers(0, n, size=k), rng.integers(0, n, size=k)
    flips = np.zeros((k, words * 64), bool)
    for row, count in enumerate(rng.integers(1, 7, size=k)):
        flips[row, rng.choice(bits, size=count, replace=False)] = True
    masks = np.packbits(flips, axis=1, bitorder="little").view("<u8").astype(np.uint64)
    codes[dst] = codes[src] ^ masks
    return codes


def _digest(c) -> str:
    h = hashlib.sha256()
    for a in (c.i.astype(np.int64), c.j.astype(np.int64), c.score.astype(np.int64)):
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def make_queries(
    codes: np.ndarray, nq: int, bits: int, kind: str, flip: float, seeds: np.ndarray | None
) -> np.ndarray:
    """Query codes from the same distribution, a tenth of them near copies of collection codes."""
    queries = make_codes(nq, bits, kind, flip, seeds, seed=1)
    rng = np.random.default_rng(2)
    k = nq // 10
    queries[:k] = codes[rng.integers(0, len(codes), k)] ^ make_codes(
        k, bits, "uniform", 0, None, seed=3
    ) & np.uint64(0x111)
    return queries


def run_one(
    backend: str,
    n: int,
    radius: int,
    bits: int,
    kind: str,
    flip: float,
    seeds_path: str,
    nq: int = 0,
) -> dict:
    seeds = np.load(seeds_path) if kind == "phash" else None
    codes = make_codes(n, bits, kind, flip, seeds)
    queries = make_queries(codes, nq, bits, kind, flip, seeds) if nq else None
    plan, digest = "-", "-"
    start = time.perf_counter()
    _load_libraries(backend)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    if backend.startswith("imagededup"):
        from imagededup.handlers.search.retrieval import HashEval
        from imagededup.methods.hashing import Hashing

        hashes = {str(k): format(int(c), "016x") for k, c in enumerate(codes[:, 0])}
        start = time.perf_counter()
        res = HashEval(
            hashes,
            hashes,
            Hashing.hamming_distance,
            verbose=False,
            threshold=radius,
            search_method=backend.split(":")[1],
            num_dist_workers=os.cpu_count(),
        )
        pairs = sum(len(v) for v in res.retrieve_results().values()) // 2
        seconds = time.perf_counter() - start
    else:
        from dupbench.search import build_index

        params = {"kernel": backend.split("-")[1]} if backend.startswith("mih-") else {}
        index = build_index(codes, "hamming", backend.split("-")[0], **params)
        found = index.range(radius, queries=queries)
        seconds = time.perf_counter() - start
        pairs, digest = len(found), _digest(found)
        if backend.startswith("mih"):
            chosen = index.plan(radius, queries)
            parts = [f"{s.bits}b/r{s.radius}" for s in chosen.substrings]
            plan = (
                "brute"
                if chosen.brute
                else "+".join(f"{len(list(g))}x{p}" for p, g in itertools.groupby(parts))
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    return {
        "backend": backend,
        "n": n,
        "pairs": pairs,
        "seconds": seconds,
        "peak_mib": peak,
        "digest": digest,
        "plan": plan,
        "startup_seconds": startup,
        "queries": nq,
    }


def hardware_floor(n: int, nq: int = 0) -> tuple[float, str]:
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
    ops = float(nq) * n if nq else n * (n - 1) / 2
    how = f"{cores} cores x {mhz:.0f} MHz x {per_cycle}/cycle"
    return ops / (cores * mhz * 1e6 * per_cycle), how


def _load_libraries(backend: str) -> None:
    """Import what the backend needs and, for MIH's numba join, load (or compile into numba's
    cache) the compiled code: a once-per-process cost, reported apart from the search time."""
    from dupbench.search.mih import HammingMultiIndex, has_faiss, has_numba

    if backend == "mih" and has_numba():
        codes = np.arange(64, dtype=np.uint64)[:, None]
        HammingMultiIndex(codes, kernel="numba", substrings=2).range(1)
    if backend in ("mih", "mih-numpy", "faiss") and has_faiss():
        import faiss  # noqa: F401  (MIH's brute-force fallback and top-k use it)


def _plan(n: int, bits: int, args) -> list[str]:
    plan = ["mih"]
    if n <= args.numpy_mih_max:
        plan.append("mih-numpy")
    if n <= args.faiss_max:
        plan.append("faiss")
    if n <= args.brute_max:
        plan.append("brute")
    if n <= args.peer_max and bits == 64 and not args.queries:
        plan.append("imagededup:brute_force_cython")  # its BK-tree is far slower still
    return plan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--radius", type=int, default=10)
    p.add_argument("--bits", type=int, default=64, help="code length (64 or 256 for phash)")
    p.add_argument(
        "--codes",
        nargs="+",
        choices=["uniform", "phash"],
        default=["uniform", "phash"],
        help="code distributions to measure",
    )
    p.add_argument(
        "--flip",
        type=float,
        default=0.25,
        help="per-bit flip probability around each real pHash (--codes phash)",
    )
    p.add_argument(
        "--faiss-max",
        type=int,
        default=200_000,
        help="largest N for FAISS IndexBinaryFlat (about 5 minutes at 1M)",
    )
    p.add_argument(
        "--brute-max", type=int, default=200_000, help="largest N for dupbench's numpy brute force"
    )
    p.add_argument(
        "--numpy-mih-max",
        type=int,
        default=200_000,
        help="largest N for multi-index hashing with its numpy join (no numba)",
    )
    p.add_argument(
        "--peer-max",
        type=int,
        default=10_000,
        help="largest N given to imagededup (its search is O(N^2) in Python/Cython)",
    )
    p.add_argument(
        "--queries",
        type=int,
        default=0,
        help="search this many query codes against the N codes instead of all pairs",
    )
    p.add_argument("--out", type=Path, default=OUT_DIR)
    p.add_argument("--one", nargs=8, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        backend, n, radius, bits, kind, flip, seeds, nq = args.one
        print(
            json.dumps(
                run_one(backend, int(n), int(radius), int(bits), kind, float(flip), seeds, int(nq))
            )
        )
        return
    _load_libraries("mih")  # the first run ever compiles numba's cache; keep that out of the table
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        seeds_path = os.path.join(tmp, "seeds.npy")
        if "phash" in args.codes:
            np.save(seeds_path, real_phashes(args.bits))
        task = f"{args.queries} queries against N codes" if args.queries else "all pairs"
        print(f"{task} within {args.radius} of {args.bits} bits, {os.cpu_count()} cores")
        print(
            f"{'codes':<8} {'N':>8} {'backend':<10} {'plan':<22} {'pairs':>7} {'seconds':>8} "
            f"{'startup':>7} {'peak MiB':>8} {'x faiss':>7} {'x brute':>7} {'floor/act':>9} "
            f"{'same':>4} {'load':>4}"
        )
        for kind in args.codes:
            for n in args.sizes:
                floor, how = hardware_floor(n, args.queries)
                rows = []
                for backend in _plan(n, args.bits, args):
                    load = os.getloadavg()[0]
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--one",
                            backend,
                            str(n),
                            str(args.radius),
                            str(args.bits),
                            kind,
                            str(args.flip),
                            seeds_path,
                            str(args.queries),
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode:
                        print(
                            f"{kind:<8} {n:>8} {backend:<10} failed: "
                            f"{out.stderr.strip().splitlines()[-1]}"
                        )
                        continue
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row.update(
                        codes=kind,
                        radius=args.radius,
                        bits=args.bits,
                        load=load,
                        floor_seconds=floor,
                    )
                    rows.append(row)
                by = {r["backend"]: r for r in rows}
                ref = by.get("faiss") or by.get("brute")
                for r in rows:
                    r["x_faiss"] = by["faiss"]["seconds"] / r["seconds"] if "faiss" in by else None
                    r["x_brute"] = by["brute"]["seconds"] / r["seconds"] if "brute" in by else None
                    r["same_pairs"] = (
                        None if ref is None or r["digest"] == "-" else r["digest"] == ref["digest"]
                    )
                    ratio = [f"{x:.1f}x" if x else "-" for x in (r["x_faiss"], r["x_brute"])]
                    same = {None: "-", True: "yes", False: "NO"}[r["same_pairs"]]
                    print(
                        f"{kind:<8} {n:>8} {r['backend']:<10} {r['plan']:<22} {r['pairs']:>7} "
                        f"{r['seconds']:>8.3f} {r['startup_seconds']:>7.2f} "
                        f"{r['peak_mib']:>8.0f} {ratio[0]:>7} {ratio[1]:>7} "
                        f"{floor / r['seconds']:>9.2f} {same:>4} {r['load']:>4.1f}"
                    )
                results.extend(rows)
    print(
        f"floor = N(N-1)/2 (or queries x N) XOR+POPCNT at {how};\n"
        "load = 1-min load average before the run; "
        "seconds = search with libraries loaded (index build included); startup = loading them"
    )
    _save(args, results)


def _save(args, results: list[dict]) -> None:
    from dupbench.files import write_json, write_text

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cores": os.cpu_count(),
        "floor": hardware_floor(2)[1],
    }
    json_path = write_json(args.out / f"{stamp}.json", {"meta": meta, "results": results})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(results[0]) if results else ["backend"])
    writer.writeheader()
    writer.writerows(results)
    write_text(args.out / f"{stamp}.csv", buf.getvalue())
    print(f"wrote {json_path} and {json_path.with_suffix('.csv').name}")


if __name__ == "__main__":
    main()
