"""Hypotheses: what a true theorem assumes of a scenario, each a predicate that says why
it fails (the case is then invalid, and says so)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from flowlaws.discover import scalar_deep_linear
from flowlaws.models import Concat, LayerNorm, Residual
from flowlaws.models.symmetry import Family, unfollowed_ranges
from flowlaws.theorems.core import Hypothesis


def _homogeneous(s):
    for act in s.model.activations:
        if act.degree is None:
            return f"activation {act.name!r} is not positively homogeneous: {act.homogeneity_counterexample()}"
    return None


def _degree_one(s):
    for act in s.model.activations:
        if act.degree not in (None, 1):
            return f"activation {act.spec} has degree {act.degree:g}: the law is ||in||^2 - {act.degree:g}||out||^2"
    return None


def _no_skip(s):
    if any(isinstance(layer, Residual) or (isinstance(layer, Concat) and not all(layer.branches))
           for layer in getattr(s.model, "layers", ())):
        return "a skip connection carries the units' output around the block"
    return None


def _plain_descent(s):
    opt = s.optimizer
    if opt is not None and opt.breaks:
        return f"{opt.spec}: {opt.breaks}"
    if opt is not None and opt.weight_decay:
        return f"weight decay {opt.weight_decay} shrinks Q by (1 - eta*lambda)^2 per step"
    return None


def _has_bias(s):
    if not any(name.endswith(".b") for name, _ in s.model.param_specs):
        return "the model has no biases"
    return None


def _combines_gradients(s):
    opt = s.optimizer
    if opt is not None and opt.preconditions:
        return f"{opt.spec}: {opt.preconditions}"
    return None


def _shift_invariant_loss(s):
    if not s.loss.symmetries(s.model):
        return f"loss {s.loss.spec} changes when every output shifts alike (softmax cross-entropy does not)"
    return None


HOMOGENEOUS_ACTS = Hypothesis("positively homogeneous activations", _homogeneous)
DEGREE_ONE = Hypothesis("activations of degree 1", _degree_one)
NO_SKIP = Hypothesis("no skip connection", _no_skip)
PLAIN_DESCENT = Hypothesis("plain gradient steps", _plain_descent)
HAS_BIAS = Hypothesis("biases present", _has_bias)


def _own_groups(s):
    if any(isinstance(layer, LayerNorm) for layer in getattr(s.model, "layers", ())):
        return "a LayerNorm normalizes the units of a sample together: one c must scale the whole layer"
    return None


def _no_scalar_fed_linear_chain(s):
    """A net linear in x (linear activations, no bias) through one scalar (a scalar input
    or a width-1 layer): f = v(theta) (w(theta) . x), whose Lie algebra closes with laws
    beyond degree 2 that no symmetry gives (seq:1:residual[dense(1),linear,dense(1)],dense(2):
    2 laws, 1 derived; seq:2:dense(1),linear,residual[dense(1),linear,dense(1)],dense(1)).
    Discovery decides their count by closure; the derivation cannot match it, so
    laws-complete sets the family aside (KNOWN_EXTRA keeps the nets with a scalar input and
    a scalar output, whose count has a formula: D - 1). docs/theory.md 7."""
    model = s.model
    acts = getattr(model, "activations", None)
    if acts is None or not all(a.is_linear for a in acts) or scalar_deep_linear(model):
        return None
    if any(name.endswith(".b") for name, _ in model.param_specs):
        return None
    widths = [int(np.prod(model.input_shape))] + [shape[0] for name, shape in model.param_specs[:-1]]
    if min(widths) != 1:
        return None
    return "a linear chain through one scalar has laws beyond degree 2 that no symmetry derives"


def _no_pooled_last_axis(s):
    """A pool reading a last axis that an earlier layer scales per feature (an affine
    LayerNorm, an attention or position-wise dense layer: `Layer.rows_on_last_axis`): the
    features of one window may scale together (the window's max or mean scales alike), a
    symmetry flowlaws does not derive (its declaration stops a last-axis scaling at a pool);
    seq:2x3:layernorm(affine),relu,maxpool1d(2),flatten,dense(1) has 3 laws, 0 derived
    (found by the 5,000-case laws-complete campaign; docs/theory.md 6). The same holds for
    ``mean`` averaging that axis (seq:2x3:layernorm(affine,eps=1e-05),mean,flatten,dense(2,bias):
    4 laws, 0 derived), and for ``mean(last)`` averaging channels that a BatchNorm or a
    convolution scales (seq:2x3:batchnorm(affine),maxpool1d(2),mean(last),flatten,dense(1): 2
    laws, 0 derived; a uniform scale law and a zero-sum shift of the betas)."""
    from flowlaws.models.kinds.mean import Mean
    from flowlaws.models.kinds.pool import Pool

    for position, layer, last, first in _scaled_axes(s.model):
        if (last and (isinstance(layer, Pool) or (isinstance(layer, Mean) and not layer.last))) or \
                (first and isinstance(layer, Mean) and layer.last):
            return f"{layer.spec} at layer {position} pools an axis that an earlier layer scales unit by unit"
    return None


def _scaled_axes(model):
    """(position, layer, last, first) for each top-level layer: whether it or a layer
    before it scales the units of a sample's last (first) axis one by one (a pool or a
    mean scales none; a convolution only its first)."""
    last = first = False
    for position, layer in enumerate(getattr(model, "layers", ())):
        site = model.site(position)
        if bool(layer.emits or layer.sublayers) and len(site.in_shape) > 1:
            last, first = last or layer.rows_on_last_axis(site), first or not layer.rows_on_last_axis(site)
        yield position, layer, last, first


def _no_position_ramp(s):
    """A bias-free convolution (wider than one tap) reading a last axis that an earlier
    layer scales per feature, as its positions: one c for every position is derived (the
    whole kernel absorbs it, a layer law), but a ramp c^(lambda p) over the positions passes
    too, taps k scaled by c^(-lambda k dilation), output position s by c^(lambda (stride s -
    padding)), a family flowlaws does not derive: seq:2x3:dense(3),conv1d(2,3,padding=1),flatten,dense(1)
    has 5 laws, 4 derived (docs/theory.md 6). A bias breaks the ramp (it is shared by
    the positions)."""
    from flowlaws.models.kinds.conv import Conv

    for position, layer, last, _ in _scaled_axes(s.model):
        if isinstance(layer, Conv) and last and not layer.bias and not layer.pointwise:
            return f"{layer.spec} at layer {position} reads a scaled last axis as its positions"
    return None


def _aliased(n: int, kernel: int, stride: int, padding: int, dilation: int, pool: tuple | None) -> bool:
    """Whether two taps of a convolution along one axis (input length n) read the same real
    inputs over every window an average pool sums: ``pool`` (its size, stride and padding
    along the axis) or None (a mean: one window of all the outputs)."""
    m = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if pool is None:
        windows = [range(m)]
    else:
        size, step, pad = pool
        windows = [range(max(0, j - pad), min(m, j - pad + size)) for j in range(0, m + 2 * pad - size + 1, step)]
    reads = {tuple(frozenset(t * stride + k * dilation - padding for t in w) & frozenset(range(n)) for w in windows)
             for k in range(kernel)}
    return len(reads) < kernel


def _tap_classes(n: int, kernel: int, stride: int, padding: int, dilation: int, extra: int) -> tuple[int, bool]:
    """(how many classes, whether there is a gap) of a transposed convolution's taps along
    one axis (input length n): taps j and j' are joined when both reach one kept output
    position (S i + D j - P for real inputs i, cropped to the output); a gap is a tap that
    reaches none (a dead weight) or an output position that no tap reaches (the bias alone)."""
    m = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + extra + 1
    reach = [{stride * i + dilation * j - padding for i in range(n)} & set(range(m)) for j in range(kernel)]
    classes: list[set] = []
    for j in range(kernel):
        joined = [c for c in classes if any(reach[k] & reach[j] for k in c)]
        classes = [c for c in classes if c not in joined] + [{j}.union(*joined)]
    return len(classes), not all(reach) or len(set().union(*reach)) < m


def _no_tap_classes(s):
    """A transposed convolution whose taps split, along an axis, into classes that share
    no kept output position (a stride: taps meet only where S divides D (j - j')), without
    a bias (which every class of its channel shares): each class's rows scale alone when
    the layers after it read the positions apart, a family flowlaws does not derive
    (seq:2x2:conv_transpose1d(2,3,stride=2,padding=1),relu,flatten,dense(2): 4 laws, 2
    derived); or with a gap: a tap that reaches no kept output (a dead weight), or an output
    position that no tap reaches (K < S: the bias alone, the same for every sample, so the
    next layer's weights on such positions of one channel trade: W[:, a] - W[:, b]). One nested in a
    branch, whose input length the hypothesis does not follow, is set aside unless
    pointwise (docs/theory.md 6)."""
    from flowlaws.models.kinds.conv_transpose import ConvTranspose

    for position, layer in enumerate(getattr(s.model, "layers", ())):
        nested = [x for x in layer.sublayers if isinstance(x, ConvTranspose) and not x.pointwise]
        if nested:
            return f"{nested[0].spec} in {layer.kind} at layer {position} is a transposed convolution in a branch"
        if not isinstance(layer, ConvTranspose):
            continue
        spatial = s.model.site(position).in_shape[1:]
        for axis in zip(spatial, layer.kernels, layer.strides, layer.paddings, layer.dilations,
                        layer.output_paddings, strict=True):
            classes, gap = _tap_classes(*axis)
            if gap or (classes > 1 and not layer.bias):
                return f"{layer.spec} at layer {position} has taps that share no output position"
    return None


def _no_copies(s):
    """An upsampling: a weight layer that reads copies of one value through weights that see
    nothing else apart gets the same gradient on both, so their difference is conserved
    (seq:2x3:conv1d(2,1,bias),upsample1d(2),batchnorm,relu,flatten,dense(1): 10 laws, 4
    derived), a family flowlaws does not derive (docs/theory.md 6)."""
    from flowlaws.models.kinds.upsample import Upsample

    for layer in getattr(s.model, "all_layers", ()):
        if isinstance(layer, Upsample):
            return f"{layer.spec} copies values, whose readers' weights may trade"
    return None


def _no_aliased_taps(s):
    """A convolution read by an average pool or ``mean`` through linear activations: taps
    that read the same inputs over every pooled window enter f only through their sum, so
    their difference is a translation law (W_k + a, W_j - a) that flowlaws does not derive;
    seq:1x3:conv1d(2,3,stride=2,padding=1),linear,avgpool1d(2),flatten,dense(1): the first
    and last taps (docs/theory.md 7). A transposed convolution's taps (W_j x_i at S i + D j)
    an average pool sums alike are set aside whenever a pool reads it."""
    from flowlaws.models.kinds.conv import Conv
    from flowlaws.models.kinds.conv_transpose import ConvTranspose
    from flowlaws.models.kinds.mean import Mean
    from flowlaws.models.kinds.pool import Pool

    layers = getattr(s.model, "layers", ())
    for position, conv in enumerate(layers):
        if not isinstance(conv, Conv):
            continue
        after = position + 1
        while after < len(layers) and getattr(layers[after], "is_linear", False):
            after += 1
        pool = layers[after] if after < len(layers) else None
        if not (isinstance(pool, Pool) and pool.reduce == "mean") and not (isinstance(pool, Mean) and not pool.last):
            continue
        if isinstance(conv, ConvTranspose):  # its taps reach positions S apart, which a pool sums: set aside
            return f"{conv.spec} at layer {position} is a transposed convolution an average pool reads"
        spatial = s.model.site(position).in_shape[1:]
        windows = (zip(pool.sizes, pool.strides, pool.paddings, strict=True) if isinstance(pool, Pool)
                   else (None,) * len(spatial))
        if any(_aliased(*axis) for axis in zip(spatial, conv.kernels, conv.strides, conv.paddings, conv.dilations,
                                               windows, strict=True)):
            return f"{conv.spec} at layer {position} has taps that an average pool sums alike"
    return None


def _no_shared_bias_mixing(s):
    """A dense layer with a bias reading a (T, d) input whose other axis's units arrive
    scaled (a convolution's channels) on a linear path: the bias is shared by those units,
    so one c for them all passes with the bias scaling too (derived: a layer law with the
    bias whole), and every mixing G with G 1 = 1 passes as well, a family flowlaws does not
    derive: seq:3x3:conv1d(2,1,bias),linear,dense(1,bias),flatten,dense(1,bias) has 3 laws,
    2 derived (docs/theory.md 7); a pointwise convolution with a bias on a last-axis
    scaling alike (seq:2x3:dense(2),conv1d(2,1,bias),flatten,dense(1): 5 laws, 4 derived).
    Read from the walker: without the dense and convolution layers' biases, the same
    scaling is linear (a matrix law)."""
    from flowlaws.models import Dense, Sequential
    from flowlaws.models.kinds.conv import Conv

    model = s.model
    if not any(isinstance(layer, Dense | Conv) and layer.bias for layer in getattr(model, "all_layers", ())):
        return None
    plain = lambda layer: replace(layer, bias=False) if isinstance(layer, Dense | Conv) else layer  # noqa: E731
    unbiased = Sequential(model.input_shape, tuple(layer.mapped(plain) for layer in model.layers))
    scalings = lambda m: {(r.name, r.linear) for r in m.rescalings() if r.family is Family.RESCALE}  # noqa: E731
    lost = sorted(name for name, _ in scalings(unbiased) - scalings(model))
    return f"a dense layer's bias is shared by the mixed units of {lost[0]}" if lost else None


def _no_learned_offset(s):
    """A learned tensor added to the sample (``offset``: a position embedding) or put before
    it (``prepend``: class tokens) is a bias of every entry it touches, constant over the
    batch. Its translation law with a bias right before it is derived (b_i - sum P[unit i]);
    beside pointwise layers alone it has laws that flowlaws does not derive (a token that
    meets only pointwise layers is a constant with a fibre of its own:
    seq:2x3:prepend,relu,flatten,dense(1), 0 derived; beside a LayerNorm without affine its
    law is the centred stream's mean direction, derived; docs/theory.md 7). Its derived laws are sound
    (composition)."""
    for layer in getattr(s.model, "all_layers", ()):
        if layer.kind in ("offset", "prepend"):
            return f"{layer.spec} adds a learned tensor whose translation laws flowlaws does not derive"
    return None


def _onehot_reads_the_input(s):
    """``onehot`` states that the model's input is one-hot tokens of V >= 2 entries. Fed by a
    layer, its projection x - (1^T x)/V 1 passes a scaling of its input's centred plane to
    the next weight layer's columns on that plane (seq:2:scale,onehot,flatten,dense(1): one
    law, none derived), a family flowlaws does not derive (docs/theory.md 6.7); of one entry
    it is the constant 1, and every reader's weights trade. Its derived laws are sound
    (composition)."""
    for layer in getattr(s.model, "all_layers", ()):
        if layer.kind == "onehot" and (layer is not s.model.layers[0] or s.model.input_shape[-1] < 2):
            return f"{layer.spec} reads a layer's output or a single entry, not the input's tokens"
    return None


def _onehot_rows_apart(s):
    """A weight layer reading ``onehot`` rows one by one (a position-wise dense: a token
    embedding) trades its rows' sums with its bias (derived). Flattened together first, the
    T rows of V entries are T blocks of its columns, each summing to 1: each block's sums
    trade with the bias, and with each other without one (seq:2x3:onehot,flatten,dense(1):
    sum W[0, :3] - sum W[0, 3:], one law, none derived), a family flowlaws does not derive
    (docs/theory.md 6.7). Its derived laws are sound (composition)."""
    layers = list(getattr(s.model, "layers", ()))
    shape = s.model.input_shape
    for layer in layers[1:] if layers and layers[0].kind == "onehot" else ():
        if layer.has_weight or layer.composite:
            return None
        if layer.kind == "flatten" and layer.merges(shape):
            return f"{layer.spec} merges one-hot rows before a weight layer reads them"
        shape = layer.out_shape(shape)
    return None


def _no_dropped_channels(s):
    """A ``token`` keeps one entry of its input's first axis. Where that axis holds channels
    (a convolution's or a BatchNorm's, with no ``moveaxis`` between), the other channels are
    never read: each of their weights is a law by itself, a family flowlaws does not derive
    (seq:3x3:conv1d(2,1),token,flatten,dense(1) has 4 laws, 0 derived; found by the
    laws-complete campaign, seed 1800; docs/theory.md 6). Over a sequence's positions (a
    dense layer's units on the last axis) nothing is dropped."""
    layers = getattr(s.model, "all_layers", ())
    for position, layer in enumerate(layers):
        if layer.kind != "token":
            continue
        for before in reversed(layers[:position]):
            if before.kind == "moveaxis":
                break
            if before.kind.startswith("conv") or before.kind in ("batchnorm", "groupnorm"):
                return f"{layer.spec} keeps one channel of {before.spec}: the others are never read"
    return None


def _no_moved_groups(s):
    """Centred groups a ``moveaxis`` permutes before their flat reader. A GroupNorm of
    several groups (no affine): each group still sums to 0, but its entries land spread
    over the flat sample, a layout the walk of centred sums does not follow (its reader's
    sums over them are translation laws flowlaws does not derive:
    seq:2x3:groupnorm(groups=2),moveaxis(0,-1),flatten,dense(1), 2 laws, 0 derived; one
    group, the whole sample, is derived). A LayerNorm's rows moved first are followed
    (interleaved groups), but a dense layer with a bias that maps them mixes its units with
    the reader's centred weights: seq:2x3:layernorm,moveaxis(0,-1),dense(2,bias),flatten,dense(1),
    3 laws not derived (docs/theory.md 6)."""
    layers = getattr(s.model, "layers", ())
    for position, layer in enumerate(layers):
        moved = [later for later in layers[position + 1:] if later.kind == "moveaxis"]
        if layer.kind == "groupnorm" and layer.groups > 1 and not layer.affine and moved:
            return f"{layer.spec} at layer {position} has its groups moved by a moveaxis after it"
        if layer.kind == "layernorm" and not layer.affine and moved:
            after = layers[layers.index(moved[0], position + 1) + 1:]
            biased = next((x for x in after if x.kind == "dense" and x.bias), None)
            if biased is not None and any(x.kind == "flatten" for x in after[after.index(biased):]):
                return f"{layer.spec} at layer {position} has its rows moved, then mapped by {biased.spec}"
    return None


def _no_unfollowed_range(s):
    """A concatenation's branch units (a range of the joined axis) that reach a layer which
    does not carry such a range (a LayerNorm, a moveaxis, a grouped convolution, a residual
    join, two branches carrying one unit) end their walk with no law (`unfollowed`): the
    derivation leaves those laws out, so laws-complete sets such nets aside
    (docs/theory.md 3.13)."""
    stopped = unfollowed_ranges(s.model) if hasattr(s.model, "rescalings") else []
    return f"a concatenation's range ends unfollowed at {stopped[0]}" if stopped else None


def _softmax_router(s):
    """A mixture of experts whose gate ignores a shift of its logits (softmax)."""
    for layer in getattr(s.model, "all_layers", ()):
        if getattr(layer, "gate", "softmax") != "softmax":
            return f"{layer.spec} gates by a normalized sigmoid, which changes when every logit shifts alike"
    return None



COMBINES_GRADIENTS = Hypothesis("steps combine gradients", _combines_gradients)
SOFTMAX_ROUTER = Hypothesis("a softmax router", _softmax_router)
NO_POOLED_LAST_AXIS = Hypothesis("no pool along a scaled last axis", _no_pooled_last_axis)
NO_SCALAR_FED_LINEAR = Hypothesis("no linear chain through one scalar", _no_scalar_fed_linear_chain)
NO_ALIASED_TAPS = Hypothesis("no taps an average pool aliases", _no_aliased_taps)
NO_POSITION_RAMP = Hypothesis("no ramp along a convolution's positions", _no_position_ramp)
NO_TAP_CLASSES = Hypothesis("no transposed convolution's taps apart", _no_tap_classes)
NO_COPIES = Hypothesis("no upsampling", _no_copies)
NO_MOVED_GROUPS = Hypothesis("no normalization's groups moved", _no_moved_groups)
NO_DROPPED_CHANNELS = Hypothesis("no channel a token drops", _no_dropped_channels)
NO_UNFOLLOWED_RANGE = Hypothesis("every concatenated range followed", _no_unfollowed_range)
NO_SHARED_BIAS_MIXING = Hypothesis("no bias shared by mixed units", _no_shared_bias_mixing)
NO_LEARNED_OFFSET = Hypothesis("no learned offset or token", _no_learned_offset)
ONEHOT_INPUT = Hypothesis("onehot reads the input alone", _onehot_reads_the_input)
ONEHOT_ROWS_APART = Hypothesis("onehot rows read one by one", _onehot_rows_apart)
OWN_GROUPS = Hypothesis("each unit normalized on its own", _own_groups)
SHIFT_INVARIANT = Hypothesis("shift-invariant loss", _shift_invariant_loss)
HYPOTHESES = {h.name: h for h in (HOMOGENEOUS_ACTS, DEGREE_ONE, NO_SKIP, PLAIN_DESCENT, HAS_BIAS,
                                  COMBINES_GRADIENTS, SHIFT_INVARIANT, OWN_GROUPS,
                                  NO_SCALAR_FED_LINEAR, NO_POOLED_LAST_AXIS,
                                  NO_LEARNED_OFFSET, NO_ALIASED_TAPS, NO_SHARED_BIAS_MIXING, NO_POSITION_RAMP,
                                  NO_TAP_CLASSES, NO_COPIES, NO_MOVED_GROUPS, NO_DROPPED_CHANNELS,
                                  NO_UNFOLLOWED_RANGE, ONEHOT_INPUT, ONEHOT_ROWS_APART,
                                  SOFTMAX_ROUTER)}

# --- law selections --------------------------------------------------------------------------
