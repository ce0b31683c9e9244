"""Hydra callbacks: a job that raises leaves a one-line record of why in its folder, and a
multirun ends by gathering its runs into one tidy table (and the report), and printing the main
table."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class AggregateRuns(Callback):
    """On job end, a failed job's folder gets ``failed.json`` (the error in one line), so that
    reports name the failure rather than miss a run. On multirun end: ``<sweep dir>/runs.csv``
    always; tables and figures in ``<sweep dir>/report`` when ``report`` is true (with only the
    tables otherwise)."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        from dupbench.files import write_json
        from dupbench.harness.store import FAILED_FILE

        if job_return.status != JobStatus.FAILED:
            return
        try:
            job_return.return_value  # noqa: B018 (re-raises the job's exception)
        except Exception as error:
            lines = f"{type(error).__name__}: {error}".strip().splitlines()
            write_json(
                Path(config.hydra.runtime.output_dir) / FAILED_FILE,
                {"status": "failed", "error": lines[0]},
            )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from dupbench import files
        from dupbench.harness.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = write_report(
                sweep_dir, sweep_dir / "report", figures=bool(config.get("report", True))
            )
        except FileNotFoundError:
            print(f"no finished runs in {sweep_dir}", file=sys.stderr)
            return
        with files.replacing(sweep_dir / "runs.csv") as tmp:
            report.runs.to_csv(tmp, index=False)
        print(report.main_markdown)
        print(report.summary() + f"; table and figures in {report.out}", file=sys.stderr)
