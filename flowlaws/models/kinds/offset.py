"""offset: y = x + P, a learned tensor of the sample's shape (a position embedding:
torch's ``x + self.pos_embedding``, or nanoGPT's ``wpe(arange(T))``).

Linear in x of degree 1: a scaling of the units passes when P's slices of those units
scale alike (they join the path, like a bias), and any shift passes. A bias right before it
shifts each of its units by a at every position, which P's slice of the unit absorbs:
b_i - sum P[unit i] is conserved (a translation law).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import BIASES, Family, Rescaling, Term, sample_shifts


@dataclass(frozen=True)
class Offset(Layer):
    """y = x + P with P of the sample's shape."""

    kind: ClassVar[str] = "offset"
    example: ClassVar[str] = "seq:3x2:dense(3),offset,relu,flatten,dense(2)"
    family: ClassVar[str] = "pos"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it

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
        return path.met(site, site.views(axis, path.units, interleaved=path.interleaved, ranged=path), path.degree)

    def rescalings(self, site):
        """(b_i + a, P[unit i] - a) for the bias b of the layer right before, whose unit i
        it shifts at every position: the law b_i - sum P[unit i] (order 1); the same for
        its rows' sums where they shift it so (`Layer.bias_rows`: a token embedding, W -> W
        + a 1^T on one-hot rows); and the laws of the shifts P makes (`written_shifts`)."""
        yield from sample_shifts(site)
        if site.position == 0:
            return
        before = replace(site, position=site.position - 1)
        layer = before.layer
        if not layer.emits:
            return
        units = layer.units_out(before)
        axis = len(site.in_shape) - 1 if layer.rows_on_last_axis(before) else 0
        offsets = tuple(Term(v, -1.0) for v in site.views(axis, units))
        for shifting in layer.bias_rows(before):  # a bias's law is named by the layers, a weight's by it too
            weight = "" if shifting.name.endswith(BIASES) else "." + shifting.name.rsplit(".", 1)[1]
            yield Rescaling(f"{before.name}/{site.name}{weight}", units, (Term(shifting, 1.0), *offsets), False,
                            Family.TRANSLATION, order=1)

    def written_shifts(self, site):
        """P[t] -> P[t] + c_t 1: a shift of position t's features, each position by its own
        amount (a ViT's, a GPT's position embedding before pre-norm blocks)."""
        return (("sample_shift", site.views(0, int(np.prod(site.in_shape[:-1]))), False),)

    def shift(self, site) -> str:
        return "passes"

    def feature_shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        return "passes"

    def channel_shift(self, site) -> str:
        return "passes"

    @classmethod
    def draw(cls, draw, shape, context):
        return cls()
