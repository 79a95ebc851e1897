"""scale: y = x * g, a learned gain per feature of the last axis (ConvNeXt's and CaiT's
layer scale, ``self.gamma * x``).

A positive diagonal weight layer: g_i scales output unit i (its row), and absorbs a
scaling of input unit i (its column), so ||W_i||^2 - g_i^2 is a law of the layer before.
No mixing of units, and no shift, passes a unit's gain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class Scale(Layer):
    """y = x * g with g of the last axis's length."""

    kind: ClassVar[str] = "scale"
    example: ClassVar[str] = "seq:3x4:dense(3),relu,scale,dense(2),mean(last),dense(1)"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    reads_last_axis: ClassVar[bool] = True
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it

    def param_shapes(self, in_shape):
        if len(in_shape) < 1:
            raise InvalidArgument("scale needs an input with at least one axis")
        return (("gamma", (in_shape[-1],)),)

    def apply(self, p, x):
        return x * p[0]

    def vjp(self, p, x, y, dy):
        return dy * p[0], (np.sum(dy * x, axis=tuple(range(x.ndim - 1))),)

    # --- symmetry declarations --------------------------------------------------------
    @property
    def emits(self) -> bool:
        return True

    @property
    def absorbs(self) -> bool:
        return True

    @property
    def mixes(self) -> bool:
        return False  # diagonal: a per-unit scaling, never a mixing of units

    def units_out(self, site) -> int:
        return site.in_shape[-1]

    def rows_on_last_axis(self, site) -> bool:
        return len(site.in_shape) > 1

    def columns(self, site, path):
        """Input unit i is read by g_i alone."""
        return site.views(0, path.units, interleaved=path.interleaved, ranged=path)

    def carry(self, path, site):
        """g absorbs a scaling of the last axis, unit by unit (a diagonal: no mixing, so no
        matrix law); a scaling of the other axis of a (T, d) input passes (each of its rows
        is multiplied by g alone)."""
        if path.on_axis(True, len(site.in_shape)):
            return replace(path.absorbed(site), linear=False, classes=0)  # no mixing either
        return path.times(1.0, True, shifts=False)

    def row_scale(self, site) -> str:
        """g scales the last axis feature by feature: a factor per row passes."""
        return "passes"

    @classmethod
    def draw(cls, draw, shape, context):
        return cls()
