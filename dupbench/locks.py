"""One process at a time per folder: lock files that name their holder and die with it.

Builds that share a cache, and runs that share a results folder, take ``hold(lock_path)``.
The lock is a kernel ``flock`` on the file, so a holder that dies (even by SIGKILL or the OOM
killer) releases it at once and the next process takes it over: there is no stale-pid guessing
and no pid-reuse risk. The file holds the holder's pid, host and start time, shown to a waiting
process and in the timeout error. The holder deletes the file when done (after checking, on each
acquire, that the path still names the locked file, so a deletion never lets two processes in).

``filelock`` (PyPI) takes the same kernel lock but truncates the file on every attempt, so a
waiter could not say who holds the lock; this module is its ~same size with holder details.
POSIX only (``fcntl``); on network filesystems it is as good as their ``flock``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

#: seconds a process waits for a live holder before giving up (a public set download can be long)
DEFAULT_TIMEOUT = 3600.0

_held = threading.local()  # per thread: {lock path: [fd, depth]}, so nested holds re-enter


class LockTimeout(TimeoutError):
    """Another live process held the lock for longer than the timeout; the message names it."""


def holder(path: str | Path) -> dict:
    """What the lock file at ``path`` says about its holder (pid, host, since), or {}."""
    try:
        return json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}" + (
        f" ({info['what']})" if info.get("what") else ""
    )


def _try_lock(path: Path) -> int | None:
    """An fd holding the lock on the file now at ``path``, or None when someone else holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the previous holder deleted it as we locked it
            same = False
        if same:
            return fd
        os.close(fd)  # we locked a file that is gone from the path: try the new one


@contextmanager
def hold(
    path: str | Path, what: str = "", timeout: float | None = DEFAULT_TIMEOUT, poll: float = 0.1
) -> Iterator[Path]:
    """Hold the lock file ``path`` for the ``with`` block (re-entrant within one thread).

    A live holder is waited for (one message on stderr naming it); after ``timeout`` seconds
    (None: forever) ``LockTimeout`` is raised. ``what`` says what the lock protects.
    """
    path = Path(path).absolute()
    table = _held.__dict__.setdefault("locks", {})
    key = str(path)
    if key in table:
        table[key][1] += 1
        try:
            yield path
        finally:
            table[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    start, told, delay = time.monotonic(), False, poll
    while (fd := _try_lock(path)) is None:
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise LockTimeout(
                f"gave up after {waited:.0f} s waiting for {path}, held by "
                f"{_describe(holder(path))}"
            )
        if not told:
            print(
                f"dupbench: waiting for {path}, held by {_describe(holder(path))}", file=sys.stderr
            )
            told = True
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "what": what,
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    table[key] = [fd, 1]
    try:
        yield path
    finally:
        del table[key]
        try:
            path.unlink(missing_ok=True)  # while still locked: see _try_lock
        finally:
            os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
