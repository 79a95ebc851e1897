"""Asymmetric matrix factorization as a model: f(X) = X V U^T (Sec. 3 of the paper).

With the identity as data (X = I of size d2) and target Y = M*^T, the square loss
with ``reduction="sum"`` is f(U, V) = 1/2 ||U V^T - M*||_F^2. The factorization is a
two-layer linear network (W1 = V^T, W2 = U), so its symmetry is U -> U G,
V -> V G^-T for any invertible r x r G, and U^T U - V^T V is conserved.
"""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import REALMIN
from flowlaws.models.symmetry import Rescaling, Term, View
from flowlaws.validation import positive_int


@dataclass(frozen=True)
class Factorization:
    """Factors U (d1 x rank) and V (d2 x rank) of a d1 x d2 matrix."""

    d1: int
    d2: int
    rank: int

    def __post_init__(self):
        for name in ("d1", "d2", "rank"):
            positive_int("factorization", name, getattr(self, name))

    @property
    def input_shape(self):
        return (self.d2,)

    @property
    def output_shape(self):
        return (self.d1,)

    @property
    def param_specs(self):
        return (("U", (self.d1, self.rank)), ("V", (self.d2, self.rank)))

    @property
    def spec(self) -> str:
        return f"factorization:{self.d1}x{self.d2}:{self.rank}"

    def __str__(self) -> str:
        return self.spec

    def init(self, rng: np.random.Generator, *, scale: float = 1.0):
        """U, V with i.i.d. N(0, scale^2) entries (Thm 3.1's initialization)."""
        return tuple(rng.normal(0.0, scale, size=shape) for _, shape in self.param_specs)

    def apply(self, params, X, *, fused: bool = True):
        U, V = params
        return anp.dot(anp.dot(X, V), U.T)

    def pattern(self, params, X):
        return None  # smooth: nothing to freeze

    def pattern_of(self, cache):
        return None

    def forward(self, params, X, pattern=None):
        U, V = params
        A = X @ V
        return A @ U.T, (X, A)

    def bounds(self, params, cache):
        """The forward magnitude sweep (see `Sequential.bounds`)."""
        X, _ = cache
        X = np.abs(X) + REALMIN
        return X, X @ np.abs(params[1]) + REALMIN

    def backward(self, params, cache, dout, magnitude: bool = False):
        U = np.abs(params[0]) if magnitude else params[0]
        X, A = cache
        if not magnitude:
            return (dout.T @ A, X.T @ (dout @ U))
        inner = np.abs(dout) @ U + REALMIN
        return (np.abs(dout).T @ A + REALMIN, X.T @ inner + REALMIN)

    def rescalings(self):
        """U -> U G, V -> V G^-T: columns of U scale by c, columns of V by 1/c."""
        terms = (Term(View(0, "U", 1, self.rank, self.d1 * self.rank), 1.0),
                 Term(View(1, "V", 1, self.rank, self.d2 * self.rank), -1.0))
        return (Rescaling("U/V", self.rank, terms, True),)

    def without_skips(self):
        return self

    def with_activation(self, act):
        return self

    @property
    def activations(self):
        return ()

    @property
    def layers(self):
        return ()

    def data(self, target: np.ndarray):
        """(X, Y) such that the square loss with reduction='sum' is 1/2||UV^T - M*||^2."""
        target = np.asarray(target, dtype=float)
        if target.shape != (self.d1, self.d2):
            raise InvalidArgument(
                f"target must have shape ({self.d1}, {self.d2}), got {target.shape}"
            )
        return np.eye(self.d2), target.T.copy()
