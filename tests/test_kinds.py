"""The layer contract, run on every registered kind (flowlaws.models.kinds.LAYERS):
a new kind is tested by registering it."""

from dataclasses import replace

import autograd
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowlaws.checking import accumulation_length, pointwise, tolerance
from flowlaws.discover import discover
from flowlaws.engine import gradient_and_magnitude, value_and_grad
from flowlaws.errors import InvalidArgument
from flowlaws.invariants import LawKind, laws
from flowlaws.losses import Square
from flowlaws.models import (
    LAYERS,
    Activation,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    Dense,
    Flatten,
    Sequential,
    flatten,
    parse,
)
from flowlaws.models.kinds import kind, names
from flowlaws.strategies.core import DrawContext

KINDS = [pytest.param(k, id=k.kind) for k in LAYERS]
# no scaling passes these kinds, so no law crosses them in `nets_with`'s net: each has its own
# test that the laws of the same net without it break (sinusoid's below)
OPAQUE = {"sinusoid"}


def _uses(model, cls) -> bool:
    return any(type(layer) is cls for layer in model.all_layers)


@pytest.mark.parametrize("cls", KINDS)
def test_every_kind_has_an_example_that_uses_it_and_round_trips_its_spec(cls):
    model = parse(cls.example)
    assert _uses(model, cls)
    assert parse(model.spec) == model and model.spec == cls.example


@pytest.mark.parametrize("cls", KINDS)
def test_every_kind_answers_to_its_names_in_the_registry(cls):
    assert all(kind(name) is cls for name in cls.names())
    assert set(cls.names()) <= set(names())


@pytest.mark.parametrize("cls", KINDS)
def test_every_kinds_derived_laws_are_the_laws_discovery_finds_on_its_example(cls):
    found = discover(parse(cls.example), degree=0)
    assert found.complete, found.to_json()  # as many as discovery counts, and none spurious


@pytest.mark.parametrize("spec", [
    "seq:1x4x4:groupnorm,avgpool2d(2),flatten,dense(1)",  # the laws-complete campaign's findings
    "seq:1x4x4:groupnorm,avgpool2d(2x1),flatten,dense(1)",  # a rectangular window (read as one size, it raised)
    "seq:2x3:groupnorm,moveaxis(0,-1),flatten,dense(1)",  # one group, the whole sample, moved: still centred
    "seq:2x3:dense(1),residual[conv1d(1,1),relu,conv1d(2,1,stride=2) | conv1d(2,1,stride=2)],flatten,dense(1)",
    "seq:2x3:groupnorm,flatten,flatten,dense(1)",
    "seq:2x4:conv1d(4,1),groupnorm(groups=2),flatten,dense(2)",
    "seq:3:residual[dense(4,bias),relu,dense(2,bias) | dense(2,bias)],relu,dense(2)",
    "seq:3:gated[dense(4),relu,dense(4) | dense(4),relu,dense(4)],relu,dense(2)",
    "seq:3x4:gated[dense(4),silu | dense(4)],dense(3),mean(last),dense(1)",
    "seq:4x6:conv1d(4,2,groups=4),relu,conv1d(2,2,groups=2),relu,flatten,dense(1)",
    "seq:3x4:residual[rmsnorm(affine),dense(6),relu,dense(4)],mean(last),dense(2)",
    "seq:3:dense(3,bias),offset,dense(3,bias),flatten,dense(2)",  # a bias traded with a position embedding
    "seq:2x3:dense(2,bias),offset,attention(heads=1,dk=1,dv=1),flatten,dense(1)",
    "seq:3x4:attention(heads=1,dk=4,dv=1,rope,rope_halves),flatten,dense(1)",  # pairs (i, i + 2): rotate_half
    "seq:3:layernorm,gated[dense(2),relu | dense(2)],dense(1)",  # a fork's branches read centred sums
    # x gated by a branch of it (the other factor x itself): x * tanh(Wx), x * relu(Wx + b), and
    # a squeeze-and-excitation, whose pooled branch absorbs a channel scaling in its first columns
    "seq:3:dense(4,bias),relu,gated[dense(4),tanh],dense(2)",
    "seq:3:dense(4,bias),relu,gated[dense(4,bias),relu],dense(2)",
    "seq:3:dense(4),relu,gated[dense(4)],dense(2)",
    "seq:2x4x4:conv2d(3,1,bias),relu,gated[avgpool2d(4),conv2d(2,1,bias),relu,conv2d(3,1,bias),sigmoid,"
    "upsample2d(4)],mean,dense(2,bias)",
    "seq:3x4:dense(4),dropout(0),mean(last),dense(2,bias)",  # dropout 0 is the identity: a matrix law
    "seq:3x4:dense(4),dropout(0.25),mean(last),dense(2,bias)",  # a mask per entry mixes no units: unit laws
    "seq:2x5x4:conv2d(3,3x2,padding=1x0,bias),relu,conv2d(2,1x2,stride=2x1),relu,flatten,dense(2)",  # rectangular
    "seq:2x4x6:conv2d(3,3x1,padding=1x0),relu,maxpool2d(2x1),conv2d(2,1),relu,flatten,dense(2)",
    "seq:2x4x4:conv2d(3,2),abs,avgpool2d(1x2),flatten,dense(2,bias)",
    "seq:2x6x6:conv2d(3,3,padding=1),relu,maxpool2d(3,stride=2,padding=1),conv2d(2,1),relu,flatten,dense(2)",
    "seq:2x7:conv1d(3,2,bias),abs,avgpool1d(3,stride=2,padding=1),flatten,dense(2,bias)",  # a padded mean
    "seq:2x7:conv1d(3,2,bias),linear,avgpool1d(3,stride=2,padding=1),flatten,dense(2,bias)",
    "seq:2x5x5:conv2d(2,2,bias),relu,maxpool2d(3x2,stride=1x2,padding=1x0),flatten,dense(2,bias)",
    # two branches' biases trade a shift only where nothing after them changes it: a kink, a
    # mask or a slope of -1 does (torch's relu(a(x)) + b(x), a(x) - b(x))
    "seq:3:residual[dense(4,bias),relu | dense(4,bias)],dense(2,bias)",
    "seq:3:residual[dense(4,bias),dropout(0.5) | dense(4,bias)],relu,dense(2,bias)",
    "seq:3:residual[dense(4,bias),relu | dense(4,bias),prelu(-1,-1)],dense(2,bias)",
    # a normalization's beta ends both branches (torchvision's downsampling block, bn2 and the
    # shortcut's BatchNorm): their difference is conserved as two dense biases' is
    "seq:2x6:residual[conv1d(3,3,stride=2,padding=1),batchnorm(affine,eps=1e-05),relu,conv1d(2,3,padding=1),"
    "batchnorm(affine,eps=1e-05) | conv1d(2,1,stride=2),batchnorm(affine,eps=1e-05)],relu,flatten,dense(2,bias)",
    "seq:3x4:residual[dense(4),layernorm(affine) | dense(4),layernorm(affine)],relu,flatten,dense(1)",
    # the MLP-Mixer's token mixing: one c for every channel of the LayerNorm's affine output,
    # absorbed whole by the dense layer that reads the transposed sequence (a layer law)
    "seq:3x4:layernorm(affine),moveaxis(0,-1),dense(5,bias),gelu,dense(3,bias),moveaxis(0,-1),flatten,dense(1)",
    # a normalization at eps > 0 turns a scaling of each row into a positive factor per row,
    # which a later one at eps = 0 removes: the scale law holds (laws-complete, seed 1700)
    "seq:3:rmsnorm(affine),layernorm(eps=1e-05),layernorm,flatten,dense(1)",
    "seq:3:dense(3),layernorm(eps=1e-05),layernorm,flatten,dense(1)",
    "seq:2x3:dense(3),rmsnorm(eps=1e-05),rmsnorm,flatten,dense(1)",
    # an affine RMSNorm's gain absorbs a scaling of each unit, leaving a factor per row that a
    # later row normalization removes: unit laws with the writer before it (laws-complete, seed 1900)
    "seq:3:rmsnorm(affine),rmsnorm(affine),layernorm,flatten,dense(1)",
    "seq:3:dense(3,bias),rmsnorm(affine,eps=1e-05),dense(3),rmsnorm,flatten,dense(2)",  # 7 laws, 5 before
    # a LayerNorm's rows with the feature axis moved first: every 2nd entry of the flat sample is
    # one group, so a dense layer's weights along it sum to a law (laws-complete, seed 1700);
    # a bias-free map of each row keeps the sums over the first axis at 0
    "seq:2x3:layernorm,moveaxis(0,-1),flatten,dense(2)",
    "seq:2x3x2:layernorm,moveaxis(-1,0),flatten,dense(2)",
    "seq:2x3:layernorm,moveaxis(0,-1),dense(2),flatten,dense(1)",
    # one branch's units of a concatenation, a range of the joined axis (`View.span`): read by a
    # convolution, a flattened dense layer, a BatchNorm (a bias both branches pass to it), nested
    "seq:2x5:conv1d(2,1,bias),relu,concat[conv1d(2,3,padding=1,bias),relu | conv1d(1,1)],conv1d(2,1),flatten,dense(1)",
    "seq:3:dense(3),relu,concat[dense(2),relu | dense(2)],dense(2,bias)",
    "seq:2x3:conv1d(2,1),relu,flatten,concat[ | dense(2),relu],dense(1)",
    "seq:2x4:conv1d(2,1,bias),concat[ | conv1d(2,1)],batchnorm,relu,flatten,dense(1)",
    "seq:2x4:conv1d(2,1),relu,concat[ | maxpool1d(2),conv1d(2,1),relu,upsample1d(2)],conv1d(2,1),relu,flatten,dense(1)",
    "seq:2x4:conv1d(3,1,bias),relu,concat[concat[conv1d(2,1,bias) | conv1d(2,1),relu,conv1d(2,1)] | conv1d(1,1)],relu,"
    "flatten,dense(2,bias)",
    # one channel of three, read by a position-wise dense layer: not the whole sample (a false law
    # before, found by the composition campaign, seed 1402)
    "seq:2x3:concat[ | conv1d(1,1),relu],dense(1),flatten,dense(1)",
    "seq:2x4:conv1d(2,1),relu,concat[ | conv1d(2,1),relu],mean,dense(1)",  # a global pool keeps the range
    # a decoder reading an encoder's memory: x's scaling walked through the decoder and on after
    # the block; the memory's closed by every cross-attention's Wk and Wv rows (two here, one
    # in a nested branch); the input's features reach both (an embedding shared by the two)
    "seq:4x2:dense(2),decode(2)[cross_attention(heads=1,dk=1,dv=1) | ],flatten,dense(1)",
    "seq:4x2:dense(2),relu,decode(2)[residual[cross_attention(heads=1,dk=1,dv=1)],dense(2) | dense(2)],flatten,"
    "dense(1)",
    "seq:5x2:decode(3)[cross_attention(heads=1,dk=1,dv=1,bias),dense(2),residual[cross_attention(heads=1,dk=1,dv=1)] "
    "| dense(2),relu],flatten,dense(1)",
])
def test_graph_specs_have_exactly_their_derived_laws(spec):
    found = discover(parse(spec), degree=0)
    assert found.count is not None and found.complete, found.to_json()  # all of them, none spurious


def _context(draw):
    act = draw(st.sampled_from([Activation("relu"), Activation("leaky_relu", (0.1,)), Activation("linear"),
                                Activation("abs")]))
    return DrawContext(st.integers(1, 3), act, draw(st.booleans()), LAYERS)


@st.composite
def nets_with(draw, cls):
    """A small net around one layer of ``cls``: a weight layer before it that fits the
    input rank (its units on the first or last axis), the layer, then flatten and dense."""
    rank = draw(st.sampled_from(cls.ranks))
    shape = ((draw(st.integers(2, 4)),), (draw(st.integers(2, 3)), draw(st.integers(3, 5))), (1, 4, 4))[rank - 1]
    context = _context(draw)
    before = draw(st.sampled_from({1: [Dense(3, context.bias)],
                                   2: [Dense(3, context.bias), Conv1d(3, 1, bias=context.bias)],
                                   3: [Conv2d(2, 1, bias=context.bias)]}[rank]))
    head = Sequential(shape, (before,))
    layer = (kind(cls.drawn_in) if cls.drawn_in else cls).draw(draw, head.output_shape, context)
    assume(layer is not None)
    try:
        model = Sequential(shape, (before, layer, Flatten(), Dense(2, context.bias)))
    except ValueError:
        assume(False)
    return model


