"""Writing result files so that a crash never leaves a half-written one behind.

Every JSON the project writes (API output, run records, metrics) goes through ``write_json``:
written to a temporary file beside the target, then renamed over it, which is atomic on POSIX.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def _plain(o: Any) -> Any:
    """numpy scalars and arrays, and paths, as plain JSON values."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # mode 0o666 filtered by the umask, as a plain open() would give (mkstemp forces 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2,
               sort_keys: bool = True) -> Path:
    """Write ``data`` as JSON atomically; numpy values become plain numbers and lists."""
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=_plain))
