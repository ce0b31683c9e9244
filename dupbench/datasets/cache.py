"""Where datasets live on this machine, and how a folder appears there all at once or not at all.

A folder that dupbench builds carries a marker file (``.dupbench-build``, JSON: tool, version,
kind, pid, host, time) written when its temporary folder is created. Only a folder with that
marker is ever replaced (``overwrite=True``, ``--rebuild``) or written into, so a mistyped
``--out`` can never delete or overwrite a folder of photos. Builds of one target take a lock
(``dupbench.locks``) beside it; temporary folders carry their owner's pid and host in their
name, and a leftover is removed only once that owner is dead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from dupbench.datasets.truth import DatasetError
from dupbench.errors import UsageError
from dupbench.files import write_json
from dupbench.locks import hold, pid_alive

MARKER = ".dupbench-build"
#: ``.<target>.tmp-<pid>@<host>-<random>`` (and ``.old-``); folders of older versions lack @host
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:@(?P<host>[^@/]+))?"
    r"-[0-9a-f]{8}$"
)


class RefusedOutput(DatasetError, UsageError):
    """An output folder dupbench will not replace or write into: it is not one of its own builds,
    or it overlaps the input photos."""


def cache_dir() -> Path:
    """``$DUPBENCH_CACHE``, else ``$XDG_CACHE_HOME/dupbench``, else ``~/.cache/dupbench``."""
    if os.environ.get("DUPBENCH_CACHE"):
        return Path(os.environ["DUPBENCH_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "dupbench"
    return Path.home() / ".cache" / "dupbench"


def is_build(folder: str | Path) -> bool:
    """Whether ``folder`` is a real folder carrying dupbench's build marker."""
    folder, marker = Path(folder), Path(folder) / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("tool") == "dupbench"
    except (OSError, ValueError, AttributeError):
        return False


def write_marker(folder: Path, kind: str) -> None:
    from dupbench import __version__

    stamp = {
        "tool": "dupbench",
        "version": __version__,
        "kind": kind,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(folder / MARKER, stamp)


def build_lock(target: str | Path) -> AbstractContextManager[Path]:
    """The lock every build of ``target`` holds: ``.<name>.lock`` beside it."""
    target = Path(target)
    return hold(target.parent / f".{target.name}.lock", what=f"building {target}")


def _refuse_unless_build(target: Path) -> None:
    if not is_build(target):
        raise RefusedOutput(
            f"{target} exists and is not a dupbench build (no {MARKER} file); "
            "refusing to replace it: choose another output folder"
        )


def claim_dir(folder: str | Path, kind: str, *, owned: bool = False) -> Path:
    """Make ``folder`` a build folder to write into: create it (with the marker), or accept it
    when it carries the marker, is empty, or is ``owned`` (dupbench's own cache location, for
    folders written before the marker existed). Anything else raises ``RefusedOutput``."""
    folder = Path(folder)
    if is_build(folder):
        return folder
    if folder.is_symlink() or (
        folder.exists() and (not folder.is_dir() or (not owned and any(folder.iterdir())))
    ):
        _refuse_unless_build(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(folder, kind)
    return folder


@contextmanager
def atomic_dir(target: str | Path, overwrite: bool = False, kind: str = "build") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; rename it to ``target`` on success.

    Holds ``build_lock(target)`` throughout, and first removes leftovers of dead builds of
    ``target``. An exception (or an interrupted process) leaves ``target`` untouched. With
    ``overwrite`` an existing ``target`` is replaced only if it is a dupbench build
    (``RefusedOutput`` otherwise).
    """
    target = Path(target)
    with build_lock(target):
        clean_partial(target.parent, target.name)
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise FileExistsError(
                    f"{target} already exists (pass overwrite=True to replace it)"
                )
            _refuse_unless_build(target)
        suffix = f"{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        tmp = target.parent / f".{target.name}.tmp-{suffix}"
        tmp.mkdir()
        try:
            write_marker(tmp, kind)
            yield tmp
            if target.exists() or target.is_symlink():
                if not overwrite:  # made by hand while we built: keep it, drop ours
                    raise FileExistsError(f"{target} appeared during the build; not replaced")
                _refuse_unless_build(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{suffix}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def clean_partial(parent: str | Path, name: str | None = None) -> list[Path]:
    """Remove leftovers of interrupted builds (``.<name>.tmp-*``, ``.<name>.old-*``) under
    ``parent`` (of the target ``name`` only, when given) whose owner process is dead on this
    host; a live build's folders and another host's are left alone."""
    parent = Path(parent)
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    here = socket.gethostname()
    for leftover in parent.iterdir():
        match = _LEFTOVER.match(leftover.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        if match["host"] not in (None, here) or pid_alive(int(match["pid"])):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed
