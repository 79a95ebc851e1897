"""The strategies themselves (see the package docstring)."""

from __future__ import annotations

import dataclasses
import functools
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument
from hypothesis.extra import numpy as hnp

from flowlaws.checking import Scenario
from flowlaws.errors import InvalidArgument
from flowlaws.flows.optimizers import GD, OPTIMIZERS, SGD, Adam, Momentum, Nesterov, RMSProp, SignGD
from flowlaws.losses import LOSSES, CrossEntropy, Huber, Logistic, Smooth, Square
from flowlaws.models import (
    HOMOGENEOUS,
    LAYERS,
    NON_HOMOGENEOUS,
    SATURATING,
    Activation,
    Attention,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    CrossAttention,
    Decode,
    Dense,
    Dropout,
    Factorization,
    Flatten,
    Gated,
    GroupNorm,
    LayerNorm,
    MaxPool1d,
    MaxPool2d,
    Mean,
    MoE,
    Residual,
    RMSNorm,
    Sequential,
)
from flowlaws.models.kinds.conv_transpose import ConvTranspose
from flowlaws.validation import positive

KINDS = ("mlp", "linear", "conv1d", "conv2d", "residual", "factorization", "batchnorm", "layernorm", "attention",
         "mixed", "swiglu", "rope", "gqa", "qknorm", "moe", "moe_sigmoid", "decoder")
ACTIVATIONS = HOMOGENEOUS + NON_HOMOGENEOUS + SATURATING


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
    return positive("", name, value, error=_Error)


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
                  depth=(1, 2), width=(1, 3), bias=(False, True), pooling=(None, "max", "avg"), outputs=None):
    """Models of the given ``kinds``: MLPs, deep linear nets, 1D/2D conv nets (with
    pooling, then flatten and a dense head), residual blocks, factorizations, nets with
    BatchNorm or LayerNorm after each hidden weight layer, and attention nets on
    (T, d) sequences. ``outputs`` is the width of the dense head (``width`` unless
    given): a softmax's translation law needs 3 classes to be moved by Adam.

    >>> architectures(kinds=["mlp"], activations=["tanh"])  # doctest: +ELLIPSIS
    architectures(kinds=['mlp'], activations=['tanh'], ...)
    """
    kinds = _subset("kinds", kinds, KINDS)
    acts = _subset("activations", activations, ACTIVATIONS)
    depth, width = _range("depth", depth), _range("width", width)
    outputs = width if outputs is None else _range("outputs", outputs)
    bias = _subset("bias", (bias,) if isinstance(bias, bool) else bias, (False, True))
    pooling = _subset("pooling", (pooling,) if pooling is None or isinstance(pooling, str) else pooling,
                      (None, "max", "avg"))
    sizes = st.integers(*width)
    act_st = _activations_strategy(acts)

    @st.composite
    def draw_model(draw):
        kind = draw(st.sampled_from(kinds))
        has_bias = draw(st.sampled_from(bias))
        if kind == "factorization":  # no layers, no activation
            return Factorization(draw(sizes), draw(sizes), draw(st.integers(1, min(3, width[1]))))
        act = Activation("linear") if kind == "linear" else draw(act_st)
        return _FAMILIES[kind](draw, _Family(sizes, act, has_bias, depth, width, pooling, st.integers(*outputs)))

    return _named(draw_model(), "architectures", kinds=list(kinds), activations=list(acts),
                  depth=depth, width=width, bias=list(bias), pooling=list(pooling), outputs=outputs)


def _kernels_fit(model):
    """``model``, unless a conv's padding reaches a kernel's width (an output reading only
    padding is the bias alone, and the layer reading it may trade weight between such
    outputs) or its taps split along an axis (`_taps_split`): nets with laws their
    symmetries do not give (docs/theory.md 6, degenerate cases). An input shorter than the
    kernel is drawn: the taps that meet only padding are derived (docs/theory.md 6.6). A
    transposed convolution's taps split differently: laws-complete sets its cases aside
    (`NO_TAP_CLASSES`), and every other theorem draws them."""
    for position, layer in enumerate(model.layers):
        if not hasattr(layer, "extents") or isinstance(layer, ConvTranspose):
            continue
        # per axis: the inputs a window spans (dilated taps included), its stride and padding
        axes = list(zip(model.site(position).in_shape[1:], layer.extents, layer.strides, layer.paddings,
                        strict=True))
        if any(padding >= extent for _, extent, _, padding in axes):
            raise InvalidArgument(f"{layer.spec}: an output reads only padding")
        if any(_taps_split(*axis) for axis in axes):
            raise InvalidArgument(f"{layer.spec}: its taps split into units of their own")
    return model


