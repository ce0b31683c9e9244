"""``dupbench methods``: every method name the other commands accept, with what it is for."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "methods",
        help="list the method names: kind, threshold, extra, robustness",
        description="Every name accepted by `find -m`, `encode -m`, `find_duplicates(method=)` "
        "and `run method=`: the method classes and their presets.",
    )
    p.set_defaults(func=list_methods)


def describe(name: str) -> dict:
    """One row: kind, default threshold, extra (and whether it is installed), robustness."""
    from dupbench.methods import get_method, method_class
    from dupbench.methods.base import missing_packages
    from dupbench.methods.registry import preset, presets

    cls = method_class(name)
    found = preset(name) or presets().get(name.lower())  # a class name: its own preset file
    missing = missing_packages(cls)
    if found is not None and found.threshold is not None:
        threshold = found.threshold
    elif missing:  # cannot build it: the class's value
        threshold = cls.default_threshold
    else:  # an instance's default can depend on its parameters (hash length)
        threshold = get_method(name).default_threshold
    return {
        "name": name,
        "kind": cls.kind,
        "threshold": (cls.threshold_form or cls.distance.threshold_form).format(threshold),
        "extra": (f"[{cls.extra}]" + (" (missing)" if missing else "")) if cls.extra else "-",
        "robust_to": (found.robust_to if found and found.robust_to else cls.robust_to) or "-",
    }


def list_methods(args: argparse.Namespace) -> int:
    from dupbench.methods import names

    rows = [describe(name) for name in names()]
    header = {
        "name": "NAME",
        "kind": "KIND",
        "threshold": "THRESHOLD",
        "extra": "EXTRA",
        "robust_to": "ROBUST TO",
    }
    table = [header, *rows]
    # each column as wide as its widest entry, so a long threshold form never shifts the next
    width = {key: max(len(row[key]) for row in table) for key in header if key != "robust_to"}
    for row in table:
        print(" ".join(f"{row[key]:{n}s}" for key, n in width.items()) + f" {row['robust_to']}")
    return 0
