"""Argument checks, one place for each rule (Hypothesis' ``validation.py`` is the model).

Each check names the owner and the argument, states the rule, shows the bad value, and
returns the value it accepts; the error class is InvalidArgument unless the caller passes
its own (the strategies raise one that is a Hypothesis InvalidArgument too).

>>> positive_int("dense", "units", 0)
Traceback (most recent call last):
    ...
flowlaws.errors.InvalidArgument: dense: units must be a positive integer, got 0
"""

from __future__ import annotations

import numpy as np

from flowlaws.errors import InvalidArgument


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def positive_int(owner: str, name: str, value, error=InvalidArgument) -> int:
    """An integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise error(f"{_prefix(owner)}{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_ints(owner: str, **values) -> None:
    """Every value an integer >= 1."""
    for name, value in values.items():
        positive_int(owner, name, value)


def per_axis(owner: str, name: str, value, dims: int, low: int = 1):
    """An integer >= ``low`` for every one of ``dims`` axes: one int when the axes agree,
    else a tuple of one per axis (a rectangular kernel, written 3x2 in a spec)."""
    values = tuple(value) if isinstance(value, tuple | list) else (value,)
    if len(values) not in (1, dims) or not all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                                               for v in values):
        per = f" or {dims} (one per axis, written {'x'.join(['2'] * dims)})" if dims > 1 else ""
        raise InvalidArgument(f"{_prefix(owner)}{name} must be an integer{per}, got {value!r}")
    if min(values) < low:
        rule = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise InvalidArgument(f"{_prefix(owner)}{name} must be {rule} on every axis, got {'x'.join(map(str, values))}")
    return int(values[0]) if len(set(values)) == 1 else tuple(int(v) for v in values)


def on_axes(value, dims: int) -> tuple:
    """A `per_axis` value (or torch's int or tuple) as one int per axis."""
    return tuple(value) if isinstance(value, tuple | list) else (value,) * dims


def at_least(owner: str, name: str, value, low: float, error=InvalidArgument) -> float:
    """A finite number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value) \
            or value < low:
        raise error(f"{_prefix(owner)}{name} must be a finite number >= {low:g}, got {value!r}")
    return float(value)


def positive(owner: str, name: str, value, error=InvalidArgument) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value) \
            or value <= 0:
        raise error(f"{_prefix(owner)}{name} must be finite and > 0, got {value!r}")
    return float(value)


def fraction(owner: str, name: str, value, error=InvalidArgument) -> float:
    """A number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not 0 <= value < 1:
        raise error(f"{_prefix(owner)}{name} must be in [0, 1), got {value!r}")
    return float(value)


def one_of(owner: str, name: str, value, choices, error=InvalidArgument):
    """One of ``choices``."""
    if value not in choices:
        raise error(f"{_prefix(owner)}{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
