"""moveaxis(source,destination): a sample axis moved, as torch's ``x.transpose(1, 2)`` of a
(N, T, d) sequence (``moveaxis(0,1)``) or ``x.permute(0, 2, 3, 1)`` of an image
(``moveaxis(0,-1)``: channels last; ``moveaxis(-1,0)``: back).

Axes count a sample's axes (the batch axis is not one). A permutation of entries: a
scaling of units on the first or last axis passes when that axis lands first or last
(channels become features, positions become the axis a token-mixing dense layer reads),
and a shift constant over the batch passes; anything else stops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Centred


@dataclass(frozen=True)
class MoveAxis(Layer):
    """Sample axis ``source`` moved to position ``destination`` (negative: from the end)."""

    source: int
    destination: int
    kind: ClassVar[str] = "moveaxis"
    example: ClassVar[str] = "seq:3x4:dense(2),relu,moveaxis(0,1),dense(2),relu,flatten,dense(1)"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)

    def _order(self, ndim: int) -> list[int]:
        """Where each output axis comes from, for samples of ``ndim`` axes."""
        if not (-ndim <= self.source < ndim and -ndim <= self.destination < ndim):
            raise InvalidArgument(f"{self.spec}: a sample of {ndim} axes has no axis {self.source} or "
                                  f"{self.destination}; count the sample's axes from 0 (the batch axis is not one)")
        order = list(range(ndim))
        order.insert(self.destination % ndim, order.pop(self.source % ndim))
        return order

    def out_shape(self, in_shape):
        return tuple(in_shape[a] for a in self._order(len(in_shape)))

    def apply(self, p, x):
        return anp.moveaxis(x, 1 + self.source % (x.ndim - 1), 1 + self.destination % (x.ndim - 1))

    def vjp(self, p, x, y, dy):
        return np.moveaxis(dy, 1 + self.destination % (x.ndim - 1), 1 + self.source % (x.ndim - 1)), ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """The units' axis (the first, or the last) moves with its entries: the path goes
        on when it lands first or last (one unit on an axis of length 1, the whole sample,
        moves like any other: a layer after it reads the axis it landed on)."""
        ndim = len(site.in_shape)
        axis = ndim - 1 if path.last_axis else 0
        landed = self._order(ndim).index(axis)
        if landed not in (0, ndim - 1) or path.interleaved:
            return None
        return replace(path, last_axis=landed == ndim - 1)

    def centred_layout(self, in_shape, groups: Centred) -> Centred | None:
        """A LayerNorm's rows (one centred group per row of the last axis) with that axis
        moved first: group g is then every entry g + count k (`symmetry.Centred`)."""
        ndim = len(in_shape)
        rows = int(np.prod(in_shape[:-1]))
        if groups.interleaved or groups.count != rows or self._order(ndim)[0] != ndim - 1:
            return None
        return Centred(rows, interleaved=True)

    def shift(self, site) -> str:
        """Varying along the channels: along the last axis when they land last."""
        return self._lands(site, 0, "shift", "feature_shift")

    def feature_shift(self, site) -> str:
        """Varying along the last axis: along the first when it lands first."""
        return self._lands(site, len(site.in_shape) - 1, "shift", "feature_shift")

    def sample_shift(self, site) -> str:
        """A shift uniform over the last axis: over the channels when that axis lands first."""
        return self._lands(site, len(site.in_shape) - 1)

    def channel_shift(self, site) -> str:
        """A shift uniform over the channels: over the features when they land last (a ViT's
        patches, channels last)."""
        return self._lands(site, 0)

    def _lands(self, site, axis: int, first: str = "channel_shift", last: str = "sample_shift") -> str:
        """How a shift tied to ``axis`` passes: as it came when the axis stays, as the kind
        ``first`` or ``last`` when it lands first or last, else it stops."""
        ndim = len(site.in_shape)
        landed = self._order(ndim).index(axis)
        return "passes" if landed == axis else last if landed == ndim - 1 else first if landed == 0 else "stops"

    @classmethod
    def draw(cls, draw, shape, context):
        """Channels last or back; never an axis of length 1, whose move only inserts a
        singleton before the units' axis, a layout the walker does not follow (degenerate:
        seq:1x4x4:moveaxis(0,-1),conv2d(2,1),moveaxis(-1,0),flatten,dense(1) has 3 laws,
        0 derived; found by the laws-complete campaign)."""
        if len(shape) not in cls.ranks:
            return None
        layer = cls(*draw(st.sampled_from([(0, -1), (-1, 0)])))
        return None if shape[layer.source] == 1 else layer
