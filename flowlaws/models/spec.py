"""The spec string syntax: one line for every architecture flowlaws can build.

    SPEC   := mlp:WIDTHS:ACT[:bias]          e.g. mlp:3-8-8-2:relu:bias
            | factorization:D1xD2:RANK        e.g. factorization:4x5:2
            | seq:SHAPE:LAYER[,LAYER...]      e.g. seq:1x12:conv1d(4,3,bias),relu,maxpool1d(2),flatten,dense(2)
    WIDTHS := INT-INT[-INT...]               input, hidden..., output
    SHAPE  := INT[xINT...]                   input shape without the batch axis: 5, 1x12, 2x6x6
    LAYER  := dense(N[,bias])                 on the last axis: flat, or each position of (T, d)
            | conv1d(C,K[,stride=S][,padding=P][,bias]) | conv2d(...)
            | maxpool1d(S) | avgpool1d(S) | maxpool2d(S) | avgpool2d(S)
            | flatten
            | mean | mean(last)               average over positions, keeping channels (first axis)
                                             or features (last axis)
            | batchnorm[(affine][,eps=E])]    per channel over the batch (eps default 0)
            | layernorm[(affine][,eps=E])]    over the last axis of each sample
            | rmsnorm[(affine][,eps=E])]      x / sqrt(mean x^2 + eps) over the last axis
            | attention(heads=H,dk=K,dv=V)   self-attention on a (T, d) input, e.g.
                                             seq:5x4:attention(heads=2,dk=3,dv=2),flatten,dense(2)
            | dropout(P)                      train mode, its mask drawn from its input's bits
            | residual[LAYERS]               y = x + block(x)
            | residual[LAYERS | LAYERS]      y = block(x) + shortcut(x)
            | gated[LAYERS | LAYERS]         y = a(x) * b(x): gated[dense(8),silu | dense(8)] is SwiGLU;
                                             gated[LAYERS] is a(x) * x
            | concat[LAYERS | LAYERS]        y = cat(a(x), b(x)) on the first axis; an empty branch is x
            | ACT
    ACT    := linear | relu | abs | leaky_relu(A) | prelu(A,B) | relu_power(K)
            | tanh | sigmoid | softplus | gelu | gelu_tanh | elu | selu | silu | swish(BETA) | mish
            | relu6 | hardswish | hardsigmoid

Every LAYER is a registered kind (`flowlaws.models.kinds`): the parser looks its name
up there and the kind builds itself from the arguments. `format_spec(model)` writes the
canonical form (``mlp:`` whenever the network is a plain MLP), and
``parse(format_spec(m)) == m``.
"""

from __future__ import annotations

import re

from flowlaws.errors import InvalidArgument, unknown
from flowlaws.models.factorization import Factorization
from flowlaws.models.kinds import LAYERS, Activation, Dense
from flowlaws.models.kinds import kind as kind_of
from flowlaws.models.sequential import Sequential

_HELP = "see the spec syntax in the README (e.g. mlp:3-8-8-2:relu)"
_CALL = re.compile(r"^([a-z_0-9]+)(?:\((.*)\))?$")
_PER_AXIS = re.compile(r"\d+(?:x\d+)+")  # one integer per axis: a rectangular kernel 3x2


def mlp(widths, activation="relu", *, bias: bool = False) -> Sequential:
    """Fully connected net widths[0] -> ... -> widths[-1], activation between layers.

    >>> mlp([3, 8, 2], "relu", bias=True).spec
    'mlp:3-8-2:relu:bias'
    """
    widths = list(widths)
    if len(widths) < 2:
        raise InvalidArgument(f"an MLP needs at least 2 widths (input and output), got {widths!r}")
    act = activation if isinstance(activation, Activation) else _activation(str(activation))
    layers = []
    for width in widths[1:-1]:
        layers += [Dense(width, bias), act]
    layers.append(Dense(widths[-1], bias))
    return Sequential((widths[0],), tuple(layers))


def deep_linear(widths, *, bias: bool = False) -> Sequential:
    """A deep linear network (every activation the identity)."""
    return mlp(widths, "linear", bias=bias)


def factorization(d1: int, d2: int, rank: int) -> Factorization:
    """Asymmetric factorization U V^T of a d1 x d2 matrix with factors of rank ``rank``."""
    return Factorization(d1, d2, rank)


