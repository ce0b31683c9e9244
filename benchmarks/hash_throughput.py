"""Hash encoding throughput: dupbench vs imagehash and imagededup, and vs the decode ceiling.

    python benchmarks/hash_throughput.py                 # phash on 300 generated 1024-px JPEGs
    python benchmarks/hash_throughput.py --method dhash --count 1000

Decoding the file is work every hash must do, so "decode only" (Pillow open + load + RGB, one
process per core) is the ceiling; the last column is each row's share of it. ``draft`` rows decode
JPEGs at reduced size (different bits, opt-in). Peers run as their users run them: imagehash one
image at a time in one process, imagededup with its own worker pool.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def make_corpus(folder: Path, count: int, side: int) -> list[Path]:
    """JPEGs cut from scikit-image's bundled photos (real texture), each a distinct crop."""
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
               data.hubble_deep_field(), data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    paths = []
    for k in range(count):
        src = Image.fromarray(sources[k % len(sources)])
        w, h = src.size
        box = (int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4)))
        crop = src.crop((*box, box[0] + w * 3 // 4, box[1] + h * 3 // 4))
        path = folder / f"img{k:05d}.jpg"
        crop.resize((side, side * 3 // 4), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def _decode(path: Path) -> int:
    with Image.open(path) as im:
        return im.convert("RGB").size[0]


def decode_only(paths: list[Path]) -> None:
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_decode, paths, chunksize=16))


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="phash", choices=["phash", "dhash", "ahash", "whash"])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()

    from dupbench.methods import get_method

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_corpus(Path(tmp), args.count, args.side)
        strs = [str(x) for x in paths]
        rows = {"decode only (ceiling)": timed(lambda: decode_only(paths), args.repeats)}
        ours = get_method(args.method)
        drafted = get_method(args.method, draft=True)
        rows["dupbench, 1 process"] = timed(lambda: ours.encode(strs, workers=1), args.repeats)
        rows["dupbench, all cores"] = timed(lambda: ours.encode(strs, workers=0), args.repeats)
        rows["dupbench draft, all cores"] = timed(lambda: drafted.encode(strs, workers=0),
                                                  args.repeats)
        try:
            import imagehash

            fn = {"phash": imagehash.phash, "dhash": imagehash.dhash,
                  "ahash": imagehash.average_hash, "whash": imagehash.whash}[args.method]
            rows["imagehash, 1 process"] = timed(
                lambda: [fn(Image.open(x)) for x in paths], args.repeats)
        except ImportError:
            pass
        try:
            from imagededup.methods import hashing

            cls = {"phash": hashing.PHash, "dhash": hashing.DHash, "ahash": hashing.AHash,
                   "whash": hashing.WHash}[args.method]
            rows["imagededup, all cores"] = timed(
                lambda: cls(verbose=False).encode_images(tmp, num_enc_workers=os.cpu_count()),
                args.repeats)
        except ImportError:
            pass

    ceiling = rows["decode only (ceiling)"]
    peer = rows.get("imagehash, 1 process")
    print(f"{args.method}, {args.count} JPEGs of {args.side}x{args.side * 3 // 4}, "
          f"{os.cpu_count()} cores, best of {args.repeats}")
    print(f"{'':28} {'images/s':>9} {'vs imagehash':>13} {'share of ceiling':>17}")
    for name, seconds in rows.items():
        vs = f"{peer / seconds:.2f}x" if peer else "-"
        print(f"{name:28} {args.count / seconds:>9.1f} {vs:>13} {ceiling / seconds:>17.2f}")


if __name__ == "__main__":
    main()
