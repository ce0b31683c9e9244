"""The results store: what a run directory holds, how it is found again, and the tidy table of runs.

```
<run dir>/run.json        identity: key, label, config, overrides, dataset checksum, environment,
                          seeds, per-stage timings and memory, status ("done" or "reused")
<run dir>/metrics.json    every metric at the run's threshold (``dupbench.evaluation.evaluate_run``)
<run dir>/candidates.npz  scored pairs up to the widest threshold, as dataset image indices
<run dir>/truth.npz       the truth pairs scored against and their group labels (transform, ...)
<run dir>/skipped.csv     files that could not be encoded, with the reason
<run dir>/curve.csv       precision/recall at every distinct score; sweep.csv: metrics per threshold
<run dir>/breakdown.csv   recall per group of truth pairs; encodings.npz when asked for (with
                          the verified method's local features; kept for the user, not read back)
<run dir>/failed.json     instead of run.json when the job raised: the error, in one line
```

A run directory is a finished run when its ``run.json`` says so and its outputs can be read.
Any other run directory (a Hydra job folder, ``.hydra/``, without ``run.json``: failed, killed or
still running; or one whose outputs are gone or damaged) is a ``BrokenRun`` that reports list.

A run identical to a finished one (same ``key``: config, version and code; same dataset
checksum) is not recomputed: its directory gets a ``run.json`` with status "reused" pointing at
the original, whose files it reads.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dupbench.files import write_json
from dupbench.harness.record import RunRecord
from dupbench.records import Candidates, DamagedFile, Encodings, Skipped, read_npz, write_npz
from dupbench.text import natural_key

if TYPE_CHECKING:
    from dupbench.harness.scoring import Scores

RUN_FILE, METRICS_FILE = "run.json", "metrics.json"
CANDIDATES_FILE, TRUTH_FILE, SKIPPED_FILE = "candidates.npz", "truth.npz", "skipped.csv"
CURVE_FILE, SWEEP_FILE, BREAKDOWN_FILE = "curve.csv", "sweep.csv", "breakdown.csv"
ENCODINGS_FILE, FAILED_FILE = "encodings.npz", "failed.json"
#: Hydra's record of a job's config: its folder marks a run directory, finished or not
HYDRA_SUBDIR = ".hydra"
#: the stages a method is responsible for (load and evaluate are the harness's own work)
METHOD_STAGES = ("encode", "index", "search")
#: config keys that change how a run is shown or stored, not what it measures
_NOT_IN_KEY = ("force", "report", "results_dir")
#: the stored label of a truth pair whose image has no value in a breakdown column
NO_LABEL = "None"


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def run_key(config: dict, version: str, code: dict | None = None) -> str:
    """sha256 of what a run measures: its resolved config (minus display and storage options;
    ``benchmark.progress`` only draws a bar), the dupbench version and ``code``
    (``environment.code_state()``: git commit, dirty flag, digest of the package's sources)."""
    measured = {k: v for k, v in config.items() if k not in _NOT_IN_KEY}
    bench = {k: v for k, v in measured.get("benchmark", {}).items() if k != "progress"}
    text = json.dumps(
        {**measured, "benchmark": bench, "version": version, "code": code}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def label_strings(values) -> np.ndarray:
    """Group labels as stored: each value's text, ``NO_LABEL`` for a missing one (None, NaN)."""
    return np.asarray([NO_LABEL if pd.isna(v) else str(v) for v in values], dtype=str)


@dataclass
class StoredTruth:
    """The truth a run was scored against: pairs of dataset indices over ``n`` images, and for
    each breakdown column one label per pair."""

    pairs: np.ndarray
    n: int
    groups: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        write_npz(
            path,
            {
                "pairs": np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2),
                "n": np.int64(self.n),
                **{f"group_{k}": np.asarray(v, dtype=str) for k, v in self.groups.items()},
            },
        )

    @classmethod
    def load(cls, path: Path, n: int | None = None) -> StoredTruth:
        """Read it back, refusing (``DamagedFile``) a damaged or hostile file: checked layout
        and size (``read_npz``), pairs within ``n`` images (the run's count, when given)."""
        z = read_npz(path, {"pairs": ("iu", 2), "n": ("iu", 0)}, others=("U", 1))
        pairs, stored_n = z["pairs"], int(z["n"])
        groups = {
            # runs stored before NO_LABEL wrote a missing float as "nan"
            k[len("group_") :]: np.where(v == "nan", NO_LABEL, v)
            for k, v in z.items()
            if k.startswith("group_")
        }
        if (
            (n is not None and stored_n != n)
            or pairs.shape[1] != 2
            or (len(pairs) and (int(pairs.min()) < 0 or int(pairs.max()) >= stored_n))
            or any(len(v) != len(pairs) for v in groups.values())
        ):
            raise DamagedFile(
                f"{path}: pairs or labels do not fit the run's "
                f"{stored_n if n is None else n} images"
            )
        return cls(pairs, stored_n, groups)


def save_skipped(skipped: list[Skipped], path: Path) -> None:
    pd.DataFrame([(s.path, s.reason) for s in skipped], columns=["path", "reason"]).to_csv(
        path, index=False
    )


def save_outputs(
    run_dir: Path,
    candidates: Candidates,
    truth: StoredTruth,
    encodings: Encodings,
    scores: Scores,
    keep_encodings: bool,
) -> None:
    """A run's raw outputs (every file but ``run.json``, which marks it finished)."""
    candidates.save(run_dir / CANDIDATES_FILE)
    truth.save(run_dir / TRUTH_FILE)
    if keep_encodings:
        encodings.save(run_dir / ENCODINGS_FILE)
    save_skipped(encodings.skipped, run_dir / SKIPPED_FILE)
    write_json(run_dir / METRICS_FILE, scores.metrics)
    scores.curve.to_csv(run_dir / CURVE_FILE, index=False)
    scores.sweep.to_csv(run_dir / SWEEP_FILE, index=False)
    scores.breakdown.to_csv(run_dir / BREAKDOWN_FILE, index=False)


def write_record(run_dir: Path, record: RunRecord) -> None:
    """Write ``run.json``: last, so that it marks a finished run."""
    write_json(run_dir / RUN_FILE, record.to_json())


@dataclass
class StoredRun:
    """A finished run directory, read lazily. ``shown_as`` replaces the stored label where
    two runs of one report would otherwise share it."""

    dir: Path
    shown_as: str | None = None

    @cached_property
    def record(self) -> RunRecord:
        """Its ``run.json`` (``KeyError`` / ``TypeError`` / ``ValueError`` when damaged)."""
        return RunRecord.from_json(read_json(self.dir / RUN_FILE))

    @property
    def data_dir(self) -> Path:
        """Where the raw outputs are: this directory, or the original of a reused run."""
        return Path(self.record.reused_from or self.dir)

    @property
    def label(self) -> str:
        return self.shown_as or self.record.label

    def missing_data(self) -> str | None:
        """Why this run's outputs cannot be read (its data directory or a file is gone, empty or
        damaged, e.g. the original of a reused run was deleted, or a write was cut short), or
        None when they can."""
        data_dir = self.data_dir
        if not data_dir.is_dir():
            return f"its data directory {data_dir} is missing"
        for name in (METRICS_FILE, CANDIDATES_FILE, TRUTH_FILE):
            path = data_dir / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size == 0:
                return f"{name} is empty (0 bytes)"
            # an .npz is a zip; a cut-short one lacks the directory at its end
            if path.suffix == ".npz" and not zipfile.is_zipfile(path):
                return f"{name} is damaged (not a complete .npz file)"
        try:
            self.metrics  # noqa: B018 (read once here, cached for the table)
        except (OSError, ValueError) as e:
            return f"{METRICS_FILE} is damaged ({e})"
        return None

    @cached_property
    def metrics(self) -> dict[str, float]:
        return read_json(self.data_dir / METRICS_FILE)

    def candidates(self) -> Candidates:
        return Candidates.load(self.data_dir / CANDIDATES_FILE, n=self.record.dataset.images)

    def truth(self) -> StoredTruth:
        return StoredTruth.load(self.data_dir / TRUTH_FILE, n=self.record.dataset.images)

    def table(self, filename: str) -> pd.DataFrame:
        path = self.data_dir / filename
        if not path.is_file() or path.stat().st_size == 0:
            return pd.DataFrame()
        return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])


