"""Worker processes that end when the process that started them dies.

A parent killed by SIGKILL (as the OOM killer does) runs no clean-up, and pool workers blocked on
their task queue would wait forever. Every pool therefore starts its workers with
``die_with_parent`` (``pool_initializer()`` for ``ProcessPoolExecutor``,
``loader_worker_init()`` for a torch ``DataLoader``): on Linux the kernel sends the worker SIGKILL when its parent exits
(``PR_SET_PDEATHSIG``; strictly, when the parent's thread that started the worker ends, which
is why pools are made and used in one thread); everywhere, a daemon thread also polls the
parent's pid and ends the worker when it changes (the parent died and the worker was handed to
another process).
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
