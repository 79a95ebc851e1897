"""sinusoid: y = x + C, the fixed sinusoidal position encoding of a (T, d) sequence
(Vaswani et al. 2017): C[t, 2i] = sin(t w_i), C[t, 2i + 1] = cos(t w_i), w_i =
base^(-2i/d) (an odd d ends on a sine); ``halves``: the sines in the first d/2 features,
the cosines in the last (tensor2tensor's layout, d even). In torch, ``x + self.pe[:,
:x.size(1)]`` of a registered buffer (`flowlaws.torch.conversion` reads it by its values).

Not learned, so it has no law of its own; it maps each entry alone, so any shift passes
(x + a + C = (x + C) + a). No scaling passes: c x + C = c (x + C) needs C = 0 on the
scaled units at every position, and for T >= 2 every feature is nonzero at t = 0 (a
cosine, 1) or t = 1 (a sine, sin(w_i) > 0 as 0 < w_i <= 1). One position (T = 1) would
pass a scaling of the sines (all 0 there), so the layer takes T >= 2. Nor does a scaling
of one position's row pass, for d >= 2: row 0 holds cos 0 = 1, and every later row sin(t)
!= 0. With one feature (d = 1) row 0 is sin 0 = 0 alone, and a scaling of position 0
would pass (found by the laws-complete campaign, 2026-12-06:
seq:2x3:gated[dense(1),relu | dense(1)],conv1d(2,1),sinusoid,flatten,dense(1), 3 laws, 2
derived), so the layer takes d >= 2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Entrywise


@functools.cache
def table(positions: int, features: int, base: float = 10000.0, halves: bool = False) -> np.ndarray:
    """C, (positions, features) float64, read-only."""
    angles = np.arange(positions)[:, None] * base ** (-np.arange(0, features, 2) / features)
    C = np.empty((positions, features))
    if halves:
        C[:, :features // 2], C[:, features // 2:] = np.sin(angles), np.cos(angles)
    else:
        C[:, 0::2], C[:, 1::2] = np.sin(angles), np.cos(angles[:, :features // 2])
    C.flags.writeable = False
    return C


@dataclass(frozen=True)
class Sinusoid(Entrywise):
    """y = x + C, C the sinusoidal encoding of the input's (T, d) shape."""

    base: float = 10000.0
    halves: bool = False
    kind: ClassVar[str] = "sinusoid"
    example: ClassVar[str] = "seq:3x4:dense(4,bias),sinusoid,relu,dense(3),mean(last),dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (2,)

    def __post_init__(self):
        if not self.base > 1:
            raise InvalidArgument(f"sinusoid: base must be > 1, got {self.base}")

    def out_shape(self, in_shape):
        if len(in_shape) != 2 or in_shape[0] < 2 or in_shape[1] < 2 or (self.halves and in_shape[1] % 2):
            even = " and an even d" * self.halves
            raise InvalidArgument(f"{self.spec} needs a (T, d) sequence of T >= 2 positions and d >= 2 "
                                  f"features{even}, got shape {tuple(in_shape)}")
        return tuple(in_shape)

    def encoding(self, shape) -> np.ndarray:
        """C for a sample of ``shape`` (T, d)."""
        return table(int(shape[0]), int(shape[1]), float(self.base), self.halves)

    def apply(self, p, x):
        return x + self.encoding(np.shape(x)[1:])

    def vjp(self, p, x, y, dy):
        return dy, ()

    def bound(self, p, x):
        """|x + C| <= x + |C| for |x| <= x."""
        return x + np.abs(self.encoding(np.shape(x)[1:]))

    # --- symmetry declarations: no scaling passes (`Layer.carry`, as it absorbs none) ----
    def shift(self, site) -> str:
        return "passes"

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) != 2 or shape[0] < 2 or shape[1] < 2:
            return None
        return cls(halves=draw(st.booleans()) and shape[1] % 2 == 0)