def _taps_split(n: int, kernel: int, stride: int, padding: int) -> bool:
    """Whether the taps of a convolution along one axis (input length n) split into
    groups that share no output position through real input: each group then scales on
    its own (kernel 2, stride 2, padding 1 on 2 inputs: each output reads one input
    through its own tap). The taps reading input at output j are one range."""
    ranges = sorted((max(0, padding - j * stride), min(kernel, n + padding - j * stride) - 1)
                    for j in range((n + 2 * padding - kernel) // stride + 1))
    reach = None
    for low, high in ranges:
        if low > high:
            continue  # an output of padding alone
        if reach is not None and low > reach:
            return True
        reach = high if reach is None else max(reach, high)
    return False


@dataclasses.dataclass(frozen=True)
class _Family:
    """What an architecture family's builder draws with."""

    sizes: st.SearchStrategy
    act: Activation
    bias: bool
    depth: tuple[int, int]
    width: tuple[int, int]
    pooling: tuple
    outputs: st.SearchStrategy  # the dense head's width


def _mlp_net(draw, f: _Family):
    hidden = draw(st.lists(f.sizes, min_size=f.depth[0], max_size=f.depth[1]))
    layers: list = []
    for h in hidden:
        layers += [Dense(h, f.bias), f.act]
    return Sequential((draw(f.sizes),), (*layers, Dense(draw(f.outputs), f.bias)))


def _conv_net(draw, f: _Family, dims: int):
    """Conv, activation and (maybe) a pool, per layer; flatten and a dense head."""
    conv, pools = (Conv1d, {"max": MaxPool1d, "avg": AvgPool1d}) if dims == 1 else (
        Conv2d, {"max": MaxPool2d, "avg": AvgPool2d})
    spatial = draw(st.integers(2, 6 if dims == 1 else 4))
    layers: list = []
    for _ in range(draw(st.integers(*f.depth))):
        kernel = draw(st.integers(1, 3))
        layers += [conv(draw(f.sizes), kernel, draw(st.integers(1, 2)), draw(st.integers(0, min(1, kernel - 1))),
                        f.bias), f.act]
        pool = draw(st.sampled_from(f.pooling))
        if pool:
            layers.append(pools[pool](2))
    layers += [Flatten(), Dense(draw(f.outputs), f.bias)]
    shape = (draw(f.sizes), *(spatial,) * dims)
    try:
        return _kernels_fit(Sequential(shape, tuple(layers)))
    except InvalidArgument:
        # a kernel or pool that does not fit: drop the pools, use 1-wide kernels
        plain = tuple(
            conv(layer.channels, 1, 1, 0, f.bias) if isinstance(layer, conv) else layer
            for layer in layers if not isinstance(layer, tuple(pools.values()))
        )
        return Sequential(shape, plain)


def _residual_net(draw, f: _Family):
    """One or two residual blocks [dense, act, dense], with or without a producing layer
    before them and an activation after each."""
    sizes, act, bias = f.sizes, f.act, f.bias
    d = draw(sizes)
    producer = draw(st.booleans())
    layers: list = [Dense(d, bias), act] if producer else []
    for _ in range(draw(st.integers(1, 2))):
        layers.append(Residual((Dense(draw(sizes), bias), act, Dense(d, bias))))
        if draw(st.booleans()):
            layers.append(act)
    shape = (draw(sizes),) if producer else (d,)
    return Sequential(shape, (*layers, Dense(draw(f.outputs), bias)))


def _normalized_net(draw, f: _Family, norm):
    """Weight layer, normalization (affine or not), activation, for each hidden layer; a
    dense head. BatchNorm nets may be 1D conv nets. After a LayerNorm the activation may be
    left out: the next weight layer then reads it directly, and a mixing of its centred
    plane passes it when the next LayerNorm removes its factor (docs/theory.md 6, the
    centred plane's GL). A LayerNorm normalizes >= 3 units (of
    2, x̂ = ±(1, -1)) and the input has >= 2 features (of 1, every channel of the first
    normalization is ±x̂ of it): degenerate nets with laws of their own."""
    act, bias, depth, width = f.act, f.bias, f.depth, f.width
    widths = st.integers(3 if norm is LayerNorm else 2, max(3, width[1]))  # LayerNorm of 2: x̂ = ±(1, -1)
    conv = norm is BatchNorm and draw(st.booleans())
    layers: list = []
    inputs = st.integers(2, max(2, width[1]))
    for _ in range(draw(st.integers(*depth))):
        units = draw(widths)
        kernel = draw(st.sampled_from([1, 3]))
        weight = Conv1d(units, kernel, padding=kernel // 2, bias=bias) if conv else Dense(units, bias)
        layers += [weight, norm(affine=draw(st.booleans()))]
        layers += [act] if norm is not LayerNorm or draw(st.booleans()) else []
    head = [Flatten(), Dense(draw(f.outputs), bias)] if conv else [Dense(draw(f.outputs), bias)]
    shape = (draw(inputs), draw(st.integers(2, 4))) if conv else (draw(inputs),)
    return Sequential(shape, (*layers, *head))


def _attention_net(draw, f: _Family):
    """On a (T, d) sequence: attention blocks (plain, followed by an activation or (d >= 3) a
    LayerNorm, or residual with a LayerNorm before), then flatten and a dense head."""
    act, depth = f.act, f.depth
    d = draw(st.integers(2, 3))
    layers: list = []
    for _ in range(draw(st.integers(*depth))):
        attention = Attention(draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        blocks = [[attention], [attention, act], [Residual((attention,))]]
        if d >= 3:  # a LayerNorm of 2 features is degenerate (x̂ = ±(1, -1))
            blocks += [[attention, LayerNorm(affine=draw(st.booleans()))], [Residual((LayerNorm(), attention))]]
        layers += draw(st.sampled_from(blocks))
    return Sequential((draw(st.integers(2, 4)), d), (*layers, Flatten(), Dense(draw(f.outputs))))


@dataclasses.dataclass(frozen=True)
class DrawContext:
    """What a layer kind's ``draw`` may use: the width strategy, the net's activation,
    whether weight layers have biases, the kinds it may draw."""

    sizes: st.SearchStrategy
    act: Activation
    bias: bool
    kinds: tuple = tuple(k for k in LAYERS if k is not Dropout)  # dropout: pointwise theorems only


def _mixed_layer(draw, shape, context: DrawContext):
    """One layer of a registered kind drawn at inputs of ``shape``'s rank (None when the
    drawn layer does not fit the shape): each kind draws itself (`Layer.draw`)."""
    fitting = [k for k in context.kinds if len(shape) in k.ranks]
    return draw(st.sampled_from(fitting)).draw(draw, tuple(shape), context) if fitting else None


def _mixed_net(draw, f: _Family):
    """A chain of layers, each of a registered kind drawn among those that fit the shape
    so far, so that every adjacency the spec language allows is drawn (an affine LayerNorm
    or an attention layer before a convolution, a shortcut with its own layers, a gate, a
    position-wise dense layer ...); then flatten and a dense head. A layer that does not
    fit (a kernel longer than its input) is skipped."""
    sizes, act, bias, depth = f.sizes, f.act, f.bias, f.depth
    rank = draw(st.integers(1, 3))
    shape = ((draw(st.integers(2, 4)),), (draw(st.integers(2, 3)), draw(st.integers(3, 5))),
             (draw(st.integers(1, 2)), 4, 4))[rank - 1]
    context = DrawContext(sizes, act, bias)
    layers: list = []
    for _ in range(draw(st.integers(2, 2 + depth[1]))):
        layer = _mixed_layer(draw, Sequential(shape, tuple(layers)).output_shape, context)
        if layer is None or _averages_degenerate(Sequential(shape, tuple(layers)), layer):
            continue
        try:
            _kernels_fit(Sequential(shape, (*layers, layer)))
        except InvalidArgument:
            continue
        layers.append(layer)
    return Sequential(shape, (*layers, Flatten(), Dense(draw(f.outputs), bias)))


def _averages_degenerate(model, layer) -> bool:
    """Whether ``layer`` is a ``mean`` over positions of a GroupNorm's output, through
    layers that keep its groups, with channels the mean reduces to fewer numbers than their
    gains and shifts (degenerate, with laws of their own: docs/theory.md 6): one channel per
    group averages to 0 (the reader's weights, and an affine's gamma, are dead); two
    average to (a, -a), so an affine pair (gamma, beta) is a 2 x 2 matrix on (a, 1), mixed
    with its reader's columns by GL(2), as a LayerNorm of 2 features is (x̂ = ±(1, -1))."""
    if not (isinstance(layer, Mean) and not layer.last):
        return False
    for position in reversed(range(len(model.layers))):
        before, shape = model.layers[position], model.site(position).in_shape
        if isinstance(before, GroupNorm):
            return shape[0] // before.groups <= (2 if before.affine else 1)
        if not GroupNorm.keeps_groups(before, shape):
            return False
    return False


def _prenorm(draw, layers, d, residual: bool):
    """``layers`` (mapping d features to d), alone or in a pre-norm residual block."""
    return [Residual((RMSNorm(), *layers))] if residual and d >= 3 else list(layers)


def _language_net(draw, f: _Family, block):
    """A block of today's language models on a (T, d) sequence or a flat sample: ``block(d)``
    (d features to d), alone or in a pre-norm residual block (RMSNorm), then the mean over
    positions and a dense head."""
    d = draw(st.integers(2, 4))
    sequence = block is not _swiglu_block or draw(st.booleans())
    shape = (draw(st.integers(2, 3)), d) if sequence else (d,)
    layers = _prenorm(draw, block(draw, f, d), d, draw(st.booleans()))
    head = [Mean(last=True)] if sequence else []
    return Sequential(shape, (*layers, *head, Dense(draw(f.outputs), f.bias)))


def _swiglu_block(draw, f, d):
    hidden = draw(f.sizes)
    return [Gated((Dense(hidden, f.bias), Activation("silu")), (Dense(hidden, f.bias),)), Dense(d, f.bias)]


def _attention_block(**options):
    def block(draw, f, d):
        heads = draw(st.integers(1, 2)) if "kv_heads" not in options else 2
        dk = draw(st.sampled_from([2, 4] if options.get("rope") else [2, 3] if options.get("qknorm") else [1, 2]))
        layer = Attention(heads, dk, draw(st.integers(1, 2)), **options)
        return [dataclasses.replace(layer, rope_halves=True) if layer.rope and draw(st.booleans()) else layer]

    return block


def _decoder_net(draw, f: _Family):
    """A Transformer decoder on the target's T rows reading an encoder's memory of the
    source's S rows (`Decode`): one cross-attention (biased or not, alone or in a pre-norm
    residual block), the encoder a dense layer (and the net's activation and another), an
    affine RMSNorm (a final norm: its gain scales the memory) or none; then the mean over
    positions and a dense head."""
    d, t, s = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cross = CrossAttention(draw(st.integers(1, 2)), draw(st.sampled_from([1, 2])), draw(st.integers(1, 2)),
                           bias=draw(st.booleans()))
    encoder = draw(st.sampled_from([(), (Dense(d, f.bias),), (Dense(d, f.bias), f.act, Dense(d, f.bias)),
                                    (RMSNorm(affine=True),)]))
    block = Decode(tuple(_prenorm(draw, [cross], d, draw(st.booleans()))), encoder, s)
    return Sequential((t + s, d), (block, Mean(last=True), Dense(draw(f.outputs), f.bias)))


def _moe_block(gate):
    def block(draw, f, d):
        experts = draw(st.integers(2, 3))
        return [MoE(experts, draw(st.integers(1, 2)), draw(st.integers(2, experts)), gate,
                    draw(st.sampled_from(["swiglu", "relu"])))]

    return block


# architecture family -> builder (factorizations have no layers: drawn in `architectures`)
_FAMILIES = {"mlp": _mlp_net, "linear": _mlp_net, "conv1d": functools.partial(_conv_net, dims=1),
             "conv2d": functools.partial(_conv_net, dims=2), "residual": _residual_net,
             "batchnorm": functools.partial(_normalized_net, norm=BatchNorm),
             "layernorm": functools.partial(_normalized_net, norm=LayerNorm), "attention": _attention_net,
             "mixed": _mixed_net, "swiglu": functools.partial(_language_net, block=_swiglu_block),
             "rope": functools.partial(_language_net, block=_attention_block(rope=True)),
             "gqa": functools.partial(_language_net, block=_attention_block(kv_heads=1)),
             "qknorm": functools.partial(_language_net, block=_attention_block(qknorm=True)),
             "moe": functools.partial(_language_net, block=_moe_block("softmax")),
             "moe_sigmoid": functools.partial(_language_net, block=_moe_block("sigmoid")), "decoder": _decoder_net}


def _model(model):
    """A model, or the model a spec string describes (``"mlp:3-4-2:relu"``)."""
    from flowlaws.models import parse

    if isinstance(model, str):
        try:
            return parse(model)
        except InvalidArgument as error:
            raise _Error(str(error)) from None
    if not hasattr(model, "param_specs"):
        raise _Error(f"model must be a flowlaws model or a spec string, got {model!r}")
    return model


def subarchitectures(model):
    """``model`` and smaller versions of it, to which a counterexample shrinks: every
    hidden weight layer keeps between 1 and its width of units (a residual block's last
    layer follows its input), and an MLP keeps its first 1..depth hidden layers.
    Factorizations and other models are drawn as given."""
    model = _model(model)
    if not isinstance(model, Sequential):
        return st.just(model)

    @st.composite
    def draw(d):
        layers = list(model.layers)
        hidden = [i for i, layer in enumerate(layers) if getattr(layer, "has_weight", False)][:-1]
        groups = [i for i in hidden if i + 1 < len(layers) and isinstance(layers[i + 1], Activation)]
        if len(groups) == len(hidden) and all(isinstance(x, Dense | Activation) for x in layers) and groups:
            keep = d(st.integers(1, len(groups)))
            layers = [*layers[:groups[keep - 1] + 2], layers[-1]]
        try:
            return Sequential(model.input_shape, _narrowed(d, tuple(layers), model.input_shape, True))
        except InvalidArgument:
            return model

    return _named(draw(), "subarchitectures", model=model.spec)


def _narrowed(d, layers, shape, top: bool):
    """The layers with each hidden width drawn in [1, width] (the last weight layer of a
    top-level chain keeps its width; a block's last layer takes the block's width)."""
    weights = [i for i, layer in enumerate(layers) if getattr(layer, "has_weight", False)]
    out: list = []
    for i, layer in enumerate(layers):
        here = Sequential(shape, tuple(out)).output_shape if out else tuple(shape)
        if isinstance(layer, Residual):
            layer = Residual(_narrowed(d, layer.block, here, False))
        elif getattr(layer, "has_weight", False):
            field = "units" if isinstance(layer, Dense) else "channels"
            if i != weights[-1]:
                layer = dataclasses.replace(layer, **{field: d(st.integers(1, getattr(layer, field)))})
            elif not top:
                layer = dataclasses.replace(layer, **{field: shape[0]})
        out.append(layer)
    return tuple(out)


EXPONENTS = (-150, 150)  # of `magnitudes`: products of two such entries stay finite


def magnitudes(model, *, exponents=EXPONENTS):
    """Params spanning many decades: entries in [-1, 1] times 10^(a + u_i + e_ij), with an
    exponent a per array, u_i per unit (axis 0) and e_ij per entry (each 0 or drawn in
    ``exponents``, the sum clipped to it), and some entries exactly 0. True theorems
    must hold here too: overflow makes a case invalid, never a false alarm."""
    model = _model(model)
    if not (isinstance(exponents, tuple) and len(exponents) == 2 and all(isinstance(e, int) for e in exponents)
            and -300 <= exponents[0] <= exponents[1] <= 300):
        raise _Error(f"exponents must be a (low, high) pair of ints in [-300, 300], got {exponents!r}")
    low, high = exponents
    exponent = st.one_of(st.just(0), st.integers(low, high))

    def array(shape):
        per_unit = (shape[0],) + (1,) * (len(shape) - 1)
        parts = st.tuples(hnp.arrays(np.float64, shape, elements=_floats(1.0)), exponent,
                          hnp.arrays(np.int64, per_unit, elements=exponent),
                          hnp.arrays(np.int64, shape, elements=exponent),
                          hnp.arrays(np.bool_, shape))
        return parts.map(lambda t: np.where(t[4], 0.0, t[0] * 10.0 ** np.clip(t[1] + t[2] + t[3], low, high)))

    return _named(st.tuples(*(array(shape) for _, shape in model.param_specs)), "magnitudes",
                  model=model.spec, exponents=exponents)


def _generic(params, seed):
    """Params with seeded Gaussian noise at a tenth of each unit's largest entry (of the
    array's, for a unit of zeros), so that no two units are equal and none is zero: a
    normalization group fed by equal or zero rows is constant (x̂ = 0/0)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in params:
        rows = np.abs(q).reshape(len(q), -1).max(axis=1)
        rows = np.where(rows > 0, rows, max(float(rows.max()), 1.0))
        out.append(q + 0.1 * rows.reshape((-1,) + (1,) * (q.ndim - 1)) * rng.normal(size=q.shape))
    return tuple(out)


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


@lru_cache(maxsize=64)
def _floats(scale):
    return st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=64)


def params(model, *, scale: float = 1.0, pad: int = 1):
    """A params tuple for ``model`` with every entry in [-scale, scale].

    With ``pad`` > 1 each array is drawn with every axis at least ``pad`` long and then
    sliced to its shape, so that when Hypothesis shrinks a width, the entries of the
    remaining units keep their place in the draw (and the counterexample keeps failing).
    """
    model = _model(model)
    scale = _positive("scale", scale)
    if not isinstance(pad, int) or pad < 1:
        raise _Error(f"pad must be an int >= 1, got {pad!r}")

    def array(shape):
        padded = tuple(max(n, pad) for n in shape)
        window = tuple(slice(0, n) for n in shape)
        return hnp.arrays(np.float64, padded, elements=_floats(scale)).map(lambda a: a[window].copy())

    arrays = [array(shape) for _, shape in model.param_specs]
    return _named(st.tuples(*arrays), "params", model=model.spec, scale=scale)


def datasets(model, *, n=(1, 4), loss=None, scale: float = 1.0, generic: bool = False):
    """(X, Y) with N in ``n`` samples, X in [-scale, scale]; Y fits ``loss``'s targets
    (reals, signs +-1, or probability rows). ``generic``: X also gets seeded Gaussian
    noise, so samples differ almost surely (normalization nets: a batch of equal
    samples has zero variance)."""
    model = _model(model)
    low, high = _range("n", n)
    scale = _positive("scale", scale)
    targets = getattr(loss, "targets", "real")
    return _named(_datasets(model, low, high, scale, targets, generic), "datasets", model=model.spec, n=(low, high),
                  loss=targets, scale=scale, generic=generic)


_SIGNS = st.sampled_from([-1.0, 1.0])
_UNIT = st.floats(0.0, 1.0, allow_subnormal=False)


@st.composite
def _datasets(d, model, low, high, scale, targets, generic):
    count = d(st.integers(low, high))
    X = d(hnp.arrays(np.float64, (count, *model.input_shape), elements=_floats(scale)))
    if generic:
        X = X + np.random.default_rng(d(st.integers(0, 2**32 - 1))).normal(0.0, scale, X.shape)
    shape = (count, *model.output_shape)
    if targets == "sign":
        Y = d(hnp.arrays(np.float64, shape, elements=_SIGNS))
    elif targets == "probabilities":
        raw = d(hnp.arrays(np.float64, shape, elements=_UNIT)) + 1e-3
        Y = raw / raw.sum(axis=1, keepdims=True)
    else:
        Y = d(hnp.arrays(np.float64, shape, elements=_floats(scale)))
    return X, Y


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


def optimizers(*, names=("gd", "sgd"), lr=(1e-3, 0.1), weight_decay=0.0, decay_power=(0.0, 0.75), batch=(1, 3)):
    """Optimizers by name with a step size in ``lr`` and the given weight decay (or one of
    a tuple of them)."""
    names = _subset("names", names, OPTIMIZERS)
    lo, hi = (_positive("lr", v) for v in ((lr, lr) if isinstance(lr, float | int) else lr))
    decays = tuple(weight_decay) if isinstance(weight_decay, tuple | list) else (weight_decay,)
    if not decays or not all(isinstance(w, int | float) and np.isfinite(w) and w >= 0 for w in decays):
        raise _Error(f"weight_decay must be >= 0 (or a tuple of such), got {weight_decay!r}")
    wd = st.sampled_from([float(w) for w in decays])
    etas = st.floats(lo, hi)
    powers = st.sampled_from(decay_power if isinstance(decay_power, tuple) else (decay_power,))
    family = {
        "gd": st.builds(GD, etas, powers, wd),
        "sgd": st.builds(SGD, etas, powers, wd, st.integers(*_range("batch", batch)), st.integers(0, 9)),
        "momentum": st.builds(Momentum, etas, st.just(0.0), wd, st.sampled_from([0.5, 0.9])),
        "nesterov": st.builds(Nesterov, etas, st.just(0.0), wd, st.sampled_from([0.5, 0.9])),
        "adam": st.builds(Adam, etas, st.just(0.0), wd),
        "rmsprop": st.builds(RMSProp, etas, st.just(0.0), wd),
        "signgd": st.builds(SignGD, etas, st.just(0.0), wd),
    }
    return _named(st.one_of([family[n] for n in names]), "optimizers", names=list(names),
                  lr=(lo, hi), weight_decay=decays)


def scenarios(theorem, *, extreme: bool | None = None):
    """Scenarios a theorem (``flowlaws.theorem("thm-2.1")``) quantifies over: its ``space`` (architectures, losses,
    optimizers, flow settings) with params and data drawn to shrink. With
    ``init_scale`` in the space the params are a seeded Gaussian init of that scale
    instead (small-initialization theorems); the seed is drawn and shrinks. A space
    with ``model`` (and ``loss``, ``optimizer``) fixes them; the model then shrinks
    through `subarchitectures`.

    ``extreme``: True draws every params tuple from `magnitudes` (1e-150..1e150 and
    zeros), False never; None (default) mixes both (ordinary params first) for a true
    theorem, whose false alarms hide at extreme magnitudes, and draws ordinary params
    for an expected break, which has to be found and shrunk; a space's ``exponents`` narrows
    their range (attention, whose gradient is of degree 5 in the weights). A space with ``generic``
    (normalization nets) perturbs data and params with seeded noise (`_generic`), so
    that no normalization group is constant."""
    if not hasattr(theorem, "space"):  # strategies never import the theorems: the caller looks one up
        raise _Error(f"scenarios needs a Theorem, got {theorem!r}; e.g. scenarios(flowlaws.theorem('thm-2.1'))")
    breaks = getattr(theorem, "expect", "holds") == "breaks"
    if extreme is None and breaks:
        extreme = False
    space = dict(theorem.space)
    if "model" in space:
        arch = subarchitectures(space["model"])
        loss_st, opt_st = st.just(space["loss"]), st.just(space.get("optimizer"))
    else:
        arch = architectures(**space.get("architectures", {}))
        loss_st = losses(**space.get("losses", {}))
        opt_st = optimizers(**space["optimizers"]) if "optimizers" in space else st.none()

    # an expected break pads its arrays (`params`) so that it shrinks to the fewest units; a
    # true theorem draws them unpadded (a third of the choices: its cases are the throughput)
    pad = _range("width", space.get("architectures", {}).get("width", (1, 3)))[1] if breaks else 1

    @lru_cache(maxsize=512)  # strategies are built once per model (and loss), not once per draw
    def weights(model):
        ordinary = params(model, scale=space.get("scale", 1.0), pad=pad)
        wide = magnitudes(model, exponents=space.get("exponents", EXPONENTS))
        if extreme is None:
            return st.one_of(ordinary, wide)
        return wide if extreme else ordinary

    @lru_cache(maxsize=512)
    def data(model, loss):
        return datasets(model, loss=loss, n=space.get("n", (1, 4)), generic=space.get("generic", False))

    @st.composite
    def draw(d):
        model = d(arch)
        loss = d(loss_st)
        if "init_scale" in space:
            seed = d(st.integers(0, 2**32 - 1))
            p = model.init(np.random.default_rng(seed), scale=space["init_scale"])
        else:
            p = d(weights(model))
            if space.get("generic"):
                p = _generic(p, d(st.integers(0, 2**32 - 1)))
        X, Y = d(data(model, loss))
        return Scenario(model, p, X, Y, loss, d(opt_st), steps=space.get("steps", 3),
                        T=space.get("T", 0.2), flow_steps=space.get("flow_steps", 8))

    return _named(draw(), "scenarios", theorem=theorem.id)
