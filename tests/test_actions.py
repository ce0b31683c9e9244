"""File actions (issue 9, case 5 and the undo/journal guarantees): files counted and checksummed
before and after every move, crash, full disk and undo, on one file system and across two."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from dupbench import actions
from dupbench.actions import FileState, PlannedMove


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inventory(*folders: Path) -> Counter:
    """Checksums of every file under ``folders`` (hidden ones too, so torn copies show) except
    dupbench's own bookkeeping: the journal, and the lock file that a killed process leaves
    behind (it holds the holder's pid; the kernel lock itself dies with the process)."""
    return Counter(
        sha256(p)
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file() and p.name not in (actions.JOURNAL_NAME, actions.LOCK_NAME)
    )


def partials(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob(f"*{actions.PARTIAL_TAG}*")]


def make_pairs(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """``keep{i}.bin`` and its byte-identical duplicate ``dup{i}.bin``, random contents."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data = rng.randbytes(size)
        (folder / f"keep{i}.bin").write_bytes(data)
        (folder / f"dup{i}.bin").write_bytes(data)


def plan_for(folder: Path, n: int) -> list[PlannedMove]:
    return [
        PlannedMove(
            FileState.now(folder / f"dup{i}.bin"),
            f"dup{i}.bin",
            (FileState.now(folder / f"keep{i}.bin"),),
            actions.same_bytes,
        )
        for i in range(n)
        if (folder / f"dup{i}.bin").exists()
    ]


@pytest.fixture()
def other_fs(tmp_path: Path):
    """A folder on another file system than ``tmp_path`` (/dev/shm is a tmpfs here)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on a file system other than the temporary folder's")
    folder = shm / f"dupbench-test-{uuid.uuid4().hex}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["same_fs", "cross_fs"])
def dest(request, tmp_path: Path) -> Path:
    if request.param == "same_fs":
        return tmp_path / "review"
    return request.getfixturevalue("other_fs") / "review"


def test_move_then_undo_restores_every_checksum(tmp_path, dest):
    src = tmp_path / "photos"
    make_pairs(src, 4, 50_000)
    (src / "sub").mkdir()
    (src / "sub" / "x.bin").write_bytes((src / "keep0.bin").read_bytes())
    before = inventory(src)
    plan = [
        *plan_for(src, 4),
        PlannedMove(
            FileState.now(src / "sub" / "x.bin"),
            "sub/x.bin",
            (FileState.now(src / "keep0.bin"),),
            actions.same_bytes,
        ),
    ]
    out = actions.move_files(plan, dest)
    assert len(out.done) == 5 and not out.refused
    assert not any(src.glob("dup*")) and not (src / "sub" / "x.bin").exists()
    assert inventory(src, dest) == before and not partials(src, dest)
    assert sorted(p.name for p in dest.rglob("*.bin")) == [
        "dup0.bin",
        "dup1.bin",
        "dup2.bin",
        "dup3.bin",
        "x.bin",
    ]
    journal = actions.Journal(dest).entries()
    assert {e["step"] for e in journal} == {"done"} and all(len(e["digest"]) == 32 for e in journal)
    undone = actions.undo(dest)
    assert sum(line.startswith("restored") for line in undone.done) == 5 and not undone.refused
    assert inventory(src) == before and inventory(dest) == Counter()
    assert (src / "sub" / "x.bin").exists()
    assert actions.undo(dest).done == []  # nothing left to undo: a second undo does nothing


def test_cross_fs_move_keeps_mode_and_mtime(tmp_path, other_fs):
    src = tmp_path / "photos"
    make_pairs(src, 1, 10_000)
    os.chmod(src / "dup0.bin", 0o640)
    os.utime(src / "dup0.bin", ns=(1_000_000_000, 1_234_567_890_000))
    actions.move_files(plan_for(src, 1), other_fs)
    st = (other_fs / "dup0.bin").stat()
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o640, 1_234_567_890_000)


def test_undo_refuses_file_by_file(tmp_path):
    src, dest = tmp_path / "photos", tmp_path / "review"
    make_pairs(src, 3, 1000)
    actions.move_files(plan_for(src, 3), dest)
    (dest / "dup0.bin").write_bytes(b"edited after the move")
    (src / "dup1.bin").write_bytes(b"a new file where the original was")
    out = actions.undo(dest)
    assert [line for line in out.done if line.startswith("restored")] == [
        f"restored {src / 'dup2.bin'}"
    ]
    assert len(out.refused) == 2
    assert any("dup0.bin" in r and "digest differs" in r for r in out.refused)
    assert any("dup1.bin" in r and "occupied" in r for r in out.refused)
    # nothing was overwritten or lost: the edited file and the new file are both still there
    assert (dest / "dup0.bin").read_bytes() == b"edited after the move"
    assert (src / "dup1.bin").read_bytes() == b"a new file where the original was"
    assert (dest / "dup1.bin").read_bytes() == (src / "keep1.bin").read_bytes()


def test_changed_source_or_missing_keeper_is_left_alone(tmp_path):
    src, dest = tmp_path / "photos", tmp_path / "review"
    make_pairs(src, 4, 1000)
    plan = plan_for(src, 4)
    (src / "dup0.bin").write_bytes(b"changed since the scan")  # source changed
    (src / "keep1.bin").unlink()  # last copy would go
    (src / "keep2.bin").write_bytes(b"x" * 1000)  # keeper changed (same size)
    os.utime(src / "keep2.bin", ns=(plan[2].keepers[0].mtime_ns,) * 2)
    plan[2] = PlannedMove(
        plan[2].source, plan[2].relative, (FileState.now(src / "keep2.bin"),), actions.same_bytes
    )
    out = actions.move_files(plan, dest)
    assert [line.split(" -> ")[0] for line in out.done] == [f"moved {src / 'dup3.bin'}"]
    reasons = " | ".join(out.refused)
    assert "dup0.bin: it changed since it was scanned" in reasons
    assert "dup1.bin: no kept copy" in reasons
    assert "dup2.bin: no kept copy is identical to it any more" in reasons
    assert all((src / f"dup{i}.bin").exists() for i in range(3))


def test_never_acts_inside_destination_or_on_links_or_over_files(tmp_path):
    src = tmp_path / "photos"
    dest = src / "review"
    make_pairs(src, 3, 1000)
    dest.mkdir()
    inside = dest / "old.bin"
    shutil.copy(src / "keep0.bin", inside)
    os.symlink(src / "keep1.bin", src / "link.bin")
    shutil.copy(src / "keep2.bin", dest / "dup2.bin")  # a file not ours at the target name
    plan = [
        PlannedMove(FileState.now(inside), "old.bin", (FileState.now(src / "keep0.bin"),)),
        PlannedMove(
            FileState.now(src / "link.bin"), "link.bin", (FileState.now(src / "keep1.bin"),)
        ),
        PlannedMove(
            FileState.now(src / "dup2.bin"), "dup2.bin", (FileState.now(src / "keep2.bin"),)
        ),
        PlannedMove(
            FileState.now(src / "dup1.bin"), "../escape.bin", (FileState.now(src / "keep1.bin"),)
        ),
    ]
    out = actions.move_files(plan, dest)
    assert out.done == [] and len(out.refused) == 4
    assert "inside the destination" in out.refused[0]
    assert "not a regular file" in out.refused[1]
    assert "already exists" in out.refused[2]
    assert "leave the destination" in out.refused[3]
    assert inside.exists() and (src / "link.bin").is_symlink() and (src / "dup2.bin").exists()


class Crash(BaseException):
    """Stands for a SIGKILL: nothing after it runs (not caught by the code under test)."""


def _crash_on_call(k: int, real):
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            raise Crash
        return real(*args, **kwargs)

    return wrapper


def _torn_copy(src_file, dst_file, length=0):
    """Write part of the bytes, then die: a copy cut short by a kill."""
    dst_file.write(src_file.read(100_000))
    dst_file.flush()
    raise Crash


def _crash_at(patch: pytest.MonkeyPatch, crash_point: str) -> None:
    """Make the action die at ``crash_point``: mid-copy ("copy") or at the k-th folder fsync."""
    if crash_point == "copy":
        patch.setattr(actions.shutil, "copyfileobj", _torn_copy)
    else:
        patch.setattr(
            actions, "_fsync_dir", _crash_on_call(int(crash_point[5:]), actions._fsync_dir)
        )


@pytest.mark.parametrize("crash_point", ["copy"] + [f"fsync{k}" for k in range(1, 8)])
def test_crash_at_each_step_is_finished_or_rolled_back(tmp_path, dest, crash_point, monkeypatch):
    src = tmp_path / "photos"
    make_pairs(src, 2, 200_000)
    before = inventory(src)
    with monkeypatch.context() as m:
        _crash_at(m, crash_point)
        with contextlib.suppress(Crash):
            actions.move_files(plan_for(src, 2), dest)
    actions.recover(dest)
    assert actions.pending(dest) == 0
    assert inventory(src, dest) == before and not partials(src, dest)
    for i in range(2):  # each duplicate exactly once, in one of the two places
        assert (src / f"dup{i}.bin").exists() != (dest / f"dup{i}.bin").exists()
    out = actions.move_files(plan_for(src, 2), dest)  # a rerun never says "already exists"
    assert not out.refused and not any(src.glob("dup*"))
    assert not actions.undo(dest).refused and inventory(src) == before


_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from dupbench import actions
from dupbench.actions import FileState, PlannedMove
src, n = Path(sys.argv[1]), int(sys.argv[4])
plan = [PlannedMove(FileState.now(src / f"dup{i}.bin"), f"dup{i}.bin",
                    (FileState.now(src / f"keep{i}.bin"),), actions.same_bytes) for i in range(n)]
print("ready", flush=True)
actions.move_files(plan, sys.argv[2])
"""


def _run_child(src: Path, dest: Path, n: int, kill_after: float | None) -> float:
    """Run the move in a new process; SIGKILL it ``kill_after`` s after it starts moving."""
    root = str(Path(actions.__file__).parents[1])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(src), str(dest), root, str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    if kill_after is not None:
        time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    return time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_sigkill_at_random_points_loses_nothing(tmp_path, dest, seed):
    """Case 5: SIGKILL mid-move, then a rerun: every checksum present, each duplicate once, no
    torn file anywhere, and undo brings back the exact starting state."""
    n = 6
    src = tmp_path / "photos"
    make_pairs(src, n, 2_000_000, seed)
    before = inventory(src)
    calibration = tmp_path / "calibration"
    make_pairs(calibration, n, 2_000_000, seed)
    calibration_dest = dest.parent / "calibration-review"
    full = _run_child(calibration, calibration_dest, n, None)
    _run_child(src, dest, n, random.Random(seed).uniform(0, full))
    actions.recover(dest)
    assert inventory(src, dest) == before and not partials(src, dest)
    for i in range(n):
        assert (src / f"dup{i}.bin").exists() != (dest / f"dup{i}.bin").exists()
    assert not actions.move_files(plan_for(src, n), dest).refused
    assert not any(src.glob("dup*")) and inventory(src, dest) == before
    assert not actions.undo(dest).refused
    assert inventory(src) == before and inventory(dest) == Counter()


def _enospc_midway(src_file, dst_file, length=0):
    dst_file.write(src_file.read(100_000))
    dst_file.flush()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _check_full_disk(src: Path, dest: Path, before: Counter, out: actions.Outcome) -> None:
    assert len(out.done) == 1 and len(out.refused) == 1
    assert "No space left on device" in out.refused[0] and "rolled back" in out.refused[0]
    assert inventory(src, dest) == before and not partials(src, dest)
    assert (src / "dup1.bin").exists() and (dest / "dup0.bin").exists()


def test_full_destination_simulated(tmp_path, other_fs, monkeypatch):
    src = tmp_path / "photos"
    make_pairs(src, 2, 300_000)
    before = inventory(src)
    real_copy = actions.shutil.copyfileobj
    calls = {"n": 0}

    def copy_then_fill(*args, **kwargs):
        calls["n"] += 1
        return (real_copy if calls["n"] == 1 else _enospc_midway)(*args, **kwargs)

    monkeypatch.setattr(actions.shutil, "copyfileobj", copy_then_fill)
    _check_full_disk(src, other_fs, before, actions.move_files(plan_for(src, 2), other_fs))
    refused = actions.undo(other_fs).refused  # the disk is still "full": undo rolls back too
    assert len(refused) == 1 and "No space left" in refused[0]
    assert inventory(src, other_fs) == before and not partials(src, other_fs)
    monkeypatch.undo()
    assert not actions.undo(other_fs).refused and inventory(src) == before


def test_full_destination_real_tmpfs(tmp_path):
    """A 2 MB tmpfs: the second 1.2 MB copy runs out of space midway."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(full)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        src = tmp_path / "photos"
        make_pairs(src, 2, 1_200_000)
        before = inventory(src)
        _check_full_disk(src, full, before, actions.move_files(plan_for(src, 2), full))
        assert not actions.undo(full).refused and inventory(src) == before
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_rename_refused_across_a_bind_mount_falls_back_to_a_verified_copy(tmp_path, monkeypatch):
    """Same device number, yet rename says EXDEV (bind mounts): the move copies instead."""
    src, dest = tmp_path / "photos", tmp_path / "review"
    make_pairs(src, 2, 10_000)
    before = inventory(src)
    real_rename = os.rename

    def rename(a, b):
        if Path(a).parent == src:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(a))
        return real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename)
    out = actions.move_files(plan_for(src, 2), dest)
    monkeypatch.undo()
    assert len(out.done) == 2 and not out.refused and not any(src.glob("dup*"))
    steps = [(e["tmp"] is None, e["step"]) for e in actions.Journal(dest).entries()]
    assert steps == [(True, "rolled_back"), (False, "done")] * 2
    assert inventory(src, dest) == before and not partials(src, dest)


