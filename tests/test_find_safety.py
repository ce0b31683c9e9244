"""``dupbench find`` on hostile but ordinary folders (issue 9 cases 1, 4, 5 and 8; issue 8's find
surprises), through the real CLI entry point, with files counted and checksummed before and after."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from dupbench import actions, images
from dupbench.cli import main


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inventory(folder: Path) -> Counter:
    """Checksums of every regular file under ``folder`` except dupbench's journal and lock file
    (links not followed)."""
    own = (actions.JOURNAL_NAME, actions.LOCK_NAME)
    return Counter(
        sha256(p)
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name not in own
    )


@pytest.fixture()
def album(tmp_path: Path, photos) -> Path:
    """Three originals, a byte-identical copy of two of them (one in a sub-folder)."""
    root = tmp_path / "album"
    (root / "trip").mkdir(parents=True)
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(photos[name]).save(root / f"{name}.png")
    shutil.copy(root / "astronaut.png", root / "astronaut copy.png")
    shutil.copy(root / "chelsea.png", root / "trip" / "chelsea.png")
    return root


def find(*args: str) -> int:
    return main(["find", *map(str, args), "-q", "--workers", "1"])


def test_case1_dest_inside_dir_never_takes_the_originals(album, capsys):
    originals = {sha256(album / f"{n}.png") for n in ("astronaut", "chelsea", "coffee")}
    before = inventory(album)
    dest = album / "dups"
    for recursive in ([], ["-r"], ["-r"]):
        assert find(album, "-m", "file_digest", "--move-to", dest, "--apply", *recursive) == 0
    assert inventory(album) == before  # nothing lost, nothing duplicated
    outside = {sha256(p) for p in album.rglob("*.png") if dest not in p.parents}
    assert outside == originals  # every picture still has a copy outside the review folder
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png")) == [
        "astronaut copy.png",
        "trip/chelsea.png",
    ]
    assert not (dest / "dups").exists()
    assert "dups not searched (the --move-to folder)" in capsys.readouterr().err
    assert main(["undo", str(dest)]) == 0
    assert inventory(album) == before and not list(dest.rglob("*.png"))


def test_case4_a_link_is_not_a_duplicate_of_its_target(album, capsys):
    os.symlink("coffee.png", album / "coffee link.png")
    os.link(album / "coffee.png", album / "coffee_hard.png")
    before = inventory(album)
    assert find(album, "-m", "file_digest", "--move-to", album.parent / "review", "--apply") == 0
    err = capsys.readouterr().err
    assert "coffee link.png: another name of coffee.png (a symbolic link" in err
    assert "coffee_hard.png: another name of coffee.png (a hard link" in err
    assert (album / "coffee.png").exists() and (album / "coffee link.png").exists()
    assert (album / "coffee link.png").resolve() == (album / "coffee.png")
    moved = [p.name for p in (album.parent / "review").rglob("*.png")]
    assert moved == ["astronaut copy.png"]
    assert inventory(album) + inventory(album.parent / "review") == before


def test_default_keep_is_the_best_copy_not_the_thumbnail(tmp_path, photos, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    Image.fromarray(photos["coffee"]).save(folder / "coffee.png")
    Image.fromarray(photos["coffee"]).resize((150, 100)).save(folder / "a_thumb.gif")
    assert find(folder, "--move-to", tmp_path / "review", "--apply") == 0
    assert (folder / "coffee.png").exists() and (tmp_path / "review" / "a_thumb.gif").exists()
    err = capsys.readouterr().err
    assert "1 pair in 1 group (2 files); 1 to remove (keep=best)" in err
    from dupbench.api import find_duplicates_to_remove

    (tmp_path / "review" / "a_thumb.gif").rename(folder / "a_thumb.gif")
    assert find_duplicates_to_remove(folder, progress=False) == ["coffee.png"]  # API: "first"


def test_subfolders_not_searched_are_counted(album, capsys):
    (album / "more").mkdir()
    assert find(album) == 0
    assert "2 subfolders not searched; add -r" in capsys.readouterr().err
    assert find(album, "-r") == 0
    assert "not searched" not in capsys.readouterr().err


def test_apply_without_move_to_is_a_one_line_usage_error(album, capsys):
    status = find(album, "--apply")
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--apply needs --move-to" in err


def test_fifo_broken_link_and_special_entries_are_skips_not_hangs(album):
    os.mkfifo(album / "pipe.jpg")
    os.symlink("gone.jpg", album / "broken.jpg")
    cmd = [
        sys.executable,
        "-m",
        "dupbench",
        "find",
        str(album),
        "-m",
        "file_digest",
        "-q",
        "--workers",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(images.__file__).parents[1])}
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "pipe.jpg: not a regular file: a FIFO (named pipe)" in done.stderr
    assert "broken.jpg: broken symbolic link (its target 'gone.jpg' does not exist)" in done.stderr
    assert "skipped 2" in done.stderr and "1 pair in 1 group" in done.stderr


def test_file_digest_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    code = (
        "import sys; from dupbench.methods import get_method; "
        "e = get_method('file_digest').encode([sys.argv[1]], workers=1, progress=False); "
        "print(e.skipped[0].reason)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(images.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "pipe")],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "not a regular file" in done.stdout, done.stderr


def _deep_folder(base: Path, depth: int) -> None:
    """Nest ``depth`` folders of 200-character names (deeper than PATH_MAX) using dir fds."""
    fd = os.open(base, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d" * 200, dir_fd=fd)
            new = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        leaf = os.open("lost.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"x" * 100)
        os.close(leaf)
    finally:
        os.close(fd)


def test_too_long_path_is_a_skip_and_the_scan_goes_on(album, capsys):
    limit = os.pathconf("/", "PC_PATH_MAX")
    _deep_folder(album / "trip", limit // 200 + 2)
    scan = images.scan_files(album, recursive=True)
    assert any("path too long" in s.reason for s in scan.skipped)
    assert len(scan.files) == 5
    assert find(album, "-r", "-m", "file_digest") == 0
    err = capsys.readouterr().err
    assert "path too long" in err and "2 pairs in 2 groups" in err


def test_unlistable_folder_is_a_skip(album, monkeypatch, capsys):
    real = os.scandir
    denied = str(album / "trip")

    def scandir(path="."):
        if os.fspath(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", denied)
        return real(path)

    monkeypatch.setattr(images.os, "scandir", scandir)
    assert find(album, "-r", "-m", "file_digest") == 0
    err = capsys.readouterr().err
    assert f"skipped     {denied}: cannot list folder: Permission denied" in err
    assert "1 pair in 1 group (2 files)" in err


def test_rerun_after_a_crash_finishes_instead_of_saying_already_exists(
    album, other_fs_album, monkeypatch, capsys
):
    before = inventory(album)
    dest = other_fs_album

    class Crash(BaseException):
        pass

    def torn(src, dst, length=0):
        dst.write(src.read(50_000))
        dst.flush()
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(actions.shutil, "copyfileobj", torn)
        with pytest.raises(Crash):
            find(album, "-r", "-m", "file_digest", "--move-to", dest, "--apply")
    assert list(dest.rglob(f"*{actions.PARTIAL_TAG}*"))  # a torn copy, as a SIGKILL leaves
    capsys.readouterr()
    assert find(album, "-r", "-m", "file_digest", "--move-to", dest, "--apply") == 0
    err = capsys.readouterr().err
    assert "journal: rolled back" in err and "already exists" not in err
    assert not list(dest.rglob(f"*{actions.PARTIAL_TAG}*"))
    assert len(list(dest.rglob("*.png"))) == 2
    assert inventory(album) + inventory(dest) == before


@pytest.fixture()
def other_fs_album(tmp_path: Path):
    import uuid

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on a file system other than the temporary folder's")
    folder = shm / f"dupbench-test-{uuid.uuid4().hex}"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unusable_destination_is_one_line_and_moves_nothing(album, tmp_path, capsys):
    before = inventory(album)
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the review folder would go")
    assert find(album, "-m", "file_digest", "--move-to", blocker / "review", "--apply") == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [
        (
            f"dupbench find: error: cannot create the destination "
            f"{blocker / 'review'}: Not a directory; nothing further was moved"
        )
    ]
    assert inventory(album) == before


def test_pixel_identical_copies_are_rechecked_before_the_move(
    tmp_path, photos, monkeypatch, capsys
):
    """pixel_digest: the kept BMP is re-encoded right before the PNG moves; a kept copy whose
    pixels changed after the scan (same size, mtime put back) no longer justifies the move."""
    from dupbench.cli import find as find_command

    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(photos[name]).save(folder / f"{name}.png")
        Image.fromarray(photos[name]).save(folder / f"{name}.bmp")
    before = inventory(folder)
    real_plan = find_command._plan

    def plan_then_edit_keeper(*args):
        plan = real_plan(*args)
        kept = folder / "coffee.bmp"
        st = kept.stat()
        Image.fromarray(255 - photos["coffee"]).save(kept)
        os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
        return plan

    monkeypatch.setattr(find_command, "_plan", plan_then_edit_keeper)
    review = tmp_path / "review"
    assert find(folder, "-m", "pixel_digest", "--move-to", review, "--apply") == 0
    err = capsys.readouterr().err
    assert "coffee.png: no kept copy is identical to it any more" in err
    assert [p.name for p in review.glob("*.png")] == ["chelsea.png"]  # the larger BMP is kept
    assert (folder / "coffee.png").exists() and (folder / "chelsea.bmp").exists()
    assert sha256(review / "chelsea.png") in before


def test_undo_command_restores_what_it_can_and_names_what_it_cannot(album, tmp_path, capsys):
    review = tmp_path / "review"
    before = inventory(album)
    assert find(album, "-r", "-m", "file_digest", "--move-to", review, "--apply") == 0
    (review / "trip" / "chelsea.png").write_bytes(b"edited in the review folder")
    capsys.readouterr()
    assert main(["undo", str(review)]) == 1
    err = capsys.readouterr().err
    assert f"restored {album / 'astronaut copy.png'}" in err
    assert "trip/chelsea.png changed since it was moved (digest differs); left in place" in err
    assert "restored      1 file; 1 left in place" in err
    assert inventory(album) == before - Counter({sha256(album / "chelsea.png"): 1})


def test_a_file_a_link_points_to_is_not_moved_away(album, tmp_path, capsys):
    """keep=first keeps "astronaut copy.png" and would move astronaut.png, which a link in the
    folder points to: it stays, so the link is never left dangling."""
    os.symlink("astronaut.png", album / "favourite.png")
    before = inventory(album)
    assert (
        find(album, "-m", "file_digest", "--keep", "first", "--move-to", tmp_path / "r", "--apply")
        == 0
    )
    err = capsys.readouterr().err
    assert "astronaut.png: the symbolic link" in err and "favourite.png points to it" in err
    assert (album / "favourite.png").resolve() == album / "astronaut.png"
    assert (album / "astronaut.png").exists() and inventory(album) == before
