"""mean and mean(last): the average over positions, keeping the channel or feature axis.

``mean`` keeps the first axis: (C, L) or (C, H, W) -> (C,), a global average pool
(torch's AdaptiveAvgPool(1) and flatten, or ``x.mean((2, 3))``). ``mean(last)`` keeps
the last axis: (T, d) -> (d,), the mean over tokens (``x.mean(1)``). Linear, so a
scaling or a shift of the kept units passes unchanged; a scaling of the averaged axis
does not pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class Mean(Layer):
    """The average over every sample axis but the first (``last``: but the last)."""

    last: bool = False
    kind: ClassVar[str] = "mean"
    example: ClassVar[str] = "seq:2x4:conv1d(3,1),relu,mean,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)
    ranged: ClassVar[bool] = True  # one branch's channels of a concatenation pass it (kept axis 0)

    def _axes(self, ndim: int) -> tuple[int, ...]:
        """The averaged axes of a batch of ``ndim`` axes."""
        return tuple(range(1, ndim - 1)) if self.last else tuple(range(2, ndim))

    def out_shape(self, in_shape):
        if len(in_shape) < 2:
            raise InvalidArgument(f"{self.spec} needs positions to average over, got shape {tuple(in_shape)}")
        return (in_shape[-1] if self.last else in_shape[0],)

    def apply(self, p, x):
        return anp.mean(x, axis=self._axes(x.ndim))

    def vjp(self, p, x, y, dy):
        axes = self._axes(x.ndim)
        count = int(np.prod([x.shape[a] for a in axes]))
        return np.broadcast_to(np.expand_dims(dy, axes), x.shape) / count, ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """A scaling of the kept axis passes (the output is flat: no layout left)."""
        if not path.on_axis(self.last, len(site.in_shape)):
            return None
        return replace(path.times(1.0, True, shifts=True), last_axis=False, interleaved=False)

    def shift(self, site) -> str:
        return "passes"

    def feature_shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        """A shift uniform over each position's features stays uniform over the features."""
        return "passes" if self.last else "stops"

    def channel_shift(self, site) -> str:
        """A shift uniform over the channels at each position stays uniform over them."""
        return "stops" if self.last else "passes"

    def keeps_sums(self, in_shape) -> bool:
        return self.last

    def centred_groups(self, in_shape, groups: int) -> int:
        return 1  # the mean of centred rows: one centred row

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) not in cls.ranks:
            return None
        return cls(last=len(shape) == 2 and draw(st.booleans()))
