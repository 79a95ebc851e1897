"""layernorm[(affine][,eps=E])]: over the last axis of each sample (torch's LayerNorm(d))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flowlaws.models.kinds.normalization import Normalization


@dataclass(frozen=True)
class LayerNorm(Normalization):
    """Over the last axis of each sample: the features of (N, d), or of each position of
    a (N, T, d) sequence."""

    kind: ClassVar[str] = "layernorm"
    example: ClassVar[str] = "seq:3:dense(4),layernorm(affine),relu,dense(2)"
    family: ClassVar[str] = "ln"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    constant_group: ClassVar[str] = "a sample's features are all equal (e.g. all 0 after ReLU)"

    def axes(self, ndim):
        return (ndim - 1,)

    def channel_axis(self, ndim):
        return ndim - 1
