"""Layers as frozen data with a forward pass and a hand-written vector-Jacobian product.

Every layer has ``param_shapes(in_shape)``, ``out_shape(in_shape)``, ``apply(p, x)``
(written with ``autograd.numpy``, so autograd can differentiate it generically) and
``vjp(p, x, y, dy) -> (dx, dp)``. ``vjp_magnitude`` is the same sweep with every factor
replaced by its absolute value: the scale that round-off errors of the gradient are
measured against (see `flowlaws.checking`).

Data layout is channels first: dense inputs ``(N, d)``, 1D conv inputs ``(N, C, L)``,
2D ``(N, C, H, W)``. Flatten is C-major, so channel c owns a contiguous block.
Pools use non-overlapping windows (stride = size) and drop the remainder; at max-pool
ties the gradient is split equally among the tied entries (autograd's convention).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.symmetry import from_weight_layer

REALMIN = float(np.finfo(np.float64).tiny)  # smallest normal float64: the underflow threshold


def _positive(layer: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise InvalidArgument(f"{layer}: {name} must be a positive integer, got {value!r}")


class Layer:
    """Base of every layer (parametrized, structural, activations; frozen dataclasses)."""

    kind: ClassVar[str]
    has_weight: ClassVar[bool] = False
    polynomial: ClassVar[bool] = True  # in its params and input, once its pattern is frozen
    couples_samples: ClassVar[bool] = False  # its output for one sample depends on others
    reads_last_axis: ClassVar[bool] = False  # a weight layer's columns read the sample's last axis
    # (attention's features), not its first (a dense layer's features, a convolution's channels)

    def param_shapes(self, in_shape):
        return ()

    def out_shape(self, in_shape):
        return in_shape

    def apply(self, p, x):
        raise NotImplementedError

    def vjp(self, p, x, y, dy):
        raise NotImplementedError

    def vjp_magnitude(self, p, x, y, dy):
        dx, dp = self.vjp(tuple(np.abs(q) for q in p), np.abs(x), y, dy)
        return np.abs(dx), tuple(np.abs(g) for g in dp)

    # --- the numpy sweeps (see flowlaws.models.sequential.Chain) -----------------------
    def run(self, p, x, frozen=None):
        """(output, aux for `pull`); ``frozen`` is this layer's entry of a pattern."""
        return self.apply(p, x), None

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """(dx, dparams): the VJP, or its magnitude sweep."""
        return (self.vjp_magnitude if magnitude else self.vjp)(p, x, y, dy)

    def freeze(self, x, y, aux):
        """This layer's entry of the activation pattern (None: nothing to freeze)."""
        return None

    def bound_run(self, p, x, aux):
        return self.bound(p, x), aux

    def bound(self, p, x):
        """An entrywise bound on |output| and on the terms summed to form it, for inputs
        bounded by x >= 0 and params p >= 0 (the forward magnitude sweep)."""
        return self.run(p, x)[0]

    # --- symmetry declarations (see flowlaws.models.symmetry) -------------------------
    @property
    def emits(self) -> bool:
        """Its output units can be scaled through its own parameters (it has rows)."""
        return self.has_weight

    @property
    def absorbs(self) -> bool:
        """Its columns can absorb a scaling of its input units (it has a weight matrix)."""
        return self.has_weight

    def carry(self, path, site):
        """How a scaling of the input units passes through: the path after this layer,
        or None when it cannot pass (no symmetry). A weight layer absorbs a scaling of
        the sample axis its columns read (`reads_last_axis`); a scaling of any other axis
        (the positions of a convolution's input) does not pass: no symmetry."""
        if self.absorbs and path.on_axis(self.reads_last_axis, len(site.in_shape)):
            return path.absorbed(site)
        return None

    def shift(self, site) -> str:
        """How a shift of its input constant over the batch (any vector) passes: "passes"
        (as another such shift: a weight layer maps it to W delta), "removed" (a BatchNorm
        subtracts it), or "stops" (a kink, a max pool, a normalization within a sample,
        zero padding that makes it vary over positions)."""
        return "passes" if self.absorbs and not self.reads_last_axis else "stops"

    def sample_shift(self, site) -> str:
        """How a shift of its input uniform over each sample's units (varying per sample)
        passes: "passes", "removed" (a LayerNorm subtracts it) or "stops" (the default)."""
        return "stops"

    def rescalings(self, site):
        """The rescalings that start at this layer."""
        return from_weight_layer(site) if self.emits else ()

    def units_out(self, site) -> int:
        """How many output units its rows scale."""
        return getattr(self, "channels")  # noqa: B009 (weight layers define it)

    def rows(self, site, units, interleaved: bool = False):
        """The slices that scale with output unit i: every own parameter along axis 0
        (``interleaved``: unit i owns rows i, i + units, ...: a flattened (T, d) layout)."""
        return site.views(0, units, interleaved=interleaved)

    def columns(self, site, path):
        """The slices that absorb a scaling of input unit i: the weight along axis 1."""
        return site.views(1, path.units, own=(0,), interleaved=path.interleaved)

    def centered(self, site, groups: int):
        """Slices whose entry sums never move when its input is centered (sums to 0) over
        each of ``groups`` contiguous blocks of a sample (after a LayerNorm): none here."""
        return ()


