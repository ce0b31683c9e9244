"""PDQ hashing time of decoded pixels: dupbench's numpy PDQ vs the compiled pdqhash, same run.

    python benchmarks/pdq_numpy.py                  # 512², 1024×768 and 3000×2000, 20 repeats
    python benchmarks/pdq_numpy.py --repeats 50

Decoding is left out (it is the same for both). Times are the best of ``--repeats`` calls of one
image; the ratio is numpy / pdqhash (above 1: numpy is slower).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image


def best_time(fn, rgb: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(rgb)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()

    import pdqhash
    from skimage import data

    from dupbench.methods.pdq import pdq_hash

    print(f"{'size':>11}  {'numpy ms':>9}  {'pdqhash ms':>10}  {'ratio':>5}")
    for width, height in ((512, 512), (1024, 768), (3000, 2000)):
        rgb = np.asarray(Image.fromarray(data.astronaut()).resize((width, height)))
        ours = best_time(pdq_hash, rgb, args.repeats)
        theirs = best_time(pdqhash.compute, rgb, args.repeats)
        size = f"{width}×{height}"
        print(f"{size:>11}  {ours * 1e3:9.2f}  {theirs * 1e3:10.2f}  {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
