"""Reading a file's bytes without surprises: regular files only, never blocking on a FIFO.

A FIFO, socket or device in a photo folder blocks or streams forever when opened like a file.
Every byte-level reader (the ``file_digest`` method, the file actions) goes through
``open_regular``, which opens without blocking and refuses anything but a regular file.
``digest`` (of bytes in memory) and ``content_digest`` (of a file) are the project's one content
hash, BLAKE2b-128, that the exact methods, the index and the file actions all compare.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

DIGEST_BYTES = 16


def file_kind(mode: int) -> str:
    """A word for what an ``st_mode`` is, for skip reasons and refusals."""
    kinds = (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((word for test, word in kinds if test(mode)), "special file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading, or raise ``OSError`` at once if it is not a regular file.

    ``O_NONBLOCK`` makes opening a FIFO return immediately (a plain open waits for a writer);
    the descriptor's own ``fstat`` then decides, so a file swapped in between cannot slip by.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file: a {file_kind(mode)}", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def digest(*parts: bytes) -> bytes:
    """BLAKE2b-128 of the concatenated ``parts``: the same digest ``content_digest`` gives a file
    holding those bytes."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for part in parts:
        h.update(part)
    return h.digest()


def content_digest(path: str | os.PathLike, chunk_size: int = 1 << 20) -> tuple[bytes, int]:
    """(BLAKE2b-128 of the file's bytes, number of bytes read); regular files only."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    n = 0
    with open_regular(path) as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
            n += len(chunk)
    return h.digest(), n
