"""Where datasets live on this machine, and how a folder appears there all at once or not at all."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """``$DUPBENCH_CACHE``, else ``$XDG_CACHE_HOME/dupbench``, else ``~/.cache/dupbench``."""
    if os.environ.get("DUPBENCH_CACHE"):
        return Path(os.environ["DUPBENCH_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "dupbench"
    return Path.home() / ".cache" / "dupbench"


@contextmanager
def atomic_dir(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; rename it to ``target`` on success.

    An exception (or an interrupted process) leaves ``target`` untouched: only a hidden
    ``.<name>.tmp-*`` folder remains, which the next build ignores and ``clean_partial`` removes.
    If another process finished ``target`` first, its copy wins and ours is discarded.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        if not overwrite:  # a concurrent build got there first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_partial(parent: str | Path) -> list[Path]:
    """Remove leftovers of interrupted builds (``.<name>.tmp-*``) under ``parent``."""
    parent = Path(parent)
    removed = []
    if parent.is_dir():
        for leftover in parent.glob(".*.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed
