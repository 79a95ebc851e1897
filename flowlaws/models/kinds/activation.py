"""Activations as data: a name, fixed arguments, and the homogeneity degree.

An `Activation` is also a parameter-free layer. Positively homogeneous activations
(phi(c z) = c^k phi(z) for c > 0) carry their degree k; the non-homogeneous controls
carry ``degree=None`` and have no conservation law (docs/theory.md 3.7).

Subgradient convention at the kink z = 0: phi'(0) takes the negative-side slope
(ReLU'(0) = 0, leaky_relu'(0) = alpha, abs'(0) = -1). The Euler identity
phi(z) = phi'(z) z holds there for any choice, so the laws do not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument, unknown
from flowlaws.models.layer import Entrywise, fmt


def _prelu(a: float, b: float):
    if a == b:  # linear: a constant slope
        return (lambda z: a * z), (lambda z: np.full(np.shape(z), a))
    if a == 1.0 and b == 0.0:  # plain ReLU: a boolean mask is the cheapest derivative
        return (lambda z: z * (z > 0)), (lambda z: z > 0)
    return (lambda z: anp.where(z > 0, a, b) * z), (lambda z: np.where(z > 0, a, b))


def _relu_power(k: float):
    return (lambda z: anp.where(z > 0, z, 0.0) ** k), (
        lambda z: k * np.where(z > 0, z, 0.0) ** (k - 1) * (z > 0)
    )


def _sigmoid(z):
    return 0.5 * (anp.tanh(0.5 * z) + 1.0)


def _normal_cdf(z):
    import autograd.scipy.special as asp  # brings scipy.stats (1 s of import): only GELU nets pay it

    return 0.5 * (1.0 + asp.erf(z / np.sqrt(2.0)))


def _gelu(z):
    """(z Phi(z), Phi(z) + z phi(z)): GELU and its slope from one Phi(z) (erf is most of
    a GELU net's forward pass, at complex z most of all)."""
    cdf = _normal_cdf(z)
    return z * cdf, cdf + z * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


GELU_TANH = np.sqrt(2.0 / np.pi), 0.044715  # c, a of tanh(c (z + a z^3)): GPT-2's approximation


def _gelu_tanh(z):
    """(z (1 + tanh u) / 2, its slope) for u = c (z + a z^3): torch's GELU(approximate="tanh"),
    Hugging Face's gelu_new (GPT-2's MLP)."""
    c, a = GELU_TANH
    t = anp.tanh(c * (z + a * z**3))
    return 0.5 * z * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t**2) * c * (1.0 + 3.0 * a * z**2)


def _swish(beta: float):
    """(z sigmoid(beta z), its slope): Swish-beta (Ramachandran et al. 2017); silu is beta = 1,
    CLIP's QuickGELU beta = 1.702."""
    return (lambda z: z * _sigmoid(beta * z),
            lambda z: _sigmoid(beta * z) * (1.0 + beta * z * (1.0 - _sigmoid(beta * z))))


def _elu(z):
    return anp.where(z > 0, z, anp.expm1(anp.where(z > 0, 0.0, z)))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946  # torch's


def _selu(z):
    """scale (z if z > 0 else alpha (e^z - 1)): self-normalizing networks' (Klambauer et al. 2017)."""
    return SELU_SCALE * anp.where(z > 0, z, SELU_ALPHA * anp.expm1(anp.where(z > 0, 0.0, z)))


def _selu_derivative(z):
    return SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0)))


def _relu6(z):
    """min(max(z, 0), 6), its slope 0 at each kink (torch's), for autograd as for `derivative`."""
    return anp.where(z <= 0.0, 0.0, anp.where(z >= 6.0, 6.0, z))


def _mish(z):
    return z * anp.tanh(anp.logaddexp(0.0, z))


def _mish_derivative(z):
    t = np.tanh(np.logaddexp(0.0, z))
    return t + z * (1.0 - t**2) * _sigmoid(z)


