"""Stage measurements: wall and CPU time, throughput, and peak memory.

Peak memory is the resident set size (RSS) of this process and its worker processes, sampled by
a background thread every few milliseconds, so each stage gets its own high-water mark (the
kernel's ``ru_maxrss`` only knows the whole process lifetime). On GPU the CUDA allocator's own
high-water mark is read as well.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from dupbench.harness.record import StageSummary, StageTiming

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MB = 1024 * 1024


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        kids: list[int] = []
        for task in tasks:
            text = (task / "children").read_text().split()
            kids.extend(int(k) for k in text)
        return kids
    except OSError:
        return []


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int | None = None) -> int:
    """Bytes resident in ``pid`` (default: this process) and all its descendants (Linux /proc).

    Where /proc is missing, the lifetime high-water mark of this process (``ru_maxrss``).
    """
    pid = os.getpid() if pid is None else pid
    if not Path(f"/proc/{pid}/statm").exists():
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss(p)
        stack.extend(_children(p))
    return total


class MemorySampler:
    """A daemon thread that keeps the highest RSS seen since the last ``reset``."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dupbench-rss", daemon=True)

    def __enter__(self):
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        now = tree_rss()
        with self._lock:
            self._peak = max(self._peak, now)
        return now

    def reset(self) -> int:
        """Start a new high-water mark; returns the RSS now."""
        with self._lock:
            self._peak = 0
        return self.sample()

    @property
    def peak(self) -> int:
        self.sample()
        with self._lock:
            return self._peak


def _cuda():
    """``torch.cuda`` when torch is already imported and a GPU is present, else None."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda
    return None


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """Measures named stages; ``with watch.stage("encode", items=n): ...`` records one pass.
    Stages may nest (a search timing its sub-stages): an inner stage's start does not lose
    the memory peak an enclosing stage reached before it."""

    def __init__(self, sampler: MemorySampler) -> None:
        self.sampler = sampler
        self.passes: dict[str, list[StageTiming]] = {}
        self.open: list[_StageContext] = []

    def stage(self, name: str, items: int = 0) -> _StageContext:
        return _StageContext(self, name, items)

    def summary(self) -> dict[str, StageSummary]:
        """Per stage: median wall and CPU time over the passes, the maximum memory, throughput."""
        out = {}
        for name, passes in self.passes.items():
            wall = median(p.wall_s for p in passes)
            cuda = [p.cuda_peak_mb for p in passes if p.cuda_peak_mb is not None]
            out[name] = StageSummary(
                wall_s=wall,
                cpu_s=median(p.cpu_s for p in passes),
                peak_rss_mb=max(p.peak_rss_mb for p in passes),
                added_rss_mb=max(p.added_rss_mb for p in passes),
                cuda_peak_mb=max(cuda) if cuda else None,
                items=passes[-1].items,
                items_per_s=passes[-1].items / wall if wall > 0 else float("nan"),
                passes=list(passes),
            )
        return out


@dataclass
class _StageContext:
    watch: Stopwatch
    name: str
    items: int
    _start: tuple = field(default=(), init=False)
    _carried_peak: int = field(default=0, init=False)

    def __enter__(self):
        cuda = _cuda()
        if cuda is not None:
            cuda.synchronize()
            cuda.reset_peak_memory_stats()
        for outer in self.watch.open:  # the reset below must not lose their peak so far
            outer._carried_peak = max(outer._carried_peak, self.watch.sampler.peak)
        self.watch.open.append(self)
        rss = self.watch.sampler.reset()
        self._start = (time.perf_counter(), _cpu_seconds(), rss)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.watch.open.remove(self)
        if exc_type is not None:
            return
        cuda = _cuda()
        if cuda is not None:
            cuda.synchronize()
        wall = time.perf_counter() - self._start[0]
        cpu = _cpu_seconds() - self._start[1]
        peak = max(self.watch.sampler.peak, self._carried_peak)
        timing = StageTiming(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_mb=peak / _MB,
            added_rss_mb=max(0, peak - self._start[2]) / _MB,
            items=self.items,
            cuda_peak_mb=cuda.max_memory_allocated() / _MB if cuda is not None else None,
        )
        self.watch.passes.setdefault(self.name, []).append(timing)
