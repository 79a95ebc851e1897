"""upsample1d(S) and upsample2d(S): nearest-neighbour upsampling by an integer factor S
(one value, or one per axis: ``upsample2d(2x1)``), as torch's ``nn.Upsample(scale_factor=S)``
and ``F.interpolate(x, scale_factor=S)`` in their default mode, "nearest".

y[c, i] = x[c, i // S]: each entry copied S times along each axis, channel by channel. It is
linear and maps each channel alone, so a channel's scaling and a shift constant over the
positions pass it (an average pool's declarations, without its mixing).

Its copies bring a family flowlaws does not derive: a weight layer that reads two copies of
one value through weights that see nothing else apart (a dense layer after flatten, a
convolution whose taps read exact pairs) gets the same gradient on both, so their
difference is conserved (W[:, a] - W[:, b]); laws-complete sets every net with an upsample
aside (`NO_COPIES`, docs/theory.md 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer
from flowlaws.validation import on_axes, per_axis


@dataclass(frozen=True)
class Upsample(Layer):
    """y[n, c, i] = x[n, c, i // S] along each spatial axis."""

    scale: int | tuple
    dims: ClassVar[int]
    family: ClassVar[str] = "up"
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it

    def __post_init__(self):
        object.__setattr__(self, "scale", per_axis(self.kind, "scale", self.scale, self.dims))

    scales = property(lambda self: on_axes(self.scale, self.dims))

    def out_shape(self, in_shape):
        if len(in_shape) != self.dims + 1:
            raise InvalidArgument(f"{self.spec} needs input (channels, {self.dims} spatial axes), "
                                  f"got shape {tuple(in_shape)}")
        return (in_shape[0], *(n * s for n, s in zip(in_shape[1:], self.scales, strict=True)))

    def apply(self, p, x):
        """Each entry repeated S times along each spatial axis (exact on any number type)."""
        for axis, s in enumerate(self.scales, start=2):
            x = anp.repeat(x, s, axis=axis)
        return x

    def vjp(self, p, x, y, dy):
        """Each input's gradient is the sum over its copies."""
        blocks = dy.reshape(*dy.shape[:2], *(m for n, s in zip(x.shape[2:], self.scales, strict=True)
                                               for m in (n, s)))
        return blocks.sum(axis=tuple(3 + 2 * k for k in range(self.dims))), ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)  # copies: every weight is 1

    def bound(self, p, x):
        return self.apply(p, x)

    def shift(self, site) -> str:
        """Copies of a shift constant over the positions are that shift."""
        return "passes"

    def sample_shift(self, site) -> str:
        return "passes"

    def carry(self, path, site):
        """A channel's scaling passes linearly (each channel is copied alone); a scaling of the
        last spatial axis's positions would reach its copies: not followed (None)."""
        if not path.on_axis(False, len(site.in_shape)):
            return None
        return path.times(1.0, True, shifts=True)

    def keeps_sums(self, in_shape) -> bool:
        """Copies of a row summing to 0 along the last axis sum to 0."""
        return len(in_shape) > 1

    @classmethod
    def draw(cls, draw, shape, context):
        """A factor of 2 on every axis, or (a 2-d one) of 1 on the last."""
        if len(shape) != cls.dims + 1:
            return None
        return cls((2,) * (cls.dims - 1) + (draw(st.sampled_from((2, 1))) if cls.dims > 1 else 2,))


@dataclass(frozen=True)
class Upsample1d(Upsample):
    kind: ClassVar[str] = "upsample1d"
    example: ClassVar[str] = "seq:1x3:conv1d(2,1,bias),relu,upsample1d(2),conv1d(2,3,padding=1),relu,flatten,dense(1)"
    dims: ClassVar[int] = 1
    ranks: ClassVar[tuple[int, ...]] = (2,)


@dataclass(frozen=True)
class Upsample2d(Upsample):
    kind: ClassVar[str] = "upsample2d"
    example: ClassVar[str] = "seq:1x2x2:conv2d(2,1,bias),relu,upsample2d(2),conv2d(1,3,padding=1),relu,flatten,dense(1)"
    dims: ClassVar[int] = 2
    ranks: ClassVar[tuple[int, ...]] = (3,)
