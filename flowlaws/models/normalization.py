"""Normalization layers: BatchNorm and LayerNorm, with their scale symmetry.

Both compute x̂ = (z - mean z) / sqrt(var z + eps) over a group of entries and, with
``affine``, y = gamma x̂ + beta per channel. BatchNorm groups a channel (axis 1) over
the batch and every spatial axis, with batch statistics (no running averages: the
training-mode function, which is the one gradient descent sees). LayerNorm groups the
last axis of one sample (the features of a flat sample, of one position of a (T, d)
sequence, like ``torch.nn.LayerNorm(d)``).

``eps`` defaults to 0: then x̂ is unchanged when z is scaled by any c > 0, the scale
symmetry is exact and every weight slice feeding the group conserves its squared norm
(docs/theory.md 6.2). Frameworks use eps > 0 (PyTorch: 1e-5), which breaks the
symmetry at first order, <dL/dw_i, w_i> = eps / (var_i + eps) * sum (dL/dx̂_i) x̂_i; with
eps > 0 no scale law is derived. A group with zero variance and eps = 0 (one sample
in a batch, a constant channel) makes x̂ = 0/0: `Unrepresentable`.

The VJP, for s = (var + eps)^(-1/2) and g = dL/dx̂: dz = s (g - mean g - x̂ mean(g x̂)).

Round-off model (see `flowlaws.checking`): dividing by sqrt(var) amplifies the
absolute errors of z by s and those of var (relative) by kappa = s^2 mean((F + F̄)^2),
F the input's magnitude bound; the magnitude sweep multiplies x̂'s bound
s (F + F̄) and the backward bound by the condition factor (1 + 2 kappa).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.models.layers import Conv, Flatten, Layer
from flowlaws.models.symmetry import Rescaling, Term, from_weight_layer


@dataclass(frozen=True)
class Normalization(Layer):
    """Shared code: the group axes, the forward pass, the VJP and the magnitude sweeps."""

    affine: bool = False
    eps: float = 0.0
    polynomial: ClassVar[bool] = False
    constant_group: ClassVar[str] = "a group is constant"

    def __post_init__(self):
        if not (isinstance(self.eps, int | float) and np.isfinite(self.eps) and self.eps >= 0):
            raise InvalidArgument(f"{self.kind}: eps must be a finite number >= 0, got {self.eps!r}")

    # --- which entries form a group, and the affine channel ---------------------------
    def axes(self, ndim: int) -> tuple[int, ...]:
        raise NotImplementedError

    def channel_axis(self, ndim: int) -> int:
        raise NotImplementedError

    def channels_of(self, in_shape) -> int:
        return in_shape[self.channel_axis(len(in_shape) + 1) - 1]

    def param_shapes(self, in_shape):
        c = self.channels_of(in_shape)
        return (("gamma", (c,)), ("beta", (c,))) if self.affine else ()

    def _broadcast(self, v, ndim):
        shape = [1] * ndim
        shape[self.channel_axis(ndim)] = -1
        return v.reshape(shape)  # (an autograd box has the method too)

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, x):
        axes = self.axes(x.ndim)
        d = x - anp.mean(x, axis=axes, keepdims=True)
        xhat = d / anp.sqrt(anp.mean(d * d, axis=axes, keepdims=True) + self.eps)
        return self._affine(p, xhat)

    def _affine(self, p, xhat):
        if not self.affine:
            return xhat
        return xhat * self._broadcast(p[0], xhat.ndim) + self._broadcast(p[1], xhat.ndim)

    @staticmethod
    def _mean(v, axes):
        """The mean over ``axes`` (a sum and one multiply: cheaper than ndarray.mean)."""
        return v.sum(axis=axes, keepdims=True) * (1.0 / math.prod(v.shape[a] for a in axes))

    def run(self, p, x, frozen=None):
        axes = self.axes(x.ndim)
        d = x - self._mean(x, axes)
        var = self._mean(d * d, axes) + self.eps
        if np.any(var == 0):
            raise Unrepresentable(f"{self.kind}: {self.constant_group} (variance 0) and eps = 0, so x̂ = 0/0; "
                                  f"the case cannot be decided (use {self.kind}(eps=...) > 0 to allow it)")
        s = 1.0 / np.sqrt(var)
        xhat = d * s
        return self._affine(p, xhat), (xhat, s)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        xhat, s, *bound = aux
        axes = self.axes(x.ndim)
        reduce = tuple(a for a in range(x.ndim) if a != self.channel_axis(x.ndim))
        g = dy * self._broadcast(np.abs(p[0]) if magnitude else p[0], dy.ndim) if self.affine else dy
        if magnitude:  # aux is (x̂, s, bound on x̂, condition factor) from `bound_run`
            b, factor = bound
            dz = factor * s * (g + self._mean(g, axes) + b * self._mean(g * b, axes))
            dp = ((dy * b).sum(axis=reduce), dy.sum(axis=reduce)) if self.affine else ()
            return dz, dp
        dz = s * (g - self._mean(g, axes) - xhat * self._mean(g * xhat, axes))
        return dz, (((dy * xhat).sum(axis=reduce), dy.sum(axis=reduce)) if self.affine else ())

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, self.run(p, x)[1], dy)

    def bound_run(self, p, x, aux):
        """x is the input's magnitude bound F; see the module docstring."""
        xhat, s = aux[:2]
        axes = self.axes(x.ndim)
        spread = x + self._mean(x, axes)
        factor = 1.0 + 2.0 * s**2 * self._mean(spread**2, axes)
        b = factor * s * spread
        out = b * self._broadcast(p[0], b.ndim) + self._broadcast(p[1], b.ndim) if self.affine else b
        return out, (xhat, s, b, factor)

    # --- symmetry declarations ------------------------------------------------------------
    @property
    def emits(self) -> bool:
        return self.affine  # y_i = gamma_i x̂_i + beta_i: (gamma_i, beta_i) scale unit i

    def units_out(self, site) -> int:
        return self.channels_of(site.in_shape)

    def rescalings(self, site):
        if not self.affine:
            return self._centered(site)
        # diagonal rows: a per-unit scaling, never a mixing of units
        return from_weight_layer(site, last_axis=self.channel_axis(len(site.in_shape) + 1) > 1, mixes=False)

    def _centered(self, site):
        """Groups of one sample have x̂ summing to 0, so the layer reading them (through
        flatten and linear activations) may add c to its weights along a group: each such sum is conserved (a
        translation law; the reader declares which sums, `Layer.centered`)."""
        ndim = len(site.in_shape) + 1
        if 0 in self.axes(ndim):
            return
        chain, position, groups = site.chain, site.position + 1, int(np.prod(site.in_shape[:-1]))
        while position < len(chain.layers) and _keeps_sums(chain.layers[position], chain.shapes[position]):
            out = chain.layers[position].out_shape(chain.shapes[position])
            groups = groups if len(out) == 1 else int(np.prod(out[:-1]))  # flatten keeps the groups
            position += 1
        if position == len(chain.layers):
            return
        reader = replace(site, position=position)
        for view in reader.layer.centered(reader, groups):
            yield Rescaling(f"{site.name}/{reader.name}.{view.name.rsplit('.', 1)[1]}", view.units,
                            (Term(view, 1.0),), False, "translation", order=1)

    def shift(self, site) -> str:
        """Groups over the batch (BatchNorm) subtract any shift constant over the batch."""
        return "removed" if 0 in self.axes(len(site.in_shape) + 1) else "stops"

    def sample_shift(self, site) -> str:
        """Groups within a sample along its last axis (LayerNorm) subtract a uniform shift."""
        return "stops" if 0 in self.axes(len(site.in_shape) + 1) else "removed"

    def carry(self, path, site):
        """The normalization removes a scaling of its input when eps = 0: a scale law, per
        unit when no group mixes units, else one c for the whole layer (uniform). It removes
        a constant shift of each group at any eps (the mean is subtracted exactly), so with
        eps > 0 the path still closes, for its translation laws only (``scales`` False)."""
        ndim = len(site.in_shape) + 1
        unit_axis = ndim - 1 if path.last_axis else 1
        return path.normalized(site, uniform=unit_axis in self.axes(ndim), per_sample=0 not in self.axes(ndim),
                               scales=not self.eps)

    @property
    def spec(self) -> str:
        options = [*(["affine"] if self.affine else []), *([f"eps={self.eps:g}"] if self.eps else [])]
        return f"{self.kind}({','.join(options)})" if options else self.kind


