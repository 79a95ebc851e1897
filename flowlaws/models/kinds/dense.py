"""dense(N[,bias]): y = x W^T + b on the last axis, as torch's Linear.

W has shape (N, d) for inputs (..., d): a flat sample, or each position of a (T, d)
sequence alike (position-wise). Its rows (and bias) scale output unit i; its columns
absorb a scaling of input feature j. A scaling of the other axis of a (T, d) input
(a position, or a convolution's channel) passes a bias-free dense layer unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.onehot import OneHot
from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Centred, Family, Rescaling, Term
from flowlaws.validation import positive_ints


@dataclass(frozen=True)
class Dense(Layer):
    """y = x W^T + b with W of shape (units, fan_in), on the last axis."""

    units: int
    bias: bool = False
    kind: ClassVar[str] = "dense"
    example: ClassVar[str] = "seq:3x4:dense(3,bias),relu,dense(2),mean(last),dense(1)"
    ranks: ClassVar[tuple[int, ...]] = (1, 2)
    has_weight: ClassVar[bool] = True
    reads_last_axis: ClassVar[bool] = True
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it

    def __post_init__(self):
        positive_ints("dense", units=self.units)

    @property
    def channels(self) -> int:
        return self.units

    def param_shapes(self, in_shape):
        if len(in_shape) < 1:
            raise InvalidArgument(f"dense({self.units}) needs an input with at least one axis")
        shapes = (("W", (self.units, in_shape[-1])),)
        return (*shapes, ("b", (self.units,))) if self.bias else shapes

    def out_shape(self, in_shape):
        return (*tuple(in_shape)[:-1], self.units)

    def apply(self, p, x):
        y = anp.dot(x, p[0].T)
        return y + p[1] if self.bias else y

    def run(self, p, x, frozen=None):
        """Plain numpy (the sweeps never differentiate through it)."""
        y = x @ p[0].T
        return (y + p[1] if self.bias else y), None

    def vjp(self, p, x, y, dy):
        rows, inputs = (dy, x) if dy.ndim == 2 else (dy.reshape(-1, self.units), x.reshape(-1, x.shape[-1]))
        dW = rows.T @ inputs
        return dy @ p[0], ((dW, rows.sum(axis=0)) if self.bias else (dW,))

    # --- symmetry ---------------------------------------------------------------------
    def rows_on_last_axis(self, site) -> bool:
        return len(site.in_shape) > 1

    def shared_input(self, site) -> bool:
        return site.in_shape[-1] == 1 and not self.bias

    def shifted_rows(self, site):
        return self.rows(site, self.units)

    def bias_rows(self, site):
        """Its bias; and, reading one-hot rows (`OneHot`: each sums to 1), its weight's rows,
        W -> W + a 1^T adding a at every position."""
        bias = super().bias_rows(site)
        return [*bias, site.views(0, self.units, own=(0,))[0]] if OneHot.before(site) else bias

    def rescalings(self, site):
        """Its rows' rescalings (`Layer.rescalings`); reading one-hot rows with a bias, the
        shift its rows' sums and its bias trade: sum_v W[i, v] - b_i (a translation law)."""
        yield from super().rescalings(site)
        if self.bias and OneHot.before(site):
            rows, bias = site.views(0, self.units)
            yield Rescaling(f"{site.name}.W/{site.name}.b", self.units, (Term(rows, 1.0), Term(bias, -1.0)), False,
                            Family.TRANSLATION, order=1)

    def written_shifts(self, site):
        """Its rows shift every output feature alike (the last axis). On (T, d) its bias b_i
        is added to feature i at every position: a shift uniform over the first axis, each
        unit's its own (after `moveaxis` back, the MLP-Mixer's token-mixing bias b_i shifts
        token i's features)."""
        rows = self.shifted_rows(site)
        biases = tuple(v for v in rows if v.name.endswith(".b"))
        own = (("channel_shift", biases, False),) if biases and len(site.in_shape) == 2 else ()
        return (("sample_shift", rows, True), *own)

    def carry(self, path, site):
        """Its columns absorb a scaling of the features; a scaling of the other axis of a
        (T, d) input passes, each row being mapped alone (`Layer.mapped_alone`)."""
        if path.on_axis(True, len(site.in_shape)):
            return path.absorbed(site)
        return self.mapped_alone(path, site)

    def absorbs_whole(self, path, site):
        """A scaling of the other axis of a (T, d) input (which `carry` passes, each row
        mapped alone) with one c for every unit scales the whole input: W absorbs it whole,
        a layer law (the MLP-Mixer's token-mixing LayerNorm, whose gain and shift scale its
        whole output, against the token MLP's first weight, which reads the transposed
        sequence: ||gamma||^2 + ||beta||^2 - ||W||^2; no mixing, the rows being mapped alone)."""
        ndim = len(site.in_shape)
        if (path.on_axis(True, ndim) or path.span or path.summed or path.projective or path.interleaved
                or path.family is not Family.RESCALE or path.units != site.in_shape[0]):
            return None
        whole = path.met(site, site.views(0, 1, own=(0,)), -path.degree)
        return replace(whole, closed=True, uniform=True, linear=False, shifts=False, classes=0, blocks=1)

    def centred_layout(self, in_shape, groups: Centred) -> Centred | None:
        """Sums over the first axis that are 0 (interleaved groups, `symmetry.Centred`)
        stay 0 through a map of each row without a bias: one group per output entry of a row."""
        if groups.interleaved and not self.bias and len(in_shape) > 1 and groups.count == math.prod(in_shape[1:]):
            return Centred(math.prod(self.out_shape(in_shape)[1:]), interleaved=True)
        return super().centred_layout(in_shape, groups)

    def row_scale(self, site) -> str:
        """Each row mapped alone, linearly: a factor per row passes, unless a bias is added."""
        return "stops" if self.bias else "passes"

    def centered(self, site, groups):
        """W[k, group g] for every row k and group g of a flat input (its block, or its
        interleaved entries); on a (T, d) input each row reads one contiguous group (a
        position's features): the row sums."""
        if len(site.in_shape) == 1:
            return site.views(0, self.units * groups.count, own=(0,), interleaved=groups.interleaved)
        return () if groups.interleaved else site.views(0, self.units, own=(0,))

    @classmethod
    def draw(cls, draw, shape, context):
        return cls(draw(context.sizes), context.bias) if len(shape) in cls.ranks else None


