"""maxpool1d(S[,stride=T][,padding=P]), avgpool1d(...), maxpool2d(...), avgpool2d(...):
pooling over windows of S taps every T positions (by default T = S: windows that tile the
input), the input padded by P on each side (-inf for a max, 0 for a mean, which counts the
padding: torch's ``count_include_pad``). Each of S, T, P is one value for every spatial
axis or one per axis (``maxpool2d(2x1)``, torch's ``MaxPool2d((2, 1))``); a ResNet's stem
pool is ``maxpool2d(3,stride=2,padding=1)``. Homogeneous of degree 1 per channel (a mean
is linear), so a channel's scaling passes either; a padded mean stops a shift."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.conv import _im2col
from flowlaws.models.layer import Layer, fmt
from flowlaws.validation import on_axes, per_axis


@dataclass(frozen=True)
class Pool(Layer):
    """Pooling over windows of ``size`` every ``stride`` (None: the size) positions, the
    input padded by ``padding`` (per axis each); homogeneous of degree 1."""

    size: int | tuple
    stride: int | tuple | None = None
    padding: int | tuple = 0
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it
    dims: ClassVar[int]
    reduce: ClassVar[str]
    family: ClassVar[str] = "pool"

    def __post_init__(self):
        object.__setattr__(self, "size", per_axis(self.kind, "size", self.size, self.dims))
        stride = None if self.stride is None else per_axis(self.kind, "stride", self.stride, self.dims)
        object.__setattr__(self, "stride", None if stride is None or on_axes(stride, self.dims) == self.sizes
                           else stride)
        object.__setattr__(self, "padding", per_axis(self.kind, "padding", self.padding, self.dims, 0))
        if any(2 * p > s for p, s in zip(self.paddings, self.sizes, strict=True)):
            raise InvalidArgument(f"{self.kind}: padding {fmt(self.padding)} is more than half the window "
                                  f"{fmt(self.size)}; every window must read the input (torch's rule)")

    # each of them per spatial axis
    sizes = property(lambda self: on_axes(self.size, self.dims))
    strides = property(lambda self: on_axes(self.size if self.stride is None else self.stride, self.dims))
    paddings = property(lambda self: on_axes(self.padding, self.dims))

    @property
    def tiled(self) -> bool:
        """Windows that tile the input: stride = size, no padding."""
        return self.stride is None and not any(self.paddings)

    def out_shape(self, in_shape):
        axes = list(zip(in_shape[1:], self.sizes, self.strides, self.paddings, strict=False))
        if len(in_shape) != self.dims + 1 or any(n + 2 * p < k for n, k, _, p in axes):
            raise InvalidArgument(
                f"{self.spec} needs input (channels, {self.dims} spatial axes >= {fmt(self.size)}), "
                f"got shape {tuple(in_shape)}"
            )
        return (in_shape[0], *((n + 2 * p - k) // s + 1 for n, k, s, p in axes))

    def _gathered(self, x, fill: float):
        """The windows of an untiled pool, (N C, out positions, taps), padding read as ``fill``."""
        n, c, *spatial = x.shape
        gather, _ = self._plan(spatial)
        flat = anp.concatenate([anp.reshape(x, (n * c, -1)), np.full((n * c, 1), fill)], axis=1)
        return flat[:, gather]

    def _plan(self, spatial):
        """(gather, scatter) of one channel's windows (`flowlaws.models.kinds.conv._im2col`)."""
        return _im2col(self.sizes, self.strides, self.paddings, (1,) * self.dims, (1, *spatial))

    def _out(self, x, values):
        """Per-window values (N C, out) in the output's shape."""
        return anp.reshape(values, (*x.shape[:2], *self.out_shape(x.shape[1:])[1:]))

    def _blocks(self, x):
        """View x (cropped) as (N, C, n1, size1, n2, size2, ...) and the window axes."""
        n, c, *spatial = x.shape
        out = [m // s for m, s in zip(spatial, self.sizes, strict=True)]
        crop = (slice(None), slice(None), *(slice(0, m * s) for m, s in zip(out, self.sizes, strict=True)))
        shape = (n, c, *itertools.chain.from_iterable(zip(out, self.sizes, strict=True)))
        return x[crop].reshape(shape), tuple(3 + 2 * i for i in range(self.dims))

    def _windows(self, x, frozen: bool = False):
        """(x's windows, the axes of a window's taps): the tiled blocks (a view), or the
        gathered windows (`_gathered`), the padding -inf for a max (0 for a mean, and for
        a frozen pass, whose weight there is 0)."""
        if self.tiled:
            return self._blocks(x)
        return self._gathered(x, -np.inf if self.reduce == "max" and not frozen else 0.0), (-1,)

    def apply(self, p, x):
        windows, axes = self._windows(x)
        y = anp.max(windows, axis=axes) if self.reduce == "max" else anp.mean(windows, axis=axes)
        return y if self.tiled else self._out(x, y)

    def weights(self, x):
        """Each input's share of its window's output: 1/count at the (tied) maxima, or
        1/(its window's entries) for the mean. Frozen, they make the pool linear (`apply_frozen`)."""
        windows, axes = self._windows(x)
        if self.reduce == "mean":
            return np.ones_like(windows) / int(np.prod(self.sizes))  # 1/window exactly mod p too
        hits = windows == windows.max(axis=axes, keepdims=True)
        return hits / hits.sum(axis=axes, keepdims=True)

    def apply_frozen(self, x, weights):
        windows, axes = self._windows(x, frozen=True)
        y = np.sum(windows * weights, axis=axes)
        return y if self.tiled else self._out(x, y)

    def vjp(self, p, x, y, dy, weights=None):
        weights = self.weights(x) if weights is None else weights
        if not self.tiled:  # each window's share back to its inputs, summed where windows overlap
            _, scatter = self._plan(x.shape[2:])
            shares = weights * dy.reshape(len(weights), -1, 1)
            return (scatter @ shares.reshape(len(shares), -1).T).T.reshape(x.shape), ()
        blocks, axes = self._blocks(x)
        expand = tuple(slice(None) if i not in axes else None for i in range(blocks.ndim))
        grad = weights * dy[expand]
        dx = np.zeros(x.shape, np.result_type(x, dy))
        crop = (slice(None), slice(None), *(slice(0, m * s) for m, s in zip(y.shape[2:], self.sizes, strict=True)))
        dx[crop] = grad.reshape(dx[crop].shape)
        return dx, ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)  # the routing weights are already >= 0

    def bound(self, p, x):
        return self.apply(p, x)  # the window's max (mean) of the bounds; no routing weights

    def run(self, p, x, frozen=None):
        """Max pools keep their window weights (frozen, or at this input) for `pull`; the
        output is the weighted sum either way, so a pass at an input is the pass frozen at
        its own weights, bit for bit."""
        if self.reduce == "mean":
            return self.apply(p, x), None
        weights = self.weights(x) if frozen is None else frozen
        return self.apply_frozen(x, weights), weights

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        return self.vjp(p, x, y, dy, aux)

    def freeze(self, x, y, aux):
        return aux if self.reduce == "max" else None

    def shift(self, site) -> str:
        """A mean commutes with a shift constant over positions unless padding zeros enter
        its windows."""
        return "passes" if self.reduce == "mean" and not any(self.paddings) else "stops"

    def sample_shift(self, site) -> str:
        return self.shift(site)

    def carry(self, path, site):
        """Pooling is homogeneous of degree 1 per channel; only the mean is linear; both
        commute with a constant shift of a channel, but for a mean reading padding zeros."""
        if not path.on_axis(False, len(site.in_shape)):
            return None
        return path.times(1.0, self.reduce == "mean", shifts=self.reduce == "max" or not any(self.paddings))

    @property
    def piecewise(self) -> bool:
        return self.reduce == "max"

    def keeps_sums(self, in_shape) -> bool:
        """An average pool whose windows tile the last axis averages whole windows of one
        row: rows summing to 0 stay so."""
        return self.tiled and self.reduce == "mean" and len(in_shape) > 1 and in_shape[-1] % self.sizes[-1] == 0

    @classmethod
    def draw(cls, draw, shape, context):
        """A window of 2 on every axis, or (a 2-d one) of 1 on the last: a rectangle."""
        if len(shape) != cls.dims + 1 or min(shape[1:]) < 2:
            return None
        return cls((2,) * (cls.dims - 1) + (draw(st.sampled_from((2, 1))) if cls.dims > 1 else 2,))


