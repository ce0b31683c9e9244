"""The encoding store at scale: killed at random points and resumed, with flat memory.

    python benchmarks/encode_store.py                          # 100k generated 64x64 PNGs
    python benchmarks/encode_store.py --n 20000 100000 --images /tmp/store-bench-images

For each N it measures, each in a fresh process whose whole tree's RSS is sampled every 20 ms:
the one-shot ``encode_images`` (the peer: all codes in memory, nothing on disk), a fresh
``EncodingStore.update``, and a second update with nothing to do (reuse). At the largest N it then
SIGKILLs (the whole process group) an update of a second store ``--kills`` times, checks after
each kill that the store reads back only committed codes, resumes it, and checks that the result
equals the uninterrupted store and the one-shot encode (ids, codes, skips). Each kill waits until
a random fraction of the remaining files is committed, then a random part of one batch's time, so
it lands mid-run (anywhere in a batch: decoding, writing the shard or committing) however loaded
the machine is.

``--read-scale N`` measures instead what reading a store of N codes costs: it fills a store with N
random 64-bit codes under made-up ids (through the store's own shard and row layout, since
encoding 10M files is beyond this machine) and times ``encodings()`` in a fresh process, printing
its added peak RSS next to the size of what it returns (the codes array and the ids list).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

METHOD = "phash"


def make_images(folder: Path, n: int, size: int) -> None:
    """Distinct PNGs (upscaled random 6x6 colour grids); files already there are kept."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        path = folder / f"img{k:07d}.png"
        if not path.exists():
            grid = np.random.default_rng(k).integers(0, 256, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(grid).resize((size, size), Image.Resampling.BILINEAR).save(path)


def subset(folder: Path, n: int) -> Path:
    """A folder of hard links to the first ``n`` images (no second copy on disk)."""
    out = folder.parent / f"{folder.name}-{n}"
    out.mkdir(exist_ok=True)
    for k in range(n):
        link = out / f"img{k:07d}.png"
        if not link.exists():
            os.link(folder / link.name, link)
    return out


def vmhwm_mib() -> float:
    """This process's own peak resident set (the kernel's high-water mark)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: list[str]) -> None:
    """Runs in the measured process: one one-shot encode or one store update."""
    import tqdm.auto  # noqa: F401  imported before "start", as every real run has it loaded

    from dupbench.methods import get_method

    mode, folder, workers = args[0], Path(args[1]), int(args[2])
    get_method(METHOD).encode([str(next(folder.iterdir()))])  # warm up imports
    print("start", flush=True)
    start = time.perf_counter()
    if mode == "oneshot":
        from dupbench.api import encode_images

        enc = encode_images(folder, METHOD, num_enc_workers=workers, progress=False)
        enc.save(args[3])
        counts = {"encoded": len(enc), "skipped": len(enc.skipped)}
    else:
        from dupbench.encoding_store import EncodingStore

        with EncodingStore.open_or_create(args[3], METHOD) as store:
            c = store.update(folder, workers=workers, batch_size=int(args[4]))
        counts = {"new": c.new, "unchanged": c.unchanged, "skipped": c.skipped}
    print(
        json.dumps({"seconds": time.perf_counter() - start, "vmhwm_mib": vmhwm_mib(), **counts}),
        flush=True,
    )


def synthetic_store(path: Path, n: int, batch: int) -> None:
    """N random codes under made-up ids, written as ``update`` writes them (shard, then rows)."""
    from dupbench.encoding_store import EncodingStore, write_durably

    rng = np.random.default_rng(0)
    with EncodingStore.open_or_create(path, METHOD) as store:
        db = store._db
        db.execute("INSERT INTO meta VALUES ('root', ?)", (str(path),))
        for shard, start in enumerate(range(0, n, batch)):
            codes = rng.integers(0, 2**64, (min(batch, n - start), 1), np.uint64, endpoint=False)
            write_durably(store._shard_path(shard), codes)
            with store._write():
                db.execute(
                    "INSERT INTO shards VALUES (?, ?, ?, 1)", (shard, len(codes), codes.dtype.str)
                )
                db.executemany(
                    "INSERT INTO files VALUES (?, 1000, 0, ?, ?, NULL)",
                    ((f"img{start + k:09d}.png", shard, k) for k in range(len(codes))),
                )


def read_child(path: str) -> None:
    """Runs in the measured process: one ``encodings()`` of the store at ``path``."""
    from dupbench.encoding_store import EncodingStore

    with EncodingStore.open_or_create(path, METHOD) as store:
        base = vmhwm_mib()
        start = time.perf_counter()
        enc = store.encodings()
        seconds = time.perf_counter() - start
    ids_mib = (sys.getsizeof(enc.ids) + sum(map(sys.getsizeof, enc.ids))) / 2**20
    print(
        json.dumps(
            {
                "n": len(enc),
                "seconds": seconds,
                "added_peak_mib": vmhwm_mib() - base,
                "codes_mib": enc.codes.nbytes / 2**20,
                "ids_mib": ids_mib,
            }
        )
    )


def read_scale(n: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="encode-store-read-") as tmp:
        t = time.perf_counter()
        synthetic_store(Path(tmp) / "store", n, batch)
        print(
            f"synthetic store of {n:,} codes written in {time.perf_counter() - t:.0f} s", flush=True
        )
        argv = [sys.executable, __file__, "--child", "read", str(Path(tmp) / "store")]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(
        f"encodings() of {r['n']:,} codes: {r['seconds']:.1f} s, peak RSS added "
        f"{r['added_peak_mib']:.0f} MiB; it returns codes {r['codes_mib']:.0f} MiB + ids "
        f"{r['ids_mib']:.0f} MiB = {r['codes_mib'] + r['ids_mib']:.0f} MiB "
        f"(ratio {r['added_peak_mib'] / (r['codes_mib'] + r['ids_mib']):.2f}x)"
    )


def measured(argv: list[str], kill_when=None) -> dict:
    """Run one child in its own process group, sampling its tree's RSS; if ``kill_when`` is
    given, SIGKILL the group when ``kill_when(proc)`` returns. Returns the child's JSON line, or
    {"killed": True, "after_s": ...}."""
    from dupbench.harness.measure import tree_rss

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *argv],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if proc.stdout.readline().strip() != "start":
        raise SystemExit(f"child {argv} failed to start")
    start = time.perf_counter()
    if kill_when is not None:
        kill_when(proc)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode == -signal.SIGKILL:
        return {
            "killed": True,
            "after_s": time.perf_counter() - start,
            "tree_peak_mib": peak[0] / 2**20,
        }
    if proc.returncode != 0:
        raise SystemExit(f"child {argv} exited with {proc.returncode}")
    return {**json.loads(out.strip().splitlines()[-1]), "tree_peak_mib": peak[0] / 2**20}


def when_committed(path: Path, target: int, jitter: float):
    """A ``kill_when``: wait until ``target`` codes are committed, then ``jitter`` seconds."""
    from dupbench.encoding_store import EncodingStore

    def wait(proc: subprocess.Popen) -> None:
        with EncodingStore.open_or_create(path, METHOD) as store:
            while proc.poll() is None and len(store) < target:
                time.sleep(0.02)
        time.sleep(jitter)

    return wait


def read_store(path: Path):
    from dupbench.encoding_store import EncodingStore

    with EncodingStore.open_or_create(path, METHOD) as store:
        return store.encodings()


def same(a, b) -> bool:
    return (
        a.ids == b.ids
        and np.array_equal(a.codes, b.codes)
        and sorted((Path(s.path).name, s.reason) for s in a.skipped)
        == sorted((Path(s.path).name, s.reason) for s in b.skipped)
    )


def row(n: int, what: str, r: dict) -> dict:
    rate = n / r["seconds"] if r.get("seconds") else float("nan")
    print(
        f"{n:>8,}  {what:34s} {r.get('seconds', float('nan')):8.1f} {rate:9.0f} "
        f"{r['tree_peak_mib']:12.0f} {r.get('vmhwm_mib', float('nan')):11.0f}",
        flush=True,
    )
    return {"n": n, "run": what, **r}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000], help="image counts")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--images", type=Path, help="keep generated images here (reused next time)")
    p.add_argument(
        "--workers", type=int, default=0, help="encode processes (0: one per usable core)"
    )
    p.add_argument("--batch-size", type=int, default=4096, help="files per shard")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the measurements to this JSON file")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    p.add_argument(
        "--read-scale",
        type=int,
        metavar="N",
        help="only measure encodings() on a synthetic store of N codes",
    )
    a = p.parse_args()
    if a.child:
        return read_child(a.child[1]) if a.child[0] == "read" else child(a.child)
    if a.read_scale:
        return read_scale(a.read_scale, a.batch_size)

    from dupbench.cpus import usable_cores
    from dupbench.encoding_store import EncodingStore
    from dupbench.files import write_json
    from dupbench.records import Encodings

    tmp = tempfile.TemporaryDirectory(prefix="encode-store-")
    images = a.images or Path(tmp.name) / "images"
    t = time.perf_counter()
    make_images(images, max(a.n), a.size)
    print(
        f"{max(a.n):,} {a.size}x{a.size} PNGs ready in {images} "
        f"({time.perf_counter() - t:.0f} s); {usable_cores()} usable cores, "
        f"workers={a.workers}, batch={a.batch_size}",
        flush=True,
    )
    print(
        f"{'N':>8}  {'run':34s} {'seconds':>8} {'img/s':>9} {'tree peak MiB':>12} "
        f"{'main HWM MiB':>11}"
    )
    work, results, summary = Path(tmp.name), [], {}
    w, b = str(a.workers), str(a.batch_size)
    for n in sorted(a.n):
        folder = images if n == max(a.n) else subset(images, n)
        oneshot = work / f"oneshot-{n}.npz"
        ref = work / f"reference-{n}"
        peer = row(
            n, "one-shot encode_images (peer)", measured(["oneshot", str(folder), w, str(oneshot)])
        )
        results.append(peer)
        fresh = row(n, "store update, fresh", measured(["update", str(folder), w, str(ref), b]))
        results.append(fresh)
        results.append(
            row(
                n,
                "store update, nothing changed",
                measured(["update", str(folder), w, str(ref), b]),
            )
        )
        reference = read_store(ref)
        summary[n] = {
            "store_equals_one_shot": same(reference, Encodings.load(oneshot)),
            "store_vs_one_shot_time": fresh["seconds"] / peer["seconds"],
        }
    n = max(a.n)
    folder, reference = images, read_store(work / f"reference-{n}")
    codes = dict(zip(reference.ids, reference.codes[:, 0].tolist()))
    rng, store, kills = random.Random(a.seed), work / "killed", []
    fresh_seconds = next(r["seconds"] for r in results if r["n"] == n and "fresh" in r["run"])
    batch_seconds = fresh_seconds * min(1.0, a.batch_size / n)
    EncodingStore.open_or_create(store, METHOD).close()
    for k in range(a.kills):
        before = len(read_store(store))
        target = before + int(rng.uniform(0.05, 0.9) * (n - before))
        r = measured(
            ["update", str(folder), w, str(store), b],
            kill_when=when_committed(store, target, rng.uniform(0, batch_seconds)),
        )
        partial = read_store(store)
        consistent = set(partial.ids) <= set(codes) and all(
            codes[i] == c for i, c in zip(partial.ids, partial.codes[:, 0].tolist())
        )
        kills.append(
            {
                "after_s": r.get("after_s"),
                "killed": r.get("killed", False),
                "committed": len(partial),
                "consistent": consistent,
            }
        )
        what = (
            f"kill {k + 1} at {r['after_s']:.1f} s: {len(partial):,} kept"
            if "killed" in r
            else f"run {k + 1} ended before its kill"
        )
        results.append(row(n, what, r))
    results.append(
        row(n, "resume after the kills", measured(["update", str(folder), w, str(store), b]))
    )
    resumed_equal = same(read_store(store), reference)
    print(
        f"\nkills: {sum(k['killed'] for k in kills)} of {len(kills)} runs killed; every partial "
        f"store consistent: {all(k['consistent'] for k in kills)}; resumed store equals the "
        f"uninterrupted one: {resumed_equal}"
    )
    for size, s in summary.items():
        print(
            f"N={size:,}: store equals one-shot encode: {s['store_equals_one_shot']}; store "
            f"update time / one-shot time: {s['store_vs_one_shot_time']:.2f}x"
        )
    if len(a.n) > 1:
        lo, hi = min(a.n), max(a.n)
        for what in ("one-shot encode_images (peer)", "store update, fresh"):
            peak = {r["n"]: r["tree_peak_mib"] for r in results if r["run"] == what}
            print(f"{what}: tree peak RSS at {hi:,} / at {lo:,} = {peak[hi] / peak[lo]:.2f}x")
    if a.out:
        write_json(
            a.out,
            {
                "args": {k: v for k, v in vars(a).items() if k != "child"},
                "cores": usable_cores(),
                "results": results,
                "kills": kills,
                "resumed_equal": resumed_equal,
                "summary": {str(k): v for k, v in summary.items()},
            },
        )
    tmp.cleanup()
    if not (
        resumed_equal
        and all(k["consistent"] for k in kills)
        and all(s["store_equals_one_shot"] for s in summary.values())
    ):
        raise SystemExit("FAILED: the store differs from an uninterrupted run")


if __name__ == "__main__":
    main()
