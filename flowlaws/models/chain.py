"""A chain of layers on a fixed input shape: shapes, parameter names, and the sweeps.

The forward pass fuses each weight layer with the activation that follows it; the
backward pass runs the layers' hand-written VJPs in reverse. The same fused stages
are registered as autograd primitives, so ``autograd.grad`` through `Chain.apply`
uses the hand-written VJPs too. A composite layer (a residual or gated node) holds
chains of its own (its branches).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from autograd.extend import defvjp_argnums, primitive

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.activation import Activation
from flowlaws.models.layer import REALMIN, Layer


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
            family = layer.family or layer.kind
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
            self.specs.extend(layer.inner_specs(shape, f"{name}."))
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
def chain(layers: tuple, shape: tuple, prefix: str = "") -> Chain:
    """The (cached) chain of ``layers`` on input ``shape``, its names prefixed."""
    return Chain(layers, shape, prefix)
