"""onehot: the input is one-hot tokens (token ids to flowlaws: `flowlaws.torch.one_hot`).

y = x + (1 - 1^T x) / V 1 over the last axis (V entries): the identity on one-hot rows,
and for any input a row that sums to 1, so the laws below hold for every input, not only
for tokens. A dense layer reading it then writes a shift through its rows alone: W -> W +
a 1^T adds a to every position's output, as a bias does, so a bias, or a position
embedding (`offset`) right after it, trades with its row sums: sum_v W[i, v] - b_i, or
sum_v W[i, v] - sum_t P[t, i] (docs/theory.md 6.7: nanoGPT's token and position
embeddings). Affine, not homogeneous: no scaling and no shift passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.models.kinds.flatten import Flatten
from flowlaws.models.layer import Layer


@dataclass(frozen=True)
class OneHot(Layer):
    """Each row of the last axis moved along 1 to sum to 1: x + (1 - 1^T x) / V 1."""

    kind: ClassVar[str] = "onehot"
    example: ClassVar[str] = "seq:3x4:onehot,dense(2),offset,relu,flatten,dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (1, 2)

    def apply(self, p, x):
        return x + (1 - anp.sum(x, axis=-1, keepdims=True)) / x.shape[-1]  # (1: exact in rationals)

    def vjp(self, p, x, y, dy):
        return dy - np.sum(dy, axis=-1, keepdims=True) / x.shape[-1], ()

    def vjp_magnitude(self, p, x, y, dy):
        """|dy| plus the magnitude of the subtracted mean: the terms of dx, bounded."""
        return dy + np.sum(dy, axis=-1, keepdims=True) / x.shape[-1], ()

    def bound(self, p, x):
        """|x| + (1 + sum |x|) / V bounds the output and the terms summed to form it."""
        return x + (1.0 + np.sum(x, axis=-1, keepdims=True)) / x.shape[-1]

    @staticmethod
    def before(site) -> bool:
        """Whether the layer at ``site`` reads a `OneHot`'s output (rows that sum to 1),
        directly or through flattens that keep its shape."""
        chain, k = site.chain, site.position - 1
        while k >= 0 and isinstance(chain.layers[k], Flatten) and not chain.layers[k].merges(chain.shapes[k]):
            k -= 1
        return k >= 0 and isinstance(chain.layers[k], OneHot)

    @classmethod
    def draw(cls, draw, shape, context):
        return cls() if len(shape) in cls.ranks else None
