"""Archive extraction refuses bombs and special members before writing anything (issue 9)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from dupbench.datasets.download import UnsafeArchiveError, extract_once, safe_extract


def _zip_of_zeros(path: Path, size: int) -> Path:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("zeros.bin", "w", force_zip64=True) as f,
    ):
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    return path


class _Zeros:
    """An endless stream of zero bytes (a bomb's payload without holding it in memory)."""

    def read(self, size: int = -1) -> bytes:
        return bytes(max(size, 0))


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_1mb_zip_that_extracts_to_1gib_is_refused_quickly(tmp_path):
    bomb = _zip_of_zeros(tmp_path / "bomb.zip", 1 << 30)
    assert bomb.stat().st_size < 8 << 20
    start = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        extract_once([bomb], tmp_path / "raw" / "bomb")
    assert time.perf_counter() - start < 1
    assert _listing(tmp_path / "raw") == []  # no folder, no temporary folder, no lock


def test_total_size_is_capped_across_members(tmp_path):
    archive = tmp_path / "many.zip"
    chunk = os.urandom(1 << 20)  # incompressible: no member is over the ratio
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"part{k}.bin", chunk)
    with pytest.raises(UnsafeArchiveError, match="more than 2,000,000 bytes"):
        safe_extract(archive, tmp_path / "out", max_bytes=2_000_000)
    assert _listing(tmp_path / "out") == []
    safe_extract(archive, tmp_path / "ok")  # the default cap lets an ordinary archive through
    assert (tmp_path / "ok" / "part2.bin").read_bytes() == chunk


def test_a_tar_gz_bomb_is_refused_before_it_is_unpacked(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 256 << 20
        tf.addfile(info, _Zeros())
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        safe_extract(bomb, tmp_path / "out")
    assert _listing(tmp_path / "out") == []


@pytest.mark.parametrize(
    "kind, word",
    [
        (stat.S_IFIFO, "FIFO"),
        (stat.S_IFCHR, "device"),
        (stat.S_IFBLK, "device"),
        (stat.S_IFSOCK, "socket"),
        (stat.S_IFLNK, "link"),
    ],
)
def test_zip_members_that_are_not_plain_files_are_refused(tmp_path, kind, word):
    archive = tmp_path / "special.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "plain")
        special = zipfile.ZipInfo("b")
        special.create_system = 3  # unix
        special.external_attr = (kind | 0o644) << 16
        zf.writestr(special, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=word):
        safe_extract(archive, tmp_path / "out")
    assert _listing(tmp_path / "out") == []


@pytest.mark.parametrize(
    "kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE]
)
def test_tar_members_that_are_not_plain_files_are_refused(tmp_path, kind):
    archive = tmp_path / "special.tar"
    with tarfile.open(archive, "w") as tf:
        plain = tarfile.TarInfo("a.txt")
        plain.size = 5
        tf.addfile(plain, io.BytesIO(b"plain"))
        special = tarfile.TarInfo("b")
        special.type = kind
        special.linkname = "/etc/passwd"
        tf.addfile(special)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert _listing(tmp_path / "out") == []


def test_a_link_already_in_the_destination_is_not_followed_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    (dest / "file").symlink_to(outside / "victim")
    for name in ("sub/x.txt", "file"):
        archive = tmp_path / "a.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(name, "payload")
        with pytest.raises((UnsafeArchiveError, OSError)):
            safe_extract(archive, dest)
    assert list(outside.iterdir()) == []