@dataclass(frozen=True)
class BatchNorm(Normalization):
    """Per channel (axis 1) over the batch and the spatial axes: BatchNorm1d on (N, d),
    BatchNorm1d/2d on (N, C, L) and (N, C, H, W)."""

    kind: ClassVar[str] = "batchnorm"
    couples_samples: ClassVar[bool] = True
    constant_group: ClassVar[str] = "a channel is constant over the batch (one sample, or a dead unit)"

    def axes(self, ndim):
        return (0, *range(2, ndim))

    def channel_axis(self, ndim):
        return 1


@dataclass(frozen=True)
class LayerNorm(Normalization):
    """Over the last axis of each sample: the features of (N, d), or of each position of
    a (N, T, d) sequence."""

    kind: ClassVar[str] = "layernorm"
    constant_group: ClassVar[str] = "a sample's features are all equal (e.g. all 0 after ReLU)"

    def axes(self, ndim):
        return (ndim - 1,)

    def channel_axis(self, ndim):
        return ndim - 1


def _keeps_sums(layer, in_shape) -> bool:
    """Flatten, linear activations (c z), an average pool whose windows tile the last
    axis (each output row averages whole windows of one row) and a bias-free pointwise
    convolution (each output row a combination of input rows) keep a group's sum at 0."""
    if getattr(layer, "reduce", "") == "mean":
        return len(in_shape) > 1 and in_shape[-1] % layer.size == 0
    if isinstance(layer, Conv):
        return layer.kernel == 1 and layer.stride == 1 and not layer.padding and not layer.bias
    return isinstance(layer, Flatten) or bool(getattr(layer, "is_linear", False))


NORMALIZATIONS = {cls.kind: cls for cls in (BatchNorm, LayerNorm)}
