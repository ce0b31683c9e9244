"""Writing result files so that a crash never leaves a half-written one behind.

Every file the project writes (API output, run records, metrics, report tables and figures) is
written to a temporary file beside the target, then renamed over it, which is atomic on POSIX:
``write_json`` and ``write_text`` for text (``write_json_mapping`` streams a big map),
``atomic_writer`` for a text stream, ``replacing`` for writers that want a path (``savefig``,
``to_csv``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

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


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary path beside ``path`` to write to; when the block ends normally it
    is renamed over ``path``, when it raises (or is interrupted) it is removed and ``path`` is
    left as it was. The temporary name keeps the suffix, so writers that pick a format from it
    (``savefig``, ``np.savez``) behave as with ``path`` itself."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}"
    # mode 0o666 filtered by the umask, as a plain open() would give (mkstemp forces 0600)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_writer(path: str | os.PathLike, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text file that replaces ``path`` only when the block ends without an error
    (``newline`` as for ``open``: "" writes line ends as given, as ``csv`` wants)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as f:
        yield f


def write_text(path: str | os.PathLike, text: str, newline: str | None = None) -> Path:
    """Replace ``path`` with ``text`` atomically (temp file in the same folder, then rename)."""
    with atomic_writer(path, newline) as f:
        f.write(text)
    return Path(path)


def write_json(
    path: str | os.PathLike, data: Any, *, indent: int | None = 1, sort_keys: bool = True
) -> Path:
    """Write ``data`` as JSON atomically, ending in a newline; numpy values become plain numbers
    and lists, NaN stays NaN (stored metrics round-trip exactly). Every JSON file the project
    writes comes from here, so they share one layout (``indent`` 1, sorted keys).

    A mapping that is not a dict (one that computes its values on access, as a
    ``DuplicateMap``) is streamed by ``write_json_mapping`` instead of being built whole.
    """
    if isinstance(data, Mapping) and not isinstance(data, dict):
        return write_json_mapping(path, data)
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=_plain)
    return write_text(path, text + "\n")


def write_json_mapping(path: str | os.PathLike, mapping: Mapping[str, Any]) -> Path:
    """Write a JSON object atomically, one key per line (sorted), each value on its line: a
    mapping that computes its values on access is never held whole, only one value at a time."""
    with atomic_writer(path) as f:
        for n, key in enumerate(sorted(mapping)):
            f.write(
                ("{\n" if n == 0 else ",\n")
                + json.dumps(key)
                + ": "
                + json.dumps(mapping[key], default=_plain)
            )
        f.write("\n}\n" if mapping else "{}\n")
    return Path(path)
