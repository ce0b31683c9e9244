"""Names and counts as people read them: counts in English ("1 run", "2 runs") and names in
natural order ("threshold=2" before "threshold=10"), shared by everything that prints or lists."""

from __future__ import annotations

import math
import re


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is exactly one
    (``plural(1, "group")`` → "1 group", ``plural(0, "group")`` → "0 groups")."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside names by value: "phash (threshold=2)" before
    "phash (threshold=10)", severity "2" before "10", "jpeg/2" before "jpeg/10"."""
    parts = _NUMBER.split(str(text))
    # text at even positions, numbers at odd ones: (text, number) pairs compare cleanly
    return tuple(
        (parts[k], float(parts[k + 1]) if k + 1 < len(parts) else -math.inf)
        for k in range(0, len(parts), 2)
    )
