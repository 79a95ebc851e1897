"""conv1d(C,K[,stride=S][,padding=P][,bias][,groups=G][,dilation=D]) and conv2d(...):
cross-correlation with zero padding, as torch's Conv1d/Conv2d.

With ``groups`` G the C_in input channels split into G groups; output channel o (of
group g = o // (C / G)) reads only group g's channels: W has shape (C, C_in / G, K...).
``dilation`` D spaces the taps D apart (the kernel spans D (K - 1) + 1 inputs). A
scaling of input channel i is absorbed by the slice of W that reads it (the rows of its
group, column i mod (C_in / G)); no mixing of channels across groups is a symmetry, so a
grouped convolution has unit and layer laws, no matrix law.
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
from flowlaws.models.layer import Layer
from flowlaws.validation import at_least, positive_ints


@lru_cache(maxsize=256)
def _im2col(dims: int, kernel: int, stride: int, padding: int, in_shape: tuple, dilation: int = 1):
    """The index plan of a convolution on one sample of ``in_shape`` (C, spatial...):
    ``gather`` (out positions, C * kernel^dims) indexes the flat sample, with the padding
    reading index C * prod(spatial) (an appended zero); ``scatter``, the sparse
    (sample size, out * C * kernel^dims) 0/1 matrix that adds the columns back (col2im)."""
    import scipy.sparse

    channels, spatial = in_shape[0], tuple(in_shape[1:])
    size = int(np.prod(in_shape))
    padded = tuple(n + 2 * padding for n in spatial)
    index = np.full((channels, *padded), size)
    index[(slice(None), *(slice(padding, padding + n) for n in spatial))] = np.arange(size).reshape(in_shape)
    extent = dilation * (kernel - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(index, (extent,) * dims, axis=tuple(range(1, 1 + dims)))
    windows = windows[(slice(None), *(slice(None, None, stride),) * dims, *(slice(None, None, dilation),) * dims)]
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
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = False
    groups: int = 1
    dilation: int = 1
    dims: ClassVar[int]
    family: ClassVar[str] = "conv"
    has_weight: ClassVar[bool] = True

    def __post_init__(self):
        positive_ints(self.kind, channels=self.channels, kernel=self.kernel, stride=self.stride, groups=self.groups,
                 dilation=self.dilation)
        if self.channels % self.groups:
            raise InvalidArgument(f"{self.kind}: {self.channels} output channels do not split into "
                                  f"groups={self.groups}; use a divisor of {self.channels}")
        if not isinstance(self.padding, int | np.integer):
            raise InvalidArgument(f"{self.kind}: padding must be an integer >= 0, got {self.padding!r}")
        at_least(self.kind, "padding", self.padding, 0)

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
    def extent(self) -> int:
        """The inputs one window spans along each axis: dilation (kernel - 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    def param_shapes(self, in_shape):
        self._check(in_shape)
        shapes = (("W", (self.channels, in_shape[0] // self.groups, *(self.kernel,) * self.dims)),)
        return (*shapes, ("b", (self.channels,))) if self.bias else shapes

    def out_shape(self, in_shape):
        self._check(in_shape)
        spatial = tuple((n + 2 * self.padding - self.extent) // self.stride + 1 for n in in_shape[1:])
        if min(spatial) < 1:
            raise InvalidArgument(
                f"{self.spec}: kernel {self.kernel} does not fit input shape {tuple(in_shape)}; "
                "use a smaller kernel or more padding"
            )
        return (self.channels, *spatial)

    def _pad(self, x):
        if not self.padding:
            return x
        return anp.pad(x, ((0, 0), (0, 0), *((self.padding, self.padding),) * self.dims), mode="constant")

    def _windows(self, out_spatial):
        for offset in itertools.product(range(self.kernel), repeat=self.dims):
            yield offset, (slice(None), slice(None), *(
                _window(j * self.dilation, self.stride, n) for j, n in zip(offset, out_spatial, strict=True)))

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
        """im2col: the windows of the input (padding reads a zero) as one (N * out, C * kernel^dims) matrix."""
        gather, _ = _im2col(self.dims, self.kernel, self.stride, self.padding, x.shape[1:], self.dilation)
        flat = np.concatenate([x.reshape(len(x), -1), np.zeros((len(x), 1), x.dtype)], axis=1)
        return flat[:, gather].reshape(len(x) * len(gather), -1)

    def run(self, p, x, frozen=None):
        """One BLAS call: the im2col matrix times the kernel; the matrix is the aux."""
        columns = self._columns(x)
        out = self.out_shape(x.shape[1:])
        y = self._grouped(columns, p[0]).reshape(len(x), *out[1:], self.channels)
        y = y.transpose(0, self.dims + 1, *range(1, self.dims + 1))  # channels second
        if self.bias:
            y = y + p[1].reshape((-1,) + (1,) * self.dims)
        return y, columns

    def bound_run(self, p, x, aux):
        return self.run(p, x)

    def bound(self, p, x):
        return self.run(p, x)[0]

    def shift(self, site) -> str:
        """A shift constant over positions stays so without padding (zeros at the edges
        would make the output's shift vary over positions)."""
        return "stops" if self.padding else "passes"

    def written_shifts(self, site):
        """W[:, j] -> W[:, j] + a_j (every output channel alike) and b -> b + t 1 shift
        every channel alike at each position: a patch stem's shift, which a LayerNorm over
        the channels removes (a ViT's, a ConvNeXt's). A grouped one's groups read different
        inputs: only its bias shifts them alike."""
        rows = site.views(0, self.channels)
        rows = rows if self.groups == 1 else tuple(v for v in rows if v.ndim == 1)
        return (("channel_shift", rows, True),) if rows else ()

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """dW from the im2col matrix (one BLAS call), dx by col2im (one sparse product)."""
        W = np.abs(p[0]) if magnitude else p[0]
        columns = self._columns(x) if aux is None else aux
        rows = dy.transpose(0, *range(2, self.dims + 2), 1).reshape(-1, self.channels)  # (N * out, O)
        G = self.groups
        by_group = rows.reshape(len(rows), G, -1).transpose(1, 0, 2)  # (G, N * out, O / G)
        dW = (by_group.transpose(0, 2, 1) @ self._split(columns)).reshape(W.shape)
        _, scatter = _im2col(self.dims, self.kernel, self.stride, self.padding, x.shape[1:], self.dilation)
        dcolumns = (by_group @ W.reshape(G, self.channels // G, -1))  # (G, N * out, C / G * kernel^dims)
        dcolumns = dcolumns.transpose(1, 0, 2).reshape(len(x), -1)  # (N, out * C * kernel^dims)
        dx = (scatter @ dcolumns.T).T.reshape(x.shape)
        batch_and_space = (0, *range(2, 2 + self.dims))
        return dx, ((dW, dy.sum(axis=batch_and_space)) if self.bias else (dW,))

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
        return self.kernel == 1 and self.stride == 1 and not self.padding

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
        return site.views(1, path.units, own=(0,), interleaved=path.interleaved, groups=self.groups)

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
        end = super().carry(path, site)
        return end if end is None or self.groups == 1 else replace(end.within(self.groups), classes=0)

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) != cls.dims + 1:
            return None
        kernel = draw(st.integers(1, min(2, *shape[1:])))
        dilation = draw(st.integers(1, 2)) if kernel > 1 and min(shape[1:]) > 2 else 1
        groups = draw(st.sampled_from([g for g in (1, 2) if shape[0] % g == 0]))
        padding = draw(st.integers(0, kernel - 1)) if dilation == 1 else 0
        return cls(groups * draw(context.sizes), kernel, 1, padding, context.bias, groups, dilation)


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


