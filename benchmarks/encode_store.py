"""The encoding store at scale: killed at random points and resumed, with flat memory.

    python benchmarks/encode_store.py                          # 100k generated 64x64 PNGs
    python benchmarks/encode_store.py --n 20000 100000 --images /tmp/store-bench-images

For each N it measures, each in a fresh process whose whole tree's RSS is sampled every 20 ms:
the one-shot ``encode_images`` (the peer: all codes in memory, nothing on disk), a fresh
``EncodingStore.update``, and a second update with nothing to do (reuse). At the largest N it then
SIGKILLs an update of a second store ``--kills`` times, each at a random moment of what is left,
checks after each kill that the store reads back only committed codes, resumes it, and checks that
the result equals the uninterrupted store and the one-shot encode (ids, codes, skips).
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
    print(json.dumps({"seconds": time.perf_counter() - start, "vmhwm_mib": vmhwm_mib(), **counts}),
          flush=True)


def measured(argv: list[str], kill_after: float | None = None) -> dict:
    """Run one child in its own process group, sampling its tree's RSS; SIGKILL it after
    ``kill_after`` seconds of work if given. Returns its JSON line (or {"killed": True})."""
    from dupbench.harness.measure import tree_rss

    proc = subprocess.Popen([sys.executable, __file__, "--child", *argv], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if proc.stdout.readline().strip() != "start":
        raise SystemExit(f"child {argv} failed to start")
    if kill_after is not None:
        time.sleep(kill_after)
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode == -signal.SIGKILL:
        return {"killed": True, "tree_peak_mib": peak[0] / 2**20}
    if proc.returncode != 0:
        raise SystemExit(f"child {argv} exited with {proc.returncode}")
    return {**json.loads(out.strip().splitlines()[-1]), "tree_peak_mib": peak[0] / 2**20}


def read_store(path: Path):
    from dupbench.encoding_store import EncodingStore

    with EncodingStore.open_or_create(path, METHOD) as store:
        return store.encodings()


def same(a, b) -> bool:
    return (a.ids == b.ids and np.array_equal(a.codes, b.codes)
            and sorted((Path(s.path).name, s.reason) for s in a.skipped)
            == sorted((Path(s.path).name, s.reason) for s in b.skipped))


def row(n: int, what: str, r: dict) -> dict:
    rate = n / r["seconds"] if r.get("seconds") else float("nan")
    print(f"{n:>8,}  {what:34s} {r.get('seconds', float('nan')):8.1f} {rate:9.0f} "
          f"{r['tree_peak_mib']:12.0f} {r.get('vmhwm_mib', float('nan')):11.0f}", flush=True)
    return {"n": n, "run": what, **r}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000], help="image counts")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--images", type=Path, help="keep generated images here (reused next time)")
    p.add_argument("--workers", type=int, default=0, help="encode processes (0: one per CPU)")
    p.add_argument("--batch-size", type=int, default=4096, help="files per shard")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the measurements to this JSON file")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child)

    from dupbench.cpus import usable_cores
    from dupbench.files import write_json
    from dupbench.records import Encodings

    tmp = tempfile.TemporaryDirectory(prefix="encode-store-")
    images = a.images or Path(tmp.name) / "images"
    t = time.perf_counter()
    make_images(images, max(a.n), a.size)
    print(f"{max(a.n):,} {a.size}x{a.size} PNGs ready in {images} "
          f"({time.perf_counter() - t:.0f} s); {usable_cores()} usable cores, "
          f"workers={a.workers}, batch={a.batch_size}", flush=True)
    print(f"{'N':>8}  {'run':34s} {'seconds':>8} {'img/s':>9} {'tree peak MiB':>12} "
          f"{'main HWM MiB':>11}")
    work, results, summary = Path(tmp.name), [], {}
    w, b = str(a.workers), str(a.batch_size)
    for n in sorted(a.n):
        folder = images if n == max(a.n) else subset(images, n)
        oneshot = work / f"oneshot-{n}.npz"
        ref = work / f"reference-{n}"
        peer = row(n, "one-shot encode_images (peer)",
                   measured(["oneshot", str(folder), w, str(oneshot)]))
        results.append(peer)
        fresh = row(n, "store update, fresh", measured(["update", str(folder), w, str(ref), b]))
        results.append(fresh)
        results.append(row(n, "store update, nothing changed",
                           measured(["update", str(folder), w, str(ref), b])))
        reference = read_store(ref)
        summary[n] = {"store_equals_one_shot": same(reference, Encodings.load(oneshot)),
                      "store_vs_one_shot_time": fresh["seconds"] / peer["seconds"]}
    n = max(a.n)
    folder, reference = images, read_store(work / f"reference-{n}")
    codes = dict(zip(reference.ids, reference.codes[:, 0].tolist()))
    rng, store, left, kills = random.Random(a.seed), work / "killed", 1.0, []
    fresh_seconds = next(r["seconds"] for r in results if r["n"] == n and "fresh" in r["run"])
    for k in range(a.kills):
        delay = rng.uniform(0.1, 0.9) * fresh_seconds * left
        r = measured(["update", str(folder), w, str(store), b], kill_after=delay)
        partial = read_store(store)
        consistent = set(partial.ids) <= set(codes) and all(
            codes[i] == c for i, c in zip(partial.ids, partial.codes[:, 0].tolist()))
        kills.append({"after_s": delay, "killed": r.get("killed", False),
                      "committed": len(partial), "consistent": consistent})
        results.append(row(n, f"kill {k + 1} at {delay:.1f} s: {len(partial):,} kept", r))
        left = 1 - len(partial) / n
    results.append(row(n, "resume after the kills",
                       measured(["update", str(folder), w, str(store), b])))
    resumed_equal = same(read_store(store), reference)
    print(f"\nkills: {sum(k['killed'] for k in kills)} of {len(kills)} runs killed; every partial "
          f"store consistent: {all(k['consistent'] for k in kills)}; resumed store equals the "
          f"uninterrupted one: {resumed_equal}")
    for size, s in summary.items():
        print(f"N={size:,}: store equals one-shot encode: {s['store_equals_one_shot']}; store "
              f"update time / one-shot time: {s['store_vs_one_shot_time']:.2f}x")
    if len(a.n) > 1:
        lo, hi = min(a.n), max(a.n)
        for what in ("one-shot encode_images (peer)", "store update, fresh"):
            peak = {r["n"]: r["tree_peak_mib"] for r in results if r["run"] == what}
            print(f"{what}: tree peak RSS at {hi:,} / at {lo:,} = {peak[hi] / peak[lo]:.2f}x")
    if a.out:
        write_json(a.out, {"args": {k: v for k, v in vars(a).items() if k != "child"},
                           "cores": usable_cores(), "results": results, "kills": kills,
                           "resumed_equal": resumed_equal,
                           "summary": {str(k): v for k, v in summary.items()}})
    tmp.cleanup()
    if not (resumed_equal and all(k["consistent"] for k in kills)
            and all(s["store_equals_one_shot"] for s in summary.values())):
        raise SystemExit("FAILED: the store differs from an uninterrupted run")


if __name__ == "__main__":
    main()
