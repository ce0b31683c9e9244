"""Moving duplicates aside so that every move is verified, recorded, recoverable and undoable.

Why a journal: a move that crosses file systems is several steps (copy, verify, rename, remove
the source) and a crash, a kill or a full disk can stop it between any two. Each move is written
to ``JOURNAL_NAME`` in the destination folder (JSON lines, fsync'd) *before* its first step and
after each step, so that ``recover`` finishes or rolls back a half-done move, and ``undo`` puts
every moved file back, byte for byte, or says why it cannot.

Rules no input can break: only regular files are moved, never one inside the destination, never
one that changed since it was scanned, never over an existing file, and never unless one kept
copy of its group is still in place, unchanged (and still identical when the match was exact).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dupbench import locks
from dupbench.filebytes import content_digest, open_regular

JOURNAL_NAME = ".dupbench-journal.jsonl"
LOCK_NAME = ".dupbench-journal.lock"
#: temporary copies are hidden (scans skip them) and carry the move's id (only it removes them)
PARTIAL_TAG = ".dupbench-partial-"


class ActionError(Exception):
    """A problem that stops all actions: the destination, its lock or its journal is unusable."""


@dataclass(frozen=True)
class FileState:
    """A file as it was when scanned; acting on it is allowed only while it is unchanged."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def now(cls, path: str | os.PathLike) -> FileState:
        st = os.stat(path)
        return cls(Path(path), st.st_size, st.st_mtime_ns)

    def change(self) -> str | None:
        """Why the file is no longer as scanned (gone, resized, modified), or None."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            return f"it is gone ({e.strerror})"
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            return "it changed since it was scanned (size or modification time)"
        return None


@dataclass(frozen=True)
class PlannedMove:
    """Move ``source`` to ``relative`` under the destination, justified by ``keepers``.

    ``keepers`` are the group's copies that stay; one of them must still be in place and
    unchanged. For exact matches ``still_same(kept, source)`` must also hold for it right before
    the move (``same_bytes`` for byte-identical files; a re-encoding for pixel-identical ones).
    """

    source: FileState
    relative: str
    keepers: tuple[FileState, ...]
    still_same: Callable[[Path, Path], bool] | None = None


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two files hold exactly the same bytes now (by their digests)."""
    first = _digest(a)
    return first is not None and first == _digest(b)


@dataclass
class Outcome:
    """What a batch did: lines for the person, and counts for a summary."""

    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str | None:
    """Hex digest of a regular file's bytes, or None when it cannot be read as one."""
    try:
        return content_digest(path)[0].hex()
    except OSError:
        return None


class Journal:
    """Append-only JSON lines: a ``planned`` record with every field, then one per step."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL_NAME

    def append(self, record: dict) -> None:
        """Write one record and make it durable (file and, when new, its folder) before acting."""
        line = (
            json.dumps({**record, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, sort_keys=True)
            + "\n"
        )
        try:
            new = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line  # a record torn by a crash stays on its own line
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                _fsync_dir(self.folder)
        except OSError as e:
            raise ActionError(f"cannot write the journal {self.path}: {e.strerror or e}") from e

    @contextmanager
    def exclusive(self):
        """One dupbench at a time acts in a destination folder (``locks.hold``: a kernel lock
        that dies with its holder); a second one waits for the first, then re-checks its files.
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(
                    locks.hold(self.folder / LOCK_NAME, what=f"moving files in {self.folder}")
                )
            except locks.LockTimeout as e:
                raise ActionError(str(e)) from None
            except OSError as e:
                raise ActionError(f"cannot lock {self.folder}: {e.strerror or e}") from e
            yield self

    def step(self, entry: dict, step: str, **extra) -> None:
        self.append({"id": entry["id"], "step": step, **extra})
        entry["step"] = step

    def entries(self) -> list[dict]:
        """Every journaled action, its fields merged with its latest step, oldest first."""
        if not self.path.exists():
            return []
        try:
            with open_regular(self.path) as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError as e:
            raise ActionError(f"cannot read the journal {self.path}: {e.strerror or e}") from e
        merged: dict[str, dict] = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # only a record torn by a crash: its action was never started
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                merged.setdefault(record["id"], {}).update(record)
        return [e for e in merged.values() if _well_formed(e)]


