"""Hash encoding throughput on 1080p JPEGs: dupbench vs imagehash, imagededup and bare decode loops.

    python benchmarks/hash_throughput.py                    # pHash, 1,000 generated 1920x1080 JPEGs
    python benchmarks/hash_throughput.py --count 2000 --workers 2 --no-quality

Every row runs with the same number of processes (``--workers``, default 2) over the same files:

- bare full-decode loop: ``Image.open`` + ``convert("RGB")``, nothing else: what any hash that
  looks at every pixel must pay;
- bare draft-decode loop: the same with ``Image.draft("RGB", (128, 128))`` first (the JPEG
  decoder scales by 1/8 in the DCT domain), the reference of the ratio column;
- bare luma draft-decode loop: ``Image.draft("L", (128, 128))``, decoding luma only;
- dupbench pHash (default: reduced luma decoding) and with ``draft=False`` (full decode);
- the CPU time of each row's processes beside its wall time: on a shared machine the CPU ratio
  is the steadier one;
- imagehash.phash over ``Image.open`` (its users' loop), and imagededup's ``PHash.encode_images``.

Then the quality side of the default: how many bits the reduced decode moves per image (against
``draft=False`` on the same files), and precision / recall / F1 / recall at 99 % precision at the
default threshold on the default dataset and on a set of edited 1080p photos (dupbench's dataset
builder, every catalogue transform), each with and without draft. Results go to
results/benchmarks/hash_throughput/ (``--out``) as JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

FULL_HD = (1920, 1080)
#: the draft size dupbench asks for pHash (4 x its 32-px working size); 1/8 scale at 1080p
DRAFT = (128, 128)
OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks" / "hash_throughput"


def source_photos() -> list[np.ndarray]:
    """scikit-image's bundled photos of scenes, as RGB arrays (gray ones stacked)."""
    from skimage import data

    arrays = [
        data.astronaut(),
        data.chelsea(),
        data.coffee(),
        data.rocket(),
        data.hubble_deep_field(),
        data.immunohistochemistry(),
        data.retina(),
        data.stereo_motorcycle()[0],
        data.camera(),
        data.coins(),
        data.moon(),
        data.clock(),
    ]
    return [np.dstack([a] * 3) if a.ndim == 2 else a[..., :3] for a in arrays]


_MARGIN = 64


def noise_bank(seed: int) -> np.ndarray:
    """Unit Gaussian noise a little larger than a frame; each frame reads it at its own offset."""
    rng = np.random.default_rng([seed, 2])
    return rng.standard_normal((FULL_HD[1] + _MARGIN, FULL_HD[0] + _MARGIN, 3), dtype=np.float32)


