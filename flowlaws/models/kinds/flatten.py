"""flatten: (C, ...) -> (C * ...), C-major: channel c owns a contiguous block."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class Flatten(Layer):
    """(N, C, ...) -> (N, C * ...), C-major."""

    kind: ClassVar[str] = "flatten"
    example: ClassVar[str] = "seq:2x4:conv1d(2,2),relu,flatten,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)

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
        """A shift uniform over each position's features (what a layer on a sequence makes)
        is not uniform over the flattened sample: it passes a flat input only."""
        return "passes" if len(site.in_shape) == 1 else "stops"

    def carry(self, path, site):
        """Channel c becomes the c-th contiguous block: the scaling passes unchanged;
        the features of a (T, d) sequence become every d-th entry (interleaved)."""
        if path.last_axis and len(site.in_shape) > 1:
            return replace(path, last_axis=False, interleaved=True)
        return path

    def keeps_sums(self, in_shape) -> bool:
        return True

    @classmethod
    def draw(cls, draw, shape, context):
        return cls() if len(shape) > 1 else None
