"""The exceptions that mean "the user asked for something that cannot be done", and the one
"did you mean ...?" helper every name check uses.

``dupbench`` (the CLI) prints these as one line instead of a traceback: ``UsageError`` (the
request itself is wrong: an unknown name, a bad value) exits 2, any other ``DupbenchError`` (the
request is fine but an input or the install is not: a malformed file, a missing package) exits 1.
The classes also derive from the built-in type callers already expect (``ValueError``,
``TypeError``, ``KeyError``, ``ImportError``), so catching those keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DupbenchError(Exception):
    """A problem with the user's request or inputs; the message says what and how to fix it."""


class UsageError(DupbenchError, ValueError):
    """The request itself is wrong: an unknown name, a value out of range, a bad combination."""


class UnknownParameterError(UsageError, TypeError):
    """A keyword that no function or method takes (a ``TypeError``, as Python raises for one)."""


class UnknownNameError(UsageError, KeyError):
    """A name that is not in a catalogue (methods, backends, ...); a ``KeyError`` for lookups."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class MissingExtraError(DupbenchError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'hash_size'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_parameters(
    given: Iterable[str], accepted: Iterable[str], where: str, also_suggest: Iterable[str] = ()
) -> None:
    """Raise ``UnknownParameterError`` for the first name of ``given`` not in ``accepted``.

    ``also_suggest``: names that are valid elsewhere in the same call (e.g. the API function's own
    keywords), offered as suggestions but not accepted here.
    """
    accepted = list(accepted)
    unknown = [k for k in given if k not in accepted]
    if unknown:
        name = unknown[0]
        valid = ", ".join(accepted) or "none"
        raise UnknownParameterError(
            f"{where}: unknown parameter {name!r}{did_you_mean(name, [*accepted, *also_suggest])}"
            f" (valid: {valid})"
        )


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """The error for a name missing from a catalogue, with the closest one and the full list."""
    choices = sorted(choices)
    return UnknownNameError(
        f"unknown {kind} {name!r}{did_you_mean(name, choices)} (available: {', '.join(choices)})"
    )
