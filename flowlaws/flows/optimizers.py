"""Discrete optimizers and `descend`, which runs one and returns a `Trajectory`.

All weight decay is coupled: the objective is L + lambda/2 ||theta||^2, so the
decay term is added to the gradient before the update (for Adam too, i.e. not AdamW).
Step sizes follow eta_t = lr / (t + 1)^power (power = 0: constant).
Spec strings: ``gd:lr=0.01``, ``gd:lr=0.1,power=0.75``, ``sgd:lr=0.05,batch=4,seed=0``,
``momentum:lr=0.01,beta=0.9``, ``nesterov:lr=0.01,beta=0.9``, ``adam:lr=0.001``,
``rmsprop:lr=0.01,rho=0.99,eps=1e-8``, ``signgd:lr=0.001`` (add ``wd=0.1`` to any).
Every option has a default, so a bare name works: lr = 0.01 (Adam and sign-GD 0.001),
beta = 0.9, batch 1, seed 0.

``breaks`` says why an optimizer's step has a first-order part B(theta, Delta) != 0
(docs/theory.md 3.3, 6.4): the reason a law drifts at first order under it (None for
plain gradient steps, whose drift is the second-order eta^2 Q(g)). ``preconditions``
says why a step is not a linear combination of gradients and the params (None for GD,
SGD, momentum, Nesterov): linear (translation) laws survive every optimizer without it.
Each optimizer declares its exact step prediction once, as ``rest(params, state, t)``: the
step split as Delta = -c g + rest, where ``rest`` is what does not multiply the gradient
(coupled or decoupled decay, momentum) and c its coefficient, or None when the gradient
term is preconditioned (not a multiple of g). A law h has Dh(theta)[g] = 0, so
h(theta + Delta) - h(theta) = Dh(theta)[rest] + second(Delta) exactly whenever c is known:
the checker (`flowlaws.checking`), the PyTorch monitor (`flowlaws.torch`) and the
reports all read it from here. ``rest`` uses arithmetic alone, so it runs on numpy arrays
and torch tensors alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowlaws.engine import value_and_grad
from flowlaws.errors import InvalidArgument
from flowlaws.flows.trajectory import Status, Trajectory
from flowlaws.options import format_options, parse_options
from flowlaws.validation import fraction, positive


def _check_unit_interval(owner: str, **values: float) -> None:
    for name, value in values.items():
        fraction(owner, name, value)


def _check_finite_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        positive(owner, name, value)


@dataclass(frozen=True)
class GD:
    """theta+ = theta - eta_t (g + lambda theta)."""

    lr: float = 0.01
    power: float = 0.0
    weight_decay: float = 0.0
    name: ClassVar[str] = "gd"
    aliases: ClassVar[dict] = {"wd": "weight_decay", "eta": "lr"}
    breaks: ClassVar[str | None] = None
    preconditions: ClassVar[str | None] = None  # why its step is not a combination of gradients

    def __post_init__(self):
        _check_finite_positive(self.name, lr=self.lr)
        if not (np.isfinite(self.power) and self.power >= 0):
            raise InvalidArgument(f"{self.name}: power must be >= 0, got {self.power!r}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidArgument(f"{self.name}: weight_decay must be >= 0, got {self.weight_decay!r}")

    @property
    def spec(self) -> str:
        return format_options(self)

    def step_size(self, t: int) -> float:
        return self.lr / (t + 1) ** self.power

    def batch(self, n: int, t: int):
        """Sample indices used at step t (None: the full batch)."""
        return None

    def init(self, params):
        return None

    def decayed(self, grads, params):
        """g + lambda theta: the gradient of L + lambda/2 ||theta||^2 (coupled decay)."""
        if not self.weight_decay:
            return tuple(grads)
        return tuple(g + self.weight_decay * p for g, p in zip(grads, params, strict=True))

    def update(self, grads, params, state, t):
        """(delta, new state) for gradient ``grads`` of L at ``params``."""
        eta = self.step_size(t)
        return tuple(-eta * g for g in self.decayed(grads, params)), state

    def rest(self, params, state, t):
        """(rest, c) with Delta = -c g + rest (module docstring): the coupled decay,
        -eta lambda theta, and c = eta; a preconditioned step (Adam, RMSProp, sign-GD) has
        nothing outside its gradient term, which is not a multiple of g: c = None."""
        if self.preconditions:
            return tuple(0 * p for p in params), None
        return self.decay(params, t), self.step_size(t)

    def less_decay(self, terms, params, eta):
        """terms - eta lambda theta; the terms themselves without weight decay (no pass over
        the parameters for a term of zeros: the monitor runs it every step)."""
        if not self.weight_decay:
            return terms
        return tuple(x - eta * self.weight_decay * p for x, p in zip(terms, params, strict=True))

    def decay(self, params, t):
        """-eta_t lambda theta: the step's decay of the parameters."""
        eta = self.step_size(t)
        return tuple(-eta * self.weight_decay * p for p in params)


