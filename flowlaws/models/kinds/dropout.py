"""dropout(p): y = m * x / (1 - p) with a 0/1 mask m, m = 0 with probability p (train mode).

The mask is drawn from the bits of the layer's input rounded to float32 (a hash seeds the
generator), so it is fresh whenever the input changes (every step, for a layer after a
weight layer), the same on every machine, and a replay reproduces it bit for bit; two
computations of one input that differ by float64 round-off (a fused pass and autograd's,
another BLAS) draw the same mask (unless an entry lies within that round-off of a float32
rounding boundary: about 2^-29 of entries). Frozen, it is a
positive diagonal map: a scaling of each unit passes it (degree 1), no mixing of units
and no shift does (p = 0: the identity, which both pass; a model trained with dropout 0,
as nanoGPT's default, keeps its matrix laws). The laws hold for every mask, so a step with dropout obeys the step
identity for the mask it drew (docs/theory.md 3.9).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from autograd.tracer import getval
from hypothesis import strategies as st

from flowlaws.models.layer import Entrywise
from flowlaws.validation import fraction


@dataclass(frozen=True)
class Dropout(Entrywise):
    """Inverted dropout with drop probability ``p``, its mask a function of its input."""

    p: float
    kind: ClassVar[str] = "dropout"
    example: ClassVar[str] = "seq:3:dense(4,bias),relu,dropout(0.25),dense(3,bias),relu,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)

    def __post_init__(self):
        fraction("dropout", "p", self.p)

    def mask(self, x) -> np.ndarray:
        """m / (1 - p) for a 0/1 mask m drawn from the bits of ``x`` in float32."""
        with np.errstate(over="ignore"):  # (beyond float32's range: inf, a bit pattern like any other)
            bits = np.ascontiguousarray(np.real(getval(x)), dtype=np.float32).tobytes()
        rng = np.random.default_rng(zlib.crc32(bits))
        return (rng.random(np.shape(x)) >= self.p) / (1.0 - self.p)

    def apply(self, p, x):
        return x * self.mask(x)

    def vjp(self, p, x, y, dy):
        return dy * self.mask(x), ()

    def run(self, p, x, frozen=None):
        m = self.mask(x) if frozen is None else frozen
        return x * m, m

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        return dy * aux, ()

    def freeze(self, x, y, aux):
        return aux

    def bound_run(self, p, x, aux):
        return x * aux, aux  # x is the bound; the mask is the forward pass's

    @property
    def piecewise(self) -> bool:
        return self.p > 0  # dropout(0) is the identity: no regions

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """A positive diagonal map, frozen: each unit's scaling passes (no mixing, no
        shift); dropout(0) is the identity, which every mixing and shift passes."""
        identity = self.p == 0
        return path.times(1.0, identity, shifts=identity)

    def row_scale(self, site) -> str:
        """A positive diagonal map, frozen, commutes with a factor per row."""
        return "passes"

    def shift(self, site) -> str:
        """A shift becomes m * delta / (1 - p), varying with the mask; dropout(0) passes it."""
        return "passes" if self.p == 0 else "stops"

    @classmethod
    def draw(cls, draw, shape, context):
        return cls(draw(st.sampled_from([0.0, 0.1, 0.25])))
