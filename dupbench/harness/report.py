"""``dupbench report RESULTS_DIR``: every finished run below a folder → tables and figures.

Writes into ``<RESULTS_DIR>/report`` (or ``out``): ``runs.csv`` (the tidy table, one row per run,
every metric and timing), ``main.{md,csv,tex}``, ``breakdown_<column>.{md,csv,tex}`` (recall per
transform, per severity, per transform and severity, per category) and the figures of
``dupbench.harness.plots``; ``report.md`` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dupbench.harness import plots, tables
from dupbench.harness.store import StoredRun, find_runs, runs_table

BREAKDOWNS = ("transform", "severity", "transform/severity", "category")


@dataclass
class Report:
    out: Path
    runs: pd.DataFrame
    main_markdown: str
    files: list[Path] = field(default_factory=list)


def _write_table(table: pd.DataFrame, columns, out: Path, name: str, caption: str,
                 per_row: bool = False) -> tuple[str, list[Path]]:
    markdown = tables.to_markdown(table, columns, per_row)
    paths = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}.tex"]
    paths[0].write_text(markdown)
    table.to_csv(paths[1], index=False)
    paths[2].write_text(tables.to_latex(table, columns, caption, per_row))
    return markdown, paths


def write_report(results_dir: str | Path, out: str | Path | None = None,
                 runs: list[StoredRun] | None = None, figures: bool = True) -> Report:
    """Tables (and figures) of the runs below ``results_dir``; raises when there are none."""
    results_dir = Path(results_dir)
    runs = find_runs(results_dir) if runs is None else runs
    if not runs:
        raise FileNotFoundError(f"no finished runs (run.json) below {results_dir}")
    out = Path(out) if out is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs_df = runs_table(runs)
    files = [out / "runs.csv"]
    runs_df.to_csv(files[0], index=False)
    main = tables.main_table(runs_df)
    main_md, paths = _write_table(main, tables.MAIN_COLUMNS, out, "main",
                                  "Duplicate detection per method. " + tables.NOTES)
    files += paths
    sections = ["# dupbench report", "", f"{len(runs)} runs below `{results_dir}`.", "",
                "## Main table", "", main_md, tables.NOTES, ""]
    for column in BREAKDOWNS:
        table = tables.breakdown_table(runs, column)
        if table.empty:
            continue
        name = "breakdown_" + column.replace("/", "_")
        markdown, paths = _write_table(table, tables.breakdown_columns(table), out, name,
                                       f"Recall per {column}; best per row in bold.", True)
        files += paths
        sections += [f"## Recall per {column}", "", markdown]
    if figures:
        figure_paths = plots.all_plots(runs, runs_df, out)
        files += figure_paths
        sections += ["## Figures", ""]
        sections += [f"![{p.stem}]({p.name})" for p in figure_paths if p.suffix == ".png"]
    (out / "report.md").write_text("\n".join(sections) + "\n")
    files.append(out / "report.md")
    return Report(out, runs_df, main_md, files)