# name -> (argument names, defaults, builder(*args) -> (fn, derivative[, both]), degree(*args)); both(z) =
# (fn(z), derivative(z)) where sharing their work pays
_FAMILY: dict[str, tuple[tuple[str, ...], tuple[float, ...], Callable, Callable]] = {
    "linear": ((), (), lambda: _prelu(1.0, 1.0), lambda: 1),
    "relu": ((), (), lambda: _prelu(1.0, 0.0), lambda: 1),
    "leaky_relu": (("alpha",), (0.1,), lambda a: _prelu(1.0, a), lambda a: 1),
    "abs": ((), (), lambda: _prelu(1.0, -1.0), lambda: 1),
    "prelu": (("a", "b"), (1.0, 0.25), _prelu, lambda a, b: 1),
    "relu_power": (("k",), (2.0,), _relu_power, lambda k: k),
    "tanh": ((), (), lambda: (anp.tanh, lambda z: 1.0 - np.tanh(z) ** 2), lambda: None),
    "sigmoid": ((), (), lambda: (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))), lambda: None),
    "softplus": ((), (), lambda: (lambda z: anp.logaddexp(0.0, z), _sigmoid), lambda: None),
    "gelu": ((), (), lambda: (lambda z: z * _normal_cdf(z), lambda z: _gelu(z)[1], _gelu), lambda: None),
    "gelu_tanh": ((), (), lambda: (lambda z: _gelu_tanh(z)[0], lambda z: _gelu_tanh(z)[1], _gelu_tanh), lambda: None),
    "elu": ((), (), lambda: (_elu, lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))), lambda: None),
    "silu": ((), (), lambda: _swish(1.0), lambda: None),
    "swish": (("beta",), (1.702,), _swish, lambda beta: None),
    "selu": ((), (), lambda: (_selu, _selu_derivative), lambda: None),
    "mish": ((), (), lambda: (_mish, _mish_derivative), lambda: None),
    # MobileNet's: min(max(z, 0), 6), z relu6(z + 3) / 6 and relu6(z + 3) / 6; at a kink, the
    # slope of the side where relu6 is flat (relu6's and hardsigmoid's are torch's: 0)
    "relu6": ((), (), lambda: (_relu6, lambda z: ((z > 0) & (z < 6)) * 1.0), lambda: None),
    "hardswish": ((), (), lambda: (lambda z: z * _relu6(z + 3.0) / 6.0,
                                   lambda z: np.where(z <= -3.0, 0.0, np.where(z >= 3.0, 1.0, (2.0 * z + 3.0) / 6.0))),
                  lambda: None),
    "hardsigmoid": ((), (), lambda: (lambda z: _relu6(z + 3.0) / 6.0, lambda z: ((z > -3.0) & (z < 3.0)) / 6.0),
                    lambda: None),
}

HOMOGENEOUS = ("linear", "relu", "leaky_relu", "abs", "prelu", "relu_power")
PIECEWISE_LINEAR = ("linear", "relu", "leaky_relu", "abs", "prelu")
NON_HOMOGENEOUS = ("tanh", "sigmoid", "softplus", "gelu", "gelu_tanh", "elu", "selu", "silu", "swish", "mish",
                   "hardswish", "hardsigmoid")
# homogeneous below its saturation (z < 6): its break needs inputs above 6, so no control
SATURATING = ("relu6",)
# entire or meromorphic: complex inputs too
ANALYTIC = ("tanh", "sigmoid", "softplus", "gelu", "gelu_tanh", "silu", "swish", "mish")


