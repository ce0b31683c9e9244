"""Worker processes that end when the process that started them dies.

A parent killed by SIGKILL (as the OOM killer does) runs no clean-up, and pool workers blocked on
their task queue would wait forever. Every pool therefore starts its workers with
``die_with_parent`` (``pool_initializer()`` for ``ProcessPoolExecutor``,
``loader_worker_init()`` for a torch ``DataLoader``): on Linux the kernel sends the worker SIGKILL when its parent exits
(``PR_SET_PDEATHSIG``; strictly, when the parent's thread that started the worker ends, which
is why pools are made and used in one thread); everywhere, a daemon thread also polls the
parent's pid and ends the worker when it changes (the parent died and the worker was handed to
another process).

``parallel_map`` is the one pool-with-progress loop (method encoding, the dataset builder,
the verified method's second stage): it keeps results in order and runs in this process when
one worker, or too few items, would not pay for a pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dupbench.cpus import worker_count

#: ``prctl`` option: the signal the kernel sends this process when its parent exits (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds between two looks at the parent's pid in the portable watchdog
POLL_SECONDS = 0.5


def _kernel_kills_on_parent_death() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)  # the parent is gone: no clean-up to run, nothing to return results to


def die_with_parent(owner: int) -> None:
    """Run first in a worker: end it when its parent dies. ``owner`` is the pid of the process
    that made the pool (the parent under fork and spawn); a worker that already lost it exits.
    """
    parent = os.getppid()
    _kernel_kills_on_parent_death()
    # the parent may have died before the line above: then nothing would ever send the signal
    if os.getppid() != parent or (parent != owner and not _alive(owner)):
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def pool_initializer() -> dict:
    """Keyword arguments for ``ProcessPoolExecutor`` that make its workers die with this process."""
    return {"initializer": die_with_parent, "initargs": (os.getpid(),)}


def loader_worker_init() -> functools.partial:
    """A torch ``DataLoader`` ``worker_init_fn`` that makes its workers die with this process."""
    return functools.partial(_loader_init, os.getpid())


def _loader_init(owner: int, worker_id: int) -> None:
    die_with_parent(owner)


def parallel_map(
    fn: Callable[[Any], Any],
    items: Sequence,
    workers: int | None = 1,
    *,
    desc: str | None = None,
    unit: str = "item",
    progress: bool = False,
    chunk_size: int = 1,
    serial_below: int = 2,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> list:
    """``[fn(x) for x in items]``, over ``workers`` processes (``cpus.worker_count``) that die
    with this one, with a progress bar counting items when ``progress``.

    Items travel to the workers ``chunk_size`` at a time (``fn`` and its arguments must pickle);
    ``initializer(*initargs)`` runs once in each worker, after ``die_with_parent``. With one
    worker or fewer than ``serial_below`` items everything runs here and no initializer runs.
    """
    from tqdm.auto import tqdm

    workers = worker_count(workers)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress)
    try:
        if workers == 1 or len(items) < max(2, serial_below):
            out = []
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        from concurrent.futures import ProcessPoolExecutor

        chunk_size = max(1, chunk_size)
        chunks = [items[k : k + chunk_size] for k in range(0, len(items), chunk_size)]
        out = []
        with ProcessPoolExecutor(
            min(workers, len(chunks)),
            initializer=_pool_start,
            initargs=(os.getpid(), initializer, initargs),
        ) as pool:
            for part in pool.map(_apply, [fn] * len(chunks), chunks):
                out.extend(part)
                bar.update(len(part))
        return out
    finally:
        bar.close()


def _pool_start(owner: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    die_with_parent(owner)
    if initializer is not None:
        initializer(*initargs)


def _apply(fn: Callable[[Any], Any], chunk: Sequence) -> list:
    return [fn(item) for item in chunk]