@dataclass(frozen=True)
class SGD(GD):
    """GD on a seeded random minibatch of ``batch`` samples per step."""

    batch_size: int = 1
    seed: int = 0
    name: ClassVar[str] = "sgd"
    aliases: ClassVar[dict] = {"wd": "weight_decay", "eta": "lr", "batch": "batch_size"}

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1:
            raise InvalidArgument(f"sgd: batch must be >= 1, got {self.batch_size!r}")

    def batch(self, n: int, t: int):
        rng = np.random.default_rng((self.seed, t))
        return rng.choice(n, size=min(self.batch_size, n), replace=False)


@dataclass(frozen=True)
class Momentum(GD):
    """Heavy ball: v = beta v - k eta_t (g + lambda theta); theta+ = theta + v, with k = 1 -
    dampening after the first step (PyTorch's SGD: buffer b = -v / eta)."""

    beta: float = 0.9
    dampening: float = 0.0
    name: ClassVar[str] = "momentum"
    breaks: ClassVar[str | None] = "heavy-ball momentum adds beta*v_prev, and B(theta, v_prev) != 0"

    def __post_init__(self):
        super().__post_init__()
        _check_unit_interval(self.name, beta=self.beta, dampening=self.dampening)

    def init(self, params):
        return tuple(np.zeros_like(p) for p in params)

    def kept(self, t: int) -> float:
        """The share of the new gradient entering the buffer: 1 - dampening, 1 on the first step."""
        return 1.0 - self.dampening if t > 0 else 1.0

    def update(self, grads, params, state, t):
        eta = self.step_size(t) * self.kept(t)
        velocity = tuple(self.beta * v - eta * d for v, d in zip(state, self.decayed(grads, params), strict=True))
        return velocity, velocity

    def rest(self, params, state, t):
        """v = beta v_prev - k eta (g + lambda theta): rest = beta v_prev - k eta lambda theta, c = k eta."""
        eta = self.step_size(t) * self.kept(t)
        return self.less_decay(tuple(self.beta * v for v in state), params, eta), eta


@dataclass(frozen=True)
class Nesterov(Momentum):
    """Nesterov momentum in PyTorch's form: b = beta b + g; theta+ = theta - eta_t (g + beta b).

    It equals Sutskever's look-ahead form v = beta v - eta grad L(theta + beta v) in the
    shifted variable theta + beta v (docs/theory.md 6.4); both break the laws at first order.
    """

    name: ClassVar[str] = "nesterov"
    breaks: ClassVar[str | None] = (
        "Nesterov momentum steps along beta*b, built from earlier gradients: B(theta, b) != 0")

    def update(self, grads, params, state, t):
        eta, k = self.step_size(t), self.kept(t)
        g = self.decayed(grads, params)
        buffer = tuple(self.beta * b + k * d for b, d in zip(state, g, strict=True))
        return tuple(-eta * (d + self.beta * b) for d, b in zip(g, buffer, strict=True)), buffer

    def rest(self, params, state, t):
        """Delta = -eta ((1 + beta k) (g + lambda theta) + beta^2 b_prev): rest = -eta ((1 +
        beta k) lambda theta + beta^2 b_prev), c = eta (1 + beta k)."""
        eta, k = self.step_size(t), self.kept(t)
        c = eta * (1 + self.beta * k)
        return self.less_decay(tuple(-eta * self.beta**2 * b for b in state), params, c), c


@dataclass(frozen=True)
class RMSProp(GD):
    """v = rho v + (1 - rho) g^2; theta+ = theta - eta_t g / (sqrt(v) + eps) (Hinton 2012)."""

    rho: float = 0.99
    eps: float = 1e-8
    name: ClassVar[str] = "rmsprop"
    breaks: ClassVar[str | None] = "RMSProp divides each coordinate by its own RMS, so B(theta, Delta) != 0"
    preconditions: ClassVar[str | None] = "RMSProp divides each coordinate by its own RMS"

    def __post_init__(self):
        super().__post_init__()
        _check_unit_interval(self.name, rho=self.rho)
        _check_finite_positive(self.name, eps=self.eps)

    init = Momentum.init  # the running mean of g^2 starts at 0

    def update(self, grads, params, state, t):
        g = self.decayed(grads, params)
        v = tuple(self.rho * a + (1 - self.rho) * d * d for a, d in zip(state, g, strict=True))
        eta = self.step_size(t)
        return tuple(-eta * d / (np.sqrt(b) + self.eps) for d, b in zip(g, v, strict=True)), v