def _data(model, seed):
    rng = np.random.default_rng(seed)
    return model.init(rng), rng.normal(size=(4, *model.input_shape)), rng.normal(size=(4, *model.output_shape))


@pytest.mark.parametrize("cls", KINDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_kinds_gradient_matches_autograd_through_its_generic_code(cls, data):
    model = data.draw(nets_with(cls))
    params, X, Y = _data(model, data.draw(st.integers(0, 2**16)))
    assert model.forward(params, X)[0].shape == (len(X), *model.output_shape)
    _, grads, magnitude = gradient_and_magnitude(model, Square(), params, X, Y)
    generic = autograd.grad(lambda p: Square().value(model.apply(p, X, fused=False), Y))(params)
    # both are round-off away from the exact gradient: twice the tolerance of the model
    bound = 2 * tolerance(flatten(magnitude), accumulation_length(model, X))
    assert np.all(np.abs(flatten(grads) - flatten(generic)) <= bound)


@pytest.mark.parametrize("cls", [k for k in KINDS if k.id not in OPAQUE])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_derived_law_of_every_kind_is_orthogonal_to_the_gradient(cls, data):
    model = data.draw(nets_with(cls))
    derived = laws(model)
    assume(derived)
    params, X, Y = _data(model, data.draw(st.integers(0, 2**16)))
    assert pointwise(model, Square(), params, X, Y, derived).effect <= 1


def test_a_law_that_is_not_one_is_caught_by_the_contract():
    # negative control: scaling both branches' rows by c scales the product by c^2, which
    # the reader's columns (1/c) do not undo: ||A_i||^2 + ||B_i||^2 - ||C_:,i||^2 is no law
    model = parse("seq:3:gated[dense(4),relu | dense(4)],dense(2)")
    balance = next(law for law in laws(model) if law.name == "unit gate0.a.dense0/gate0.b.dense0")
    reader = next(law for law in laws(model) if law.name.startswith("unit gate0.b.dense0/"))
    a, b = balance.terms
    wrong = type(balance)("wrong", "unit", (a, type(b)(b.view, 1.0), reader.terms[-1]))
    params, X, Y = _data(model, 0)
    assert pointwise(model, Square(), params, X, Y, [wrong]).effect > 1e3


def test_a_memory_law_missing_a_reader_is_caught_by_the_contract():
    # negative control: the encoder's rows against the keys' rows alone leave the values'
    # scaled: ||E_i||^2 - ||Wk[i, :]||^2 is no law (with ||Wv[i, :]||^2 it is)
    model = parse("seq:5x2:decode(3)[cross_attention(heads=1,dk=1,dv=1) | dense(2)],flatten,dense(1)")
    memory = next(law for law in laws(model) if law.name == "unit dec0.enc.dense0/dec0.xattn0")
    assert [t.view.name for t in memory.terms] == ["dec0.enc.dense0.W", "dec0.xattn0.Wk0", "dec0.xattn0.Wv0"]
    params, X, Y = _data(model, 0)
    assert pointwise(model, Square(), params, X, Y, [memory]).effect <= 1
    wrong = type(memory)("wrong", "unit", memory.terms[:2])
    assert pointwise(model, Square(), params, X, Y, [wrong]).effect > 1e3


@pytest.mark.parametrize("spec", ["seq:3x2:cross_attention(heads=1,dk=1,dv=1),flatten,dense(1)",
                                  "seq:3x2:residual[cross_attention(heads=1,dk=1,dv=1)],flatten,dense(1)",
                                  "seq:4x2:decode(2)[cross_attention(heads=1,dk=1,dv=1) | "
                                  "residual[cross_attention(heads=1,dk=1,dv=1)]],flatten,dense(1)"])
def test_a_cross_attention_outside_a_decoder_is_a_one_line_error_naming_where_it_goes(spec):
    with pytest.raises(InvalidArgument, match=r"put it in one's decoder: decode\(S\)"):
        parse(spec)


@pytest.mark.parametrize("spec, match", [
    ("seq:3x2:decode(3)[cross_attention(heads=1,dk=1,dv=1) | ],flatten,dense(1)", r"more than 3 rows"),
    ("seq:4x2:decode(2)[dense(2) | ],flatten,dense(1)", "reads no memory"),
    ("seq:4x2:decode(2)[cross_attention(heads=1,dk=1,dv=1) | dense(3)],flatten,dense(1)", r"reads 2 features"),
    ("seq:4x2:decode[cross_attention(heads=1,dk=1,dv=1) | ],flatten,dense(1)", r"decode\(S\)\[DECODER \| ENCODER\]"),
    ("seq:4x2:residual(2)[dense(2)],flatten,dense(1)", r"residual takes one or two branches"),
    ("seq:4x2:decode(2)[cross_attention(heads=1,dk=2,dv=1,rope) | ],flatten,dense(1)", "drop it"),
])
def test_a_decode_block_that_cannot_be_built_is_a_one_line_error(spec, match):
    with pytest.raises(InvalidArgument, match=match):
        parse(spec)


@pytest.mark.slow
@pytest.mark.parametrize("options", ["bias", "bias,causal", "bias,kv_heads=1"])
def test_attention_s_key_bias_is_a_dead_law_its_gradient_zero_to_round_off_of_its_terms(options):
    """q . bk is the same for every key, which softmax drops: each entry of bk is a law
    (marked batch_sum: its gradient is a cancelling sum), at 0 within the magnitude sweep's
    round-off, and every law holds pointwise."""
    model = parse(f"seq:4x3:attention(heads=2,dk=2,dv=2,{options}),flatten,dense(1)")
    dead = [law for law in laws(model) if law.name.endswith(".bk")]
    assert dead and all(law.batch_sum and law.order == 1 for law in dead)
    rng = np.random.default_rng(0)
    for _ in range(3):
        params, X = model.init(rng, scale=1.0), rng.normal(size=(5, 4, 3))
        Y = rng.normal(size=(5, 1))
        _, grads, magnitude = gradient_and_magnitude(model, Square(), params, X, Y)
        for law in dead:
            assert np.all(np.abs(law.value(grads)) <= 1e-13 * law.magnitude(magnitude, magnitude))
        assert pointwise(model, Square(), params, X, Y, laws(model)).effect <= 1


@st.composite
def padded_convolutions(draw):
    """(A convolution or a transposed one, its input shape), with a stride, padding and
    dilation drawn on a small input, so that some taps may meet only padding (a kernel
    wider than the input with padding, a stride past it)."""
    dims = draw(st.integers(1, 2))
    cls = draw(st.sampled_from([Conv1d, ConvTranspose1d] if dims == 1 else [Conv2d, ConvTranspose2d]))
    axes = [(draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            for _ in range(dims)]  # (input, kernel, stride, dilation) per axis
    padding = tuple(draw(st.integers(0, d * (k - 1))) for _, k, _, d in axes)
    n, kernel, stride, dilation = (tuple(a[i] for a in axes) for i in range(4))
    layer = cls(2, kernel, stride, padding, draw(st.booleans()), 1, dilation)
    try:
        layer.out_shape((2, *n))
    except InvalidArgument:
        assume(False)
    return layer, (2, *n)


@settings(max_examples=80, deadline=None)
@given(padded_convolutions(), st.integers(0, 2**32 - 1))
def test_a_kernel_entry_is_declared_conserved_exactly_where_its_gradient_is_zero_on_any_input(case, seed):
    """`Conv.padding_taps` against the gradient itself: every entry of a tap that meets only
    padding has a gradient of exactly 0, every other entry's is not 0 at random data."""
    layer, in_shape = case
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=shape) for _, shape in layer.param_shapes(in_shape)]
    x, dy = rng.normal(size=(3, *in_shape)), rng.normal(size=(3, *layer.out_shape(in_shape)))
    dW = autograd.grad(lambda W: autograd.numpy.sum(layer.apply([W, *params[1:]], x) * dy))(params[0])
    dead = np.zeros(dW.shape, bool)
    for axis, first, stop in layer.padding_taps(in_shape):
        dead[(slice(None),) * (2 + axis) + (slice(first, stop),)] = True
    assert np.all(dW[dead] == 0) and np.all(dW[~dead] != 0)