@dataclass(frozen=True)
class Activation(Entrywise):
    """An elementwise activation, e.g. ``Activation("leaky_relu", (0.1,))``.

    >>> Activation("relu").degree, Activation("relu_power", (3.0,)).degree, Activation("tanh").degree
    (1, 3.0, None)
    """

    name: str
    args: tuple[float, ...] = ()
    fn: Callable = field(init=False, repr=False, compare=False)
    derivative: Callable = field(init=False, repr=False, compare=False)
    both: Callable | None = field(init=False, repr=False, compare=False)  # z -> (fn(z), derivative(z)), if cheaper
    kind: ClassVar[str] = "activation"
    example: ClassVar[str] = "mlp:3-4-2:leaky_relu(0.2)"
    family: ClassVar[str] = "act"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)

    def __post_init__(self) -> None:
        if self.name not in _FAMILY:
            raise unknown("activation", self.name, _FAMILY)
        names, defaults, build, _ = _FAMILY[self.name]
        args = tuple(float(a) for a in self.args) or defaults
        if len(args) != len(names):
            raise InvalidArgument(
                f"activation {self.name!r} takes {len(names)} argument(s) {names}, got {self.args!r}"
            )
        if not all(np.isfinite(args)):
            raise InvalidArgument(f"activation {self.name!r} got non-finite arguments {args!r}")
        if self.name == "relu_power" and args[0] < 1:
            raise InvalidArgument(f"relu_power needs k >= 1, got k={args[0]}; use relu_power(2)")
        if self.name == "swish" and args[0] == 0:
            raise InvalidArgument("swish(0) is the linear z / 2, which has laws swish does not; use prelu(0.5,0.5)")
        object.__setattr__(self, "args", args)
        fn, derivative, *both = build(*args)
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "derivative", derivative)
        object.__setattr__(self, "both", both[0] if both else None)

    @property
    def degree(self) -> float | None:
        """Positive-homogeneity degree k (phi(c z) = c^k phi(z), c > 0), or None."""
        return _FAMILY[self.name][3](*self.args)

    @property
    def options(self) -> dict[str, float]:
        """Its arguments by name: ``{"beta": 1.702}`` for ``swish(1.702)``."""
        return dict(zip(_FAMILY[self.name][0], self.args, strict=True))

    @property
    def analytic(self) -> bool:
        """A smooth activation, analytic in its input (complex inputs allowed)."""
        return self.name in ANALYTIC

    @property
    def polynomial(self) -> bool:  # type: ignore[override]
        """Once its pattern is frozen: degree-1 activations are linear; smooth ones are not."""
        return self.degree == 1

    @property
    def is_linear(self) -> bool:
        """True for phi(z) = a z (read from its values: leaky_relu(1) is the identity, prelu(a, a)
        is a z): such a boundary has a matrix law (Thm 2.2)."""
        return self.degree == 1 and len(set(self.derivative(np.array([-2.0, -0.5, 0.5, 2.0])).tolist())) == 1

    @property
    def spec(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}({','.join(fmt(a) for a in self.args)})"

    def homogeneity_counterexample(self) -> str | None:
        """Why phi is not positively homogeneous (None if it is), e.g.
        "tanh(2*0.5) != 2*tanh(0.5)"."""
        if self.degree is not None:
            return None
        z = np.array([0.5, -0.5, 1.5, 4.0])  # 4: relu6 is homogeneous below its saturation
        lhs, rhs = self.fn(2 * z), 2 * self.fn(z)
        i = int(np.argmax(np.abs(lhs - rhs)))
        return f"{self.name}(2*{z[i]:g}) != 2*{self.name}({z[i]:g})"

    # --- as a layer (parameter-free, shape-preserving: the Layer defaults) ------------
    def apply(self, p, x):
        return self.fn(x)

    def vjp(self, p, x, y, dy):
        return self.derivative(x) * dy, ()

    def vjp_magnitude(self, p, x, y, dy):
        return np.abs(self.derivative(x)) * dy, ()

    def run(self, p, x, frozen=None):
        """(phi(x), slopes): with frozen slopes s, s * x (a piecewise-linear phi frozen);
        a piecewise-linear phi is s * x at its own slopes too (phi(z) = phi'(z) z)."""
        if frozen is None and self.name in PIECEWISE_LINEAR:
            frozen = self.derivative(x)
        if frozen is not None:
            return frozen * x, frozen
        return self.both(x) if self.both is not None else (self.fn(x), self.derivative(x))

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        return (np.abs(aux) if magnitude else aux) * dy, ()

    def freeze(self, x, y, aux):
        """Degree-1 activations freeze their slopes (phi(z) = phi'(z) z exactly)."""
        return aux * np.ones_like(x) if self.degree == 1 else None

    def bound(self, p, x):
        """max(|phi(x)|, |phi(-x)|) for x >= 0: bounds |phi(z)| for |z| <= x (every
        activation here has |phi| nondecreasing in |z|)."""
        return np.maximum(np.abs(self.fn(x)), np.abs(self.fn(-x)))

    @property
    def piecewise(self) -> bool:
        """A ReLU-family activation: two slopes, a kink at 0."""
        return len(set(self.derivative(np.array([-1.0, 1.0])).tolist())) > 1

    @property
    def sign_classes(self) -> int:
        """For units fed by one value s (z_i = w_i s), phi(w_i s) = |w_i| phi(sign(w_i) s) when
        phi is piecewise linear of degree 1: the units whose w_i share a sign share a
        pattern. 1 class when phi is even (abs: phi(-s) = phi(s)), 2 otherwise; 0 for a
        linear phi (any mixing is a symmetry already) or one of another degree.

        >>> Activation("relu").sign_classes, Activation("abs").sign_classes, Activation("tanh").sign_classes
        (2, 1, 0)
        """
        if self.degree != 1 or self.is_linear:
            return 0
        z = np.array([0.5, 2.0])
        return 1 if np.array_equal(self.fn(-z), self.fn(z)) else 2

    def keeps_sums(self, in_shape) -> bool:
        return self.is_linear

    def shift(self, site) -> str:
        return "passes" if self.is_linear else "stops"

    def row_scale(self, site) -> str:
        """phi(s z) = s^k phi(z) for s > 0: a positive factor passes a homogeneous phi."""
        return "stops" if self.degree is None else "passes"

    def carry(self, path, site):
        """phi(cz) = c^k phi(z): the degree multiplies by k; no symmetry without one."""
        if self.degree is None:
            return None
        return path.times(self.degree, self.is_linear, classes=self.sign_classes)

    # --- its spec: the activation's own name ------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(_FAMILY)

    @classmethod
    def from_spec(cls, name, positional, keywords, flags, branches=None) -> Activation:
        if keywords or flags:
            raise InvalidArgument(f"activation {name} takes numbers only, got {sorted({*keywords, *flags})}")
        return cls(name, tuple(float(v) for v in positional))  # the parser passes numbers as positional

    @classmethod
    def signature(cls) -> str:
        return " | ".join(name + (f"({','.join(a.upper() for a in _FAMILY[name][0])})" if _FAMILY[name][0] else "")
                          for name in _FAMILY)

    @classmethod
    def draw(cls, draw, shape, context):
        return context.act


def activation(name: str | Activation, *args: float) -> Activation:
    """Build an activation from a name (``"relu"``) or pass one through."""
    return name if isinstance(name, Activation) else Activation(name, tuple(args))