@dataclass(frozen=True)
class Dense(Layer):
    """y = x W^T + b with W of shape (units, fan_in)."""

    units: int
    bias: bool = False
    kind: ClassVar[str] = "dense"
    has_weight: ClassVar[bool] = True

    def __post_init__(self):
        _positive("dense", units=self.units)

    @property
    def channels(self) -> int:
        return self.units

    def param_shapes(self, in_shape):
        if len(in_shape) != 1:
            raise InvalidArgument(
                f"dense({self.units}) needs a flat input, got shape {tuple(in_shape)}; "
                "put flatten before it"
            )
        shapes = (("W", (self.units, in_shape[0])),)
        return (*shapes, ("b", (self.units,))) if self.bias else shapes

    def out_shape(self, in_shape):
        return (self.units,)

    def centered(self, site, groups: int):
        """W[k, block g] for every row k and block g: units * groups slices."""
        return site.views(0, self.units * groups, own=(0,))

    def apply(self, p, x):
        y = anp.dot(x, p[0].T)
        return y + p[1] if self.bias else y

    def run(self, p, x, frozen=None):
        """Plain numpy (the sweeps never differentiate through it)."""
        y = x @ p[0].T
        return (y + p[1] if self.bias else y), None

    def vjp(self, p, x, y, dy):
        dW = dy.T @ x
        return dy @ p[0], ((dW, dy.sum(axis=0)) if self.bias else (dW,))

    @property
    def spec(self) -> str:
        return f"dense({self.units}{',bias' if self.bias else ''})"


@lru_cache(maxsize=256)
def _im2col(dims: int, kernel: int, stride: int, padding: int, in_shape: tuple):
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
    windows = np.lib.stride_tricks.sliding_window_view(index, (kernel,) * dims, axis=tuple(range(1, 1 + dims)))
    windows = windows[(slice(None), *(slice(None, None, stride),) * dims)]
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
    dims: ClassVar[int]
    has_weight: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.kind, channels=self.channels, kernel=self.kernel, stride=self.stride)
        if not isinstance(self.padding, int | np.integer) or self.padding < 0:
            raise InvalidArgument(f"{self.kind}: padding must be >= 0, got {self.padding!r}")

    def _check(self, in_shape):
        if len(in_shape) != self.dims + 1:
            raise InvalidArgument(
                f"{self.spec} needs input (channels, {'length' if self.dims == 1 else 'height, width'}),"
                f" got shape {tuple(in_shape)}"
            )

    def param_shapes(self, in_shape):
        self._check(in_shape)
        shapes = (("W", (self.channels, in_shape[0], *(self.kernel,) * self.dims)),)
        return (*shapes, ("b", (self.channels,))) if self.bias else shapes

    def out_shape(self, in_shape):
        self._check(in_shape)
        spatial = tuple((n + 2 * self.padding - self.kernel) // self.stride + 1 for n in in_shape[1:])
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
                _window(j, self.stride, n) for j, n in zip(offset, out_spatial, strict=True)))

    def apply(self, p, x):
        xp = self._pad(x)
        spatial = self.out_shape(x.shape[1:])[1:]
        y = 0.0
        for offset, window in self._windows(spatial):
            y = y + anp.tensordot(xp[window], p[0][(slice(None), slice(None), *offset)], axes=([1], [1]))
        y = anp.moveaxis(y, -1, 1)
        if self.bias:
            y = y + anp.reshape(p[1], (-1,) + (1,) * self.dims)
        return y

    def _columns(self, x):
        """im2col: the windows of the input (padding reads a zero) as one (N * out, C * kernel^dims) matrix."""
        gather, _ = _im2col(self.dims, self.kernel, self.stride, self.padding, x.shape[1:])
        flat = np.concatenate([x.reshape(len(x), -1), np.zeros((len(x), 1), x.dtype)], axis=1)
        return flat[:, gather].reshape(len(x) * len(gather), -1)

    def run(self, p, x, frozen=None):
        """One BLAS call: the im2col matrix times the kernel; the matrix is the aux."""
        columns = self._columns(x)
        out = self.out_shape(x.shape[1:])
        y = (columns @ p[0].reshape(self.channels, -1).T).reshape(len(x), *out[1:], self.channels)
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

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """dW from the im2col matrix (one BLAS call), dx by col2im (one sparse product)."""
        W = np.abs(p[0]) if magnitude else p[0]
        columns = self._columns(x) if aux is None else aux
        rows = dy.transpose(0, *range(2, self.dims + 2), 1).reshape(-1, self.channels)  # (N * out, O)
        dW = (rows.T @ columns).reshape(W.shape)
        _, scatter = _im2col(self.dims, self.kernel, self.stride, self.padding, x.shape[1:])
        dcolumns = (rows @ W.reshape(self.channels, -1)).reshape(len(x), -1)  # (N, out * C * kernel^dims)
        dx = (scatter @ dcolumns.T).T.reshape(x.shape)
        batch_and_space = (0, *range(2, 2 + self.dims))
        return dx, ((dW, dy.sum(axis=batch_and_space)) if self.bias else (dW,))

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, None, dy)

    def vjp_magnitude(self, p, x, y, dy):
        return self.pull(p, np.abs(x), y, None, dy, magnitude=True)

    @property
    def spec(self) -> str:
        extra = "".join(
            f",{key}={value}"
            for key, value, default in (("stride", self.stride, 1), ("padding", self.padding, 0))
            if value != default
        )
        return f"{self.kind}({self.channels},{self.kernel}{extra}{',bias' if self.bias else ''})"