@pytest.mark.parametrize("spec, dead", [
    ("seq:2x1x1:conv2d(3,3,padding=1,bias),relu,flatten,dense(2)", 48),  # a 1x1 map: 8 of 9 taps
    ("seq:2x2x2:conv2d(3,3,stride=2,padding=1),relu,flatten,dense(2)", 30),  # the first row and column
    ("seq:2x1:conv_transpose1d(3,3,padding=1),relu,flatten,dense(2)", 12),  # taps 0 and 2 reach no output
    ("seq:2x2x2:conv2d(3,1),relu,conv2d(2,3,padding=2,dilation=2),relu,flatten,dense(2)", 48),
])
def test_taps_that_meet_only_padding_are_laws_one_per_entry_and_discovery_finds_no_other(spec, dead):
    """Each entry of such a tap is one linear law (a 2-D corner's entries, in a run along
    each axis, once each), and the certified count finds exactly the derived laws."""
    model = parse(spec)
    padding = [law for law in laws(model) if ".padding" in law.name]
    assert all(law.order == 1 and law.kind is LawKind.UNIT for law in padding)
    entries = [np.arange(int(np.prod(shape))).reshape(shape) for _, shape in model.param_specs]
    owned = {(law.params, int(i)) for law in padding for i in law.terms[0].view.rows(entries).ravel()}
    assert sum(law.terms[0].view.units for law in padding) >= len(owned) == dead
    found = discover(model, degree=0)
    assert found.complete and found.count == found.derived, found.to_json()


