"""batchnorm[(affine][,eps=E])]: per channel (axis 1) over the batch and the spatial axes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flowlaws.models.kinds.normalization import Normalization


@dataclass(frozen=True)
class BatchNorm(Normalization):
    """Per channel (axis 1) over the batch and the spatial axes: BatchNorm1d on (N, d),
    BatchNorm1d/2d on (N, C, L) and (N, C, H, W)."""

    kind: ClassVar[str] = "batchnorm"
    example: ClassVar[str] = "seq:3:dense(4,bias),batchnorm,relu,dense(2)"
    family: ClassVar[str] = "bn"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    couples_samples: ClassVar[bool] = True
    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it
    constant_group: ClassVar[str] = "a channel is constant over the batch (one sample, or a dead unit)"

    def axes(self, ndim):
        return (0, *range(2, ndim))

    def channel_axis(self, ndim):
        return 1