def _well_formed(entry: dict) -> bool:
    """An entry with the fields every action needs (anything else in the file is ignored)."""
    texts = ("op", "step", "source", "destination", "digest")
    return (
        all(isinstance(entry.get(k), str) for k in texts)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("tmp"), (str, type(None)))
    )


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it (both resolved)."""
    return path == folder or folder in path.parents


def move_files(plan: Iterable[PlannedMove], destination: str | os.PathLike) -> Outcome:
    """Carry out ``plan`` into ``destination``, journaled; refusals are lines, not exceptions."""
    dest = Path(destination).resolve()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ActionError(f"cannot create the destination {dest}: {e.strerror or e}") from e
    with Journal(dest).exclusive() as journal:
        return _move_all(plan, dest, journal)


def _move_all(plan: Iterable[PlannedMove], dest: Path, journal: Journal) -> Outcome:
    out = Outcome()
    for move in plan:
        src = move.source.path
        problem = refusal(move, dest)
        if problem:
            out.refused.append(f"not moving {src}: {problem}")
            continue
        target = dest / move.relative
        digest = _digest(src)
        if digest is None or move.source.change():
            out.refused.append(f"not moving {src}: it cannot be read or is being changed")
            continue
        if move.still_same and not any(move.still_same(k.path, src) for k in _intact(move)):
            out.refused.append(f"not moving {src}: no kept copy is identical to it any more")
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            out.refused.append(f"not moving {src}: cannot create {target.parent}: {e.strerror}")
            continue
        line = _transfer(
            journal, "move", Path(os.path.abspath(src)), target, digest, move.source.size
        )
        (out.done if line.startswith("moved") else out.refused).append(line)
    return out


def _intact(move: PlannedMove) -> list[FileState]:
    """The kept copies still in place and unchanged since the scan (not the source itself)."""
    return [
        k
        for k in move.keepers
        if k.change() is None and not os.path.samefile(k.path, move.source.path)
    ]


def refusal(move: PlannedMove, dest: Path) -> str | None:
    """Why ``move`` into ``dest`` (resolved) must not happen now, or None."""
    src = move.source.path
    try:
        mode = os.lstat(src).st_mode
    except OSError as e:
        return f"it is gone ({e.strerror})"
    if not stat.S_ISREG(mode):
        return "not a regular file (links and special files are never moved)"
    if inside(Path(os.path.realpath(src)), dest):
        return "it is inside the destination folder"
    changed = move.source.change()
    if changed:
        return changed
    target = dest / move.relative
    if not inside(Path(os.path.abspath(target)), dest) or move.relative.startswith("."):
        return f"its name {move.relative!r} would leave the destination folder"
    if os.path.lexists(target):
        return f"{target} already exists"
    if not _intact(move):
        return "no kept copy of its group is still in place and unchanged (the last copy stays)"
    return None


def _transfer(
    journal: Journal,
    op: str,
    src: Path,
    dst: Path,
    digest: str,
    size: int,
    copy: bool = False,
    **extra,
) -> str:
    """Move one file, journaled: rename on one file system, verified copy across two.

    ``copy`` forces the copy path, taken when a rename says the two are different file systems
    although they share a device number (bind mounts, some containers).
    """
    ident = secrets.token_hex(8)
    same_fs = not copy and os.stat(src).st_dev == os.stat(dst.parent).st_dev
    tmp = None if same_fs else dst.parent / f"{PARTIAL_TAG}{ident}.{dst.name}"
    entry = {
        "id": ident,
        "op": op,
        "source": str(src),
        "destination": str(dst),
        "tmp": str(tmp) if tmp else None,
        "size": size,
        "digest": digest,
        "step": "planned",
        **extra,
    }
    journal.append(entry)
    try:
        if tmp is None:
            if os.path.lexists(dst):
                raise FileExistsError(f"{dst} already exists")
            os.rename(src, dst)
            _fsync_dir(dst.parent)
            _fsync_dir(src.parent)
        else:
            _copy_verified(src, tmp, digest)
            journal.step(entry, "copied")
            if os.path.lexists(dst):
                raise FileExistsError(f"{dst} already exists")
            os.rename(tmp, dst)
            _fsync_dir(dst.parent)
            return settle(journal, entry)  # removes the source once both digests are checked
    except OSError as e:
        if tmp is None and e.errno == errno.EXDEV:
            settle(journal, entry)  # nothing happened yet: recorded as rolled back
            return _transfer(journal, op, src, dst, digest, size, copy=True, **extra)
        return _failed(journal, entry, op, src, e.strerror or str(e))
    except ValueError as e:
        return _failed(journal, entry, op, src, str(e))
    return _finish(journal, entry)


def _failed(journal: Journal, entry: dict, op: str, src: Path, reason: str) -> str:
    """A move that stopped with an error: settle it now and say what happened."""
    verb = "not restoring" if op == "restore" else "not moving"
    try:
        return f"{verb} {src}: {reason}; " + settle(journal, entry)
    except OSError as again:
        return (
            f"{verb} {src}: {reason}; left half-done ({again.strerror}): rerun to finish "
            f"or roll it back from the journal {journal.path}"
        )


def _copy_verified(src: Path, tmp: Path, digest: str) -> None:
    """Copy to a new temporary file, fsync it, and check its digest against the planned one."""
    with open_regular(src) as fin:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
    shutil.copystat(src, tmp)
    os.chmod(tmp, stat.S_IMODE(os.stat(src).st_mode))
    if _digest(tmp) != digest:
        raise ValueError("the copy's digest differs from the source's (source changed?)")


def _finish(journal: Journal, entry: dict) -> str:
    journal.step(entry, "done")
    if entry["op"] == "restore":
        journal.append({"id": entry["of"], "step": "undone"})
        return f"restored {entry['destination']}"
    return f"moved {entry['source']} -> {entry['destination']}"


def settle(journal: Journal, entry: dict) -> str:
    """Bring a half-done action to a clean end, and say which.

    Finished when a verified copy (digest as planned) is in place at the destination: a source
    with the same bytes is then removed. Otherwise rolled back: the temporary copy is removed,
    but only while another intact copy exists; a complete temporary copy that is the last one
    is renamed into place instead. No file is ever left torn, and no copy is the last one lost.
    """
    src, dst, d = Path(entry["source"]), Path(entry["destination"]), entry["digest"]
    tmp = Path(entry["tmp"]) if entry.get("tmp") else None
    src_ok = _digest(src) == d if os.path.lexists(src) else False
    dst_ok = os.path.lexists(dst) and _digest(dst) == d
    if tmp and os.path.lexists(tmp):
        if not (src_ok or dst_ok) and _digest(tmp) == d and not os.path.lexists(dst):
            os.rename(tmp, dst)
            _fsync_dir(dst.parent)
            dst_ok = True
        elif src_ok or dst_ok:
            os.unlink(tmp)
            _fsync_dir(tmp.parent)
    if dst_ok and src_ok and not os.path.samefile(src, dst):
        try:
            os.unlink(src)
            _fsync_dir(src.parent)
        except OSError as e:  # the source cannot be removed: drop our verified copy instead
            os.unlink(dst)
            _fsync_dir(dst.parent)
            journal.step(entry, "rolled_back")
            return f"rolled back ({src} cannot be removed: {e.strerror}): it stays where it was"
    if dst_ok:
        return _finish(journal, entry)
    journal.step(entry, "rolled_back")
    return f"rolled back: {src} stays where it was"


def recover(destination: str | os.PathLike) -> list[str]:
    """Finish or roll back every half-done action in ``destination``'s journal (after a crash)."""
    journal = Journal(destination)
    if not journal.path.exists():
        return []
    with journal.exclusive():
        return _settle_all(journal)


