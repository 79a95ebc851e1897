"""rmsnorm[(affine][,eps=E])]: y = gamma * x / sqrt(mean(x^2) + eps) over the last axis
of each sample, as torch's RMSNorm(d) (whose eps defaults to float32's machine epsilon;
here to 0).

No mean is subtracted and there is no beta: at eps = 0 a scaling of the input is
removed (a scale law, one c for the whole group, as a LayerNorm's), but no shift is,
so no translation law; with eps > 0 no law passes it (docs/theory.md 6.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flowlaws.models.kinds.normalization import Normalization


@dataclass(frozen=True)
class RMSNorm(Normalization):
    """Over the last axis of each sample, without centring."""

    kind: ClassVar[str] = "rmsnorm"
    example: ClassVar[str] = "seq:3:dense(4),rmsnorm(affine),relu,dense(2)"
    family: ClassVar[str] = "rms"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    centers: ClassVar[bool] = False
    constant_group: ClassVar[str] = "a sample's features are all 0 (e.g. after ReLU)"

    def axes(self, ndim):
        return (ndim - 1,)

    def channel_axis(self, ndim):
        return ndim - 1

    def keeps_sums(self, in_shape) -> bool:
        """Without a gain it divides each row of the last axis by one positive number: a
        row summing to 0 (after a LayerNorm) still does."""
        return not self.affine

    def keeps_group_sums(self, in_shape) -> bool:
        """Each row by its own number: a group of several rows summing to 0 (a GroupNorm's)
        no longer does (found by the composition campaign:
        seq:1x4x4:groupnorm,rmsnorm,flatten,dense(1))."""
        return False
