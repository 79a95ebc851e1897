"""token(index): one position of a (T, d) sequence, (T, d) -> (d,): a vision
transformer's read-out of its class token, ``x[:, 0]``.

Linear: a scaling or a shift of the features passes (the output is flat); a scaling of
the positions does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class Token(Layer):
    """x[:, index] of a (N, T, d) batch."""

    index: int = 0
    kind: ClassVar[str] = "token"
    example: ClassVar[str] = "seq:3x3:dense(3),relu,token,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (2,)

    def out_shape(self, in_shape):
        if len(in_shape) != 2 or not -in_shape[0] <= self.index < in_shape[0]:
            raise InvalidArgument(f"{self.spec} needs a (T, d) sequence with position {self.index}, "
                                  f"got shape {tuple(in_shape)}")
        return (in_shape[-1],)

    def apply(self, p, x):
        return x[:, self.index]

    def vjp(self, p, x, y, dy):
        dx = np.zeros_like(x, shape=x.shape, dtype=np.result_type(x, dy))
        dx[:, self.index] = dy
        return dx, ()

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """A scaling of the features passes (the output is flat: no layout left)."""
        if not path.on_axis(True, 2):
            return None
        return replace(path.times(1.0, True, shifts=True), last_axis=False, interleaved=False)

    def shift(self, site) -> str:
        return "passes"

    def feature_shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        return "passes"

    def keeps_sums(self, in_shape) -> bool:
        return True

    def centred_groups(self, in_shape, groups: int) -> int:
        return 1

    @classmethod
    def draw(cls, draw, shape, context):
        return cls(draw(st.integers(0, shape[0] - 1))) if len(shape) in cls.ranks else None
