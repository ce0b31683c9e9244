"""CONTRIBUTING.md's "Recipe: add a metric", followed once: the recipe's file (an F2 score) is
written into a folder added to ``dupbench.evaluation``'s package path, in a fresh interpreter
(the metric catalogue scans the package once per process), and the metric must be computed,
kept per threshold in the sweep table and shown as a column of the main table."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import dupbench

#: the file the recipe adds, as CONTRIBUTING.md shows it (dupbench/evaluation/f2.py)
RECIPE_FILE = '''
"""F2: the pairwise F-score that weighs recall four times as much as precision."""

from dupbench.evaluation.catalogue import metric
from dupbench.evaluation.pairwise import pairwise_scores


@metric(
    "f2",
    "F2",
    higher_is_better=True,
    description="pairwise F-beta with beta 2: recall weighs more than precision",
    reference="https://en.wikipedia.org/wiki/F-score",
    main=True,
    sweep=True,
)
def f2(within, truth_pairs, n) -> float:
    s = pairwise_scores(within, truth_pairs, n)
    p, r = s["precision"], s["recall"]
    return 5 * p * r / (4 * p + r) if p + r else 0.0
'''

#: runs in a fresh interpreter: extends the package path, then uses only the public entry points
CHECK = """
import json, sys
import numpy as np, pandas as pd
import dupbench.evaluation
dupbench.evaluation.__path__.append(sys.argv[1])
from dupbench.harness import tables
from dupbench.harness.scoring import score, sweep_thresholds
from dupbench.harness.store import StoredTruth
from dupbench.records import Candidates

found = Candidates([0, 0, 1, 2], [1, 2, 2, 3], [1, 3, 5, 2], "hamming")
truth = StoredTruth(np.array([[0, 1], [1, 2], [2, 3]]), 5, {})
scores = score(found, truth, 2, [1], 0.99, sweep_thresholds("hamming", 2, 5, 0))
main = tables.main_table(pd.DataFrame([{"label": "phash", **scores.metrics}]))
print(json.dumps({
    "metrics": scores.metrics,
    "sweep": scores.sweep.to_dict("list"),
    "columns": list(main.columns),
    "markdown": tables.to_markdown(main),
}))
"""


def test_recipe_adds_a_metric(tmp_path: Path) -> None:
    (tmp_path / "f2.py").write_text(textwrap.dedent(RECIPE_FILE))
    env_path = str(Path(dupbench.__file__).parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    got = json.loads(out.stdout)
    m = got["metrics"]
    # computed at the run's threshold: F-beta of the run's own precision and recall
    p, r = m["precision"], m["recall"]
    assert (p, r) == (1.0, 2 / 3)
    assert m["f2"] == 5 * p * r / (4 * p + r)
    # kept per threshold, and different where precision and recall differ
    sweep = got["sweep"]
    assert sweep["threshold"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and "f2" in sweep
    assert sweep["f2"][2] == m["f2"] and len(set(sweep["f2"])) > 2
    # a main-table column after the built-in quality columns, before the cost columns
    columns = got["columns"]
    assert columns.index("F2") == columns.index("best-F1 thr.") + 1
    assert "| F2 |" in got["markdown"] and f"{m['f2']:.3f}" in got["markdown"]


def test_every_formula_reference_into_the_package_resolves():
    """A catalogue entry's ``reference`` that names a kernel (a dotted name) must name one that
    exists, so a renamed module cannot leave the catalogue pointing nowhere."""
    import importlib

    from dupbench.evaluation.catalogue import specs

    kernels = [s.reference.split(";")[0] for s in specs() if s.reference.startswith("dupbench.")]
    assert kernels
    for dotted in kernels:  # "module.kernel", or "module.kernel; paper"
        module, name = dotted.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), dotted
