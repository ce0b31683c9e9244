"""Hydra callbacks: a multirun ends by gathering its runs into one tidy table (and the report),
and printing the main table."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class AggregateRuns(Callback):
    """On multirun end: ``<sweep dir>/runs.csv`` always; tables and figures in
    ``<sweep dir>/report`` when ``report`` is true (with only the tables otherwise)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from dupbench.harness.report import write_report
        from dupbench.harness.store import find_runs

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = find_runs(sweep_dir) if sweep_dir.exists() else []
        if not runs:
            print(f"no finished runs in {sweep_dir}", file=sys.stderr)
            return
        report = write_report(sweep_dir, sweep_dir / "report", runs,
                              figures=bool(config.get("report", True)))
        report.runs.to_csv(sweep_dir / "runs.csv", index=False)
        print(report.main_markdown)
        print(f"{len(runs)} runs; table and figures in {report.out}", file=sys.stderr)
