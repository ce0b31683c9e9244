"""Peak memory of finding duplicates in a folder of N identical images: it must grow like N, not N².

N identical files are N·(N-1)/2 duplicate pairs (5,000 → 12.5 M). The folder is made once (small
identical PNGs); then each scenario runs in a fresh child process and reports its RSS high-water
mark (``ru_maxrss`` from ``wait4``: the child and every worker process it started, whichever was
largest). Scenarios:

- ``encode only``: ``encode_images`` with file_digest, the floor (interpreter, libraries, codes);
- ``api file_digest`` / ``api phash``: ``find_duplicates(..., outfile=...)``, then every value of
  the returned map is read (``sum(len(v) for v in dups.values())``), as a caller would;
- ``cli find -o``: ``dupbench find DIR -m file_digest -o out.json``.

    python benchmarks/big_groups.py                  # 5,000 files
    python benchmarks/big_groups.py --count 2000 --scenarios api_digest,cli
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_API = """
import sys
from dupbench.api import encode_images, find_duplicates
folder, method, out = sys.argv[1:4]
if method == "encode":
    print(len(encode_images(folder, "file_digest", progress=False)))
else:
    dups = find_duplicates(folder, method=method, outfile=out, progress=False)
    print(sum(len(v) for v in dups.values()))
"""

SCENARIOS = {
    "encode": ("encode only", [sys.executable, "-c", _API, "{dir}", "encode", "{out}"]),
    "api_digest": (
        "api file_digest",
        [sys.executable, "-c", _API, "{dir}", "file_digest", "{out}"],
    ),
    "api_phash": ("api phash", [sys.executable, "-c", _API, "{dir}", "phash", "{out}"]),
    "cli": (
        "cli find -o",
        [
            sys.executable,
            "-m",
            "dupbench",
            "find",
            "{dir}",
            "-m",
            "file_digest",
            "-o",
            "{out}",
            "-q",
        ],
    ),
}


def make_identical_pngs(folder: Path, count: int, size: int = 32) -> None:
    """``count`` byte-identical PNGs of random noise (one encoded image, written many times)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        (folder / f"img_{k:06d}.png").write_bytes(buf.getvalue())


#: runs the measured command as its child and writes the child's peak RSS (kB) to argv[1]. The
#: child forks from this small fresh process: on Linux a child inherits its parent's RSS high-water
#: mark across fork and exec, so measuring a command started straight from a large process (a
#: long-lived pytest worker) would report that process's peak instead of the command's own.
_LAUNCH = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; its peak RSS (MB, largest of it and its children), seconds and stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file, out_file, err_file = (Path(tmp) / n for n in ("rss", "out", "err"))
        with open(out_file, "w") as out, open(err_file, "w") as err:
            start = time.perf_counter()
            code = subprocess.call(
                [sys.executable, "-c", _LAUNCH, str(rss_file), *command], stdout=out, stderr=err
            )
            seconds = time.perf_counter() - start
        if code:
            raise RuntimeError(f"{command[:4]} failed ({code}): {err_file.read_text()[-500:]}")
        return int(rss_file.read_text()) / 1024, seconds, out_file.read_text().strip()


def run(count: int, scenarios: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_identical_pngs(folder, count)
        for key in scenarios:
            label, template = SCENARIOS[key]
            out = Path(tmp) / f"{key}.json"
            command = [a.format(dir=folder, out=out) for a in template]
            rss, seconds, stdout = peak_rss_mb(command)
            size = out.stat().st_size / 2**20 if out.exists() else 0.0
            rows.append(
                {
                    "scenario": label,
                    "peak_rss_mb": rss,
                    "seconds": seconds,
                    "json_mb": size,
                    "stdout": stdout,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=5000, help="identical images (default 5000)")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)}",
    )
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenarios: {', '.join(unknown)}")
    pairs = args.count * (args.count - 1) // 2
    print(f"{args.count} identical images ({pairs:,} duplicate pairs)")
    rows = run(args.count, chosen)
    floor = next((r["peak_rss_mb"] for r in rows if r["scenario"] == "encode only"), None)
    print(f"{'scenario':<18}{'peak RSS MB':>12}{'x encode':>10}{'seconds':>9}{'JSON MB':>9}")
    for r in rows:
        ratio = f"{r['peak_rss_mb'] / floor:.2f}" if floor else "-"
        print(
            f"{r['scenario']:<18}{r['peak_rss_mb']:>12.0f}{ratio:>10}{r['seconds']:>9.1f}"
            f"{r['json_mb']:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
