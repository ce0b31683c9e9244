"""The Hydra entry point of ``dupbench run``: compose the config, skip or run, print the result.

The configs ship inside the package (``dupbench/configs``), so this works from any install;
Hydra's own flags work as usual (``-m``, ``--cfg job``, ``--config-dir DIR`` to add a folder of
your own configs, ``hydra.searchpath=[file://DIR]``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dupbench.errors import DupbenchError
from dupbench.evaluation.catalogue import summary_line
from dupbench.harness import store
from dupbench.harness.components import load_dataset
from dupbench.harness.execute import execute_run, reuse_run, run_key
from dupbench.harness.overrides import parse_overrides
from dupbench.harness.schema import RunConfig, register_schemas, to_run_config
from dupbench.locks import hold

register_schemas()

#: overrides left out of labels: the method choice itself, the dataset (a column of its own),
#: and where or how quietly a run happens
_UNLABELLED_KEYS = ("method", "benchmark.progress")
_UNLABELLED_ROOTS = ("dataset", "experiment", "results_dir", "force", "report", "hydra")


def run_label(cfg: RunConfig, choice: str | None, task_overrides: list[str]) -> str:
    """The name of a run in tables: ``method.label``, else the method's config file name, plus
    the command-line overrides that change what is measured (``phash (threshold=4)``), so the
    runs of a sweep stay apart."""
    base = cfg.method.label or choice or cfg.method.name
    tweaks = []
    for override in parse_overrides(task_overrides):
        key = override.key
        if key in _UNLABELLED_KEYS or key.split(".")[0].split("/")[0] in _UNLABELLED_ROOTS:
            continue
        short = key.removeprefix("method.params.").removeprefix("method.")
        tweaks.append(f"{short.removeprefix('benchmark.')}={override.value or ''}")
    return f"{base} ({', '.join(tweaks)})" if tweaks else base


class _UserErrorInJob(BaseException):
    """Carries a user error out of a Hydra job unchanged: for an ``Exception`` Hydra prints
    "Error executing job ..." and a traceback, where the ``dupbench`` command prints one line."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def task(cfg: DictConfig) -> float:
    """One job: run (or reuse) the benchmark in Hydra's output directory; returns F1 so that
    optimising sweepers can use it."""
    try:
        return _task(cfg)
    except (DupbenchError, OSError) as e:
        raise _UserErrorInJob(e) from e


def _task(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    typed = to_run_config(cfg)
    overrides = list(hc.overrides.task)
    label = run_label(typed, hc.runtime.choices.get("method"), overrides)
    run_dir = Path(hc.runtime.output_dir)
    key = run_key(typed)
    # one run of a key at a time: an identical run started meanwhile finishes, then is reused
    with hold(Path(typed.results_dir) / f".run-{key[:16]}.lock", what=label, timeout=None):
        earlier = None if typed.force else store.find_finished(typed.results_dir, key)
        if earlier is not None:
            checksum = load_dataset(typed).checksum()
            if earlier.record.dataset.checksum != checksum:
                print(
                    f"{label}: the dataset changed since the finished run {earlier.dir}; "
                    "running again",
                    file=sys.stderr,
                )
                earlier = None
        if earlier is not None:
            metrics = reuse_run(earlier, run_dir, overrides)
            print(
                f"{label}: identical to the finished run {earlier.dir} (reused; force=true reruns)",
                file=sys.stderr,
            )
        else:
            metrics = execute_run(typed, run_dir, label, overrides, key)
    print(summary_line(label, metrics) + f"  -> {run_dir}", file=sys.stderr)  # after every run
    return metrics["f1"]


main = hydra.main(version_base="1.3", config_path="../configs", config_name="config")(task)


def run_hydra(overrides: list[str]) -> None:
    """Run the Hydra app with command-line style ``overrides`` (Hydra reads ``sys.argv``).

    Errors are raised, not printed by Hydra (``HYDRA_FULL_ERROR``): a configuration mistake or a
    user error in a job reaches the caller as its exception, for the CLI to print as one line.
    """
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["dupbench-run", *overrides]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except _UserErrorInJob as stop:
        raise stop.error from None
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