def test_rope_s_pair_laws_follow_its_pairing_and_the_other_pairing_s_are_not_laws():
    """RoPE conserves ||Wq[:, pair]||^2 - ||Wk[:, pair]||^2 for the pairs it rotates: (2i,
    2i + 1), or (i, i + dk/2) with rope_halves (Hugging Face's rotate_half). Each
    pairing's laws hold pointwise on its own model and break on the other's."""
    adjacent, halves = (parse(f"seq:3x4:attention(heads=1,dk=4,dv=2,rope,bias{extra}),flatten,dense(1)")
                        for extra in ("", ",rope_halves"))
    pair_laws = [[law for law in laws(m) if law.name.endswith(".qk") and law.kind is LawKind.UNIT]
                 for m in (adjacent, halves)]
    for model, own, other in ((adjacent, *pair_laws), (halves, *pair_laws[::-1])):
        params, X, Y = _data(model, 0)
        assert pointwise(model, Square(), params, X, Y, own).effect <= 1
        assert pointwise(model, Square(), params, X, Y, other).effect > 1e3


def test_rope_s_laws_do_not_depend_on_its_base_and_hold_at_llama_3_s():
    """A pair times any c + i s commutes with its complex scaling: the base changes the
    angles, so the function, and none of the laws."""
    default, llama3 = (parse(f"seq:3x4:attention(heads=1,dk=4,dv=2,rope{extra}),flatten,dense(1)")
                       for extra in ("", ",rope_base=500000"))
    assert [law.formula for law in laws(default)] == [law.formula for law in laws(llama3)]
    params, X, Y = _data(llama3, 0)
    assert not np.allclose(default.forward(params, X)[0], llama3.forward(params, X)[0])
    assert pointwise(llama3, Square(), params, X, Y, laws(llama3)).effect <= 1


@pytest.mark.parametrize("spec", ["seq:1x4:sinusoid,flatten,dense(1)",  # one position: the sines all 0 there
                                  "seq:2x3:gated[dense(1),relu | dense(1)],conv1d(2,1),sinusoid,flatten,dense(1)"])
