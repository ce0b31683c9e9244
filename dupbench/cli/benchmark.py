"""``dupbench run [HYDRA OVERRIDES]``: the benchmark, configured with Hydra.

Everything after ``run`` goes to Hydra unchanged (``-m``, ``--cfg job``, ``--config-dir DIR``,
``key=value``); unless a method or an experiment is chosen, the default experiment runs.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  dupbench run                                   # experiment=default: every method, main table
  dupbench run method=phash dataset=default      # one run
  dupbench run dataset=ukbench                   # every method on another dataset
  dupbench run -m method=ahash,dhash,phash benchmark.threshold='range(0,17)'
  dupbench run experiment=hashes results_dir=/data/results
  dupbench run -m hydra/launcher=parallel method=ahash,dhash     # jobs in parallel (joblib)
  dupbench run -m hydra/launcher=slurm method=cnn,cnn_gem        # jobs on SLURM (submitit)
  dupbench run --config-dir ./my_configs method=my_method        # add your own config folder
  dupbench run --cfg job method=cnn                              # show the composed config
  dupbench run --hydra-help                                      # Hydra's own flags

groups: method, dataset, search, benchmark, experiment, hydra/launcher. An identical finished
run is reused, not recomputed (force=true reruns). Runs land in results/runs/<date>/...
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run benchmarks (Hydra-configured)",
        description="Benchmark duplicate-detection methods on labelled datasets; arguments are "
        "Hydra overrides.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run, accepts_overrides=True)


def with_default_experiment(overrides: list[str]) -> list[str]:
    """Add ``experiment=default`` unless the overrides pick a method or an experiment, so
    ``dupbench run`` runs every method, and ``dupbench run dataset=ukbench`` every method on
    that dataset, while ``dupbench run method=phash`` is one run."""
    from dupbench.harness.overrides import parse_overrides

    keys = [o.key for o in parse_overrides(overrides) if o.value is not None]
    chooses = any(k in ("method", "experiment") or k.startswith("method.") for k in keys)
    # Hydra's own informational flags (-h/--help never get here: argparse answers them)
    hydra_only = {"--hydra-help", "--info", "-i", "--version"}
    if chooses or hydra_only & set(overrides):
        return list(overrides)
    return ["experiment=default", *overrides]


def without_uninstalled(overrides: list[str]) -> tuple[list[str], str | None]:
    """When the default experiment runs, leave out of its sweep the methods whose optional
    package is not installed (a default must run on any install); returns the overrides and a
    line saying what was left out and how to install it (None when nothing was)."""
    from omegaconf import OmegaConf

    from dupbench.harness.overrides import parse_overrides
    from dupbench.methods import method_class
    from dupbench.methods.base import missing_packages
    from dupbench.methods.presets import CONFIGS

    keys = {o.key: o.value for o in parse_overrides(overrides) if o.value is not None}
    if keys.get("experiment") != "default" or "hydra.sweeper.params.method" in keys:
        return list(overrides), None
    sweep = OmegaConf.load(CONFIGS / "experiment" / "default.yaml").hydra.sweeper.params.method
    methods = str(sweep).split(",")
    missing = {name: method_class(name) for name in methods if missing_packages(method_class(name))}
    if not missing:
        return list(overrides), None
    kept = ",".join(name for name in methods if name not in missing)
    note = "skipping " + ", ".join(
        f"{name} (needs {', '.join(missing_packages(cls))}: pip install 'dupbench[{cls.extra}]')"
        for name, cls in missing.items()
    )
    return [*overrides, f"hydra.sweeper.params.method='{kept}'"], note


def run(args: argparse.Namespace) -> int:
    from dupbench.harness.app import run_hydra

    overrides, note = without_uninstalled(with_default_experiment(args.overrides))
    if note:
        print(f"dupbench run: {note}", file=sys.stderr)
    run_hydra(overrides)
    return 0
