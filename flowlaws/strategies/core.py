"""The strategies themselves (see the package docstring)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument
from hypothesis.extra import numpy as hnp

from flowlaws.checking import Scenario
from flowlaws.errors import InvalidArgument
from flowlaws.flows.optimizers import GD, OPTIMIZERS, SGD, Adam, Momentum
from flowlaws.losses import LOSSES, CrossEntropy, Huber, Logistic, Smooth, Square
from flowlaws.models import (
    HOMOGENEOUS,
    NON_HOMOGENEOUS,
    Activation,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Dense,
    Factorization,
    Flatten,
    MaxPool1d,
    MaxPool2d,
    Residual,
    Sequential,
)

KINDS = ("mlp", "linear", "conv1d", "conv2d", "residual", "factorization")
ACTIVATIONS = HOMOGENEOUS + NON_HOMOGENEOUS


class _Error(InvalidArgument, HypothesisInvalidArgument):
    """Bad strategy argument: a flowlaws InvalidArgument and a Hypothesis one."""


def _range(name: str, value, low: int = 1) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair) or not low <= pair[0] <= pair[1]:
        raise _Error(f"{name} must be an int >= {low} or a (min, max) pair, got {value!r}")
    return pair


def _subset(name: str, values, allowed) -> tuple:
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise _Error(f"{name} must be a non-empty subset of {tuple(allowed)}, got {values!r}")
    return values


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise _Error(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _activations_strategy(names):
    def build(name):
        if name == "leaky_relu":
            return st.sampled_from([0.1, 0.01, 0.5]).map(lambda a: Activation(name, (a,)))
        if name == "prelu":
            return st.tuples(st.sampled_from([1.0, 0.5, 2.0]), st.sampled_from([0.25, -1.0, 0.0])).map(
                lambda ab: Activation(name, ab))
        if name == "relu_power":
            return st.sampled_from([2.0, 3.0]).map(lambda k: Activation(name, (k,)))
        return st.just(Activation(name))

    return st.one_of([build(n) for n in names])


def architectures(*, kinds=KINDS, activations=("relu", "leaky_relu", "abs", "linear"),
                  depth=(1, 2), width=(1, 3), bias=(False, True), pooling=(None, "max", "avg")):
    """Models of the given ``kinds``: MLPs, deep linear nets, 1D/2D conv nets (with
    pooling, then flatten and a dense head), residual blocks, and factorizations.

    >>> architectures(kinds=["mlp"], activations=["tanh"])  # doctest: +ELLIPSIS
    architectures(kinds=['mlp'], activations=['tanh'], ...)
    """
    kinds = _subset("kinds", kinds, KINDS)
    acts = _subset("activations", activations, ACTIVATIONS)
    depth, width = _range("depth", depth), _range("width", width)
    bias = _subset("bias", (bias,) if isinstance(bias, bool) else bias, (False, True))
    pooling = _subset("pooling", (pooling,) if pooling is None or isinstance(pooling, str) else pooling,
                      (None, "max", "avg"))
    sizes = st.integers(*width)
    act_st = _activations_strategy(acts)

    @st.composite
    def draw_model(draw):
        kind = draw(st.sampled_from(kinds))
        has_bias = draw(st.sampled_from(bias))
        if kind == "factorization":
            return Factorization(draw(sizes), draw(sizes), draw(st.integers(1, min(3, width[1]))))
        act = Activation("linear") if kind == "linear" else draw(act_st)
        if kind in ("mlp", "linear"):
            hidden = draw(st.lists(sizes, min_size=depth[0], max_size=depth[1]))
            layers = []
            for h in hidden:
                layers += [Dense(h, has_bias), act]
            return Sequential((draw(sizes),), (*layers, Dense(draw(sizes), has_bias)))
        if kind == "residual":
            d, h = draw(sizes), draw(sizes)
            block = (Dense(h, has_bias), act, Dense(d, has_bias))
            return Sequential((draw(sizes),), (Dense(d, has_bias), act, Residual(block), act,
                                               Dense(draw(sizes), has_bias)))
        dims = 1 if kind == "conv1d" else 2
        conv, pools = (Conv1d, {"max": MaxPool1d, "avg": AvgPool1d}) if dims == 1 else (
            Conv2d, {"max": MaxPool2d, "avg": AvgPool2d})
        spatial = draw(st.integers(3, 6 if dims == 1 else 4))
        layers = []
        for _ in range(draw(st.integers(*depth))):
            kernel = draw(st.integers(1, 3))
            layers += [conv(draw(sizes), kernel, draw(st.integers(1, 2)), draw(st.integers(0, 1)),
                            has_bias), act]
            pool = draw(st.sampled_from(pooling))
            if pool:
                layers.append(pools[pool](2))
        layers += [Flatten(), Dense(draw(sizes), has_bias)]
        shape = (draw(sizes), *(spatial,) * dims)
        try:
            return Sequential(shape, tuple(layers))
        except InvalidArgument:
            # a kernel or pool that does not fit: drop the pools, use 1-wide kernels
            plain = tuple(
                conv(layer.channels, 1, 1, 0, has_bias) if isinstance(layer, conv) else layer
                for layer in layers if not isinstance(layer, tuple(pools.values()))
            )
            return Sequential(shape, plain)

    return _named(draw_model(), "architectures", kinds=list(kinds), activations=list(acts),
                  depth=depth, width=width, bias=list(bias), pooling=list(pooling))


def _named(strategy, name, **options):
    """Give a strategy a repr that shows how it was built."""
    text = f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    return _Repr(strategy, text)


class _Repr(st.SearchStrategy):
    def __init__(self, inner, text):
        super().__init__()
        self._inner, self._text = inner, text

    def do_draw(self, data):
        return data.draw(self._inner)

    def __repr__(self):
        return self._text


def _floats(scale):
    return st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=64)


def params(model, *, scale: float = 1.0, pad: int = 1):
    """A params tuple for ``model`` with every entry in [-scale, scale].

    With ``pad`` > 1 each array is drawn with every axis at least ``pad`` long and then
    sliced to its shape, so that when Hypothesis shrinks a width, the entries of the
    remaining units keep their place in the draw (and the counterexample keeps failing).
    """
    scale = _positive("scale", scale)
    if not isinstance(pad, int) or pad < 1:
        raise _Error(f"pad must be an int >= 1, got {pad!r}")

    def array(shape):
        padded = tuple(max(n, pad) for n in shape)
        window = tuple(slice(0, n) for n in shape)
        return hnp.arrays(np.float64, padded, elements=_floats(scale)).map(lambda a: a[window].copy())

    arrays = [array(shape) for _, shape in model.param_specs]
    return _named(st.tuples(*arrays), "params", model=model.spec, scale=scale)


def datasets(model, *, n=(1, 4), loss=None, scale: float = 1.0):
    """(X, Y) with N in ``n`` samples, X in [-scale, scale]; Y fits ``loss``'s targets
    (reals, signs +-1, or probability rows)."""
    low, high = _range("n", n)
    scale = _positive("scale", scale)
    targets = getattr(loss, "targets", "real")

    @st.composite
    def draw(d):
        count = d(st.integers(low, high))
        X = d(hnp.arrays(np.float64, (count, *model.input_shape), elements=_floats(scale)))
        shape = (count, *model.output_shape)
        if targets == "sign":
            Y = d(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
        elif targets == "probabilities":
            raw = d(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0, allow_subnormal=False)))
            raw = raw + 1e-3
            Y = raw / raw.sum(axis=1, keepdims=True)
        else:
            Y = d(hnp.arrays(np.float64, shape, elements=_floats(scale)))
        return X, Y

    return _named(draw(), "datasets", model=model.spec, n=(low, high), loss=targets, scale=scale)


def losses(*, names=tuple(LOSSES)):
    """Loss objects from the named families (with drawn parameters)."""
    names = _subset("names", names, LOSSES)
    weights = st.sampled_from([0.0, 0.5, 1.0, 2.0])
    family = {
        "square": st.just(Square()),
        "logistic": st.just(Logistic()),
        "cross_entropy": st.just(CrossEntropy()),
        "huber": st.sampled_from([0.1, 1.0]).map(lambda d: Huber(delta=d)),
        "smooth": st.tuples(weights, weights, weights, weights).filter(any).map(
            lambda w: Smooth(a=1.0 + w[0], b=w[1], c=w[2], d=w[3])),
    }
    return _named(st.one_of([family[n] for n in names]), "losses", names=list(names))


def optimizers(*, names=("gd", "sgd"), lr=(1e-3, 0.1), weight_decay=0.0, decay_power=(0.0, 0.75)):
    """Optimizers by name with a step size in ``lr`` (and the given weight decay)."""
    names = _subset("names", names, OPTIMIZERS)
    lo, hi = (_positive("lr", v) for v in ((lr, lr) if isinstance(lr, float | int) else lr))
    wd = float(weight_decay)
    if not (np.isfinite(wd) and wd >= 0):
        raise _Error(f"weight_decay must be >= 0, got {weight_decay!r}")
    etas = st.floats(lo, hi)
    powers = st.sampled_from(decay_power if isinstance(decay_power, tuple) else (decay_power,))
    family = {
        "gd": st.builds(GD, etas, powers, st.just(wd)),
        "sgd": st.builds(SGD, etas, powers, st.just(wd), st.integers(1, 3), st.integers(0, 9)),
        "momentum": st.builds(Momentum, etas, st.just(0.0), st.just(wd), st.sampled_from([0.5, 0.9])),
        "adam": st.builds(Adam, etas, st.just(0.0), st.just(wd)),
    }
    return _named(st.one_of([family[n] for n in names]), "optimizers", names=list(names),
                  lr=(lo, hi), weight_decay=wd)


def scenarios(theorem):
    """Scenarios a theorem quantifies over: its ``space`` (architectures, losses,
    optimizers, flow settings) with params and data drawn to shrink. With
    ``init_scale`` in the space the params are a seeded Gaussian init of that scale
    instead (small-initialization theorems); the seed is drawn and shrinks."""
    space = dict(theorem.space)
    if "fixed" in space:
        from flowlaws.explore import fixed_scenarios

        return fixed_scenarios(theorem)
    arch = architectures(**space.get("architectures", {}))
    loss_st = losses(**space.get("losses", {}))
    opt_st = optimizers(**space["optimizers"]) if "optimizers" in space else st.none()

    @st.composite
    def draw(d):
        model = d(arch)
        loss = d(loss_st)
        if "init_scale" in space:
            seed = d(st.integers(0, 2**32 - 1))
            p = model.init(np.random.default_rng(seed), scale=space["init_scale"])
        else:
            width = space.get("architectures", {}).get("width", (1, 3))
            p = d(params(model, scale=space.get("scale", 1.0), pad=_range("width", width)[1]))
        X, Y = d(datasets(model, loss=loss, n=space.get("n", (1, 4))))
        return Scenario(model, p, X, Y, loss, d(opt_st), steps=space.get("steps", 3),
                        T=space.get("T", 0.2), flow_steps=space.get("flow_steps", 8))

    return _named(draw(), "scenarios", theorem=theorem.id)
