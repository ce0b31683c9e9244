"""files.py: atomic JSON writes that follow the umask and leave nothing behind on failure."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dupbench.files import replacing, write_json


def test_write_json_is_plain_atomic_and_follows_the_umask(tmp_path):
    path = write_json(tmp_path / "sub" / "a.json", {"b": np.int64(3), "a": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": [0, 1], "b": 3}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = write_json(tmp_path / "a.json", {"ok": 1})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_replacing_renames_only_a_finished_write(tmp_path):
    target = tmp_path / "fig.png"
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    # a writer killed half-way (here: raising after a partial write) leaves the old file whole
    # and no temporary file behind
    with pytest.raises(KeyboardInterrupt), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]
    # and a new target never appears at all when its first write fails
    with pytest.raises(OSError), replacing(tmp_path / "new.csv") as tmp:
        raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]