def full_hd_frame(photo: np.ndarray, rng: np.random.Generator, noise: np.ndarray) -> Image.Image:
    """A random 16:9 crop (60-100 % of the photo's width) resized to 1920x1080, plus sensor-like
    noise (sigma 2-6) so that the JPEG has the entropy of a real camera frame."""
    h, w = photo.shape[:2]
    cw = int(w * rng.uniform(0.6, 1.0))
    ch = min(h, cw * 9 // 16)
    cw = ch * 16 // 9
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = Image.fromarray(photo[y : y + ch, x : x + cw]).resize(FULL_HD, Image.Resampling.BICUBIC)
    dx, dy = (int(v) for v in rng.integers(0, _MARGIN, 2))
    grain = noise[dy : dy + FULL_HD[1], dx : dx + FULL_HD[0]] * np.float32(rng.uniform(2.0, 6.0))
    return Image.fromarray(np.clip(np.asarray(crop, np.float32) + grain, 0, 255).astype(np.uint8))


def _write_frames(job: tuple[str, int, int]) -> None:
    folder, start, stop = job
    photos, noise = source_photos(), noise_bank(0)
    for k in range(start, stop):
        rng = np.random.default_rng([0, k])
        frame = full_hd_frame(photos[k % len(photos)], rng, noise)
        frame.save(Path(folder) / f"frame{k:05d}.jpg", quality=90)


def make_corpus(folder: Path, count: int, workers: int) -> list[Path]:
    """``count`` 1920x1080 JPEGs (q=90); file k depends only on k."""
    step = -(-count // (4 * workers))
    jobs = [(str(folder), s, min(count, s + step)) for s in range(0, count, step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_frames, jobs))
    return sorted(folder.glob("*.jpg"))


def _full_decode(path: str) -> int:
    with Image.open(path) as im:
        return im.convert("RGB").size[0]


def _draft_decode(path: str) -> int:
    with Image.open(path) as im:
        im.draft("RGB", DRAFT)
        return im.convert("RGB").size[0]


def _luma_draft_decode(path: str) -> int:
    with Image.open(path) as im:
        im.draft("L", DRAFT)
        im.load()
        return im.size[0]


def _imagehash_phash(path: str) -> str:
    import imagehash

    return str(imagehash.phash(Image.open(path)))


def pool_loop(fn: Callable[[str], object], paths: list[str], workers: int) -> Callable[[], None]:
    def run() -> None:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(fn, paths, chunksize=32))

    return run


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished (joined) children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def throughput(paths: list[str], folder: str, workers: int, repeats: int) -> dict[str, dict]:
    """Wall and CPU seconds per row, every row over the same files with ``workers`` processes.

    Repeats go round-robin over the rows and each keeps its best wall time, so that a change in
    the machine's load during the run does not favour one row; CPU seconds (the row's processes
    together) do not depend on the load, and are reported beside.
    """
    from dupbench.methods import get_method

    default, full = get_method("phash"), get_method("phash", draft=False)
    rows = {
        "bare full-decode loop (RGB)": pool_loop(_full_decode, paths, workers),
        "bare draft-decode loop (RGB, 1/8)": pool_loop(_draft_decode, paths, workers),
        "bare luma draft-decode loop (L, 1/8)": pool_loop(_luma_draft_decode, paths, workers),
        "dupbench phash (default)": lambda: default.encode(paths, workers=workers),
        "dupbench phash draft=False": lambda: full.encode(paths, workers=workers),
        "imagehash.phash": pool_loop(_imagehash_phash, paths, workers),
    }
    try:
        from imagededup.methods import PHash

        rows["imagededup PHash"] = lambda: PHash(verbose=False).encode_images(
            folder, num_enc_workers=workers
        )
    except ImportError:
        print("imagededup is not installed: its row is left out", file=sys.stderr)
    best = {name: {"wall": float("inf"), "cpu": float("inf")} for name in rows}
    for repeat in range(repeats):
        for name, fn in rows.items():
            cpu, start = cpu_seconds(), time.perf_counter()
            fn()
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            best[name] = {"wall": min(best[name]["wall"], wall), "cpu": min(best[name]["cpu"], cpu)}
            print(
                f"  {repeat + 1}/{repeats} {name}: {len(paths) / wall:.1f} images/s, "
                f"{cpu / len(paths) * 1000:.2f} ms CPU per image",
                file=sys.stderr,
            )
    return best


def bit_changes(paths: list[str], workers: int) -> dict[str, float]:
    """Hamming distance between each file's default pHash and its full-decode pHash."""
    from dupbench.methods import get_method

    a = get_method("phash").encode(paths, workers=workers).codes
    b = get_method("phash", draft=False).encode(paths, workers=workers).codes
    d = np.bitwise_count(a ^ b).sum(axis=1)
    return {
        "images": len(d),
        "mean": float(d.mean()),
        "median": float(np.median(d)),
        "p99": float(np.percentile(d, 99)),
        "max": int(d.max()),
        "histogram": {int(k): int(v) for k, v in zip(*np.unique(d, return_counts=True))},
    }


QUALITY_KEYS = ("precision", "recall", "f1", "recall_at_precision", "micro_ap")


def detection_quality(dataset, method_name: str, draft: bool, workers: int) -> dict[str, float]:
    """Pairwise scores at the method's default threshold (searching to a quarter of its bits)."""
    from dupbench.evaluation import evaluate_run
    from dupbench.harness.pipeline import to_source_rows
    from dupbench.methods import get_method
    from dupbench.search import range_search

    method = get_method(method_name, draft=draft)
    enc = method.encode(dataset.paths, dataset.ids, workers=workers)
    found = range_search(enc, max(method.default_threshold, round(method.size / 4)))
    candidates = to_source_rows(found, enc)
    row = evaluate_run(candidates, dataset.truth_pairs(), len(dataset), method.default_threshold)
    return {k: row[k] for k in QUALITY_KEYS}


def edited_full_hd(folder: Path, workers: int):
    """Edited copies (every catalogue transform) of 1080p frames of the bundled photos."""
    from dupbench.datasets.synthetic import SourcePhoto, SyntheticConfig, build_synthetic

    sources = folder / "sources"
    sources.mkdir()
    photos, noise = [], noise_bank(1)
    for k, photo in enumerate(source_photos()):
        path = sources / f"photo{k:02d}.jpg"
        full_hd_frame(photo, np.random.default_rng([1, k]), noise).save(path, quality=95)
        photos.append(SourcePhoto(f"photo{k:02d}", str(path)))
    config = SyntheticConfig(max_side=None, query_fraction=None)
    return build_synthetic(photos, folder / "edited", config, workers=workers, progress=False)


def quality(folder: Path, workers: int, methods: list[str]) -> dict:
    from dupbench.datasets import load_dataset

    sets = {
        "default dataset": load_dataset("default"),
        "edited 1080p photos": edited_full_hd(folder, workers),
    }
    out = {}
    for set_name, dataset in sets.items():
        for name in methods:
            for draft in (False, True):
                label = f"{set_name} | {name} | {'default (draft)' if draft else 'draft=False'}"
                out[label] = {
                    "images": len(dataset),
                    **detection_quality(dataset, name, draft, workers),
                }
                print(f"  {label}: {out[label]}", file=sys.stderr)
    return out


def markdown(report: dict) -> str:
    n, rows = report["images"], report["throughput"]
    ref = rows["bare draft-decode loop (RGB, 1/8)"]
    peer = rows.get("imagededup PHash")
    title = (
        f"pHash, {n} JPEGs of 1920x1080 (q=90), {report['workers']} processes per row, "
        f"best of {report['repeats']} (round-robin); {report['machine']}"
    )
    header = (
        "| | images/s | x draft-decode loop | x imagededup | CPU ms/image "
        "| CPU x draft-decode loop |"
    )
    lines = [title, "", header, "|---|---:|---:|---:|---:|---:|"]
    for name, t in rows.items():
        vs_peer = f"{peer['wall'] / t['wall']:.2f}" if peer else "-"
        lines.append(
            f"| {name} | {n / t['wall']:.1f} | {ref['wall'] / t['wall']:.2f} | "
            f"{vs_peer} | {t['cpu'] / n * 1000:.2f} | {ref['cpu'] / t['cpu']:.2f} |"
        )
    if "bit_changes" in report:
        b = report["bit_changes"]
        lines += [
            "",
            (
                f"Bits moved by the reduced decode (default vs draft=False, same files): "
                f"mean {b['mean']:.2f}, median {b['median']:.0f}, p99 {b['p99']:.0f}, "
                f"max {b['max']} of 64; histogram {b['histogram']}"
            ),
        ]
    if "quality" in report:
        header = "| dataset | method | decode | images | precision | recall | F1 | R@P0.99 | μAP |"
        lines += ["", header, "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for label, q in report["quality"].items():
            scores = " | ".join(f"{q[k]:.4f}" for k in QUALITY_KEYS)
            lines.append(f"| {label} | {q['images']} | {scores} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-quality", action="store_true", help="throughput and bit changes only")
    p.add_argument(
        "--quality-methods", default="phash,phash_simple,ahash,dhash,dhash_vertical,whash,colorhash"
    )
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()

    from dupbench.files import write_json, write_text

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        start = time.perf_counter()
        paths = [str(x) for x in make_corpus(corpus, args.count, args.workers)]
        print(f"corpus: {len(paths)} JPEGs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        report = {
            "images": len(paths),
            "workers": args.workers,
            "repeats": args.repeats,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
            "throughput": throughput(paths, str(corpus), args.workers, args.repeats),
            "bit_changes": bit_changes(paths, args.workers),
        }
        if not args.no_quality:
            report["quality"] = quality(Path(tmp), args.workers, args.quality_methods.split(","))
    table = markdown(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "hash_throughput.json", report)
    write_text(args.out / "hash_throughput.md", table)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
