"""Rescaling symmetries of a model: which parameter slices scale together.

A `Rescaling` says: for every unit i and c > 0, multiplying the incoming slices of
unit i by c and the outgoing slices by c^-degree leaves the network function
unchanged (positive homogeneity, THEORY 1 and 3.4). When the boundary is linear,
any invertible mixing G of the units is a symmetry (incoming -> G in,
outgoing -> G^-T out; THEORY 2, Thm 2.2). Models report these facts about their
structure; `flowlaws.invariants` turns them into conservation laws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """Parameter ``param`` seen as a (units, rest) matrix: row i is unit i's slice.

    ``axis`` is the unit axis. When the axis is longer than ``units`` (a dense layer
    after Flatten), unit i owns the i-th contiguous block of it.
    """

    param: int
    name: str
    axis: int
    units: int

    def rows(self, params):
        """The (units, rest) matrix of this slice (works on autograd boxes too)."""
        import autograd.numpy as anp

        return anp.reshape(anp.moveaxis(params[self.param], self.axis, 0), (self.units, -1))

    def describe(self, ndim: int, size: int) -> str:
        index = ["i" if a == self.axis else ":" for a in range(ndim)]
        block = "" if size == self.units else f" (block i of {size // self.units})"
        return f"{self.name}[{','.join(index)}]{block}"


@dataclass(frozen=True)
class Rescaling:
    """Units whose incoming slices scale by c and outgoing slices by c^-degree."""

    name: str
    units: int
    incoming: tuple[View, ...]
    outgoing: tuple[View, ...]
    degree: float
    linear: bool


def flatten(params) -> np.ndarray:
    """Params tuple -> one float64 vector (for integrators)."""
    return np.concatenate([np.ravel(p) for p in params]) if params else np.zeros(0)


def unflatten(vector: np.ndarray, shapes) -> tuple[np.ndarray, ...]:
    """Inverse of `flatten` for the given shapes."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(vector[start : start + size].reshape(shape))
        start += size
    return tuple(out)
