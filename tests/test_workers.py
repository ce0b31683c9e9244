"""Worker processes end when their parent is SIGKILLed (as by the OOM killer), for every pool:
the encoding pool, the synthetic builder's pool and the CNN DataLoader's workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: each script starts a pool of 2 workers on slow work; a worker prints "working" when it begins
_SLOW = """
import sys, time
import numpy as np

def slow(*args):
    print("working", flush=True)
    time.sleep(0.05)
    return np.zeros(64, bool)
"""

#: a method whose every image is slow, encoded over a 2-process pool
_SLOW_ENCODE = """
from dupbench.methods.base import Method

class Slow(Method):
    name, kind, distance = "slow", "binary", "hamming"
    size = 64
    def encode_source(self, source):
        return slow()

Slow().encode([f"x{k}" for k in range(2000)], workers=2)
"""

SCRIPTS = {
    "encode": _SLOW + _SLOW_ENCODE,
    "encode, watchdog thread only": _SLOW
    + """
import dupbench.workers
dupbench.workers._kernel_kills_on_parent_death = lambda: False  # as where prctl is missing
"""
    + _SLOW_ENCODE,
    "synthetic builder": _SLOW
    + """
from dupbench.datasets import synthetic
synthetic._build_source = slow
synthetic._run([(k,) for k in range(2000)], "unused", workers=2, progress=False)
""",
    "cnn loader": _SLOW
    + """
import torch
from dupbench.methods.cnn_data import make_loader

class SlowData:
    def __len__(self):
        return 2000
    def __getitem__(self, k):
        slow()
        time.sleep(30)  # inside a long item torch's own parent check does not run
        return k, torch.zeros(1), None

for _ in make_loader(SlowData(), batch_size=2, num_workers=2, pin_memory=False):
    pass
""",
}


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended; its reaper may be slow


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("scenario", list(SCRIPTS))
def test_workers_die_with_their_parent(scenario):
    if scenario == "cnn loader":
        pytest.importorskip("torch")
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPTS[scenario]],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    workers: list[int] = []
    try:
        assert parent.stdout.readline().startswith("working")  # the pool is up and busy
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = children(parent.pid)
            time.sleep(0.05)
        assert len(workers) == 2, f"expected 2 workers, found {workers}"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 3
        while any(map(running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if running(w)], "workers outlived their parent"
    finally:
        parent.kill()
        parent.wait()
        for w in workers:  # only the workers this test saw; never anything else
            if running(w):
                os.kill(w, signal.SIGKILL)