@dataclass(frozen=True)
class MaxPool1d(Pool):
    kind: ClassVar[str] = "maxpool1d"
    example: ClassVar[str] = "seq:1x8:conv1d(3,3,bias),relu,maxpool1d(2),flatten,dense(2)"
    dims: ClassVar[int] = 1
    reduce: ClassVar[str] = "max"
    ranks: ClassVar[tuple[int, ...]] = (2,)


@dataclass(frozen=True)
class AvgPool1d(Pool):
    kind: ClassVar[str] = "avgpool1d"
    example: ClassVar[str] = "seq:2x6:conv1d(3,2,stride=2,padding=1),abs,avgpool1d(2),flatten,dense(2,bias)"
    dims: ClassVar[int] = 1
    reduce: ClassVar[str] = "mean"
    ranks: ClassVar[tuple[int, ...]] = (2,)


@dataclass(frozen=True)
class MaxPool2d(Pool):
    kind: ClassVar[str] = "maxpool2d"
    example: ClassVar[str] = "seq:1x5x5:conv2d(2,2),relu,maxpool2d(2),flatten,dense(1)"
    dims: ClassVar[int] = 2
    reduce: ClassVar[str] = "max"
    ranks: ClassVar[tuple[int, ...]] = (3,)


@dataclass(frozen=True)
class AvgPool2d(Pool):
    kind: ClassVar[str] = "avgpool2d"
    example: ClassVar[str] = "seq:1x4x4:conv2d(2,1),leaky_relu(0.1),avgpool2d(2),flatten,dense(2)"
    dims: ClassVar[int] = 2
    reduce: ClassVar[str] = "mean"
    ranks: ClassVar[tuple[int, ...]] = (3,)


