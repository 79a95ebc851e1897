"""prepend(tokens): learned tokens put before a (T, d) sequence, (T, d) -> (tokens + T, d):
a vision transformer's class token, ``torch.cat([self.cls_token.expand(N, -1, -1), x], 1)``.

A scaling of the features passes when the tokens' features scale alike (their columns
join the path); a scaling of the positions does not (the new positions are not scaled).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer
from flowlaws.validation import positive_ints


@dataclass(frozen=True)
class Prepend(Layer):
    """[tokens; x] along the positions of a (T, d) sequence."""

    tokens: int = 1
    kind: ClassVar[str] = "prepend"
    example: ClassVar[str] = "seq:2x2:dense(2),prepend,attention(heads=1,dk=1,dv=1),flatten,dense(1)"
    family: ClassVar[str] = "tok"
    ranks: ClassVar[tuple[int, ...]] = (2,)

    def __post_init__(self):
        positive_ints("prepend", tokens=self.tokens)

    def param_shapes(self, in_shape):
        return (("cls", (self.tokens, in_shape[-1])),)

    def out_shape(self, in_shape):
        if len(in_shape) != 2:
            raise InvalidArgument(f"{self.spec} needs a (T, d) sequence, got shape {tuple(in_shape)}")
        return (self.tokens + in_shape[0], in_shape[-1])

    def apply(self, p, x):
        return anp.concatenate([p[0][None] * anp.ones((x.shape[0], 1, 1)), x], axis=1)

    def vjp(self, p, x, y, dy):
        return dy[:, self.tokens:], (np.sum(dy[:, :self.tokens], axis=0),)

    def vjp_magnitude(self, p, x, y, dy):
        return self.vjp(p, x, y, dy)

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """The tokens' columns of the scaled features scale with them (the path's degree)."""
        if not path.on_axis(True, 2):
            return None
        return replace(path.met(site, site.views(1, path.units), path.degree), shifts=False)

    def shift(self, site) -> str:
        return "passes"

    def sample_shift(self, site) -> str:
        """The class token's row has no shift, uniform over its features too (0)."""
        return "passes"

    def written_shifts(self, site):
        """Token k's features shifted alike, each token by its own amount: a shift of its
        position's features, which a LayerNorm removes (the sum of each token's entries)."""
        return (("sample_shift", site.views(0, self.tokens), False),)

    @classmethod
    def draw(cls, draw, shape, context):
        return cls() if len(shape) in cls.ranks else None
