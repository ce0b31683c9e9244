"""Calibrate each method's default threshold: the one that gives 99% pair precision on a dataset.

Why: a default threshold should mean the same thing for every method ("what I may delete with
1 wrong pair in 100"), where each was a rule of thumb (imagededup's 10 of 64 bits, a cosine 0.9).
Each method preset runs through the harness (``dupbench run method=NAME``, so with its own search
and sweep), and its threshold is read from the precision-recall curve of the run's stored pairs:
``operating_points``' ``recall_at_precision_threshold``, the widest threshold whose pair
precision is at least the target (the highest recall; ties: the strictest, as a looser one only
adds false pairs), rounded to the stricter side (a cosine at 4 decimals).

What counts as false: every retrieved pair outside the truth levels the run scores (``levels``,
exact and near on the default dataset). The "similar" pairs, different photos of one scene, are
hard negatives a user would not delete, so they count against precision: on the default dataset
they are what holds pHash and the CNN to strict thresholds.

Output: a CSV (default ``results/calibration/thresholds.csv``) with, per preset, the threshold,
its precision and recall there, the method's default when it ran (and its precision and
recall), the widest threshold the run searched (``at_sweep_edge``: the target precision still
holds at the loosest pair found, so a wider search could allow a looser threshold; the script
then searches wider, up to ``_WIDENINGS`` times), the dataset's name, checksum and truth levels,
and the run's date.
``--snippet`` prints the YAML lines, ``--write`` puts the thresholds, with a comment naming the
dataset, date and this script, into ``dupbench/configs/method/<preset>.yaml``; a class name
(``phash``) takes its own preset file's threshold when called without parameters (registry).

Usage (each method's run lands in ``--results-dir/<preset>``; a finished identical run is reused;
rows of ``--out`` for presets not calibrated again are kept):
    python benchmarks/calibrate_thresholds.py                        # every preset, default data
    python benchmarks/calibrate_thresholds.py --methods phash,pdq,cnn --snippet
    python benchmarks/calibrate_thresholds.py --no-run --write       # from the runs stored
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dupbench.evaluation import operating_points, pr_curve
from dupbench.files import write_text
from dupbench.harness.store import find_runs
from dupbench.methods.presets import CONFIGS, presets
from dupbench.methods.registry import method_class

COLUMNS = [
    "method",
    "class",
    "metric",
    "threshold",
    "precision",
    "recall",
    "default_threshold",
    "default_precision",
    "default_recall",
    "sweep_to",
    "at_sweep_edge",
    "target_precision",
    "dataset",
    "dataset_checksum",
    "levels",
    "images",
    "truth_pairs",
    "code_bits",
    "date",
    "status",
]
#: at most this many reruns with a wider search while the target precision holds at its edge
_WIDENINGS = 3
_THRESHOLD_LINE = re.compile(r"^(?P<indent>\s*)threshold:.*$", re.MULTILINE)


def calibrated_presets() -> list[str]:
    """Every preset whose method has a threshold to calibrate (exact digests have none)."""
    return [name for name, p in presets().items() if method_class(p.method).distance != "equal"]


def run_method(name: str, results_dir: Path, dataset: str, extra: list[str]) -> str | None:
    """Run (or reuse) the harness for preset ``name``; None on success, else its last error line."""
    command = [
        sys.executable,
        "-m",
        "dupbench",
        "run",
        f"method={name}",
        f"dataset={dataset}",
        f"results_dir={results_dir / name}",
        "benchmark.warmup=0",
        "benchmark.progress=false",
        *extra,
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    # the first line of the message (the CLI prints one; some add indented advice lines)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line[0].isspace()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def strictest_rounding(threshold: float, distance: str) -> float:
    """Hamming distances are integers; a cosine threshold is rounded up at 4 decimals (stricter)."""
    return int(threshold) if distance == "hamming" else math.ceil(threshold * 1e4) / 1e4


def at_threshold(curve: pd.DataFrame, threshold: float, distance: str) -> pd.Series | None:
    """The row of ``curve`` (strictest first) in force at ``threshold``: its loosest row that is
    no looser than the threshold; None when every row is looser."""
    kept = (
        curve["threshold"] >= threshold if distance == "cosine" else curve["threshold"] <= threshold
    )
    return curve[kept].iloc[-1] if kept.any() else None


def calibration_row(name: str, results_dir: Path, error: str | None) -> dict:
    """The CSV row of preset ``name`` from its newest finished run.

    The run's curve is built again from its stored pairs (``pr_curve``): a false pair is any
    retrieved pair outside the truth levels the run scored (exact and near by default), so the
    "similar" pairs (different photos of one scene) count against precision, as a user would
    count them. The threshold is ``operating_points``' (the highest recall with precision ≥ the
    target, ties: the strictest), rounded to the stricter side; precision and recall are read
    again at the rounded threshold."""
    row = dict.fromkeys(COLUMNS, None) | {"method": name, "class": presets()[name].method}
    runs = [] if error else find_runs(results_dir / name)
    if not runs:
        return row | {"status": f"failed: {error or 'no finished run'}"}
    run = max(runs, key=lambda r: r.record.finished)
    record = run.record
    distance = record.distance
    row.update(
        metric=distance,  # the CSV column keeps its name
        default_threshold=record.threshold,
        sweep_to=record.sweep_to,
        target_precision=record.target_precision,
        dataset=record.dataset.name,
        dataset_checksum=record.dataset.checksum,
        levels="+".join(record.dataset.levels),
        images=record.dataset.images,
        truth_pairs=record.dataset.truth_pairs,
        code_bits=record.method.size,
        date=record.finished[:10],
    )
    truth = run.truth()
    curve = pr_curve(run.candidates(), truth.pairs, truth.n)
    default = at_threshold(curve, record.threshold, distance)  # what the calibration replaces
    if default is not None:
        row.update(
            default_precision=round(float(default["precision"]), 4),
            default_recall=round(float(default["recall"]), 4),
        )
    found = operating_points(curve, record.target_precision)["recall_at_precision_threshold"]
    if math.isnan(found):
        return row | {"status": "target precision not reached at any threshold"}
    threshold = strictest_rounding(found, distance)
    point = at_threshold(curve, threshold, distance)
    if point is None:
        return row | {"status": f"no pair within the rounded threshold {threshold}"}
    precision = float(point["precision"])
    return row | {
        "threshold": threshold,
        "precision": round(precision, 4),
        "recall": round(float(point["recall"]), 4),
        "at_sweep_edge": found == curve["threshold"].iloc[-1],
        "status": "ok" if precision >= record.target_precision else "below target once rounded",
    }


def kept_rows(out: Path, names: list[str]) -> pd.DataFrame:
    """The rows of ``out`` (an earlier calibration) for methods other than ``names``: calibrating a
    few presets again keeps the others' rows (each with its dataset checksum)."""
    if not out.is_file():
        return pd.DataFrame(columns=COLUMNS, dtype=object)
    earlier = pd.read_csv(out, dtype=object)  # as written: integer thresholds stay integers
    return earlier[~earlier.method.isin(names)].reindex(columns=COLUMNS)


