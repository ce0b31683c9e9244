"""``dupbench report RESULTS_DIR``: every finished run below a folder → tables and figures.

Writes into ``<RESULTS_DIR>/report`` (or ``out``): ``runs.csv`` (the tidy table, one row per run,
every metric and timing), ``main.{md,csv,tex}``, ``breakdown_<column>.{md,csv,tex}`` (recall per
transform, per severity, per transform and severity, per category) and the figures of
``dupbench.harness.plots``; ``report.md`` puts them together and lists the run directories
left out (failed, unfinished or damaged runs). Every file is written atomically: a report cut
short leaves the previous files whole, never empty ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dupbench import files
from dupbench.harness import plots, tables
from dupbench.harness.store import BrokenRun, StoredRun, describe_broken, runs_table, survey_runs
from dupbench.text import plural

BREAKDOWNS = ("transform", "severity", "transform/severity", "category")


@dataclass
class Report:
    out: Path
    runs: pd.DataFrame
    main_markdown: str
    files: list[Path] = field(default_factory=list)
    #: run directories below the results folder that are not in the tables, and why
    broken: list[BrokenRun] = field(default_factory=list)

    def summary(self) -> str:
        """ "12 runs finished, 1 failed: 7_pdq (ImportError: ...)"."""
        return ", ".join(
            [f"{plural(len(self.runs), 'run')} finished", *describe_broken(self.broken)]
        )


def _write_table(
    table: pd.DataFrame, columns, out: Path, name: str, caption: str, per_row: bool = False
) -> tuple[str, list[Path]]:
    markdown = tables.to_markdown(table, columns, per_row)
    paths = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}.tex"]
    files.write_text(paths[0], markdown)
    _write_csv(table, paths[1])
    files.write_text(paths[2], tables.to_latex(table, columns, caption, per_row))
    return markdown, paths


def _write_csv(table: pd.DataFrame, path: Path) -> Path:
    with files.replacing(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def _left_out(broken: list[BrokenRun], results_dir: Path) -> list[str]:
    """The report's section on run directories that are not in it."""
    if not broken:
        return []
    lines = [f"## Runs left out ({len(broken)})", ""]
    for run in broken:
        where = run.dir.relative_to(results_dir) if run.dir.is_relative_to(results_dir) else run.dir
        lines.append(f"- `{where}` ({run.kind}): {run.reason}")
    return [*lines, ""]


def write_report(
    results_dir: str | Path,
    out: str | Path | None = None,
    runs: list[StoredRun] | None = None,
    figures: bool = True,
) -> Report:
    """Tables (and figures) of the finished runs below ``results_dir`` (or of ``runs``), with the
    run directories left out listed; raises when there is no finished run."""
    results_dir = Path(results_dir)
    broken: list[BrokenRun] = []
    if runs is None:
        runs, broken = survey_runs(results_dir)
    if not runs:
        left_out = "; ".join(describe_broken(broken))
        raise FileNotFoundError(
            f"no finished runs (run.json) below {results_dir}"
            + (f" ({left_out})" if left_out else "")
        )
    out = Path(out) if out is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs_df = runs_table(runs)
    written = [_write_csv(runs_df, out / "runs.csv")]
    main = tables.main_table(runs_df)
    main_md, paths = _write_table(
        main, tables.main_columns(), out, "main", "Duplicate detection per method. " + tables.NOTES
    )
    written += paths
    count = plural(len(runs_df), "run") + " finished"
    sections = [
        "# dupbench report",
        "",
        f"{count} below `{results_dir}`.",
        "",
        *_left_out(broken, results_dir),
        "## Main table",
        "",
        main_md,
        tables.NOTES,
        "",
    ]
    for column in BREAKDOWNS:
        table = tables.breakdown_table(runs, column)
        if table.empty:
            continue
        name = "breakdown_" + column.replace("/", "_")
        markdown, paths = _write_table(
            table,
            tables.breakdown_columns(table),
            out,
            name,
            f"Recall per {column}; best per row in bold.",
            True,
        )
        written += paths
        sections += [f"## Recall per {column}", "", markdown]
    if figures:
        figure_paths = plots.all_plots(runs, runs_df, out)
        written += figure_paths
        sections += ["## Figures", ""]
        sections += [f"![{p.stem}]({p.name})" for p in figure_paths if p.suffix == ".png"]
    written.append(files.write_text(out / "report.md", "\n".join(sections) + "\n"))
    return Report(out, runs_df, main_md, written, broken)