def parse(spec: str):
    """Build the model a spec string describes (raises InvalidArgument naming the bad part)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgument(f"spec must be a non-empty string, got {spec!r}; {_HELP}")
    kind, _, rest = spec.strip().partition(":")
    parsers = {"mlp": _parse_mlp, "factorization": _parse_factorization, "seq": _parse_seq}
    if kind not in parsers:
        raise unknown("architecture kind", kind, parsers)
    try:
        return parsers[kind](rest)
    except InvalidArgument as error:
        raise InvalidArgument(f"bad spec {spec!r}: {error}") from None


def format_spec(model) -> str:
    """The canonical spec string of a model (``model.spec``)."""
    return model.spec


def _ints(text: str, sep: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(sep)]
    except ValueError:
        raise InvalidArgument(f"{what} must be integers separated by {sep!r}, got {text!r}") from None
    if any(v < 1 for v in values):
        raise InvalidArgument(f"{what} must be positive, got {text!r}")
    return values


def _parse_mlp(rest: str):
    fields = rest.split(":")
    if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != "bias"):
        raise InvalidArgument(f"expected mlp:WIDTHS:ACTIVATION[:bias], got fields {fields!r}")
    return mlp(_ints(fields[0], "-", "widths"), _activation(fields[1]), bias=len(fields) == 3)


def _parse_factorization(rest: str):
    fields = rest.split(":")
    if len(fields) != 2:
        raise InvalidArgument(f"expected factorization:D1xD2:RANK, got {rest!r}")
    dims = _ints(fields[0], "x", "factorization sizes")
    if len(dims) != 2:
        raise InvalidArgument(f"expected two sizes D1xD2, got {fields[0]!r}")
    return Factorization(dims[0], dims[1], _ints(fields[1], "x", "rank")[0])


def _parse_seq(rest: str):
    shape, sep, layers = rest.partition(":")
    if not sep:
        raise InvalidArgument(f"expected seq:SHAPE:LAYERS, got {rest!r}")
    return Sequential(tuple(_ints(shape, "x", "input shape")), _layers(layers))


def _split(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "([" and 1) or (-1 if ch in ")]" else 0)
        if depth < 0:
            raise InvalidArgument(f"unbalanced brackets in {text!r}")
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise InvalidArgument(f"unbalanced brackets in {text!r}")
    return [*parts, text[start:]]


def _layers(text: str):
    if not text.strip():
        raise InvalidArgument("no layers given")
    return tuple(_layer(part.strip()) for part in _split(text))


def _layer(text: str):
    """One layer: NAME, NAME(ARGS) or NAME[LAYERS | LAYERS] (a composite's branches)."""
    bracket = text.find("[")
    if bracket > 0 and text.endswith("]"):
        head = _CALL.match(text[:bracket])
        if not head:
            raise InvalidArgument(f"cannot read layer {text!r}")
        name, branches = head.group(1), [_branch(part) for part in _split(text[bracket + 1:-1], "|")]
        if not kind_of(name).composite:
            raise InvalidArgument(f"{name} takes no branches; only {', '.join(_composites())} do: {text!r}")
        positional, keywords, flags = _arguments(head.group(2) or "")
        return kind_of(name).from_spec(name, positional, keywords, flags, branches)
    match = _CALL.match(text)
    if not match:
        raise InvalidArgument(f"cannot read layer {text!r}")
    name, args = match.group(1), match.group(2)
    if kind_of(name).composite:
        raise InvalidArgument(f"{name} takes branches in brackets: {kind_of(name).signature()}, got {text!r}")
    positional, keywords, flags = _arguments(args or "")
    return kind_of(name).from_spec(name, positional, keywords, flags)


def _composites() -> list[str]:
    return [k.kind for k in LAYERS if k.composite]


def _branch(text: str) -> tuple:
    return tuple(_layer(part.strip()) for part in _split(text)) if text.strip() else ()


def _arguments(text: str):
    positional, keywords, flags = [], {}, set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" in part:
            key, value = part.split("=", 1)
            keywords[key.strip()] = value.strip()
        elif _is_float(part) or _PER_AXIS.fullmatch(part):
            positional.append(part)
        else:
            flags.add(part)
    return positional, keywords, flags


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _activation(text: str) -> Activation:
    layer = _layer(text.strip())
    if not isinstance(layer, Activation):
        raise InvalidArgument(f"{text!r} is a layer, not an activation; e.g. relu or leaky_relu(0.1)")
    return layer


def syntax() -> str:
    """The layer kinds a seq: spec may use, one per line (from the registry)."""
    return "\n".join(kind.signature() for kind in LAYERS)
