"""Named losses l(prediction, target), each with a closed-form gradient.

The objective is L = reduce_i l(f(x_i), y_i) with ``reduction`` "mean" (default) or
"sum" (1/2||U V^T - M*||^2 for factorization is ``square:reduction=sum``). Laws hold
for any differentiable l (docs/theory.md 1): the Euler identity is a property of f.
Spec strings: ``square``, ``huber:delta=0.5``, ``smooth:a=1,b=0.5,c=0,d=0.1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.options import format_options, parse_options
from flowlaws.validation import positive


def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


@dataclass(frozen=True)
class Loss:
    """Base: ``value(pred, Y)`` (autograd-differentiable), ``grad`` and ``value_and_grad``.
    A subclass gives ``elementwise(p, y, xp)`` (in the array namespace ``xp``: autograd's
    numpy to differentiate, plain numpy to evaluate) and its closed-form ``gradient``."""

    reduction: str = "mean"
    name: ClassVar[str]
    targets: ClassVar[str] = "real"  # what Y must hold: real, sign (+-1), or probabilities

    def __post_init__(self):
        if self.reduction not in ("mean", "sum"):
            raise InvalidArgument(f"reduction must be 'mean' or 'sum', got {self.reduction!r}")

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0

    def value(self, pred, Y):
        """L, differentiable by autograd."""
        return self._scale(len(Y)) * anp.sum(self.elementwise(pred, Y))

    def grad(self, pred, Y):
        """dL/dpred in closed form."""
        return self._scale(len(Y)) * self.gradient(pred, Y)

    def value_and_grad(self, pred, Y):
        """(L, dL/dpred) in plain numpy (``elementwise`` with ``xp=np``: no autograd wrappers)."""
        return self._scale(len(Y)) * float(self.elementwise(pred, Y, np).sum()), self.grad(pred, Y)

    def gradient_magnitude(self, pred, Y):
        """A bound on the terms that form dL/dpred (its round-off scale, see
        `flowlaws.checking`): |dL/dpred| unless a loss adds terms that cancel."""
        return self._scale(len(Y)) * np.abs(self.gradient(pred, Y))

    @property
    def spec(self) -> str:
        return format_options(self)

    def symmetries(self, model) -> tuple:
        """Symmetries the loss adds to the model's (as `flowlaws.models.Rescaling`s)."""
        return ()


@dataclass(frozen=True)
class Square(Loss):
    """l = 1/2 ||p - y||^2."""

    name: ClassVar[str] = "square"

    def elementwise(self, p, y, xp=anp):
        return 0.5 * (p - y) ** 2

    def gradient(self, p, y):
        return p - y


@dataclass(frozen=True)
class Logistic(Loss):
    """l = sum_j log(1 + exp(-y_j p_j)) with labels y in {-1, +1}."""

    name: ClassVar[str] = "logistic"
    targets: ClassVar[str] = "sign"

    def elementwise(self, p, y, xp=anp):
        return xp.logaddexp(0.0, -y * p)

    def gradient(self, p, y):
        return -y * _sigmoid(-y * p)