@dataclass(frozen=True)
class SignGD(GD):
    """theta+ = theta - eta_t sign(g + lambda theta)."""

    lr: float = 0.001
    name: ClassVar[str] = "signgd"
    breaks: ClassVar[str | None] = "sign-GD replaces g by sign(g), so B(theta, Delta) != 0"
    preconditions: ClassVar[str | None] = "sign-GD replaces g by sign(g)"

    def update(self, grads, params, state, t):
        eta = self.step_size(t)
        return tuple(-eta * np.sign(g) for g in self.decayed(grads, params)), state


@dataclass(frozen=True)
class Adam(GD):
    """Adam (Kingma & Ba 2015) with bias correction and coupled weight decay."""

    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    breaks: ClassVar[str | None] = "Adam rescales each coordinate, so B(theta, Delta) != 0"
    preconditions: ClassVar[str | None] = "Adam rescales each coordinate"

    def __post_init__(self):
        super().__post_init__()
        _check_unit_interval(self.name, beta1=self.beta1, beta2=self.beta2)
        _check_finite_positive(self.name, eps=self.eps)

    def init(self, params):
        zeros = tuple(np.zeros_like(p) for p in params)
        return zeros, zeros

    def update(self, grads, params, state, t):
        m, v = state
        g = self.decayed(grads, params)
        m = tuple(self.beta1 * a + (1 - self.beta1) * b for a, b in zip(m, g, strict=True))
        v = tuple(self.beta2 * a + (1 - self.beta2) * b * b for a, b in zip(v, g, strict=True))
        c1, c2 = 1 - self.beta1 ** (t + 1), 1 - self.beta2 ** (t + 1)
        eta = self.step_size(t)
        delta = tuple(
            -eta * (a / c1) / (np.sqrt(b / c2) + self.eps) for a, b in zip(m, v, strict=True)
        )
        return delta, (m, v)


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): theta is first shrunk by
    (1 - eta_t lambda), then Adam steps on g alone."""

    name: ClassVar[str] = "adamw"

    def decayed(self, grads, params):
        return tuple(grads)

    def update(self, grads, params, state, t):
        delta, state = super().update(grads, params, state, t)
        return tuple(d + r for d, r in zip(delta, self.decay(params, t), strict=True)), state

    def rest(self, params, state, t):
        """The decoupled decay -eta lambda theta; the gradient term is preconditioned."""
        return self.decay(params, t), None


OPTIMIZERS = {cls.name: cls for cls in (GD, SGD, Momentum, Nesterov, Adam, AdamW, RMSProp, SignGD)}


def optimizer(spec):
    """An optimizer from its spec string (``"momentum:lr=0.01,beta=0.9"``) or pass one through."""
    return spec if not isinstance(spec, str) else parse_options(spec, OPTIMIZERS, "optimizer")


def descend(model, loss, params, X, Y, opt, steps: int) -> Trajectory:
    """Run ``steps`` optimizer steps; stops with status DIVERGED on a non-finite loss.

    >>> from flowlaws.models import mlp; from flowlaws.losses import Square
    >>> net = mlp([2, 3, 1]); p = net.init(np.random.default_rng(0))
    >>> run = descend(net, Square(), p, np.ones((4, 2)), np.zeros((4, 1)), GD(0.1), 5)
    >>> len(run), run.status.name
    (6, 'OK')
    """
    if not isinstance(steps, int | np.integer) or steps < 0:
        raise InvalidArgument(f"steps must be a non-negative integer, got {steps!r}")
    opt = optimizer(opt)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported as a status
        return _descend(model, loss, params, X, Y, opt, steps)


def _descend(model, loss, params, X, Y, opt, steps: int) -> Trajectory:
    state = opt.init(params)
    snapshots, losses, used, states = [], [], [], []
    status, failed = Status.OK, None
    for t in range(steps + 1):
        rows = opt.batch(len(X), t)
        if rows is None:
            value, grads = value_and_grad(model, loss, params, X, Y)
        else:
            _, grads = value_and_grad(model, loss, params, X[rows], Y[rows])
            value = float(loss.value(model.forward(params, X)[0], Y))
        if not (math.isfinite(value) and all(np.isfinite(g).all() for g in grads)):
            status, failed = Status.DIVERGED, t
            break
        snapshots.append(params)
        losses.append(value)
        if t == steps:
            break
        states.append(state)
        delta, state = opt.update(grads, params, state, t)
        params = tuple(p + d for p, d in zip(params, delta, strict=True))
        used.append(grads)
    return Trajectory(
        times=np.arange(len(snapshots), dtype=float),
        params=snapshots,
        loss_values=lambda: np.array(losses),
        evaluations=t + 1,
        status=status,
        step=failed,
        grads=used[: max(len(snapshots) - 1, 0)],
        method=opt.spec,
        states=states[: max(len(snapshots) - 1, 0)],
    )
