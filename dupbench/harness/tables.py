"""Result tables as Markdown, CSV and LaTeX, with the best value of each column marked.

Only formatting: every number comes from a stored run (``dupbench.evaluation`` computed it, or
computes it here from the run's stored pairs: recall per group at one precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dupbench.evaluation import breakdown_at_precision
from dupbench.evaluation.catalogue import specs
from dupbench.harness.store import BREAKDOWN_FILE, StoredRun
from dupbench.text import natural_key


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    #: True: higher is better, False: lower is better, None: not ranked
    higher: bool | None
    digits: int = 3


#: the main table: the run, quality at its threshold and threshold-free (the ``main`` metrics of
#: ``dupbench.evaluation.catalogue``), then cost
_LABEL = Column("label", "method", None)
_COST = (
    Column("encode_wall_s", "encode s", False, 2),
    Column("search_wall_s", "search s", False, 3),
    Column("images_per_s", "images/s", True, 1),
    Column("peak_rss_mb", "peak MB", False, 0),
)


def main_columns() -> tuple[Column, ...]:
    """The columns of the main table, read from the metric catalogue when asked (a metric
    registered later has its column)."""
    quality = (Column(s.name, s.title, s.higher_is_better, s.digits) for s in specs("main"))
    return (_LABEL, *quality, *_COST)


NOTES = (
    "precision, recall, F1: pairwise, at the run's threshold. MAP and NDCG: per query, averaged "
    "over all images (imagededup's convention: an image with no duplicates that retrieves "
    "nothing scores 1); NDCG's ideal ranking comes from the truth. μAP: DISC21 micro-AP over all "
    "scored pairs. R@P: recall at the target precision. best F1 and its threshold: over every "
    "threshold searched. Times: median over repeats; peak MB: highest RSS of any stage. "
    "Best values in bold."
)


def main_table(runs_df: pd.DataFrame) -> pd.DataFrame:
    """The ``main_columns`` of a ``store.runs_table``, one row per run."""
    table = pd.DataFrame(
        {
            c.title: runs_df.get(c.key, pd.Series(math.nan, index=runs_df.index))
            for c in main_columns()
        }
    )
    return table.reset_index(drop=True)


def best_mask(table: pd.DataFrame, columns=None, per_row: bool = False) -> pd.DataFrame:
    """True where a cell holds its column's best value, or with ``per_row`` the best of its row
    among the ranked columns (ties all marked; NaN never). ``columns``: ``main_columns()``."""
    columns = main_columns() if columns is None else columns
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    ranked = {c.title: c.higher for c in columns}
    if per_row:
        titles = [t for t in table.columns if ranked.get(t, True) is not None]
        values = table[titles].apply(pd.to_numeric, errors="coerce")
        if len(titles) > 1:
            mask[titles] = values.eq(values.max(axis=1), axis=0)
        return mask
    for title in table.columns:
        higher = ranked.get(title, True)
        values = pd.to_numeric(table[title], errors="coerce")
        if higher is None or values.notna().sum() < 2:
            continue
        best = values.max() if higher else values.min()
        mask[title] = values == best
    return mask


def _cell(value, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if (isinstance(value, float) and not value.is_integer()) or digits:
        return f"{value:.{digits}f}"
    return str(int(value))


def _texts(table: pd.DataFrame, columns) -> pd.DataFrame:
    digits = {c.title: c.digits for c in columns}
    return pd.DataFrame({t: [_cell(v, digits.get(t, 3)) for v in table[t]] for t in table.columns})


def to_markdown(table: pd.DataFrame, columns=None, per_row: bool = False) -> str:
    columns = main_columns() if columns is None else columns
    texts, best = _texts(table, columns), best_mask(table, columns, per_row)
    head = "| " + " | ".join(table.columns) + " |"
    rule = (
        "|"
        + "|".join(
            "---" if pd.api.types.is_string_dtype(table[c]) else "---:" for c in table.columns
        )
        + "|"
    )
    lines = [head, rule]
    for r in range(len(table)):
        cells = [str(texts.iat[r, c]) for c in range(len(table.columns))]
        cells = [f"**{v}**" if best.iat[r, c] else v for c, v in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "μ": r"$\mu$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, columns=None, caption: str = "", per_row: bool = False) -> str:
    """A booktabs ``table`` environment; best values in ``\\textbf``."""
    columns = main_columns() if columns is None else columns
    texts, best = _texts(table, columns), best_mask(table, columns, per_row)
    align = "".join("l" if pd.api.types.is_string_dtype(table[c]) else "r" for c in table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for r in range(len(table)):
        cells = [_latex_escape(str(texts.iat[r, c])) for c in range(len(table.columns))]
        cells = [rf"\textbf{{{v}}}" if best.iat[r, c] else v for c, v in enumerate(cells)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def breakdown_table(runs: list[StoredRun], column: str) -> pd.DataFrame:
    """Recall per group (rows) and method (columns, in the order of ``runs``) for one breakdown
    column, plus pair counts; groups in natural order (severity 2 before 10)."""
    parts = []
    for run in runs:
        table = run.table(BREAKDOWN_FILE)
        if table.empty or "column" not in table:
            continue
        rows = table[table["column"] == column]
        if len(rows):
            parts.append(rows.assign(label=run.label))
    if not parts:
        return pd.DataFrame()
    long = pd.concat(parts, ignore_index=True)
    long["group"] = long["group"].astype(str)
    wide = long.pivot_table(
        index="group", columns="label", values="recall", aggfunc="first", sort=False
    )
    labels = list(dict.fromkeys(long["label"]))
    wide = wide.reindex(index=sorted(wide.index, key=natural_key), columns=labels)
    pairs = long.groupby("group", sort=False)["pairs"].first()
    wide.insert(0, "pairs", pairs.reindex(wide.index).astype(int))
    wide.columns.name = None
    return wide.reset_index().rename(columns={"group": column})


def breakdown_columns(table: pd.DataFrame) -> tuple[Column, ...]:
    """Column specs for a breakdown table: the group name, the pair count, recalls (ranked)."""
    first, *rest = table.columns
    return (
        Column(first, first, None),
        Column("pairs", "pairs", None, 0),
        *(Column(c, c, True) for c in rest if c != "pairs"),
    )


#: the last row of ``recall_at_precision_table``: every truth pair, whatever its group
ALL_PAIRS = "(all pairs)"
#: the precision of ``recall_at_precision_table`` when the runs were scored at different ones
DEFAULT_TARGET_PRECISION = 0.99


def common_target_precision(runs: list[StoredRun]) -> float:
    """The target precision the runs were scored at, or ``DEFAULT_TARGET_PRECISION`` when they
    differ (so that one table compares them at one precision)."""
    targets = {float(run.record.target_precision) for run in runs}
    return targets.pop() if len(targets) == 1 else DEFAULT_TARGET_PRECISION


def recall_at_precision_table(
    runs: list[StoredRun], column: str = "transform", precision: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recall per group (rows) and run (columns) at the threshold where each run's precision
    over all pairs reaches ``precision`` (``common_target_precision`` when None), laid out as
    ``breakdown_table`` with an ``ALL_PAIRS`` row; and per run label its ``threshold``,
    ``precision`` and ``recall`` there (``breakdown_at_precision``, from the stored pairs: no
    encoding). Runs whose truth has no ``column`` labels are left out."""
    precision = common_target_precision(runs) if precision is None else precision
    recalls, counts, points = {}, [], {}
    for run in runs:
        truth = run.truth()
        if column not in truth.groups:
            continue
        table, points[run.label] = breakdown_at_precision(
            run.candidates(), truth.pairs, truth.groups[column], precision, truth.n
        )
        table = table.set_index(table["group"].astype(str))
        recalls[run.label] = table["recall"]
        counts.append(table["pairs"])
    if not recalls:
        return pd.DataFrame(), pd.DataFrame()
    wide = pd.DataFrame(recalls)
    wide = wide.reindex(sorted(wide.index, key=natural_key))
    pairs = pd.concat(counts).groupby(level=0).first().reindex(wide.index).astype(int)
    wide.insert(0, "pairs", pairs)
    points_table = pd.DataFrame.from_dict(points, orient="index")
    wide.loc[ALL_PAIRS] = [int(pairs.sum()), *points_table["recall"]]
    wide["pairs"] = wide["pairs"].astype(int)
    wide.index.name = column
    return wide.reset_index(), points_table