def test_a_sinusoid_needs_two_positions_and_two_features(spec):
    """With one feature (d = 1) row 0 of the table is sin 0 = 0 alone, so a scaling of
    position 0 would pass it: the laws-complete campaign found that net (3 laws, 2 derived)."""
    with pytest.raises(InvalidArgument, match="T >= 2 positions and d >= 2 features") as caught:
        parse(spec)
    assert "\n" not in str(caught.value)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(2, 4), d=st.integers(2, 5), halves=st.booleans(), base=st.sampled_from([100.0, 10000.0]),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_a_sinusoidal_encoding_breaks_the_laws_across_it_and_keeps_the_others(T, d, halves, base, bias, seed):
    """x + C with C fixed: c W x + C != c (W x + C), so the laws of the same net with the
    identity in its place that cross it (dense0's with dense1) break, each law it keeps
    holds, and discovery finds no other (its example, in the contract above)."""
    options = ",".join(x for x in (f"base={base:g}", "halves" * (halves and d % 2 == 0)) if x)
    spec = f"seq:{T}x{d}:dense({d}{',bias' * bias}),{{}},dense(3),relu,dense(3),mean(last),dense(2)"
    model, identity = parse(spec.format(f"sinusoid({options})")), parse(spec.format("linear"))
    kept = laws(model)
    crossing = [law for law in laws(identity) if law.name not in {k.name for k in kept}]
    assert crossing and not any(law.name.startswith("unit dense0") for law in kept)
    params, X, Y = _data(model, seed)
    assert pointwise(model, Square(), params, X, Y, kept).effect <= 1
    assert pointwise(model, Square(), params, X, Y, crossing).effect > 1e3


