"""Fetching public datasets: resumable HTTP downloads with checksums, and safe extraction.

A download goes to ``<file>.part``; an interrupted one resumes with an HTTP ``Range`` request
(a server that ignores it sends the whole file, and we start over). Only a file whose size and
checksum match is renamed into place. Extraction rejects absolute paths, ``..`` components,
links, FIFOs and device files, so an archive cannot write outside its folder, and caps the bytes
written (in all and per zip member's compression ratio), so a small bomb cannot fill the disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from dupbench.datasets.cache import atomic_dir
from dupbench.datasets.dataset import file_digest
from dupbench.datasets.truth import DatasetError


class DownloadError(DatasetError):
    """A download that failed or whose checksum does not match."""


class IncompleteDownload(DownloadError):
    """The connection ended early; the partial file is kept so the next try resumes."""


class NotAnArchiveError(DatasetError):
    """A file that should be an archive but is neither zip nor tar (an HTML error page, a
    truncated download)."""


class UnsafeArchiveError(DatasetError):
    """An archive member that would escape the extraction folder or is not a plain file."""


@dataclass(frozen=True)
class Resource:
    """One file of a public dataset: where to get it and how to recognise it."""

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


def check_file(path: Path, resource: Resource) -> None:
    """Raise ``DownloadError`` unless the file has the resource's size and checksums."""
    if resource.size is not None and path.stat().st_size != resource.size:
        raise DownloadError(f"{path.name}: size {path.stat().st_size} != expected {resource.size}")
    for algorithm, expected in (("sha256", resource.sha256), ("md5", resource.md5)):
        if expected and file_digest(path, algorithm) != expected.lower():
            raise DownloadError(f"{path.name}: {algorithm} does not match the published value")


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming from its current size where the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "dupbench"})
    if offset and url.startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part is complete
            return
        raise
    with response:
        status = getattr(response, "status", None)
        resumed = offset and status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                disable=not progress,
            ) as bar,
        ):
            for block in iter(lambda: response.read(1 << 16), b""):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise IncompleteDownload(
                f"connection closed after {part.stat().st_size} of {total} bytes"
            )