@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Softmax cross-entropy l = -sum_j y_j log softmax(p)_j, y a probability vector."""

    name: ClassVar[str] = "cross_entropy"
    targets: ClassVar[str] = "probabilities"

    def elementwise(self, p, y, xp=anp):
        shift = p - xp.max(p, axis=1, keepdims=True)
        log_softmax = shift - xp.log(xp.sum(xp.exp(shift), axis=1, keepdims=True))
        return -y * log_softmax

    def gradient(self, p, y):
        shift = np.exp(p - p.max(axis=1, keepdims=True))
        softmax = shift / shift.sum(axis=1, keepdims=True)
        return softmax * y.sum(axis=1, keepdims=True) - y

    def gradient_magnitude(self, p, y):
        """softmax * sum(y) and y cancel (their sums over outputs are equal); exp turns the
        absolute error of a shifted logit into a relative one: softmax (1 + |p - max p|)."""
        shift = p - p.max(axis=1, keepdims=True)
        softmax = np.exp(shift) / np.exp(shift).sum(axis=1, keepdims=True)
        terms = softmax * (1.0 + np.abs(shift)) * np.abs(y).sum(axis=1, keepdims=True) + np.abs(y)
        return self._scale(len(y)) * terms

    def symmetries(self, model) -> tuple:
        """Translation (docs/theory.md 6.1): softmax(z + c 1) = softmax(z) for a shift c
        per sample, so with a dense last layer z = W h + b, W -> W + 1 a^T and b -> b + c 1
        change no loss: the column sums 1^T W and the sum 1^T b are conserved (linear laws).
        The dense layer may sit inside a last residual block (z = x + W h + b) or before
        linear activations and flatten: each passes a uniform shift on."""
        from flowlaws.models.symmetry import shifts

        out: list = []
        for site in _producing_logits(model.site(len(model.layers) - 1)):
            rows = site.layer.shifted_rows(site)
            out += shifts(f"{site.name}/softmax", rows, rows[0].units, True, True)
        return tuple(out)


def _producing_logits(site):
    """The layers whose rows a uniform shift of the logits moves (each declares them:
    `Layer.shifted_rows`), reached through layers that pass such a shift (each declares
    it: `Layer.sample_shift`) or through a last residual node to each branch's last layer."""
    from flowlaws.models import Residual

    for position in reversed(range(site.position + 1)):
        here = dataclasses.replace(site, position=position)
        layer = here.layer
        if layer.shifted_rows(here):
            return [here]
        if isinstance(layer, Residual):
            return [found for inner in layer.inners(here) if inner.chain.layers
                    for found in _producing_logits(dataclasses.replace(inner, position=len(inner.chain.layers) - 1))]
        if layer.sample_shift(here) != "passes":
            return []
    return []


@dataclass(frozen=True)
class Huber(Loss):
    """l = r^2/2 for |r| <= delta, delta(|r| - delta/2) beyond, r = p - y."""

    delta: float = 1.0
    name: ClassVar[str] = "huber"

    def __post_init__(self):
        super().__post_init__()
        positive("huber", "delta", self.delta)

    def elementwise(self, p, y, xp=anp):
        r = xp.abs(p - y)
        return xp.where(r <= self.delta, 0.5 * r**2, self.delta * (r - 0.5 * self.delta))

    def gradient(self, p, y):
        return np.clip(p - y, -self.delta, self.delta)


@dataclass(frozen=True)
class Smooth(Loss):
    """A smooth family for property tests, r = p - y:
    l = a r^2/2 + b log cosh r + c (sqrt(1 + r^2) - 1) + d r^4/4, weights >= 0."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    name: ClassVar[str] = "smooth"

    def __post_init__(self):
        super().__post_init__()
        weights = (self.a, self.b, self.c, self.d)
        if not all(np.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            raise InvalidArgument(f"smooth loss weights must be finite, >= 0, not all 0; got {weights}")

    def elementwise(self, p, y, xp=anp):
        r = p - y
        logcosh = xp.logaddexp(r, -r) - np.log(2.0)
        return self.a * 0.5 * r**2 + self.b * logcosh + self.c * (xp.sqrt(1 + r**2) - 1) + self.d * 0.25 * r**4

    def gradient(self, p, y):
        r = p - y
        return self.a * r + self.b * np.tanh(r) + self.c * r / np.sqrt(1 + r**2) + self.d * r**3


LOSSES = {cls.name: cls for cls in (Square, Logistic, CrossEntropy, Huber, Smooth)}


def loss(spec: str | Loss) -> Loss:
    """A loss from its spec string (``"huber:delta=0.5"``), or pass one through."""
    return spec if isinstance(spec, Loss) else parse_options(spec, LOSSES, "loss")
