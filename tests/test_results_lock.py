"""Two identical runs started together into one results folder: one computes, the other waits
for its lock and reuses the finished run (issue 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness_fixtures import build_tiny_dataset, run_dirs, tiny_overrides

REPO = Path(__file__).resolve().parents[1]

_RUN = """
import sys, time
from pathlib import Path
from dupbench.harness.app import run_hydra
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
run_hydra(sys.argv[2:])
"""


def test_identical_runs_started_together_compute_once(tmp_path, photos):
    tiny = build_tiny_dataset(tmp_path / "data", photos)
    results, go = tmp_path / "results", tmp_path / "go"
    overrides = ["method=phash", f"results_dir={results}", "report=false", *tiny_overrides(tiny)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN, str(go), *overrides],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(1)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    statuses = sorted(json.loads((d / "run.json").read_text())["status"] for d in run_dirs(results))
    assert statuses == ["done", "reused"], outs
    assert any("waiting for" in err for _, err in outs)
    assert not list(results.glob(".run-*.lock"))
