"""maxpool1d(S), avgpool1d(S), maxpool2d(S), avgpool2d(S): non-overlapping pooling; S one
window size for every spatial axis, or one per axis (``maxpool2d(2x1)``, torch's
``MaxPool2d((2, 1))``)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer, fmt
from flowlaws.validation import on_axes, per_axis


@dataclass(frozen=True)
class Pool(Layer):
    """Non-overlapping pooling with window = stride = ``size`` (per axis); homogeneous of
    degree 1."""

    size: int | tuple
    dims: ClassVar[int]
    reduce: ClassVar[str]
    family: ClassVar[str] = "pool"

    def __post_init__(self):
        object.__setattr__(self, "size", per_axis(self.kind, "size", self.size, self.dims))

    @property
    def sizes(self) -> tuple:
        """The window's extent along each spatial axis."""
        return on_axes(self.size, self.dims)

    def out_shape(self, in_shape):
        if len(in_shape) != self.dims + 1 or any(n < s for n, s in zip(in_shape[1:], self.sizes, strict=True)):
            raise InvalidArgument(
                f"{self.spec} needs input (channels, {self.dims} spatial axes >= {fmt(self.size)}), "
                f"got shape {tuple(in_shape)}"
            )
        return (in_shape[0], *(n // s for n, s in zip(in_shape[1:], self.sizes, strict=True)))

    def _blocks(self, x):
        """View x (cropped) as (N, C, n1, size1, n2, size2, ...) and the window axes."""
        n, c, *spatial = x.shape
        out = [m // s for m, s in zip(spatial, self.sizes, strict=True)]
        crop = (slice(None), slice(None), *(slice(0, m * s) for m, s in zip(out, self.sizes, strict=True)))
        shape = (n, c, *itertools.chain.from_iterable(zip(out, self.sizes, strict=True)))
        return x[crop].reshape(shape), tuple(3 + 2 * i for i in range(self.dims))

    def apply(self, p, x):
        blocks, axes = self._blocks(x)
        return anp.max(blocks, axis=axes) if self.reduce == "max" else anp.mean(blocks, axis=axes)

    def weights(self, x):
        """Each input's share of its window's output: 1/count at the (tied) maxima, or
        1/(its window's entries) for the mean. Frozen, they make the pool linear (`apply_frozen`)."""
        blocks, axes = self._blocks(x)
        if self.reduce == "mean":
            return np.ones_like(blocks) / int(np.prod(self.sizes))  # 1/window exactly mod p too
        hits = blocks == blocks.max(axis=axes, keepdims=True)
        return hits / hits.sum(axis=axes, keepdims=True)

    def apply_frozen(self, x, weights):
        blocks, axes = self._blocks(x)
        return np.sum(blocks * weights, axis=axes)

    def vjp(self, p, x, y, dy, weights=None):
        blocks, axes = self._blocks(x)
        expand = tuple(slice(None) if i not in axes else None for i in range(blocks.ndim))
        grad = (self.weights(x) if weights is None else weights) * dy[expand]
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
        return "passes" if self.reduce == "mean" else "stops"

    def sample_shift(self, site) -> str:
        return self.shift(site)

    def carry(self, path, site):
        """Pooling is homogeneous of degree 1 per channel; only the mean is linear; both
        commute with a constant shift of a channel."""
        if not path.on_axis(False, len(site.in_shape)):
            return None
        return path.times(1.0, self.reduce == "mean", shifts=True)

    @property
    def piecewise(self) -> bool:
        return self.reduce == "max"

    def keeps_sums(self, in_shape) -> bool:
        """An average pool whose windows tile the last axis averages whole windows of one
        row: rows summing to 0 stay so."""
        return self.reduce == "mean" and len(in_shape) > 1 and in_shape[-1] % self.sizes[-1] == 0

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