@dataclass(frozen=True)
class Conv1d(Conv):
    kind: ClassVar[str] = "conv1d"
    dims: ClassVar[int] = 1


@dataclass(frozen=True)
class Conv2d(Conv):
    kind: ClassVar[str] = "conv2d"
    dims: ClassVar[int] = 2


@dataclass(frozen=True)
class Pool(Layer):
    """Non-overlapping pooling with window = stride = ``size``; homogeneous of degree 1."""

    size: int
    dims: ClassVar[int]
    reduce: ClassVar[str]

    def __post_init__(self):
        _positive(self.kind, size=self.size)

    def out_shape(self, in_shape):
        if len(in_shape) != self.dims + 1 or min(in_shape[1:]) < self.size:
            raise InvalidArgument(
                f"{self.spec} needs input (channels, {self.dims} spatial axes >= {self.size}), "
                f"got shape {tuple(in_shape)}"
            )
        return (in_shape[0], *(n // self.size for n in in_shape[1:]))

    def _blocks(self, x):
        """View x (cropped) as (N, C, n1, size, n2, size, ...) and the window axes."""
        n, c, *spatial = x.shape
        out = [m // self.size for m in spatial]
        crop = (slice(None), slice(None), *(slice(0, m * self.size) for m in out))
        shape = (n, c, *itertools.chain.from_iterable((m, self.size) for m in out))
        return x[crop].reshape(shape), tuple(3 + 2 * i for i in range(self.dims))

    def apply(self, p, x):
        blocks, axes = self._blocks(x)
        return anp.max(blocks, axis=axes) if self.reduce == "max" else anp.mean(blocks, axis=axes)

    def weights(self, x):
        """Each input's share of its window's output: 1/count at the (tied) maxima, or
        1/size^dims for the mean. Frozen, they make the pool linear (`apply_frozen`)."""
        blocks, axes = self._blocks(x)
        if self.reduce == "mean":
            return np.full(blocks.shape, 1.0 / self.size**self.dims)
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
        crop = (slice(None), slice(None), *(slice(0, m * self.size) for m in y.shape[2:]))
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
        return None if path.last_axis else path.times(1.0, self.reduce == "mean", shifts=True)

    @property
    def spec(self) -> str:
        return f"{self.kind}({self.size})"


@dataclass(frozen=True)
class MaxPool1d(Pool):
    kind: ClassVar[str] = "maxpool1d"
    dims: ClassVar[int] = 1
    reduce: ClassVar[str] = "max"


@dataclass(frozen=True)
class AvgPool1d(Pool):
    kind: ClassVar[str] = "avgpool1d"
    dims: ClassVar[int] = 1
    reduce: ClassVar[str] = "mean"


@dataclass(frozen=True)
class MaxPool2d(Pool):
    kind: ClassVar[str] = "maxpool2d"
    dims: ClassVar[int] = 2
    reduce: ClassVar[str] = "max"


@dataclass(frozen=True)
class AvgPool2d(Pool):
    kind: ClassVar[str] = "avgpool2d"
    dims: ClassVar[int] = 2
    reduce: ClassVar[str] = "mean"


@dataclass(frozen=True)
class Flatten(Layer):
    """(N, C, ...) -> (N, C * ...), C-major."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def apply(self, p, x):
        return anp.reshape(x, (x.shape[0], -1))

    def run(self, p, x, frozen=None):
        return x.reshape(len(x), -1), None

    def vjp(self, p, x, y, dy):
        return dy.reshape(x.shape), ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    def shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        return "passes"

    def carry(self, path, site):
        """Channel c becomes the c-th contiguous block: the scaling passes unchanged;
        the features of a (T, d) sequence become every d-th entry (interleaved)."""
        if path.last_axis and len(site.in_shape) > 1:
            return replace(path, last_axis=False, interleaved=True)
        return path

    @property
    def spec(self) -> str:
        return "flatten"


POOLS = {cls.kind: cls for cls in (MaxPool1d, AvgPool1d, MaxPool2d, AvgPool2d)}
CONVS = {cls.kind: cls for cls in (Conv1d, Conv2d)}