def widened(row: dict) -> float:
    """A wider search than the row's run: twice the Hamming radius (at most the code's bits), or
    a cosine floor a quarter lower (at least -1)."""
    if row["metric"] == "hamming":
        return min(2 * row["sweep_to"], row["code_bits"])
    return max(-1.0, row["sweep_to"] - 0.25)


def preset_line(row: pd.Series) -> str:
    """The ``threshold:`` value and the comment recording how it was derived."""
    value = int(row.threshold) if row.metric == "hamming" else float(row.threshold)
    return (
        f"threshold: {value}  # {row.target_precision:.0%} pair precision, "
        f"{row.dataset}@{row.dataset_checksum[:12]} {row.date}, benchmarks/calibrate_thresholds.py"
    )


def write_presets(table: pd.DataFrame) -> list[Path]:
    """Put each calibrated threshold into its preset file (the one ``threshold:`` line)."""
    written = []
    for row in table[table.status == "ok"].itertuples():
        path = CONFIGS / "method" / f"{row.method}.yaml"
        text = path.read_text()
        found = _THRESHOLD_LINE.findall(text)
        if len(found) != 1:
            print(
                f"{path}: expected one threshold line, found {len(found)}; left as is",
                file=sys.stderr,
            )
            continue
        line = preset_line(row)
        new = _THRESHOLD_LINE.sub(lambda m, line=line: m["indent"] + line, text)
        if new != text:
            write_text(path, new)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", help="comma-separated presets (default: every preset with a threshold)"
    )
    parser.add_argument("--dataset", default="default")
    parser.add_argument("--results-dir", type=Path, default=Path("results/calibration/runs"))
    parser.add_argument("--out", type=Path, default=Path("results/calibration/thresholds.csv"))
    parser.add_argument("--snippet", action="store_true", help="print the YAML threshold lines")
    parser.add_argument(
        "--write", action="store_true", help="update the threshold: line of each preset file"
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="read the newest finished run of each preset in --results-dir; run nothing",
    )
    parser.add_argument("overrides", nargs="*", help="extra `dupbench run` overrides")
    args = parser.parse_args(argv)
    names = args.methods.split(",") if args.methods else calibrated_presets()
    unknown = sorted(set(names) - set(presets()))
    if unknown:
        parser.error(f"not presets: {', '.join(unknown)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = kept_rows(args.out, names)
    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        error = (
            None
            if args.no_run
            else run_method(name, args.results_dir, args.dataset, args.overrides)
        )
        row = calibration_row(name, args.results_dir, error)
        for _ in range(0 if args.no_run else _WIDENINGS):
            wider = None if row["status"] != "ok" else widened(row)
            if not row["at_sweep_edge"] or wider == row["sweep_to"]:
                break
            print(
                f"{name}: {row['target_precision']:.0%} precision still holds at the widest "
                f"threshold searched ({row['sweep_to']}); searching to {wider}",
                file=sys.stderr,
                flush=True,
            )
            error = run_method(
                name,
                args.results_dir,
                args.dataset,
                [*args.overrides, f"benchmark.sweep_to={wider}"],
            )
            row = calibration_row(name, args.results_dir, error)
        rows.append(row)
        new = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
        table = pd.concat([kept, new], ignore_index=True)
        write_text(args.out, table.to_csv(index=False))  # after each method: partial results
    table = table[table.method.isin(names)]
    print(
        table[
            [
                "method",
                "threshold",
                "precision",
                "recall",
                "default_threshold",
                "at_sweep_edge",
                "status",
            ]
        ].to_string(index=False)
    )
    print(f"-> {args.out}")
    if args.snippet:
        for row in table[table.status == "ok"].itertuples():
            print(f"{row.method}.yaml: {preset_line(row)}")
    if args.write:
        for path in write_presets(table):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
