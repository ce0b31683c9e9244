"""Builds never replace or write over a folder that is not their own, concurrent builds of one
dataset both end with a valid cache, and leftovers of killed builds are removed only when their
owner is dead (issue 9)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from dupbench import locks
from dupbench.cli import main
from dupbench.datasets import SyntheticConfig, build_synthetic, read_dataset_dir
from dupbench.datasets.cache import MARKER, RefusedOutput, atomic_dir, clean_partial, is_build

TINY = SyntheticConfig(transforms=("copy", "jpeg"), chains=0, max_side=64, seed=1)
REPO = Path(__file__).resolve().parents[1]


def _cli(argv: list[str]) -> int:
    """The real entry point: a refusal must be one line and exit status 2."""
    return main(argv)


def _tree_digest(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with the sha256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def photos(tmp_path) -> Path:
    """A user's folder of real photos (scikit-image), the kind a mistyped --out could name."""
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, array in {
        "cat": data.chelsea(),
        "cup": data.coffee(),
        "rocket": data.rocket(),
    }.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("holiday 2024\n")
    return folder


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- replacing only own builds


def test_rebuild_refuses_a_folder_that_is_not_a_build(tmp_path, photos, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.png").write_bytes((photos / "cat.png").read_bytes())
    (src / "cup.png").write_bytes((photos / "cup.png").read_bytes())
    before = _tree_digest(photos)
    assert (
        _cli(
            [
                "datasets",
                "build",
                "--from",
                str(src),
                "--out",
                str(photos),
                "--rebuild",
                "--transforms",
                "copy",
                "--chains",
                "0",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "not a dupbench build" in capsys.readouterr().err
    with pytest.raises(RefusedOutput, match="not a dupbench build"):
        build_synthetic(src, photos, TINY, progress=False, overwrite=True)
    with pytest.raises(RefusedOutput):  # the default's builder goes through the same check
        from dupbench.datasets.default import build_default

        build_default(photos, workers=1, progress=False, overwrite=True)
    assert _tree_digest(photos) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "src"]  # no lock, no tmp


def test_rebuild_replaces_an_earlier_build(tmp_path, photos):
    out = tmp_path / "bench"
    first = build_synthetic(photos, out, TINY, progress=False)
    assert is_build(out) and json.loads((out / MARKER).read_text())["tool"] == "dupbench"
    (out / "images" / "stray.txt").write_text("from the first build")
    again = build_synthetic(photos, out, TINY, progress=False, overwrite=True)
    assert again.checksum() == first.checksum() and not (out / "images" / "stray.txt").exists()
    with pytest.raises(FileExistsError):
        build_synthetic(photos, out, TINY, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "photos"]


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_output_overlapping_the_sources_is_refused(tmp_path, photos, capsys, where):
    out = {"same": photos, "inside": photos / "bench", "parent": tmp_path}[where]
    before = _tree_digest(tmp_path)
    assert (
        _cli(
            [
                "datasets",
                "build",
                "--from",
                str(photos),
                "--out",
                str(out),
                "--rebuild",
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("overlaps" in err or "inside the output" in err)
    assert _tree_digest(tmp_path) == before


def test_an_explicit_public_set_root_must_be_its_own(tmp_path, photos):
    from dupbench.datasets import load_dataset

    before = _tree_digest(photos)
    with pytest.raises(RefusedOutput, match="not a dupbench build"):
        load_dataset("ukbench", root=photos, resources=(), progress=False, rebuild=True)
    assert _tree_digest(photos) == before


# ---------------------------------------------------------------- concurrent builds

_SMALL_DEFAULT = """
import sys, time
from pathlib import Path
import dupbench.datasets.default as d
d.DEFAULT_SOURCES = tuple(s for s in d.DEFAULT_SOURCES
                          if s[0] in ("chelsea", "coffee", "camera", "moon"))
d.DISTRACTORS = ("moon",)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
dataset = d.default_dataset(progress=False, workers=1)
print(dataset.root)
"""

_FULL_DEFAULT = """
import sys, time
from pathlib import Path
from dupbench.datasets import load_dataset
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
print(load_dataset("default", progress=False, workers=1).root)
"""


def _two_builds_together(tmp_path: Path, code: str) -> None:
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = {"DUPBENCH_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(go)],
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()  # both start building at the same moment
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for" in err for _, err in outs), outs  # they did overlap
    roots = {out.strip() for out, _ in outs}
    assert len(roots) == 1
    root = Path(roots.pop())
    assert [p.name for p in cache.iterdir()] == [root.name]  # no tmp, old or lock left
    dataset = read_dataset_dir(root, verify=True)  # every file present, every sha256 matches
    assert all(Path(p).is_file() for p in dataset.paths) and len(dataset) > 10
    assert dataset.checksum() == json.loads((root / "info.json").read_text())["checksum"]


def test_two_builds_of_the_same_dataset_started_together_both_end_valid(tmp_path):
    _two_builds_together(tmp_path, _SMALL_DEFAULT)


@pytest.mark.slow
def test_two_full_default_builds_started_together_both_end_valid(tmp_path):
    _two_builds_together(tmp_path, _FULL_DEFAULT)


# ---------------------------------------------------------------- locks

_HOLD = """
import sys, time
from pathlib import Path
from dupbench.locks import hold
with hold(sys.argv[1], what="test holder"):
    Path(sys.argv[2]).touch()
    time.sleep(120)
"""


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / ".x.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "here", "since": "earlier"}))
    start = time.monotonic()
    with locks.hold(lock, timeout=5):
        assert time.monotonic() - start < 1
        assert locks.holder(lock)["pid"] == os.getpid()
    assert not lock.exists()

    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), str(ready)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    _wait_for(ready, proc)
    os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer does: no cleanup runs
    proc.wait()
    assert locks.holder(lock)["pid"] == proc.pid  # the file still names the dead holder
    with locks.hold(lock, timeout=5):
        assert locks.holder(lock)["pid"] == os.getpid()


def test_a_live_lock_is_waited_for_then_refused_naming_its_holder(tmp_path, capsys):
    lock, ready = tmp_path / ".x.lock", tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), str(ready)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        _wait_for(ready, proc)
        with (
            pytest.raises(locks.LockTimeout, match=f"pid {proc.pid} on"),
            locks.hold(lock, timeout=0.5),
        ):
            pass
        assert f"waiting for {lock}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()


def test_hold_is_reentrant_within_a_thread(tmp_path):
    lock = tmp_path / ".x.lock"
    with locks.hold(lock), locks.hold(lock, timeout=0.1):
        assert lock.exists()
    assert not lock.exists()


# ---------------------------------------------------------------- leftovers of killed builds

_BUILD_AND_HANG = """
import sys, time
from pathlib import Path
from dupbench.datasets.cache import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "half.png").write_bytes(b"half")
    Path(sys.argv[2]).touch()
    time.sleep(120)
"""


def _start_hanging_build(target: Path, ready: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUILD_AND_HANG, str(target), str(ready)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    _wait_for(ready, proc)
    return proc


def _kill_cli_build_midway(photos: Path, out: Path) -> subprocess.Popen:
    """Start ``dupbench datasets build --from photos --out out`` and SIGKILL it once its
    temporary folder holds some images."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dupbench",
            "datasets",
            "build",
            "--from",
            str(photos),
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "1",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(f".{out.name}.tmp-*/images/*.png")):
        assert proc.poll() is None and time.monotonic() < deadline, "build ended too soon"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc


def test_a_killed_builds_temp_folder_is_removed_by_the_next_build(tmp_path, photos):
    out = tmp_path / "builds" / "bench"
    killed = _kill_cli_build_midway(photos, out)
    assert not out.exists()
    legacy = out.parent / f".bench.tmp-{_dead_pid()}-0123abcd"  # name of older versions
    legacy.mkdir()
    leftovers = sorted(p.name for p in out.parent.iterdir())
    assert any(name.startswith(f".bench.tmp-{killed.pid}@") for name in leftovers)

    build_synthetic(photos, out, TINY, progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench"]
    assert not read_dataset_dir(out).verify()


def test_a_live_builds_temp_folder_is_left_alone(tmp_path, photos):
    parent = tmp_path / "builds"
    live = _start_hanging_build(parent / "other", tmp_path / "ready")
    try:
        (tmp_dir,) = [p for p in parent.iterdir() if p.name.startswith(".other.tmp-")]
        assert clean_partial(parent) == []
        build_synthetic(photos, parent / "bench", TINY, progress=False)
        assert (tmp_dir / "half.png").read_bytes() == b"half"
    finally:
        live.kill()
        live.wait()
    assert clean_partial(parent) == [tmp_dir] and not tmp_dir.exists()


def test_atomic_dir_refuses_a_symlink_target(tmp_path, photos):
    link = tmp_path / "link"
    link.symlink_to(photos, target_is_directory=True)
    before = _tree_digest(photos)
    with pytest.raises(RefusedOutput), atomic_dir(link, overwrite=True):
        pass
    assert link.is_symlink() and _tree_digest(photos) == before
