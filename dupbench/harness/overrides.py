"""Hydra command-line overrides (``key=value``, ``+key=value``, ``~key``), parsed once for the
code that reads them (run labels, the ``dupbench run`` defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Override:
    """One override: ``key`` without its ``+``/``++``/``~`` prefix; ``value`` the text after the
    first "=", None when there is none (``~key``, or a flag such as ``--info``)."""

    text: str
    key: str
    value: str | None

    @classmethod
    def parse(cls, text: str) -> Override:
        key, equals, value = text.lstrip("+~").partition("=")
        return cls(text, key, value if equals else None)


def parse_overrides(texts: list[str]) -> list[Override]:
    return [Override.parse(t) for t in texts]
