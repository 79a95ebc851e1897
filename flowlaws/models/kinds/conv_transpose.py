"""conv_transpose1d(C,K[,stride=S][,padding=P][,bias][,groups=G][,dilation=D][,output_padding=Q])
and conv_transpose2d(...): the transposed convolution (a learned upsampling), as torch's
ConvTranspose1d/2d.

It is the adjoint of a convolution A (kernel K, stride S, padding P, dilation D, groups G)
from its output's shape to its input's: y = A^T x + b, input position i scattering
W[c, o, j] x[c, i] to output position S i + D j - P, with W of torch's shape (C_in, C / G,
K...), which is A's own. Along each axis the output has (L - 1) S - 2P + D (K - 1) + Q + 1
positions (Q < S extra ones at the end). Its numbers are the convolution's sweeps swapped:
the forward pass is A's col2im, the input gradient A's forward pass, the kernel gradient
A's with x and dy exchanged.

Symmetry: a convolution's, rows and columns swapped. Output channel o's rows are W[:, o]
(its group's input channels) and b[o]; input channel c's column is W[c]. A shift of the
input constant over positions leaves a shift that varies with the output position (each
position receives its own taps), so only a pointwise one passes it. Two families are not
derived (its laws stay true; their count falls short; docs/theory.md 6): without a bias,
taps that never meet at an output position (a stride) split into classes that scale
alone; and an output position that no tap reaches (K < S, a dilation sharing a factor with
S, Q at the end) holds the bias alone, the same for every sample, so a later weight layer
trades weight between such positions (W[:, a] - W[:, b]). laws-complete sets both aside
(`NO_TAP_CLASSES`), and strategies draw K >= S, D = 1, Q = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.conv import Conv, Conv1d, Conv2d
from flowlaws.models.layer import fmt
from flowlaws.validation import on_axes, per_axis


@dataclass(frozen=True)
class ConvTranspose(Conv):
    """y[n, o, S i + D j - P] += sum_c W[c, o, j] x[n, c, i], plus b[o]."""

    output_padding: int | tuple = 0
    family: ClassVar[str] = "convt"
    adjoint_kind: ClassVar[type[Conv]]

    def __post_init__(self):
        super().__post_init__()
        padding = per_axis(self.kind, "output_padding", self.output_padding, self.dims, 0)
        object.__setattr__(self, "output_padding", padding)
        if any(q >= s for q, s in zip(self.output_paddings, self.strides, strict=True)):
            raise InvalidArgument(f"{self.kind}: output_padding={fmt(padding)} must be smaller than the stride "
                                  f"{fmt(self.stride)} on every axis")

    output_paddings = property(lambda self: on_axes(self.output_padding, self.dims))

    def _adjoint(self, in_shape):
        """A: the convolution from this layer's output to its input (its channels: ours in)."""
        return self.adjoint_kind(int(in_shape[0]), self.kernel, self.stride, self.padding, False, self.groups,
                                 self.dilation)

    def param_shapes(self, in_shape):
        self._check(in_shape)
        shapes = (("W", (in_shape[0], self.channels // self.groups, *self.kernels)),)
        return (*shapes, ("b", (self.channels,))) if self.bias else shapes

    def out_shape(self, in_shape):
        self._check(in_shape)
        spatial = tuple((n - 1) * s - 2 * p + e + q for n, s, p, e, q in
                        zip(in_shape[1:], self.strides, self.paddings, self.extents, self.output_paddings,
                            strict=True))
        if min(spatial) < 1:
            raise InvalidArgument(f"{self.spec}: padding {fmt(self.padding)} crops all of the output of input "
                                  f"shape {tuple(in_shape)}; use less padding")
        return (self.channels, *spatial)

    def _reach(self, in_shape) -> tuple[tuple[int, int], ...]:
        """Per spatial axis (m, n): tap j places each of the m inputs t at t S + j D - P,
        of the n output positions (`Conv.padding_taps`: a tap that reaches none)."""
        return tuple(zip(in_shape[1:], self.out_shape(in_shape)[1:], strict=True))

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, x):
        """Each tap's products placed S apart from D j, summed, the padding cropped."""
        W, groups = p[0], self.groups
        per_in = x.shape[1] // groups
        out = self.out_shape(x.shape[1:])[1:]
        parts = []
        for g in range(groups):
            inputs = x[:, g * per_in:(g + 1) * per_in]
            y = 0.0
            for offset in np.ndindex(*self.kernels):
                taps = W[(slice(g * per_in, (g + 1) * per_in), slice(None), *offset)]  # (C_in / G, C / G)
                y = y + self._placed(anp.moveaxis(anp.tensordot(inputs, taps, axes=([1], [0])), -1, 1), offset)
            parts.append(y[(slice(None), slice(None), *(slice(pad, pad + n) for pad, n in
                                                         zip(self.paddings, out, strict=True)))])
        y = anp.concatenate(parts, axis=1)
        if self.bias:
            y = y + anp.reshape(p[1], (-1,) + (1,) * self.dims)
        return y

    def _placed(self, z, offset):
        """One tap's products z (N, C, L...) at output positions S i + D j of the uncropped
        output: S - 1 zeros after each entry, D j before, the rest after."""
        for axis, (j, s, d, e, q) in enumerate(zip(offset, self.strides, self.dilations, self.extents,
                                                   self.output_paddings, strict=True), start=2):
            n = z.shape[axis]
            if s > 1:
                zeros = anp.zeros((*z.shape[:axis + 1], s - 1, *z.shape[axis + 1:]))
                z = anp.concatenate([anp.expand_dims(z, axis + 1), zeros], axis=axis + 1)
                z = anp.reshape(z, (*z.shape[:axis], n * s, *z.shape[axis + 2:]))
                z = z[(slice(None),) * axis + (slice(0, (n - 1) * s + 1),)]
            widths = [(0, 0)] * z.ndim
            widths[axis] = (d * j, e - 1 - d * j + q)
            z = anp.pad(z, widths, mode="constant")
        return z

    def run(self, p, x, frozen=None):
        """A^T x: the adjoint's col2im of x (one batched product, one sparse product)."""
        adjoint = self._adjoint(x.shape[1:])
        y = adjoint._spread(adjoint._by_group(x), p[0], (len(x), *self.out_shape(x.shape[1:])))
        if self.bias:
            y = y + p[1].reshape((-1,) + (1,) * self.dims)
        return y, None

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """dx = A dy (the adjoint's forward pass), dW the adjoint's kernel gradient with x
        and dy exchanged: both from the im2col matrix of dy."""
        W = np.abs(p[0]) if magnitude else p[0]
        adjoint = self._adjoint(x.shape[1:])
        columns = adjoint._columns(dy)
        dx = adjoint._correlated(columns, W, x.shape[1:])
        dW = adjoint._kernel_gradient(adjoint._by_group(x), columns, W.shape)
        return dx, ((dW, self._summed(dy)) if self.bias else (dW,))

    # --- symmetry: a convolution's, rows and columns swapped ---------------------------
    @property
    def pointwise(self) -> bool:
        return super().pointwise and not any(self.output_paddings)

    def shift(self, site) -> str:
        """A shift constant over positions reaches each output position through its own taps:
        it stays constant over positions only through a pointwise one."""
        return "passes" if self.pointwise else "stops"

    def rows(self, site, units, interleaved: bool = False):
        """Output channel o: W[:, o] (its group's input channels) and b[o]."""
        return (site.views(1, units, own=(0,), interleaved=interleaved, groups=self.groups)
                + site.views(0, units, own=(1,), interleaved=interleaved))

    def columns(self, site, path):
        """Input channel c's slice: W[c] (it reaches its group's outputs only)."""
        return site.views(0, path.units, own=(0,), interleaved=path.interleaved, ranged=path)

    @classmethod
    def draw(cls, draw, shape, context):
        """K >= S, D = 1, Q = 0: every output position receives a tap (module docstring); on
        an axis of one or two entries a kernel up to 3 wide, whose outer taps may reach no
        kept output (`padding_taps`, docs/theory.md 6.6)."""
        if len(shape) != cls.dims + 1:
            return None
        kernels, strides, paddings = [], [], []
        for n in shape[1:]:
            kernel = draw(st.integers(1, 3 if n <= 2 else 2))
            stride = draw(st.integers(1, kernel))
            kernels.append(kernel)
            strides.append(stride)
            paddings.append(draw(st.integers(0, min(kernel - 1, ((n - 1) * stride + kernel - 1) // 2))))
        groups = draw(st.sampled_from([g for g in (1, 2) if shape[0] % g == 0]))
        return cls(groups * draw(context.sizes), tuple(kernels), tuple(strides), tuple(paddings), context.bias,
                   groups)


@dataclass(frozen=True)
class ConvTranspose1d(ConvTranspose):
    kind: ClassVar[str] = "conv_transpose1d"
    example: ClassVar[str] = "seq:2x3:conv_transpose1d(2,2,stride=2,bias),relu,flatten,dense(2)"
    dims: ClassVar[int] = 1
    ranks: ClassVar[tuple[int, ...]] = (2,)
    adjoint_kind: ClassVar[type[Conv]] = Conv1d


@dataclass(frozen=True)
class ConvTranspose2d(ConvTranspose):
    kind: ClassVar[str] = "conv_transpose2d"
    example: ClassVar[str] = "seq:1x2x2:conv_transpose2d(2,2,stride=2,bias),relu,flatten,dense(1)"
    dims: ClassVar[int] = 2
    ranks: ClassVar[tuple[int, ...]] = (3,)
    adjoint_kind: ClassVar[type[Conv]] = Conv2d
