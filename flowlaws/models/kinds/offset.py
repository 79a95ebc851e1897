"""offset: y = x + P, a learned tensor of the sample's shape (a position embedding:
torch's ``x + self.pos_embedding``, or nanoGPT's ``wpe(arange(T))``).

Linear in x of degree 1: a scaling of the units passes when P's slices of those units
scale alike (they join the path, like a bias), and any shift passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Term


@dataclass(frozen=True)
class Offset(Layer):
    """y = x + P with P of the sample's shape."""

    kind: ClassVar[str] = "offset"
    example: ClassVar[str] = "seq:3x2:dense(3),offset,relu,flatten,dense(2)"
    family: ClassVar[str] = "pos"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)

    def param_shapes(self, in_shape):
        return (("P", tuple(in_shape)),)

    def apply(self, p, x):
        return x + p[0]

    def vjp(self, p, x, y, dy):
        return dy, (np.sum(dy, axis=0),)

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """P's slices of the scaled units scale with them (exponent: the path's degree)."""
        axis = len(site.in_shape) - 1 if path.last_axis else 0
        terms = tuple(Term(view, path.degree) for view in site.views(axis, path.units, interleaved=path.interleaved))
        return replace(path, terms=path.terms + terms, layers=(*path.layers, site.name))

    def shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        return "passes"

    @classmethod
    def draw(cls, draw, shape, context):
        return cls()
