"""flatten[(start=S)]: the sample axes from ``start`` merged into one, C-major, as torch's
``x.flatten(1 + start)``: (C, ...) -> (C * ...) (channel c owns a contiguous block), or with
``start=1`` (C, H, W) -> (C, H * W) (a vision transformer's patches, before the transpose)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class Flatten(Layer):
    """(N, C, ...) -> (N, C * ...), C-major; from sample axis ``start`` on."""

    start: int = 0
    kind: ClassVar[str] = "flatten"
    example: ClassVar[str] = "seq:2x4:conv1d(2,2),relu,flatten,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it
    keeps_order: ClassVar[bool] = True

    def out_shape(self, in_shape):
        if not 0 <= self.start < max(len(in_shape), 1):
            raise InvalidArgument(f"{self.spec}: a sample of {len(in_shape)} axes has no axis {self.start} to "
                                  "flatten from; count the sample's axes from 0 (the batch axis is not one)")
        return (*in_shape[:self.start], int(np.prod(in_shape[self.start:])))

    def apply(self, p, x):
        return anp.reshape(x, (x.shape[0], *x.shape[1:1 + self.start], -1))

    def run(self, p, x, frozen=None):
        return x.reshape(len(x), *x.shape[1:1 + self.start], -1), None

    def vjp(self, p, x, y, dy):
        return dy.reshape(x.shape), ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    def merges(self, in_shape) -> bool:
        """Whether it merges the last axis with others (a no-op flatten does not)."""
        return self.start < len(in_shape) - 1

    def shift(self, site) -> str:
        return "passes"

    def feature_shift(self, site) -> str:
        """Along the last axis only: so it stays, the last axis merged with those before it."""
        return "passes"

    def sample_shift(self, site) -> str:
        """A shift uniform over each position's features (what a layer on a sequence makes)
        is not uniform over the flattened sample: it passes a flat input only."""
        return "passes" if not self.merges(site.in_shape) else "stops"

    def channel_shift(self, site) -> str:
        """From ``start`` >= 1 the channels stay the first axis, each position in its place."""
        return "passes" if self.start >= 1 or not self.merges(site.in_shape) else "stops"

    def carry(self, path, site):
        """Channel c becomes the c-th contiguous block: the scaling passes unchanged;
        the features of a (T, d) sequence become every d-th entry (interleaved). From
        ``start`` >= 1 the first axis stays; a last axis merged with others stops. A range
        of the channels (`Path.span`) becomes the range of their entries."""
        if not self.merges(site.in_shape):
            return path
        if self.start == 0:
            block = int(np.prod(site.in_shape[1:]))  # (one branch's channels of a concatenation: their entries)
            ranged = replace(path, offset=path.offset * block, span=path.span * block)
            return replace(path, last_axis=False, interleaved=True) if path.last_axis else ranged
        return None if path.last_axis and path.units > 1 else path

    def row_scale(self, site) -> str:
        """A factor per row stays one per row only when no row is merged with another."""
        return "passes" if not self.merges(site.in_shape) or np.prod(site.in_shape[:-1]) == 1 else "stops"

    def keeps_sums(self, in_shape) -> bool:
        return self.start == 0 or not self.merges(in_shape)

    @classmethod
    def draw(cls, draw, shape, context):
        return cls(draw(st.integers(0, len(shape) - 2))) if len(shape) > 1 else None