@dataclass(frozen=True)
class BrokenRun:
    """A run directory that is not in the tables: ``kind`` is "failed" (the job raised),
    "unfinished" (no run.json: killed, or still running) or "damaged" (outputs unreadable)."""

    dir: Path
    kind: str
    reason: str

    def describe(self) -> str:
        return f"{self.dir.name} ({self.reason})"


def _run_dirs(root: Path) -> list[Path]:
    """Every folder below ``root`` that is a run: it has a run.json, a failure record, or
    Hydra's ``.hydra`` folder (written before the job starts)."""
    dirs = {p.parent for name in (RUN_FILE, FAILED_FILE) for p in root.rglob(name)}
    dirs |= {p.parent for p in root.rglob(HYDRA_SUBDIR) if p.is_dir()}
    return sorted(dirs, key=lambda d: natural_key(str(d)))


def _not_finished(run_dir: Path) -> BrokenRun:
    try:
        error = read_json(run_dir / FAILED_FILE)["error"]
    except (OSError, ValueError, KeyError, TypeError):
        return BrokenRun(run_dir, "unfinished", f"no {RUN_FILE}: killed, failed or still running")
    return BrokenRun(run_dir, "failed", str(error))


def survey_runs(root: str | Path) -> tuple[list[StoredRun], list[BrokenRun]]:
    """Finished runs below ``root`` (at any depth), one per key: the original over reuses,
    then the latest; ordered by label, numbers by value. And every other run directory there,
    with why it is left out."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no results directory {root}")
    best: dict[str, StoredRun] = {}
    broken: list[BrokenRun] = []
    for run_dir in _run_dirs(root):
        run = StoredRun(run_dir)
        if not (run_dir / RUN_FILE).is_file():
            broken.append(_not_finished(run_dir))
            continue
        try:
            record = run.record
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            broken.append(BrokenRun(run_dir, "damaged", f"{RUN_FILE} is unreadable ({e})"))
            continue
        if record.status not in ("done", "reused"):
            broken.append(BrokenRun(run_dir, "unfinished", f"status {record.status!r}"))
            continue
        missing = run.missing_data()
        if missing:
            broken.append(BrokenRun(run_dir, "damaged", missing))
            continue
        held = best.get(record.key)
        if held is None or _rank(record) > _rank(held.record):
            best[record.key] = run
    runs = sorted(best.values(), key=lambda r: (natural_key(r.label), str(r.dir)))
    counts = Counter(r.label for r in runs)
    for run in runs:
        if counts[run.label] > 1:
            run.shown_as = f"{run.label} [{run.record.dataset.name}, {run.dir.name}]"
    return runs, broken


def _rank(record: RunRecord) -> tuple[bool, str]:
    """Which of two runs of one key ``survey_runs`` keeps: the original over reuses, then the
    latest."""
    return record.status == "done", record.finished


def find_runs(root: str | Path) -> list[StoredRun]:
    """The finished runs of ``survey_runs``; a damaged one is skipped with a warning."""
    runs, broken = survey_runs(root)
    for run in broken:
        if run.kind == "damaged":
            warnings.warn(f"skipping the run in {run.dir}: {run.reason}", stacklevel=2)
    return runs


def describe_broken(broken: list[BrokenRun]) -> list[str]:
    """One line per kind: "1 failed: 7_pdq (ImportError: ...)"."""
    lines = []
    for kind in ("failed", "unfinished", "damaged"):
        these = [b.describe() for b in broken if b.kind == kind]
        if these:
            lines.append(f"{len(these)} {kind}: " + "; ".join(these))
    return lines


def find_finished(root: str | Path, key: str) -> StoredRun | None:
    """The finished (not reused) run with ``key`` below ``root``, if any (runs whose outputs
    are gone are never offered)."""
    if not Path(root).exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a broken unrelated run is the report's business
        runs = find_runs(root)
    for run in runs:
        if run.record.key == key and run.record.status == "done":
            return run
    return None


def runs_table(runs: list[StoredRun]) -> pd.DataFrame:
    """One tidy row per run: identity columns, every metric, then per-stage time and memory;
    ``peak_rss_mb`` is the highest of the method's stages, ``images_per_s`` the encoding rate."""
    rows = []
    for run in runs:
        missing = run.missing_data()
        if missing:
            warnings.warn(f"leaving the run in {run.dir} out of the table: {missing}", stacklevel=2)
            continue
        record = run.record
        row = {
            "label": record.label,
            "method": record.method.name,
            "params": json.dumps(record.method.params, sort_keys=True),
            "dataset": record.dataset.name,
            "dataset_checksum": record.dataset.checksum,
            "metric": record.distance,  # the runs.csv column keeps its name
            "images": record.dataset.images,
            "encoded": record.encoded,
            "skipped": record.skipped,
            "search_backend": record.search.backend,
            "sweep_to": record.sweep_to,
        }
        row.update(run.metrics)
        peaks = []
        for stage, t in sorted(record.stages.items()):
            row[f"{stage}_wall_s"] = t.wall_s
            row[f"{stage}_cpu_s"] = t.cpu_s
            row[f"{stage}_peak_rss_mb"] = t.peak_rss_mb
            if t.cuda_peak_mb is not None:
                row[f"{stage}_cuda_peak_mb"] = t.cuda_peak_mb
            if stage in METHOD_STAGES:
                peaks.append(t.peak_rss_mb)
        encode = record.stages.get("encode")
        row["images_per_s"] = encode.items_per_s if encode else math.nan
        row["peak_rss_mb"] = max(peaks) if peaks else math.nan  # the method's, not the harness's
        row["run_dir"] = str(run.dir)
        rows.append(row)
    return pd.DataFrame(rows)
