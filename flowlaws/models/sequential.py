"""`Sequential` networks (and `Residual` blocks) with shape inference and a fused sweep.

The forward pass fuses each weight layer with the activation that follows it; the
backward pass runs the layers' hand-written VJPs in reverse. The same fused stages
are registered as autograd primitives, so ``autograd.grad`` through `Sequential.apply`
uses the hand-written VJPs too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from autograd.extend import defvjp_argnums, primitive

from flowlaws.errors import InvalidArgument
from flowlaws.models import symmetry
from flowlaws.models.activations import Activation
from flowlaws.models.layers import REALMIN, Conv, Dense, Layer, Pool
from flowlaws.models.symmetry import Path, Rescaling, Site


@dataclass(frozen=True)
class Stage:
    """A layer, the activation fused after it (or None), and its parameter indices."""

    layer: Any  # a Layer or an Activation
    act: Activation | None
    start: int
    stop: int


@primitive
def _run_stage(stage: Stage, x, *p):
    z = stage.layer.apply(p, x)
    return stage.act.fn(z) if stage.act else z


def _stage_vjp(argnums, ans, args, kwargs):
    stage, x, *p = args

    def vjp(g):
        z = stage.layer.apply(p, x) if stage.act else ans
        dz = stage.act.derivative(z) * g if stage.act else g
        dx, dp = stage.layer.vjp(tuple(p), x, z, dz)
        grads = (None, dx, *dp)
        return tuple(grads[i] for i in argnums)

    return vjp


defvjp_argnums(_run_stage, _stage_vjp)


class Chain:
    """A list of layers on a fixed input shape: shapes, parameter names, the sweeps.

    The numpy sweeps go layer by layer through each layer's ``run`` / ``pull``
    (forward, reverse); a cache entry is ``(input, output, aux)`` where aux is what
    the layer needs for its reverse step (activation slopes, max-pool weights, a
    residual block's own cache).
    """

    def __init__(self, layers, input_shape, prefix: str = ""):
        self.layers = tuple(layers)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.specs: list[tuple[str, tuple[int, ...]]] = []
        self.slots: list[tuple[int, int]] = []  # parameter index range of each layer
        self.names: list[str] = []
        self.shapes = [self.input_shape]
        counters: dict[str, int] = {}
        for position, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise InvalidArgument(f"layer {position} is {layer!r}, not a flowlaws layer")
            family = _family(layer)
            name = f"{prefix}{family}{counters.get(family, 0)}"
            counters[family] = counters.get(family, 0) + 1
            shape = self.shapes[-1]
            try:
                own = layer.param_shapes(shape)
                out = layer.out_shape(shape)
            except InvalidArgument as error:
                raise InvalidArgument(f"layer {position} ({name}): {error}") from None
            start = len(self.specs)
            self.specs.extend((f"{name}.{suffix}", tuple(s)) for suffix, s in own)
            if isinstance(layer, Residual):
                self.specs.extend(layer.chain(shape, f"{name}.").specs)
            self.slots.append((start, len(self.specs)))
            self.names.append(name)
            self.shapes.append(tuple(out))
        self.stages = self._fuse()

    def _fuse(self) -> tuple[Stage, ...]:
        stages, i = [], 0
        while i < len(self.layers):
            layer, (start, stop) = self.layers[i], self.slots[i]
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if getattr(layer, "has_weight", False) and isinstance(nxt, Activation):
                stages.append(Stage(layer, nxt, start, stop))
                i += 2
            else:
                stages.append(Stage(layer, None, start, stop))
                i += 1
        return tuple(stages)

    @property
    def output_shape(self):
        return self.shapes[-1]

    def apply(self, params, X, fused: bool = True):
        """f(X) written for autograd: fused primitives, or the layers' generic code."""
        for s in self.stages:
            p = tuple(params[s.start : s.stop])
            if fused:
                X = _run_stage(s, X, *p)
            else:
                X = s.layer.apply(p, X)
                X = s.act.fn(X) if s.act else X
        return X

    def _own(self, params, position):
        start, stop = self.slots[position]
        return tuple(params[start:stop])

    def forward(self, params, X, pattern=None):
        """(output, cache) in plain numpy; the cache feeds `backward`.

        With a ``pattern`` (from `pattern`), every piecewise-linear activation uses the
        frozen slopes and every max pool the frozen window weights, residual blocks
        included: the network is then smooth in the params and keeps all its
        rescaling symmetries.
        """
        cache = []
        for i, layer in enumerate(self.layers):
            y, aux = layer.run(self._own(params, i), X, None if pattern is None else pattern[i])
            cache.append((X, y, aux))
            X = y
        return X, cache

    def pattern(self, cache) -> tuple:
        """The activation pattern of a forward pass: slopes of the piecewise-linear
        activations and max-pool window weights (None where nothing is frozen)."""
        return tuple(layer.freeze(*entry) for layer, entry in zip(self.layers, cache, strict=True))

    def bounds(self, params, cache, start=None):
        """(bound on |output|, cache with every input replaced by its bound): the
        forward magnitude sweep, with absolute values of params and inputs and every
        result raised by REALMIN (see `flowlaws.checking`)."""
        F = np.abs(cache[0][0]) + REALMIN if start is None else start
        out = []
        for i, (layer, (_, y, aux)) in enumerate(zip(self.layers, cache, strict=True)):
            Fy, aux = layer.bound_run(tuple(np.abs(q) for q in self._own(params, i)), F, aux)
            out.append((F, y, aux))
            F = Fy + REALMIN
        return F, out

    def backward(self, params, cache, dout, magnitude: bool = False):
        """(dX, grads as a list aligned with params) by the reverse sweep.

        With ``magnitude=True`` (and the cache from `bounds`) every factor is replaced
        by its absolute value and every result raised by REALMIN.
        """
        grads: list = [None] * len(self.specs)
        g = np.abs(dout) if magnitude else dout
        for i in reversed(range(len(self.layers))):
            x, y, aux = cache[i]
            g, dp = self.layers[i].pull(self._own(params, i), x, y, aux, g, magnitude)
            if magnitude:
                g, dp = g + REALMIN, tuple(q + REALMIN for q in dp)
            start, stop = self.slots[i]
            grads[start:stop] = dp
        return g, grads


@lru_cache(maxsize=4096)
def _chain(block, shape, prefix) -> Chain:
    return Chain(block, shape, prefix)


_SHORT = {"batchnorm": "bn", "layernorm": "ln", "attention": "attn"}


def _family(layer) -> str:
    if isinstance(layer, Activation):
        return "act"
    if isinstance(layer, Conv):
        return "conv"
    if isinstance(layer, Pool):
        return "pool"
    return _SHORT.get(layer.kind, layer.kind)


@dataclass(frozen=True)
class Residual(Layer):
    """y = x + block(x); the block must keep the shape.

    Its symmetry (docs/theory.md, 3.7): a scaling of the input units must scale the
    block's output alike, so it enters the block (absorbed by the block's first weight
    layer), is re-emitted by the rows of the block's last weight layer, and goes on
    past the block with the skip path.
    """

    block: tuple
    kind: ClassVar[str] = "res"

    def __post_init__(self):
        object.__setattr__(self, "block", tuple(self.block))
        if not self.block:
            raise InvalidArgument("residual block is empty; give it at least one layer")

    def chain(self, in_shape, prefix: str = "") -> Chain:
        return _chain(self.block, tuple(int(n) for n in in_shape), prefix)

    def out_shape(self, in_shape):
        out = self.chain(in_shape).output_shape
        if tuple(out) != tuple(in_shape):
            raise InvalidArgument(
                f"residual block maps shape {tuple(in_shape)} to {tuple(out)}; "
                "its output must keep the input shape"
            )
        return out

    def apply(self, p, x):
        return x + self.chain(x.shape[1:]).apply(p, x, fused=False)

    def run(self, p, x, frozen=None):
        out, cache = self.chain(x.shape[1:]).forward(p, x, frozen)
        return x + out, cache

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        dx, grads = self.chain(x.shape[1:]).backward(p, aux, dy, magnitude)
        return dy + dx, tuple(grads)

    def freeze(self, x, y, aux):
        return self.chain(x.shape[1:]).pattern(aux)

    def bound_run(self, p, x, aux):
        out, cache = self.chain(x.shape[1:]).bounds(p, aux, x)
        return x + out, cache

    def vjp(self, p, x, y, dy):
        """For the autograd primitive (`_run_stage`); the numpy sweeps use `run` and `pull`."""
        _, cache = self.run(p, x)
        return self.pull(p, x, y, cache, dy)

    # --- symmetry declarations --------------------------------------------------------
    def _inner(self, site) -> Site:
        return Site(self.chain(site.in_shape, f"{site.name}."), site.start, 0)

    def rescalings(self, site):
        """The block's own rescalings; and, when what follows removes a shift uniform over
        a sample (a LayerNorm), the translation laws of the block's last dense layer: a
        uniform shift of its output is one of the block's (the skip adds x)."""
        inner = self._inner(site)
        yield from symmetry.rescalings(inner.chain, inner.offset)
        last = replace(inner, position=len(inner.chain.layers) - 1)
        remover = symmetry.removes_shift(site, "sample_shift")
        if remover and isinstance(last.layer, Dense):
            yield from symmetry.shifts(f"{last.name}/{remover}", last.layer.rows(last, last.layer.units),
                                       last.layer.units, True, True)

    def carry(self, path, site):
        """Both branches: the block must map c^d-scaled inputs to c^d-scaled outputs."""
        inner = self._inner(site)
        layout = {"last_axis": path.last_axis, "interleaved": path.interleaved}  # the units' place in a sample
        into = symmetry.walk(Path(path.units, path.degree, **layout), inner)
        if into is None:
            return None
        if not into.closed:  # no weight layer: y = x + phi(x) needs phi of degree 1
            return path.times(1.0, into.linear) if into.degree == path.degree else None
        last = max((i for i, layer in enumerate(inner.chain.layers) if layer.emits))
        last_site = replace(inner, position=last)
        tail = symmetry.walk(Path(path.units, **layout), last_site.following())
        if tail is None or tail.closed:
            return None
        block = replace(into, **layout).emitted(last_site, path.degree / tail.degree)  # its last rows re-emit
        return replace(path, linear=path.linear and into.linear and tail.linear, shifts=False,
                       uniform=path.uniform or into.uniform or tail.uniform,
                       terms=path.terms + block.terms, layers=path.layers + block.layers)

    @property
    def spec(self) -> str:
        return f"residual[{','.join(layer.spec for layer in self.block)}]"


@dataclass(frozen=True)
class Sequential:
    """A network as data: an input shape (without the batch axis) and layers.

    >>> net = Sequential((3,), (Dense(4), Activation("relu"), Dense(2)))
    >>> [name for name, _ in net.param_specs]
    ['dense0.W', 'dense1.W']
    """

    input_shape: tuple[int, ...]
    layers: tuple
    _chain: Chain = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        shape = tuple(self.input_shape) if np.ndim(self.input_shape) else (self.input_shape,)
        if not shape or any(not isinstance(n, int | np.integer) or n < 1 for n in shape):
            raise InvalidArgument(f"input shape must be positive integers, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "_chain", Chain(self.layers, self.input_shape))

    # --- description ---------------------------------------------------------------
    @property
    def param_specs(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(name, shape) of every parameter, in the order of the params tuple."""
        return tuple(self._chain.specs)

    @property
    def output_shape(self):
        return self._chain.output_shape

    @property
    def spec(self) -> str:
        """The spec string; ``parse(model.spec) == model`` (see `flowlaws.models.spec`)."""
        from flowlaws.models.spec import format_spec

        return format_spec(self)

    def __str__(self) -> str:
        return self.spec

    # --- numbers -----------------------------------------------------------------------
    def init(self, rng: np.random.Generator, *, scale: float = 1.0):
        """Gaussian params: every entry of a layer ~ N(0, scale^2 / fan_in)."""
        params = []
        for _, shape in self.param_specs:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            params.append(rng.normal(0.0, scale / np.sqrt(fan_in), size=shape))
        return _fan_in_biases(self.param_specs, params, scale, rng)

    def apply(self, params, X, *, fused: bool = True):
        """f(X; params), differentiable by autograd (fused VJPs unless fused=False)."""
        return self._chain.apply(params, X, fused)

    def forward(self, params, X, pattern=None):
        return self._chain.forward(params, X, pattern)

    def pattern(self, params, X) -> tuple:
        """The activation pattern at ``params`` (see `Chain.forward`)."""
        return self.pattern_of(self._chain.forward(params, X)[1])

    def pattern_of(self, cache) -> tuple:
        """The activation pattern of a `forward` pass, from its cache."""
        return self._chain.pattern(cache)

    def bounds(self, params, cache):
        """The cache of `forward` with every input replaced by its magnitude bound."""
        return self._chain.bounds(params, cache)[1]

    def backward(self, params, cache, dout, magnitude: bool = False):
        return tuple(self._chain.backward(params, cache, dout, magnitude)[1])

    # --- structure -----------------------------------------------------------------------
    def rescalings(self) -> tuple[Rescaling, ...]:
        """Every positive rescaling symmetry of the network (docs/theory.md, 3.2-3.7)."""
        return tuple(symmetry.rescalings(self._chain))

    def site(self, position: int) -> Site:
        """Where layer ``position`` sits (for symmetry declarations)."""
        return Site(self._chain, 0, position)

    def without_skips(self) -> Sequential:
        """The same parameters with every residual block inlined (no skip path)."""
        return Sequential(self.input_shape, _inline(self.layers))

    def with_activation(self, act: Activation) -> Sequential:
        """The same architecture with every activation replaced by ``act``."""
        return Sequential(self.input_shape, _swap(self.layers, act))

    @property
    def activations(self) -> tuple[Activation, ...]:
        return tuple(_walk_activations(self.layers))

    @property
    def all_layers(self) -> tuple:
        """Every layer, those inside residual blocks included."""
        return tuple(_all_layers(self.layers))


def _fan_in_biases(specs, params, scale, rng):
    """Biases take the fan-in of their layer's weight (the preceding spec)."""
    out = list(params)
    for i, (name, shape) in enumerate(specs):
        if name.endswith(".b") and i > 0:
            fan_in = int(np.prod(specs[i - 1][1][1:]))
            out[i] = rng.normal(0.0, scale / np.sqrt(fan_in), size=shape)
    return tuple(out)


def _inline(layers):
    out = []
    for layer in layers:
        out.extend(_inline(layer.block) if isinstance(layer, Residual) else [layer])
    return tuple(out)


def _swap(layers, act):
    return tuple(
        act if isinstance(layer, Activation)
        else Residual(_swap(layer.block, act)) if isinstance(layer, Residual)
        else layer
        for layer in layers
    )


def _all_layers(layers):
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _all_layers(layer.block)


def _walk_activations(layers):
    for layer in layers:
        if isinstance(layer, Activation):
            yield layer
        elif isinstance(layer, Residual):
            yield from _walk_activations(layer.block)
