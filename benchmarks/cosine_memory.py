"""Cosine range search at 100k and 1M embeddings: peak memory, time, and the approximate
index's recall against exact search, on random and on clustered CNN-like vectors.

Each run is a fresh child process. It generates the vectors, imports the libraries, then resets
the kernel's RSS high-water mark (``/proc/self/clear_refs``), so "peak" is the search's own peak
with the vectors and the libraries already in memory; "extra" is that peak minus the RSS before
the search, and "extra / vectors" must stay at or below 1 for exact search (at most one more copy
of the vectors). IVF adds its own copy in its lists and a k-means training sample (40 rows a
cell): ≈ 1.6 × the vectors on unit input, ≈ 2.3 × on unnormalised (clustered) input.

Data (d = 1280, the default backbone's dimension):
- random: random unit rows, 0.1 % of them noisy copies of others (almost no other pair is ≥ 0.9);
- clustered: like pooled ReLU CNN features: non-negative, norms varying, rows drawn around group
  centres (about 10 rows a group, noise 0.05-0.5 so that some groups are near-duplicates and some
  are not), groups drawn around 100 class centres (unrelated rows of one class have cosine ≈ 0.7).

Recall = exact pairs found by the approximate search / exact pairs, both over the same rows.
Above ``--full-limit`` the search runs for ``--sample-rows`` query rows against all N vectors and
the total time is EXTRAPOLATED (flat: × (N/2)/rows, since within one collection each row meets the
~N/2 after it; IVF: × N/rows); recall is then over those rows' directed pairs. Labelled "~".

    python benchmarks/cosine_memory.py                       # 100k exact + ivf, 1M ivf sampled
    python benchmarks/cosine_memory.py --runs clustered:20000:flat clustered:20000:ivf
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent.parent / "results" / "benchmarks" / "cosine"
DEFAULT_RUNS = [
    "random:100000:flat",
    "random:100000:ivf",
    "clustered:100000:flat",
    "clustered:100000:ivf",
    "clustered:1000000:ivf",
]


def random_vectors(
    n: int, dim: int, seed: int = 0, dup_fraction: float = 0.001, chunk: int = 8192
) -> np.ndarray:
    """Random unit rows (float32), generated in chunks; a fraction are noisy copies of others."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        block = x[s : s + chunk]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    m = int(n * dup_fraction)
    if m:
        src = rng.integers(0, n - m, m)
        noisy = x[src] + rng.normal(0, 0.01, (m, dim)).astype(np.float32)
        x[n - m :] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return x


