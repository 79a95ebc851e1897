"""The library's exceptions: one root, and a ValueError for bad input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FlowlawsError(Exception):
    """Root of every error flowlaws raises on purpose."""


class InvalidArgument(FlowlawsError, ValueError):
    """A value a user passed is wrong; the message names it and the fix."""


class Unrepresentable(FlowlawsError):
    """A value of a check overflowed float64 or became NaN: the case is outside what
    float64 can decide, so it is ``invalid``, never a verdict."""


def unknown(what: str, name: str, choices: Iterable[str]) -> InvalidArgument:
    """`InvalidArgument` for an unknown name, with a "did you mean" hint.

    >>> str(unknown("activation", "rleu", ["relu", "tanh"]))
    "unknown activation 'rleu'; did you mean 'relu'? (choices: relu, tanh)"
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return InvalidArgument(f"unknown {what} {name!r}{hint} (choices: {', '.join(choices)})")