def download(
    resource: Resource,
    folder: str | Path,
    *,
    timeout: float = 60.0,
    progress: bool = True,
    retries: int = 2,
) -> Path:
    """Fetch ``resource`` into ``folder`` (no-op when a verified copy is there); try each URL in
    turn, resuming partial downloads, and verify size and checksums before keeping the file.

    A copy already in ``folder`` that fails the check is deleted and downloaded again. A resource
    without size or checksum cannot be verified: a truncated file or an HTML error page is only
    caught later (``load_public`` deletes a "archive" that is not one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / resource.filename
    if dest.exists():
        try:
            check_file(dest, resource)
            return dest
        except DownloadError:  # corrupt or from another release: fetch it again
            dest.unlink()
    part = folder / (resource.filename + ".part")
    errors = []
    for url in resource.urls:
        for _ in range(retries + 1):
            try:
                _fetch(url, part, timeout, progress)
                check_file(part, resource)
            except IncompleteDownload as e:
                errors.append(f"{url}: {e}")
                continue
            except DownloadError as e:  # complete but wrong: start over from zero
                errors.append(f"{url}: {e}")
                part.unlink(missing_ok=True)
                continue
            except (OSError, urllib.error.URLError) as e:
                errors.append(f"{url}: {e}")
                continue
            part.rename(dest)
            return dest
    raise DownloadError(
        f"could not download {resource.filename}:\n  "
        + "\n  ".join(errors)
        + f"\nDownload it by hand into {folder} and run again."
    )


# ---------------------------------------------------------------- extraction

#: by default an archive may extract to at most this many times its own size ...
MAX_RATIO = 100
#: ... or this many bytes, whichever is more (a small archive of text files compresses well)
MIN_CAP = 64 << 20
#: a single zip member is refused above MAX_RATIO only when larger than this
MEMBER_FLOOR = 1 << 20
_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def _safe_member_path(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} would escape the folder")
    return path


class _Budget:
    """Running total of the bytes an archive would write, refused beyond ``cap``."""

    def __init__(self, archive: Path, max_bytes: int | None, max_ratio: float) -> None:
        self.archive, self.total = archive, 0
        self.cap = (
            max_bytes
            if max_bytes is not None
            else max(MIN_CAP, int(max_ratio * archive.stat().st_size))
        )

    def add(self, name: str, size: int) -> None:
        self.total += size
        if self.total > self.cap:
            raise UnsafeArchiveError(
                f"{self.archive.name}: would extract more than {self.cap:,} bytes (at member "
                f"{name!r}); refusing a possible archive bomb (pass max_bytes= to allow more)"
            )


def _zip_members(
    zf: zipfile.ZipFile, archive: Path, keep, budget: _Budget, max_ratio: float
) -> list:
    members = []
    for info in zf.infolist():
        path = _safe_member_path(info.filename, archive)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind in _KINDS:
            raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is {_KINDS[kind]}")
        if info.is_dir() or not (keep is None or keep(info.filename)):
            continue
        if info.file_size > max(MEMBER_FLOOR, max_ratio * max(info.compress_size, 1)):
            raise UnsafeArchiveError(
                f"{archive.name}: member {info.filename!r} expands {info.compress_size:,} bytes "
                f"to {info.file_size:,} (over {max_ratio:g}x); refusing a possible zip bomb"
            )
        budget.add(info.filename, info.file_size)
        members.append((info, path))
    return members


def _tar_members(tf: tarfile.TarFile, archive: Path, keep, budget: _Budget) -> list:
    members = []
    for member in tf:  # one header at a time, so a bomb is refused before it is all unpacked
        path = _safe_member_path(member.name, archive)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} is a link")
        if member.isdir():
            continue
        if not member.isfile():
            raise UnsafeArchiveError(
                f"{archive.name}: member {member.name!r} is not a regular file"
            )
        if keep is None or keep(member.name):
            budget.add(member.name, member.size)
            members.append((member, path))
    return members


def _create(dest: Path, path: PurePosixPath, archive: Path):
    """Open the file for ``path`` below ``dest`` for writing, refusing to follow a link that
    already exists in ``dest`` out of it."""
    target = dest.joinpath(*path.parts)
    if not target.parent.resolve().is_relative_to(dest.resolve()):
        raise UnsafeArchiveError(
            f"{archive.name}: member {str(path)!r} would be written through a link out of {dest}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(target, flags, 0o644), "wb")


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    keep: Callable[[str], bool] | None = None,
    password: bytes | None = None,
    *,
    max_bytes: int | None = None,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Extract a .zip / .tar(.gz|.bz2|.xz) into ``dest``, refusing unsafe members.

    ``keep(name)`` selects members (default: all regular files). Links, FIFOs, devices, paths
    that leave ``dest``, and more than ``max_bytes`` in all (default: ``max_ratio`` times the
    archive's size, at least ``MIN_CAP``) or a zip member expanding over ``max_ratio`` times
    raise ``UnsafeArchiveError`` before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, max_bytes, max_ratio)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info, path in _zip_members(zf, archive, keep, budget, max_ratio):
                try:
                    with zf.open(info, pwd=password) as src, _create(dest, path, archive) as out:
                        shutil.copyfileobj(src, out)
                except RuntimeError as e:  # encrypted member without (the right) password
                    raise DatasetError(f"{archive.name}: {e}") from None
        return dest
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member, path in _tar_members(tf, archive, keep, budget):
                data = tf.extractfile(member)
                assert data is not None  # _tar_members lists regular files only
                with data, _create(dest, path, archive) as out:
                    shutil.copyfileobj(data, out)
        return dest
    raise NotAnArchiveError(f"{archive}: not a zip or tar archive")


def extract_once(archives: list[Path], dest: str | Path, **options) -> Path:
    """Extract archives into ``dest`` all at once (atomically); skip if ``dest`` exists."""
    dest = Path(dest)
    if dest.is_dir():
        return dest
    with atomic_dir(dest) as tmp:
        for archive in archives:
            safe_extract(archive, tmp, **options)
    return dest