def _settle_all(journal: Journal) -> list[str]:
    lines = []
    for entry in journal.entries():
        if entry.get("step") in ("planned", "copied"):
            try:
                lines.append(settle(journal, entry))
            except OSError as e:
                lines.append(
                    f"cannot settle the move of {entry['source']} yet "
                    f"({e.strerror or e}); its files are left as they are"
                )
    return lines


def pending(destination: str | os.PathLike) -> int:
    """How many journaled actions in ``destination`` were interrupted and wait for ``recover``."""
    return sum(e.get("step") in ("planned", "copied") for e in Journal(destination).entries())


def undo(destination: str | os.PathLike) -> Outcome:
    """Put every moved file back where it was, newest move first, journaled like a move.

    A file is left where it is, with a line saying why, when it changed since it was moved
    (digest differs), is missing, or when its original path is occupied again.
    """
    dest = Path(destination).resolve()
    if not Journal(dest).path.exists():
        return Outcome()
    with Journal(dest).exclusive() as journal:
        return _undo_all(journal)


def _undo_all(journal: Journal) -> Outcome:
    dest = journal.folder
    out = Outcome(done=_settle_all(journal))
    for entry in reversed(journal.entries()):
        if entry.get("op") != "move" or entry.get("step") != "done":
            continue
        moved, original = Path(entry["destination"]), Path(entry["source"])
        if not os.path.lexists(moved):
            out.refused.append(f"not restoring {original}: {moved} is missing")
        elif _digest(moved) != entry["digest"]:
            out.refused.append(
                f"not restoring {original}: {moved} changed since it was moved "
                "(digest differs); left in place"
            )
        elif os.path.lexists(original):
            out.refused.append(
                f"not restoring {original}: that path is occupied again; {moved} left in place"
            )
        else:
            original.parent.mkdir(parents=True, exist_ok=True)
            line = _transfer(
                journal, "restore", moved, original, entry["digest"], entry["size"], of=entry["id"]
            )
            (out.done if line.startswith("restored") else out.refused).append(line)
            _remove_empty_folders(moved.parent, dest)
    return out


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    """Remove the now empty folders a move created under ``stop`` (never ``stop`` itself)."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
