"""`Sequential`: a network as data, an input shape and a chain of registered layers.

A composite layer (``residual[A | B]``, ``gated[A | B]``) holds two chains, so a
network is a series-parallel graph of layers: fan-out, a sum with any shortcut, a
product (gating). The sweeps are `flowlaws.models.chain.Chain`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.chain import Chain
from flowlaws.models.kinds.activation import Activation
from flowlaws.models.kinds.decode import stray
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.symmetry import Rescaling, Site, rescalings


@dataclass(frozen=True)
class Sequential:
    """A network as data: an input shape (without the batch axis) and layers.

    >>> from flowlaws.models import Activation, Dense
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
        if (unread := stray(self.layers)) is not None:
            raise InvalidArgument(f"{unread.spec} reads the memory of a decode block; put it in one's decoder: "
                                  f"decode(S)[..., {unread.spec}, ... | ENCODER]")

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
        """The canonical spec string (``mlp:`` whenever the network is a plain MLP);
        ``parse(model.spec) == model`` (see `flowlaws.models.spec`)."""
        widths, act, bias = self._as_mlp()
        if widths:
            return f"mlp:{'-'.join(map(str, widths))}:{act.spec}{':bias' if bias else ''}"
        shape = "x".join(map(str, self.input_shape))
        return f"seq:{shape}:{','.join(layer.spec for layer in self.layers)}"

    def _as_mlp(self):
        """(widths, activation, bias) when the net is dense layers with one activation between."""
        layers = self.layers
        if len(self.input_shape) != 1 or len(layers) % 2 != 1:
            return None, None, None
        dense, acts = layers[::2], layers[1::2]
        if not all(type(d) is Dense for d in dense) or not all(isinstance(a, Activation) for a in acts):
            return None, None, None
        if len({d.bias for d in dense}) != 1 or len(set(acts)) > 1 or not acts:
            return None, None, None
        return [self.input_shape[0], *(d.units for d in dense)], acts[0], dense[0].bias

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

    def output_bound(self, params, cache):
        """The forward magnitude sweep's entrywise bound on |output| (`Chain.bounds`):
        gamma(n) times it bounds the forward pass's round-off."""
        return self._chain.bounds(params, cache)[0]

    def backward(self, params, cache, dout, magnitude: bool = False):
        return tuple(self._chain.backward(params, cache, dout, magnitude)[1])

    # --- structure -----------------------------------------------------------------------
    def rescalings(self) -> tuple[Rescaling, ...]:
        """Every positive rescaling symmetry of the network (docs/theory.md, 3.2-3.7)."""
        return tuple(rescalings(self._chain))

    def site(self, position: int) -> Site:
        """Where layer ``position`` sits (for symmetry declarations)."""
        return Site(self._chain, 0, position)

    def without_skips(self) -> Sequential:
        """The same parameters with every residual block inlined (no skip path)."""
        return Sequential(self.input_shape, tuple(x for layer in self.layers for x in layer.inlined()))

    def with_activation(self, act: Activation) -> Sequential:
        """The same architecture with every activation replaced by ``act``."""
        return Sequential(self.input_shape, tuple(
            layer.mapped(lambda x: act if isinstance(x, Activation) else x) for layer in self.layers))

    @property
    def activations(self) -> tuple[Activation, ...]:
        return tuple(layer for layer in self.all_layers if isinstance(layer, Activation))

    @property
    def all_layers(self) -> tuple:
        """Every layer, those inside residual blocks included."""
        return tuple(x for layer in self.layers for x in (layer, *layer.sublayers))


def _fan_in_biases(specs, params, scale, rng):
    """Biases take the fan-in of their layer's weight (the preceding spec)."""
    out = list(params)
    for i, (name, shape) in enumerate(specs):
        if name.endswith(".b") and i > 0:
            fan_in = int(np.prod(specs[i - 1][1][1:]))
            out[i] = rng.normal(0.0, scale / np.sqrt(fan_in), size=shape)
    return tuple(out)