def clustered_vectors(n: int, dim: int, seed: int = 0, chunk: int = 8192) -> np.ndarray:
    """Non-negative clustered rows, unnormalised, like pooled ReLU CNN features (see above)."""
    rng = np.random.default_rng(seed)
    groups = max(1, n // 10)
    classes = rng.standard_normal((100, dim), dtype=np.float32)
    centres = np.empty((groups, dim), np.float32)
    for s in range(0, groups, chunk):
        block = centres[s : s + chunk]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block *= 0.6
        block += 0.8 * classes[rng.integers(0, len(classes), len(block))]
    noise = rng.uniform(0.05, 0.5, groups).astype(np.float32)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        g = rng.integers(0, groups, min(chunk, n - s))
        block = x[s : s + len(g)]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block *= noise[g, None]
        block += centres[g]
        np.maximum(block, 0, out=block)
        block *= rng.lognormal(0, 0.3, (len(g), 1)).astype(np.float32)
    return x


def rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (Linux ≥ 4.0)
        f.write("5")


def child(
    kind: str,
    n: int,
    dim: int,
    threshold: float,
    backend: str,
    sample_rows: int | None,
    pairs_path: str,
) -> dict:
    import faiss  # noqa: F401  (the libraries count as baseline, not as search memory)

    from dupbench.search.cosine import CosineIndex

    make = random_vectors if kind == "random" else clustered_vectors
    x = make(n, dim)
    reset_peak()
    before = rss_mb("VmRSS")
    t0 = time.perf_counter()
    index = CosineIndex(x, backend)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    queries = None if sample_rows is None else x[:sample_rows]
    found = index.range(threshold, queries=queries)
    search_s = time.perf_counter() - t0
    peak = rss_mb("VmHWM")
    i, j = found.i, found.j
    if sample_rows is not None:  # directed pairs of the sampled rows, self matches dropped
        keep = i != j
        i, j = i[keep], j[keep]
    np.save(pairs_path, np.sort(i * n + j))
    scale = 1.0 if sample_rows is None else (n / 2 if backend == "flat" else n) / sample_rows
    calibration_s = sum(v["seconds"] for v in index.tuning.values())  # once, not per query
    tuning = {str(t): v for t, v in index.tuning.items()}
    return {
        "data": kind,
        "n": n,
        "dim": dim,
        "backend": backend,
        "threshold": threshold,
        "mode": "full" if sample_rows is None else f"{sample_rows} query rows",
        "vectors_mb": round(n * dim * 4 / 2**20, 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "extra_mb": round(peak - before, 1),
        "build_s": round(build_s, 2),
        "search_s_measured": round(search_s, 2),
        "calibration_s": round(calibration_s, 2),
        "total_s": round(build_s + calibration_s + (search_s - calibration_s) * scale, 1),
        "time_extrapolated": scale != 1.0,
        "pairs": len(i),
        "tuning": tuning,
        "nlist": getattr(index._index, "nlist", None),
    }


def exact_sample_pairs(kind: str, n: int, dim: int, threshold: float, rows: int) -> np.ndarray:
    """Exact directed pairs of the first ``rows`` rows against all n (for a sampled run)."""
    from dupbench.search.cosine import CosineIndex

    make = random_vectors if kind == "random" else clustered_vectors
    x = make(n, dim)
    found = CosineIndex(x, "flat", copy=False).range(threshold, queries=x[:rows])
    keep = found.i != found.j
    return np.sort(found.i[keep] * n + found.j[keep])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--runs",
        nargs="+",
        default=DEFAULT_RUNS,
        help="data:N:backend[:sampled] ... (sampled: search --sample-rows rows only)",
    )
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument(
        "--full-limit",
        type=int,
        default=100_000,
        help="largest N searched in full; larger N are sampled (time extrapolated)",
    )
    ap.add_argument("--sample-rows", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--exact-sample", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, n, backend, sample, pairs_path = args.child
        print(
            json.dumps(
                child(
                    kind, int(n), args.dim, args.threshold, backend, int(sample) or None, pairs_path
                )
            )
        )
        return
    if args.exact_sample:
        kind, n = args.exact_sample[0], int(args.exact_sample[1])
        np.save(
            os.environ["PAIRS_OUT"],
            exact_sample_pairs(kind, n, args.dim, args.threshold, args.sample_rows),
        )
        return

    rows, exact = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            kind, n, backend, *how = run.split(":")
            sample = args.sample_rows if how == ["sampled"] or int(n) > args.full_limit else 0
            path = os.path.join(tmp, f"{kind}-{n}-{backend}-{sample}.npy")
            load = os.getloadavg()[0]
            cmd = [
                sys.executable,
                __file__,
                "--child",
                kind,
                n,
                backend,
                str(sample),
                path,
                "--dim",
                str(args.dim),
                "--threshold",
                str(args.threshold),
                "--full-limit",
                str(args.full_limit),
                "--sample-rows",
                str(args.sample_rows),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["load"] = round(load, 1)
            found = np.load(path)
            if backend == "flat":
                exact[(kind, n, row["mode"])] = found
            elif (kind, n, row["mode"]) not in exact:  # no exact run alike: exact sample rows
                truth_path = os.path.join(tmp, f"{kind}-{n}-exact.npy")
                if (kind, n, "sample") not in exact:
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--exact-sample",
                            kind,
                            n,
                            "--dim",
                            str(args.dim),
                            "--threshold",
                            str(args.threshold),
                            "--sample-rows",
                            str(args.sample_rows),
                        ],
                        check=True,
                        env={**os.environ, "PAIRS_OUT": truth_path},
                    )
                    exact[(kind, n, "sample")] = np.load(truth_path)
                if not row["time_extrapolated"]:  # its pairs that touch the sample rows
                    found = _directed_from(found, int(n), args.sample_rows)
                    row["recall_over"] = f"pairs of the first {args.sample_rows} rows"
                exact[(kind, n, row["mode"])] = exact[(kind, n, "sample")]
            truth = exact.get((kind, n, row["mode"]))
            row["exact_pairs"] = None if truth is None else len(truth)
            row["recall"] = (
                None
                if truth is None or not len(truth)
                else round(float(np.isin(truth, found).mean()), 5)
            )
            row["precision_ok"] = None if truth is None else bool(np.isin(found, truth).all())
            rows.append(row)
            print(json.dumps(row), flush=True)
    _report(args, rows)


def _directed_from(keys: np.ndarray, n: int, rows: int) -> np.ndarray:
    """Undirected i < j pair keys as the directed (row, other) keys of rows below ``rows``."""
    a, b = keys // n, keys % n
    return np.sort(np.concatenate([(a * n + b)[a < rows], (b * n + a)[b < rows]]))


def _report(args, rows: list[dict]) -> None:
    from dupbench.files import write_json, write_text

    lines = [
        (
            f"cosine range search, similarity >= {args.threshold}, d = {args.dim}, "
            f"{os.cpu_count()} cores (shared machine)"
        ),
        (
            f"{'data':<9} {'N':>8} {'backend':<5} {'mode':<16} {'vec MB':>7} {'peak MB':>8} "
            f"{'extra MB':>8} {'x vec':>5} {'build s':>7} {'total s':>9} {'x flat':>6} "
            f"{'pairs':>8} {'recall':>7} {'knob':>5} {'load':>4}"
        ),
    ]
    for r in rows:
        flat = next(
            (
                f
                for f in rows
                if f["backend"] == "flat" and f["data"] == r["data"] and f["n"] == r["n"]
            ),
            None,
        )
        speed = f"{flat['total_s'] / r['total_s']:.1f}" if flat else "-"
        total = ("~" if r["time_extrapolated"] else "") + f"{r['total_s']}"
        knob = ",".join(str(v["value"]) for v in r["tuning"].values()) or "-"
        recall = "-" if r["recall"] is None else f"{r['recall']:.4f}"
        lines.append(
            f"{r['data']:<9} {r['n']:>8} {r['backend']:<5} {r['mode']:<16} {r['vectors_mb']:>7} "
            f"{r['peak_rss_mb']:>8} {r['extra_mb']:>8} {r['extra_mb'] / r['vectors_mb']:>5.2f} "
            f"{r['build_s']:>7} {total:>9} {speed:>6} {r['pairs']:>8} {recall:>7} {knob:>5} "
            f"{r['load']:>4}"
        )
    lines += [
        (
            "peak = RSS high-water mark during build + search (vectors and libraries already "
            "loaded); extra = peak - RSS before; x vec = extra / vectors;"
        ),
        (
            "total = build + search (calibration included once); ~ = extrapolated from the sampled "
            "query rows; "
            "knob = IVF nprobe (HNSW ef_search) chosen by calibration; "
            "recall vs exact over the same rows"
        ),
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / f"{stamp}.json",
        {"command": " ".join(["cosine_memory.py", *sys.argv[1:]]), "rows": rows},
    )
    write_text(args.out / f"{stamp}.txt", text)
    print(f"wrote {args.out / stamp}.json and .txt")


if __name__ == "__main__":
    main()
