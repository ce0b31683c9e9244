"""How many CPU cores this process may use: what sizes worker pools and what a run reports."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as a container sets it), not the
    machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def worker_count(workers: int | None) -> int:
    """The one meaning of a ``workers`` argument: None (or 0 or less, imagededup's
    ``num_enc_workers=0``) is one process per usable core, 1 is in this process, N is N."""
    return usable_cores() if workers is None or workers <= 0 else int(workers)
