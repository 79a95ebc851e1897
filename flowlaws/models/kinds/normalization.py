"""The normalization layers' shared code (BatchNorm, LayerNorm, RMSNorm, GroupNorm) and their scale symmetry.

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
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Centred, Family, Path, Rescaling, Term, centred_reader, removes_shift, walk


@dataclass(frozen=True)
class Normalization(Layer):
    """Shared code: the group axes, the forward pass, the VJP and the magnitude sweeps."""

    affine: bool = False
    eps: float = 0.0
    polynomial: ClassVar[bool] = False
    centers: ClassVar[bool] = True  # subtracts the group's mean (RMSNorm does not; nor has it a beta)
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
        return ((("gamma", (c,)), ("beta", (c,)))[: 1 + self.centers]) if self.affine else ()

    def _broadcast(self, v, ndim):
        shape = [1] * ndim
        shape[self.channel_axis(ndim)] = -1
        return v.reshape(shape)  # (an autograd box has the method too)

    # --- numbers ------------------------------------------------------------------------
    def view(self, x):
        """(x seen with its groups on axes of their own, those axes): x itself for a
        normalization over whole axes; a GroupNorm splits the channel axis."""
        return x, self.axes(x.ndim)

    def apply(self, p, x):
        xg, axes = self.view(x)
        d = xg - anp.mean(xg, axis=axes, keepdims=True) if self.centers else xg
        xhat = d / anp.sqrt(anp.mean(d * d, axis=axes, keepdims=True) + self.eps)
        return self._affine(p, anp.reshape(xhat, x.shape))

    def _affine(self, p, xhat):
        if not self.affine:
            return xhat
        scaled = xhat * self._broadcast(p[0], xhat.ndim)
        return scaled + self._broadcast(p[1], xhat.ndim) if self.centers else scaled

    @staticmethod
    def _mean(v, axes):
        """The mean over ``axes`` (a sum and one multiply: cheaper than ndarray.mean)."""
        return v.sum(axis=axes, keepdims=True) * (1.0 / math.prod(v.shape[a] for a in axes))

    def run(self, p, x, frozen=None):
        xg, axes = self.view(x)
        d = xg - self._mean(xg, axes) if self.centers else xg
        var = self._mean(d * d, axes) + self.eps
        if np.any(var == 0):
            raise Unrepresentable(f"{self.kind}: {self.constant_group} (variance 0) and eps = 0, so x̂ = 0/0; "
                                  f"the case cannot be decided (use {self.kind}(eps=...) > 0 to allow it)")
        s = 1.0 / np.sqrt(var)
        xhat = (d * s).reshape(x.shape)
        return self._affine(p, xhat), (xhat, s)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        xhat, s, *bound = aux
        reduce = tuple(a for a in range(x.ndim) if a != self.channel_axis(x.ndim))
        g = dy * self._broadcast(np.abs(p[0]) if magnitude else p[0], dy.ndim) if self.affine else dy
        g, axes = self.view(g)
        if magnitude:  # aux is (x̂, s, bound on x̂, condition factor) from `bound_run`
            b, factor = bound
            bg = b.reshape(g.shape)
            dz = factor * s * (g + self._mean(g, axes) * self.centers + bg * self._mean(g * bg, axes))
            return dz.reshape(x.shape), self._grads(dy, b, reduce)
        xg = xhat.reshape(g.shape)
        dz = s * (g - self._mean(g, axes) * self.centers - xg * self._mean(g * xg, axes))
        return dz.reshape(x.shape), self._grads(dy, xhat, reduce)

    def _grads(self, dy, xhat, reduce):
        """(dgamma, dbeta) of y = gamma x̂ + beta (dgamma alone without centring)."""
        if not self.affine:
            return ()
        return ((dy * xhat).sum(axis=reduce), dy.sum(axis=reduce))[: 1 + self.centers]

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, self.run(p, x)[1], dy)

    def bound_run(self, p, x, aux):
        """x is the input's magnitude bound F; see the module docstring."""
        xhat, s = aux[:2]
        xg, axes = self.view(x)
        spread = xg + self._mean(xg, axes) if self.centers else xg
        factor = 1.0 + 2.0 * s**2 * self._mean(spread**2, axes)
        b = (factor * s * spread).reshape(x.shape)
        return self._affine(p, b), (xhat, s, b, factor)

    # --- symmetry declarations ------------------------------------------------------------
    @property
    def emits(self) -> bool:
        return self.affine  # y_i = gamma_i x̂_i + beta_i: (gamma_i, beta_i) scale unit i

    def units_out(self, site) -> int:
        return self.channels_of(site.in_shape)

    @property
    def mixes(self) -> bool:
        return False  # diagonal rows: a per-unit scaling, never a mixing of units

    def rows_on_last_axis(self, site) -> bool:
        return self.channel_axis(len(site.in_shape) + 1) > 1

    def rescalings(self, site):
        if self.affine:
            yield from super().rescalings(site)
            return
        yield from self._centered(site)
        yield from self._mean_direction(site)

    def _per_row(self, ndim: int) -> bool:
        """Does each group span one row of the last axis of one sample (LayerNorm, RMSNorm)?"""
        return self.axes(ndim) == (ndim - 1,)

    def _over_units(self, path, ndim: int) -> bool:
        """Are its groups, per sample, exactly the path's units (a LayerNorm or RMSNorm over
        the last axis, where the units lie)?"""
        return self._per_row(ndim) and path.on_axis(True, ndim - 1)

    def _centres_units(self, path, ndim: int) -> bool:
        """Does it subtract, per sample, the mean over exactly the path's units?"""
        return self.centers and self._over_units(path, ndim)

    def _mean_direction(self, site):
        """Its centred output has no component along 1 until a residual block writes there:
        rescaling that direction, its writers' rows by c and its readers' columns by 1/c,
        leaves f unchanged (docs/theory.md 7). The walk of a path on that direction alone
        (`Path.summed`, the mixing S_c = I + (c - 1) 1 1^T / d) gives its one law, 1^T G 1,
        when every boundary on it is linear and something writes."""
        ndim = len(site.in_shape) + 1
        start = Path(site.in_shape[-1], last_axis=ndim > 2, summed=True, layers=(site.name,))
        if not self._centres_units(start, ndim):
            return
        end = walk(start, site.following())
        if (end is None or not end.closed or not end.linear or end.blocks > 1 or end.uniform
                or end.family is not Family.RESCALE or not any(t.weight > 0 for t in end.terms)):
            return
        yield Rescaling("/".join(end.layers) + ".mean", end.units, end.terms, False, summed=True)

    def _centered(self, site):
        """Groups of one sample have x̂ summing to 0, so the layer reading them (through
        flatten and linear activations) may add c to its weights along a group: each such sum is conserved (a
        translation law; the reader declares which sums, `Layer.centered`)."""
        ndim = len(site.in_shape) + 1
        if 0 in self.axes(ndim) or not self.centers:
            return
        reader, groups = centred_reader(site.following(), Centred(int(np.prod(site.in_shape[:-1]))))
        if reader is None:
            return
        for view in reader.layer.centered(reader, groups):
            yield Rescaling(f"{site.name}/{reader.name}.{view.name.rsplit('.', 1)[1]}", view.units,
                            (Term(view, 1.0),), False, Family.TRANSLATION, order=1)

    def shift(self, site) -> str:
        """Groups over the batch (BatchNorm) subtract any shift constant over the batch."""
        return "removed" if self.centers and 0 in self.axes(len(site.in_shape) + 1) else "stops"

    def sample_shift(self, site) -> str:
        """Groups within a sample along its last axis (LayerNorm) subtract a uniform shift."""
        return "removed" if self.centers and 0 not in self.axes(len(site.in_shape) + 1) else "stops"

    def row_scale(self, site) -> str:
        """A normalization of each row of the last axis (LayerNorm, RMSNorm) at eps = 0
        removes a positive factor per row; with eps > 0, or groups of another shape, it stops."""
        return "removed" if not self.eps and self._per_row(len(site.in_shape) + 1) else "stops"

    def _projected(self, path, site):
        """A mixing G of its units that fixes 1 (any G without centring) passes as G when
        a later layer removes the positive factor per row it leaves
        (`flowlaws.models.symmetry.projected`): bias-free readers, homogeneous activations
        up to a normalization at eps = 0; not with a gain (a diagonal)."""
        ndim = len(site.in_shape) + 1
        if (self.affine or not path.linear or path.summed or path.blocks > 1 or path.interleaved
                or not self._over_units(path, ndim) or removes_shift(site, "row_scale") is None):
            return None
        return replace(path, centred=path.centred or self.centers, classes=0, layers=(*path.layers, site.name))

    def carry(self, path, site):
        """The normalization removes a scaling of its input when eps = 0: a scale law, per
        unit when no group mixes units, else one c for the whole layer (uniform). It removes
        a constant shift of each group at any eps (the mean is subtracted exactly), so with
        eps > 0 the path still closes, for its translation laws only (``scales`` False).
        Without centring (RMSNorm) only the scale is removed, and only at eps = 0. A scaling
        of the units' common direction alone (`Path.summed`) is a shift of each group's
        mean, which centring over those units removes at any eps: it closes with no term."""
        ndim = len(site.in_shape) + 1
        if path.projective:
            return self._projected(path, site)
        if self._absorbs_in_gain(path, site):
            return replace(path.met(site, self.rows(site, path.units), -path.degree), closed=True, linear=False,
                           classes=0)
        if path.summed and self._centres_units(path, ndim):
            return replace(path, closed=True, layers=(*path.layers, site.name))
        row_factor = bool(self.eps) and not path.interleaved and self._leaves_row_factor(site)
        if not self.centers:
            path = None if self.eps and not row_factor else replace(path, shifts=False)
        if path is None:
            return None
        unit_axis = ndim - 1 if path.last_axis else 1
        # the shift W -> W + 1 a^T gives is uniform over a group only when the group is the
        # emitting layer's units alone: not after a flatten that interleaves positions
        per_sample = 0 not in self.axes(ndim) and not path.interleaved
        return path.normalized(site, uniform=unit_axis in self.axes(ndim), per_sample=per_sample,
                               scales=not self.eps or row_factor)

    def _absorbs_in_gain(self, path, site) -> bool:
        """Without centring (an affine RMSNorm over the path's units), a scaling c_i of each
        unit is its gain's 1/c_i times a positive factor per row, rms(y) / rms(c y) (at any
        eps), which a later normalization of the rows at eps = 0 removes (`removes_shift`
        "row_scale"): the gain absorbs the scaling unit by unit, a unit law
        (seq:3:dense(3),rmsnorm(affine),layernorm,flatten,dense(1): ||W_i||^2 - gamma_i^2;
        found by the laws-complete campaign, seed 1900; docs/theory.md 6)."""
        return (self.affine and not self.centers and path.family is Family.RESCALE and not path.summed
                and not path.interleaved and not path.span and self._over_units(path, len(site.in_shape) + 1)
                and removes_shift(site, "row_scale") is not None)

    def _leaves_row_factor(self, site) -> bool:
        """At eps > 0 over each row, a scaling c of a row leaves x̂ times a positive factor for
        that row, c sqrt(var + eps) / sqrt(c^2 var + eps), which a later normalization of the
        rows at eps = 0 removes (`removes_shift` "row_scale"): the scale law holds after all
        (its own beta, not scaled by that factor, would break it)."""
        return (self._per_row(len(site.in_shape) + 1) and not (self.affine and self.centers)
                and removes_shift(site, "row_scale") is not None)

    @classmethod
    def draw(cls, draw, shape, context):
        """Affine or not, eps 0 or PyTorch's 1e-5; a group of at least 3 entries (a
        LayerNorm of 2 features is degenerate: x̂ = ±(1, -1))."""
        layer = cls(affine=draw(st.booleans()), eps=draw(st.sampled_from([0.0, 1e-5])))
        return layer if len(shape) in cls.ranks and not layer.degenerate(shape) else None

    def degenerate(self, in_shape) -> bool:
        """A group within one sample of fewer than 3 entries (x̂ = ±(1, -1) or 0/0)."""
        axes = self.axes(len(in_shape) + 1)
        return 0 not in axes and int(np.prod([in_shape[a - 1] for a in axes])) < 3
