"""Images per second of CNN encoding: CPU, CPU with reduced-size JPEG decode, and CUDA.

The image set is ``--images`` JPEGs of ``--size`` px made from scikit-image's bundled photos
(offline). Paths measured, each after one warm-up batch:

- cpu            ``CNN(device="cpu")``: Pillow decode + preprocessing in DataLoader workers.
- cpu+draft      the same with ``draft=True`` (libjpeg decodes at 1/2, 1/4 or 1/8 scale).
- cuda           ``CNN(device="cuda")``: CPU decode in workers, network on the GPU.
- cuda+nvjpeg    file bytes batched on the CPU, ``torchvision.io.decode_jpeg(device="cuda")``
                 (nvJPEG), resize and normalisation on the GPU, then the same network and pooling
                 (``CNN.embed_batch``). Its mean cosine similarity to the ``cpu`` embeddings is
                 printed, since GPU decoding and tensor resizing change pixels slightly.

CUDA rows appear only when a GPU is present; ``--decode-device cpu`` runs the nvJPEG path's code
with CPU decoding, to check it without a GPU.

    python benchmarks/encode_throughput.py --images 64 --size 1024
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def make_jpegs(directory: Path, count: int, size: int) -> list[Path]:
    from PIL import Image
    from skimage import data

    paths = []
    for k in range(count):
        img = Image.fromarray(getattr(data, PHOTOS[k % len(PHOTOS)])()).convert("RGB")
        img = img.resize((size + 8 * (k // len(PHOTOS)), size * 3 // 4), Image.BICUBIC)
        paths.append(directory / f"img{k:05d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def timed_encode(method, paths, workers: int) -> tuple[float, np.ndarray]:
    method.encode(paths[: method.params["batch_size"]], workers=workers)  # warm-up
    t0 = time.perf_counter()
    enc = method.encode(paths, workers=workers)
    return len(paths) / (time.perf_counter() - t0), enc.codes


def nvjpeg_embed(method, paths, batch_size: int, device: str) -> tuple[float, np.ndarray]:
    """Decode JPEG batches with torchvision on ``device`` and embed them (efficientnet_lite0)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms.v2 import functional as F

    if method.params["backbone"] != "efficientnet_lite0":
        raise SystemExit("the nvJPEG path implements efficientnet_lite0's preprocessing only")
    size = method._ready().decode_size  # (224, 224): the whole frame squeezed to a square
    mean, std = [127 / 255] * 3, [128 / 255] * 3

    def run(batch_paths):
        raw = [read_file(str(p)) for p in batch_paths]  # CPU side: bytes, batched
        images = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
        x = torch.stack(
            [
                F.resize(im, list(size[::-1]), F.InterpolationMode.BICUBIC, antialias=True)
                for im in images
            ]
        )
        x = F.normalize(x.float().div_(255), mean, std)
        return method.embed_batch(x)

    run(paths[:batch_size])  # warm-up (nvJPEG handles, cuDNN autotune)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    codes = np.concatenate(
        [run(paths[s : s + batch_size]) for s in range(0, len(paths), batch_size)]
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - t0), codes


def main() -> None:
    import torch

    from dupbench.methods.cnn import CNN

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader decode workers")
    ap.add_argument(
        "--decode-device",
        default=None,
        help="device for the nvJPEG path (default: cuda when present, else skipped)",
    )
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    rows = []

    def report(path, ips, note=""):
        rows.append({"path": path, "images_per_s": round(ips, 1), "note": note})
        print(json.dumps(rows[-1]), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), args.images, args.size)
        common = {"backbone": args.backbone, "batch_size": args.batch_size}
        cpu = CNN(device="cpu", **common)
        ips, reference = timed_encode(cpu, paths, args.workers)
        report("cpu", ips, f"torch threads {torch.get_num_threads()}, workers {args.workers}")
        ips, codes = timed_encode(CNN(device="cpu", draft=True, **common), paths, args.workers)
        report("cpu+draft", ips, f"mean cos to cpu {np.mean(np.sum(codes * reference, 1)):.4f}")
        if gpu:
            ips, _ = timed_encode(CNN(device="cuda", **common), paths, args.workers)
            report("cuda", ips, torch.cuda.get_device_name())
        decode_device = args.decode_device or ("cuda" if gpu else None)
        if decode_device:
            method = CNN(device=decode_device if decode_device != "cpu" else "cpu", **common)
            ips, codes = nvjpeg_embed(method, paths, args.batch_size, decode_device)
            report(
                f"{decode_device}+torchvision-decode",
                ips,
                f"mean cos to cpu {np.mean(np.sum(codes * reference, 1)):.4f}",
            )
    print(
        f"\n{args.images} JPEGs of {args.size} px, backbone {args.backbone}, "
        f"batch {args.batch_size}"
    )
    for r in rows:
        print(f"  {r['path']:<28} {r['images_per_s']:>8} img/s   {r['note']}")


if __name__ == "__main__":
    main()
