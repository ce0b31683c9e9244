"""Every ordinary mistake, run through the real ``dupbench`` entry point in a fresh process:
one line on stderr, no traceback, exit status 2 for a wrong command line and 1 for a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A working folder: ``imgs/`` (three small images, one an exact copy), a plain file, and
    malformed ground-truth files."""
    root = tmp_path_factory.mktemp("mistakes")
    imgs = root / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
            imgs / f"{name}.png"
        )
    (imgs / "a_copy.png").write_bytes((imgs / "a.png").read_bytes())
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "latin1.json").write_bytes('{"a.png": ["b\xe9.png"]}'.encode("latin-1"))
    (root / "inf.qrels").write_text("a.png 0 b.png inf\n")
    return root


def dupbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dupbench", *args],
        cwd=cwd,
        text=True,
        check=False,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


MISTAKES = [  # (arguments, exit status, words the one line must contain)
    (["find", "no_such_folder"], 1, "no such folder"),
    (["find", "a_file.txt"], 1, "not a folder"),
    (["find", "imgs", "-m", "phsah"], 2, "did you mean 'phash'"),
    (["find", "imgs", "--threshold", "-3"], 2, "[0, 64]"),
    (["find", "imgs", "--threshold", "1000"], 2, "[0, 64]"),
    (["find", "imgs", "-m", "cnn", "--threshold", "10"], 2, "[-1, 1]"),
    (["find", "imgs", "-p", "hash_size=abc"], 2, "hash_size must be an integer"),
    (["find", "imgs", "-p", "hashsize=16"], 2, "did you mean 'hash_size'"),
    (["find", "imgs", "--backend", "nosuch"], 2, "unknown search backend"),
    (["find", "imgs", "--no-such-flag"], 2, "unrecognized arguments"),
    (["encode", "imgs", "--out", "codes.txt"], 2, ".npz"),
    (["encode", "imgs", "-m", "cnn", "--out", "codes.json"], 2, ".npz"),
    (["datasets", "info", "imgs", "--truth", "deep.json"], 1, "nested too deeply"),
    (["datasets", "info", "imgs", "--truth", "latin1.json"], 1, "not UTF-8"),
    (["datasets", "info", "imgs", "--truth", "inf.qrels"], 1, "'inf' is not a finite number"),
    (["datasets", "info", "no_such_dataset"], 1, "unknown dataset"),
    (["evaluate", "imgs"], 1, "not a run directory"),
    (["run", "method=phash", "+method.params.hashsize=16"], 2, "did you mean 'hash_size'"),
    (["run", "method=phsah"], 2, "did you mean 'phash'"),
    (["run", "method=phash", "search.backend=bktre"], 2, "did you mean 'bktree'"),
]


@pytest.mark.parametrize("args,status,words", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_a_mistake_is_one_line_and_an_exit_status(place, args, status, words):
    quiet = ["-q"] if args[0] in ("find", "encode") else []
    result = dupbench(*args, *quiet, cwd=place)
    lines = error_lines(result)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, result.stderr
    assert words in lines[0] and lines[0].startswith("dupbench")


def test_debug_shows_the_traceback(place):
    for args, env in (
        (["--debug", "find", "no_such_folder"], None),
        (["find", "no_such_folder"], {"DUPBENCH_DEBUG": "1"}),
    ):
        result = dupbench(*args, cwd=place, env=env)
        assert result.returncode != 0 and "Traceback" in result.stderr
        assert "FileNotFoundError: no such folder" in result.stderr


def test_a_move_that_fails_ends_in_one_error_line(place, tmp_path):
    """--apply into a target that cannot be written: the summary, then one error line, exit 1.
    As root a read-only folder can still be written, so the target is then under a file."""
    import shutil

    imgs = tmp_path / "imgs"
    shutil.copytree(place / "imgs", imgs)
    if os.geteuid() == 0:
        target = place / "a_file.txt" / "moved"
    else:
        target = tmp_path / "read_only"
        target.mkdir()
        target.chmod(0o500)
    result = dupbench("find", str(imgs), "-q", "--move-to", str(target), "--apply", cwd=place)
    errors = [line for line in error_lines(result) if "error:" in line]
    assert "Traceback" not in result.stderr
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert error_lines(result)[-1] == errors[0]
    assert (imgs / "a_copy.png").exists()  # nothing was lost
