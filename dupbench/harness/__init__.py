"""The benchmark harness: Hydra-configured runs (load → encode → index → search → evaluate), each
stage timed with its peak memory, raw outputs stored in self-describing run directories, and
reports (tables and figures) built from them.

Modules: ``schema`` (structured configs), ``overrides`` (command-line overrides, parsed),
``execute`` (one run into its directory, a reuse, a re-evaluation), and the parts it puts
together: ``seeding``, ``components`` (method and dataset), ``thresholds``, ``truth``,
``searching`` (the configured search), ``pipeline`` (the timed encode → index → search pass),
``measure`` (time, memory), ``environment`` (what ran where), ``record`` (``run.json``, typed),
``store`` (run directories), ``scoring`` (the one path from stored pairs to metrics),
``tables`` / ``plots`` / ``report`` (output), ``app`` (the Hydra entry point) and ``callbacks``
(multirun aggregation). Importing this package imports no Hydra app.
"""

from __future__ import annotations

__all__ = ["reevaluate", "write_report"]


def __getattr__(name: str):
    if name == "reevaluate":
        from dupbench.harness.execute import reevaluate

        return reevaluate
    if name == "write_report":
        from dupbench.harness.report import write_report

        return write_report
    raise AttributeError(f"module 'dupbench.harness' has no attribute {name!r}")