@settings(max_examples=15, deadline=None)
@given(scale=st.sampled_from([0.25, 1.0, 3.0]), causal=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_an_attention_scale_multiplies_its_scores_and_keeps_every_law(scale, causal, bias, seed):
    """softmax(s q k^T): the default's function with Wq times s sqrt(dk); its gradient
    matches autograd's through its generic code; its laws are the default's, each holds
    pointwise, and discovery finds no other."""
    options = ",causal" * causal + ",bias" * bias
    spec = "seq:3x4:attention(heads=2,dk=2,dv=2{}),mean(last),dense(2)"
    model, default = parse(spec.format(f"{options},scale={scale:g}")), parse(spec.format(options))
    params, X, Y = _data(model, seed)
    queries = [k for k, (name, _) in enumerate(model.param_specs) if ".Wq" in name or ".bq" in name]
    rescaled = [w * scale * np.sqrt(2) if k in queries else w for k, w in enumerate(params)]
    assert np.allclose(model.forward(params, X)[0], default.forward(rescaled, X)[0], rtol=1e-12, atol=1e-14)
    _, grads, magnitude = gradient_and_magnitude(model, Square(), params, X, Y)
    generic = autograd.grad(lambda p: Square().value(model.apply(p, X, fused=False), Y))(params)
    assert np.all(np.abs(flatten(grads) - flatten(generic)) <= 2 * tolerance(flatten(magnitude),
                                                                          accumulation_length(model, X)))
    derived = laws(model)
    assert [law.formula for law in derived] == [law.formula for law in laws(default)]
    assert pointwise(model, Square(), params, X, Y, derived).effect <= 1
    if seed % 5 == 0:  # discovery, on a fifth of the draws
        found = discover(model, degree=0)
        assert found.complete and found.count == found.derived


@pytest.mark.parametrize("spec", ["seq:3x3:attention(heads=1,dk=2,dv=2,out_bias),flatten,dense(1)",
                                  "seq:3x4:dense(4,bias),attention(heads=2,dk=2,dv=2,causal,out_bias),layernorm,dense(2)",
                                  "seq:3x4:residual[layernorm,attention(heads=2,dk=2,dv=2,out_bias)],mean(last),dense(2)"])
def test_attention_with_its_output_bias_alone_has_every_law_discovery_finds(spec):
    """bo joins Wo's columns (the output features' rescaling, and the shifts a LayerNorm
    after it removes); no query, key or value bias."""
    model = parse(spec)
    found = discover(model, degree=0)
    assert found.complete and found.count == found.derived
    params, X, Y = _data(model, 0)
    _, grads, magnitude = gradient_and_magnitude(model, Square(), params, X, Y)
    generic = autograd.grad(lambda p: Square().value(model.apply(p, X, fused=False), Y))(params)
    assert np.all(np.abs(flatten(grads) - flatten(generic)) <= 2 * tolerance(flatten(magnitude),
                                                                          accumulation_length(model, X)))
    assert pointwise(model, Square(), params, X, Y, laws(model)).effect <= 1
    with pytest.raises(InvalidArgument, match="drop out_bias"):
        parse(spec.replace("out_bias", "bias,out_bias"))


STREAM_BLOCKS = {  # a pre-norm block's branch: whether its last writer has a bias
    "attention(heads=1,dk=2,dv=2,out_bias)": True, "attention(heads=1,dk=2,dv=2,bias)": True,
    "attention(heads=1,dk=2,dv=2)": False, "dense(6,bias),relu,dense(4,bias)": True,
    "dense(6,bias),relu,dense(4),dropout(0)": False, "dense(4,bias),dropout(0)": True,
}


@settings(max_examples=20, deadline=None)
@given(first=st.booleans(), blocks=st.lists(st.sampled_from(list(STREAM_BLOCKS)), min_size=1, max_size=3),
       end=st.sampled_from(["", ",linear", ",layernorm"]), seed=st.integers(0, 2**16))
def test_biases_that_write_onto_a_stream_no_norm_ends_trade_their_shift(first, blocks, end, seed):
    """Pre-norm blocks carry a stream's c 1 (their branch's LayerNorm removes it, the skip
    keeps it): consecutive biases that write c 1 trade it, sum a - sum b, where nothing after
    removes the shift (docs/theory.md 6.1). By value: sum g_a - sum g_b = 0 to 1e-12 of sum
    |g_a| + sum |g_b|, and sum g_a alone is not 0. After a final LayerNorm each bias has
    its own law, and no trade. (The pointwise level's round-off bound is vacuous through
    attention and an eps-small LayerNorm, so the gradient is read directly.)"""
    norm = "layernorm(eps=1e-05)"
    spec = "seq:3x4:" + "dense(4,bias)," * first + ",".join(f"residual[{norm},{b}]" for b in blocks) + end
    model = parse(spec.replace(",layernorm", f",{norm}") if end else spec)
    writers = first + sum(STREAM_BLOCKS[b] for b in blocks)
    trades = [law for law in laws(model) if "~" in law.name]
    assert len(trades) == (0 if end == ",layernorm" else max(0, writers - 1))
    params, X, Y = _data(model, seed)
    _, grads = value_and_grad(model, Square(), params, X, Y)
    for law in trades:
        size = law.magnitude(tuple(map(np.abs, grads)), tuple(map(np.abs, grads)))
        alone = replace(law, terms=law.terms[:1])
        assert abs(law.first(params, grads)) <= 1e-12 * size
        assert abs(alone.first(params, grads)) > 1e-6 * size  # each bias alone moves


def test_a_causal_mask_keeps_every_law_of_attention_and_no_more():
    """The mask acts on the scores alone: the GL symmetries stay, and discovery finds
    exactly the derived laws; the flow conserves them and later positions never reach
    earlier ones."""
    from flowlaws.testing import check_case

    spec = "seq:3x3:attention(heads=1,dk=2,dv=2,causal),flatten,dense(1)"
    found = discover(parse(spec), degree=0)
    assert found.count == found.derived == 12
    model = parse("seq:4x4:attention(heads=2,dk=2,dv=2,bias,causal),mean(last),dense(2)")
    rng = np.random.default_rng(0)
    params, X = model.init(rng), rng.normal(size=(4, 4, 4))
    assert check_case(model, params, X, rng.normal(size=(4, 2)), optimizer="gd:lr=0.05").status == "holds"
    causal = parse("seq:4x3:attention(heads=1,dk=2,dv=2,causal)")
    p = causal.init(rng)
    later = X[:, :, :3].copy()
    later[:, 2:] += 1.0
    assert np.allclose(causal.forward(p, X[:, :, :3])[0][:, :2], causal.forward(p, later)[0][:, :2])
