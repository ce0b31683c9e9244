"""text.py: counts in English and names in natural (numeric) order."""

from __future__ import annotations

import pytest

from dupbench.text import natural_key, plural


@pytest.mark.parametrize("count,expected", [(0, "0 groups"), (1, "1 group"), (2, "2 groups")])
def test_plural(count, expected):
    assert plural(count, "group") == expected
    assert plural(count, "copy", "copies").endswith("copy" if count == 1 else "copies")


def test_natural_order_compares_numbers_by_value():
    names = [
        "phash (threshold=10)",
        "phash (threshold=2)",
        "ahash",
        "phash",
        "phash (threshold=0.5)",
        "jpeg/10",
        "jpeg/2",
        "10",
        "9",
        "jpeg-10",
        "jpeg-2",
    ]
    assert sorted(names, key=natural_key) == [
        "9",
        "10",
        "ahash",
        "jpeg-2",
        "jpeg-10",
        "jpeg/2",
        "jpeg/10",
        "phash",
        "phash (threshold=0.5)",
        "phash (threshold=2)",
        "phash (threshold=10)",
    ]
