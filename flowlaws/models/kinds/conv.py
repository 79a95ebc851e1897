"""conv1d(C,K[,stride=S][,padding=P][,bias][,groups=G][,dilation=D]) and conv2d(...):
cross-correlation with zero padding, as torch's Conv1d/Conv2d.

Each of K, S, P and D is one value for every spatial axis or one per axis, written
``3x2`` (a rectangular kernel: torch's ``kernel_size=(3, 2)``); per-axis values that are
all the same are that one value (``conv2d(4,3x3)`` is ``conv2d(4,3)``).

With ``groups`` G the C_in input channels split into G groups; output channel o (of
group g = o // (C / G)) reads only group g's channels: W has shape (C, C_in / G, K...).
``dilation`` D spaces the taps D apart (the kernel spans D (K - 1) + 1 inputs). A
scaling of input channel i is absorbed by the slice of W that reads it (the rows of its
group, column i mod (C_in / G)); no mixing of channels across groups is a symmetry, so a
grouped convolution has unit and layer laws, no matrix law.

A tap that reads only padding (every window puts it outside the input: a 3x3 kernel with
padding 1 on a 1x1 map, a stride-2 one's first tap on a 2x2 map) has a gradient of 0 on
every input, so each of its kernel entries is conserved (`padding_taps`; docs/theory.md 6.6).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer, fmt
from flowlaws.models.symmetry import Family, Rescaling, Term, unfollowed
from flowlaws.validation import on_axes, per_axis, positive_ints

PER_AXIS = ("kernel", "stride", "padding", "dilation")  # one value, or one per spatial axis


@lru_cache(maxsize=256)
def _im2col(kernels: tuple, strides: tuple, paddings: tuple, dilations: tuple, in_shape: tuple):
    """The index plan of a convolution on one sample of ``in_shape`` (C, spatial...), its
    kernel, stride, padding and dilation given per spatial axis: ``gather`` (out
    positions, C * taps) indexes the flat sample, with the padding reading index
    C * prod(spatial) (an appended zero); ``scatter``, the sparse (sample size,
    out * C * taps) 0/1 matrix that adds the columns back (col2im)."""
    import scipy.sparse

    channels, spatial, dims = in_shape[0], tuple(in_shape[1:]), len(kernels)
    size = int(np.prod(in_shape))
    padded = tuple(n + 2 * p for n, p in zip(spatial, paddings, strict=True))
    index = np.full((channels, *padded), size)
    index[(slice(None), *(slice(p, p + n) for n, p in zip(spatial, paddings, strict=True)))] = \
        np.arange(size).reshape(in_shape)
    extents = tuple(d * (k - 1) + 1 for k, d in zip(kernels, dilations, strict=True))
    windows = np.lib.stride_tricks.sliding_window_view(index, extents, axis=tuple(range(1, 1 + dims)))
    every = (*(slice(None, None, s) for s in strides), *(slice(None, None, d) for d in dilations))
    windows = windows[(slice(None), *every)]
    gather = np.moveaxis(windows, 0, dims).reshape(int(np.prod(windows.shape[1:1 + dims])), -1)
    flat = gather.ravel()
    real = flat < size
    scatter = scipy.sparse.csr_matrix((np.ones(int(real.sum())), (flat[real], np.flatnonzero(real))),
                                      shape=(size, flat.size))
    return gather, scatter


def _window(offset: int, stride: int, size: int) -> slice:
    return slice(offset, offset + stride * (size - 1) + 1, stride)


@dataclass(frozen=True)
class Conv(Layer):
    """Convolution (cross-correlation) over ``dims`` spatial axes, zero padding.

    y[n, o, s] = sum_{c, j} W[o, c, j] x_pad[n, c, stride*s + j] + b[o]
    """

    channels: int
    kernel: int | tuple
    stride: int | tuple = 1
    padding: int | tuple = 0
    bias: bool = False
    groups: int = 1
    dilation: int | tuple = 1
    dims: ClassVar[int]
    family: ClassVar[str] = "conv"
    has_weight: ClassVar[bool] = True
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it

    def __post_init__(self):
        for name in PER_AXIS:
            object.__setattr__(self, name, per_axis(self.kind, name, getattr(self, name), self.dims,
                                                    0 if name == "padding" else 1))
        positive_ints(self.kind, channels=self.channels, groups=self.groups)
        if self.channels % self.groups:
            raise InvalidArgument(f"{self.kind}: {self.channels} output channels do not split into "
                                  f"groups={self.groups}; use a divisor of {self.channels}")

    # each of them per spatial axis
    kernels = property(lambda self: on_axes(self.kernel, self.dims))
    strides = property(lambda self: on_axes(self.stride, self.dims))
    paddings = property(lambda self: on_axes(self.padding, self.dims))
    dilations = property(lambda self: on_axes(self.dilation, self.dims))

    def _check(self, in_shape):
        if len(in_shape) != self.dims + 1:
            raise InvalidArgument(
                f"{self.spec} needs input (channels, {'length' if self.dims == 1 else 'height, width'}),"
                f" got shape {tuple(in_shape)}"
            )
        if in_shape[0] % self.groups:
            raise InvalidArgument(f"{self.spec}: {in_shape[0]} input channels do not split into groups="
                                  f"{self.groups}; use a divisor of {in_shape[0]}")

    @property
    def extents(self) -> tuple:
        """The inputs one window spans along each axis: dilation (kernel - 1) + 1."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernels, self.dilations, strict=True))

    def param_shapes(self, in_shape):
        self._check(in_shape)
        shapes = (("W", (self.channels, in_shape[0] // self.groups, *self.kernels)),)
        return (*shapes, ("b", (self.channels,))) if self.bias else shapes

    def out_shape(self, in_shape):
        self._check(in_shape)
        spatial = tuple((n + 2 * p - e) // s + 1 for n, p, e, s in
                        zip(in_shape[1:], self.paddings, self.extents, self.strides, strict=True))
        if min(spatial) < 1:
            raise InvalidArgument(
                f"{self.spec}: kernel {fmt(self.kernel)} does not fit input shape {tuple(in_shape)}; "
                "use a smaller kernel or more padding"
            )
        return (self.channels, *spatial)

    def _pad(self, x):
        if not any(self.paddings):
            return x
        return anp.pad(x, ((0, 0), (0, 0), *((p, p) for p in self.paddings)), mode="constant")

    def _windows(self, out_spatial):
        for offset in itertools.product(*(range(k) for k in self.kernels)):
            yield offset, (slice(None), slice(None), *(
                _window(j * d, s, n) for j, d, s, n in zip(offset, self.dilations, self.strides, out_spatial,
                                                            strict=True)))

    def apply(self, p, x):
        xp = self._pad(x)
        spatial = self.out_shape(x.shape[1:])[1:]
        per_in, per_out = x.shape[1] // self.groups, self.channels // self.groups
        parts = []
        for g in range(self.groups):
            y = 0.0
            for offset, window in self._windows(spatial):
                inputs = xp[(slice(None), slice(g * per_in, (g + 1) * per_in), *window[2:])]
                taps = p[0][(slice(g * per_out, (g + 1) * per_out), slice(None), *offset)]
                y = y + anp.tensordot(inputs, taps, axes=([1], [1]))
            parts.append(y)
        y = anp.moveaxis(anp.concatenate(parts, axis=-1), -1, 1)
        if self.bias:
            y = y + anp.reshape(p[1], (-1,) + (1,) * self.dims)
        return y

    def _columns(self, x):
        """im2col: the windows of the input (padding reads a zero) as one (N * out, C * taps) matrix."""
        gather, _ = self._plan(x.shape[1:])
        flat = np.concatenate([x.reshape(len(x), -1), np.zeros((len(x), 1), x.dtype)], axis=1)
        return flat[:, gather].reshape(len(x) * len(gather), -1)

    def run(self, p, x, frozen=None):
        """One BLAS call: the im2col matrix times the kernel; the matrix is the aux."""
        columns = self._columns(x)
        y = self._correlated(columns, p[0], self.out_shape(x.shape[1:]))
        if self.bias:
            y = y + p[1].reshape((-1,) + (1,) * self.dims)
        return y, columns

    def bound_run(self, p, x, aux):
        return self.run(p, x)

    def bound(self, p, x):
        return self.run(p, x)[0]

    def _reach(self, in_shape) -> tuple[tuple[int, int], ...]:
        """Per spatial axis (m, n): tap j meets index t stride + j dilation - padding of the
        n real entries from each of m positions t (the outputs, reading the input)."""
        return tuple(zip(self.out_shape(in_shape)[1:], in_shape[1:], strict=True))

    def padding_taps(self, in_shape) -> list[tuple[int, int, int]]:
        """(spatial axis, first tap, stop) of each run of taps that meet only padding: tap j
        on an axis of `_reach` (m, n) meets t s + j d - p outside [0, n) for every t < m.
        Its gradient, sum over n, t of dy times the zero it meets, is 0 on every input."""
        runs = []
        for axis, ((m, n), k, s, p, d) in enumerate(zip(self._reach(in_shape), self.kernels, self.strides,
                                                       self.paddings, self.dilations, strict=True)):
            dead = [not any(0 <= t * s + j * d - p < n for t in range(m)) for j in range(k)]
            for is_dead, run in itertools.groupby(range(k), key=dead.__getitem__):
                if is_dead:
                    taps = list(run)
                    runs.append((axis, taps[0], taps[-1] + 1))
        return runs

    def rescalings(self, site):
        """Its rows' rescalings (`Layer.rescalings`), and each kernel entry of a tap that
        meets only padding (`padding_taps`): conserved alone, a linear law per entry (one
        run of taps along an axis: every entry of those taps, the other axes' taps too)."""
        yield from super().rescalings(site)
        kernel = site.views(0, 1, own=(0,))[0]
        shape = self.param_shapes(site.in_shape)[0][1]
        for axis, first, stop in self.padding_taps(site.in_shape):
            units = kernel.size // shape[2 + axis] * (stop - first)
            entries = replace(kernel, axis=2 + axis, units=units, offset=first, span=stop - first)
            yield Rescaling(f"{site.name}.padding{axis}[{first}:{stop}]", units, (Term(entries, 1.0),), False,
                            Family.TRANSLATION, order=1)

    def shift(self, site) -> str:
        """A shift constant over positions stays so without padding (zeros at the edges
        would make the output's shift vary over positions)."""
        return "stops" if any(self.paddings) else "passes"

    def written_shifts(self, site):
        """W[:, j] -> W[:, j] + a_j (every output channel alike) and b -> b + t 1 shift
        every channel alike at each position: a patch stem's shift, which a LayerNorm over
        the channels removes (a ViT's, a ConvNeXt's); a transposed convolution's rows alike
        (`rows`). A grouped one's groups read different inputs: only its bias shifts them alike."""
        rows = self.rows(site, self.channels)
        rows = rows if self.groups == 1 else tuple(v for v in rows if v.ndim == 1)
        return (("channel_shift", rows, True),) if rows else ()

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """dW from the im2col matrix (one BLAS call), dx by col2im (one sparse product)."""
        W = np.abs(p[0]) if magnitude else p[0]
        columns = self._columns(x) if aux is None else aux
        by_group = self._by_group(dy)
        dW = self._kernel_gradient(by_group, columns, W.shape)
        return self._spread(by_group, W, x.shape), ((dW, self._summed(dy)) if self.bias else (dW,))

    def _kernel_gradient(self, by_group, columns, shape):
        """dW: each group's output rows (`_by_group`) times its im2col columns, one batched product."""
        return (by_group.transpose(0, 2, 1) @ self._split(columns)).reshape(shape)

    def _by_group(self, dy):
        """An output-shaped array (N, O, spatial...) as each group's rows, (G, N * out, O / G)."""
        rows = dy.transpose(0, *range(2, self.dims + 2), 1).reshape(-1, self.channels)  # (N * out, O)
        return rows.reshape(len(rows), self.groups, -1).transpose(1, 0, 2)

    def _spread(self, by_group, W, x_shape):
        """A^T dy, the convolution's adjoint (from `_by_group` rows): each output's value times
        the kernel spread back over its input window and summed (col2im: one sparse product)."""
        G = self.groups
        _, scatter = self._plan(x_shape[1:])
        dcolumns = (by_group @ W.reshape(G, self.channels // G, -1))  # (G, N * out, C / G * taps)
        dcolumns = dcolumns.transpose(1, 0, 2).reshape(x_shape[0], -1)  # (N, out * C * taps)
        return (scatter @ dcolumns.T).T.reshape(x_shape)

    def _correlated(self, columns, W, out):
        """The im2col matrix times the kernel as an output (N, O, spatial...) of shape ``out``."""
        y = self._grouped(columns, W).reshape(-1, *out[1:], self.channels)
        return y.transpose(0, self.dims + 1, *range(1, self.dims + 1))  # channels second

    def _summed(self, dy):
        """The bias gradient: dy summed over the batch and the spatial axes."""
        return dy.sum(axis=(0, *range(2, 2 + self.dims)))

    def _plan(self, in_shape):
        """(gather, scatter) of `_im2col` for one sample of ``in_shape``."""
        return _im2col(self.kernels, self.strides, self.paddings, self.dilations, tuple(in_shape))

    def _split(self, columns):
        """(N * out, C * taps) -> (G, N * out, C / G * taps): each group's channels."""
        return columns.reshape(len(columns), self.groups, -1).transpose(1, 0, 2)

    def _grouped(self, columns, W):
        """The im2col matrix times each group's kernel: (N * out, O)."""
        G = self.groups
        if G == 1:
            return columns @ W.reshape(self.channels, -1).T
        y = self._split(columns) @ W.reshape(G, self.channels // G, -1).transpose(0, 2, 1)
        return y.transpose(1, 0, 2).reshape(len(columns), self.channels)

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, None, dy)

    def vjp_magnitude(self, p, x, y, dy):
        return self.pull(p, np.abs(x), y, None, dy, magnitude=True)

    @property
    def pointwise(self) -> bool:
        """One tap, stride 1, no padding: each position is mapped alone."""
        return self.kernel == 1 and self.stride == 1 and self.padding == 0

    def keeps_sums(self, in_shape) -> bool:
        """A bias-free pointwise convolution makes each output row a combination of input
        rows: rows summing to 0 stay so."""
        return self.pointwise and not self.bias

    # --- symmetry: a group's rows read only its own channels ---------------------------
    @property
    def row_blocks(self) -> int:
        return self.groups

    def shared_input(self, site) -> bool:
        """One input channel through a one-tap kernel: each output is w_i times that channel."""
        return site.in_shape[0] == 1 and self.kernel == 1 and not self.bias

    def columns(self, site, path):
        """Input channel i's slice: W[rows of its group, i mod (C_in / G)]."""
        return site.views(1, path.units, own=(0,), interleaved=path.interleaved, groups=self.groups, ranged=path)

    def carry(self, path, site):
        """Its columns absorb a scaling of the input channels (a grouped one's only within
        its groups). A scaling of the last spatial axis passes a pointwise convolution, each
        position being mapped alone (`Layer.mapped_alone`, as a dense layer maps the rows of a
        (T, d) input); any other convolution reads those units as positions, through every
        tap, so only one c for them all is absorbed, by the whole kernel (a layer law)."""
        if path.last_axis and path.units > 1 and not path.interleaved:
            if self.pointwise:
                return self.mapped_alone(path, site)
            whole = path.met(site, site.views(0, 1, own=(0,)), -path.degree)
            return replace(whole, closed=True, uniform=True, linear=False, classes=0)
        if path.span and self.groups > 1:
            unfollowed(site, "groups cut across one branch's channels")
            return None
        end = super().carry(path, site)
        return end if end is None or self.groups == 1 else replace(end.within(self.groups), classes=0)

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) != cls.dims + 1:
            return None
        kernels, dilations, paddings = [], [], []
        for n in shape[1:]:  # each axis its own (a rectangular kernel), shrinking towards one value
            # on an axis of one or two entries, a kernel up to 2 wider: its outer taps may meet
            # only padding (`padding_taps`, docs/theory.md 6.6); the output keeps an entry
            kernel = draw(st.integers(1, n + 2 if n <= 2 else 2))
            dilation = draw(st.integers(1, 2)) if kernel > 1 and n > 2 else 1
            kernels.append(kernel)
            dilations.append(dilation)
            least = max(0, -(-(kernel - n) // 2))  # n + 2 padding - (kernel - 1) >= 1
            paddings.append(draw(st.integers(least, kernel - 1)) if dilation == 1 else 0)
        groups = draw(st.sampled_from([g for g in (1, 2) if shape[0] % g == 0]))
        return cls(groups * draw(context.sizes), tuple(kernels), 1, tuple(paddings), context.bias, groups,
                   tuple(dilations))


@dataclass(frozen=True)
class Conv1d(Conv):
    kind: ClassVar[str] = "conv1d"
    example: ClassVar[str] = "seq:2x6:conv1d(3,2,stride=2,padding=1),relu,flatten,dense(2)"
    dims: ClassVar[int] = 1
    ranks: ClassVar[tuple[int, ...]] = (2,)


@dataclass(frozen=True)
class Conv2d(Conv):
    kind: ClassVar[str] = "conv2d"
    example: ClassVar[str] = "seq:1x5x5:conv2d(2,2,stride=2),relu,flatten,dense(1)"
    dims: ClassVar[int] = 2
    ranks: ClassVar[tuple[int, ...]] = (3,)