def test_torn_or_foreign_journal_lines_are_ignored_and_never_merged(tmp_path):
    src, dest = tmp_path / "photos", tmp_path / "review"
    make_pairs(src, 2, 1000)
    actions.move_files(plan_for(src, 1), dest)
    journal = dest / actions.JOURNAL_NAME
    with open(journal, "a") as f:
        f.write('[1, 2]\n{"id": "x", "step": "planned", "source": 3}\n{"id": "torn", "so')
    out = actions.move_files(plan_for(src, 2), dest)  # dup1 only: dup0 is already moved
    assert len(out.done) == 1
    lines = journal.read_text().splitlines()
    assert '{"id": "torn", "so' in lines  # the torn record stays on its own line
    assert [e["step"] for e in actions.Journal(dest).entries()] == ["done", "done"]
    assert not actions.undo(dest).refused and not any(dest.glob("*.bin"))


def test_one_dupbench_at_a_time_per_destination(tmp_path, capsys):
    """A second run waits for the one holding the destination, then checks its files again."""
    import threading

    from dupbench import locks

    src, dest = tmp_path / "photos", tmp_path / "review"
    make_pairs(src, 2, 1000)
    dest.mkdir()
    holding, release = threading.Event(), threading.Event()

    def other_run():
        with locks.hold(dest / actions.LOCK_NAME, what="another run"):
            holding.set()
            release.wait(30)
            (src / "dup1.bin").write_bytes(b"edited while the second run waited")

    other = threading.Thread(target=other_run)
    other.start()
    holding.wait(30)
    threading.Timer(1.0, release.set).start()
    start = time.perf_counter()
    out = actions.move_files(plan_for(src, 2), dest)
    other.join()
    assert time.perf_counter() - start >= 0.9
    assert "waiting for" in capsys.readouterr().err
    assert len(out.done) == 1 and "dup1.bin: it changed since it was scanned" in out.refused[0]
    assert not (dest / actions.LOCK_NAME).exists()  # the holder removes its lock file


@pytest.mark.parametrize("crash_point", ["copy"] + [f"fsync{k}" for k in range(1, 6)])
def test_crash_during_undo_is_finished_by_the_next_undo(tmp_path, dest, crash_point, monkeypatch):
    src = tmp_path / "photos"
    make_pairs(src, 2, 200_000)
    before = inventory(src)
    actions.move_files(plan_for(src, 2), dest)
    with monkeypatch.context() as m:
        _crash_at(m, crash_point)
        with contextlib.suppress(Crash):
            actions.undo(dest)
    actions.recover(dest)
    assert inventory(src, dest) == before  # whatever the crash point, nothing lost or doubled
    assert not partials(src, dest)
    assert not actions.undo(dest).refused
    assert inventory(src) == before and inventory(dest) == Counter()
    assert not partials(src, dest)
