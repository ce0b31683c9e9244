"""Wording shared by what the commands print, so counts read as English ("1 run", "2 runs")."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is exactly one
    (``plural(1, "group")`` → "1 group", ``plural(0, "group")`` → "0 groups")."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"
