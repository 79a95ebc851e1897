import itertools

import autograd
import numpy as np
import pytest

from flowlaws.checking import pointwise
from flowlaws.engine import value_and_grad
from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.invariants import laws
from flowlaws.losses import Square
from flowlaws.models import (
    HOMOGENEOUS,
    NON_HOMOGENEOUS,
    SATURATING,
    Activation,
    flatten,
    parameter_count,
    parse,
    unflatten,
)
from flowlaws.models.symmetry import flatten_rows

SPECS = [
    "mlp:3-8-8-2:relu",
    "mlp:3-4-2:tanh",
    "mlp:3-8-8-2:relu:bias",
    "mlp:2-3-2:linear",
    "mlp:2-3-1:leaky_relu(0.2)",
    "mlp:2-3-1:prelu(1,0.5):bias",
    "mlp:2-3-1:relu_power(2)",
    "factorization:4x5:2",
    "seq:1x12:conv1d(4,3,bias),relu,maxpool1d(2),flatten,dense(2)",
    "seq:2x6:conv1d(3,2,stride=2,padding=1),abs,avgpool1d(2),flatten,dense(2,bias)",
    "seq:2x6x6:conv2d(3,3,padding=1),leaky_relu(0.1),avgpool2d(2),conv2d(2,2,bias),relu,flatten,dense(3)",
    "seq:1x5x5:conv2d(2,2,stride=2),relu,maxpool2d(2),flatten,dense(1)",
    "seq:4:dense(4,bias),relu,residual[dense(8),relu,dense(4)],relu,dense(2)",
    "seq:3:dense(4,bias),batchnorm,relu,dense(2)",
    "seq:2x6:conv1d(3,2),batchnorm(affine,eps=1e-05),relu,flatten,dense(2)",
    "seq:3:dense(4),layernorm(affine),relu,dense(2)",
    "seq:5x4:attention(heads=2,dk=3,dv=2),flatten,dense(2)",
    "seq:5x4:residual[layernorm,attention(heads=1,dk=2,dv=2)],flatten,dense(2)",
]
LAYER_KINDS = [
    "seq:3:dense({w},bias),{act},dense(2,bias)",
    "seq:2x7:conv1d(3,3,stride=2,padding=1,bias),{act},flatten,dense(2)",
    "seq:2x5x5:conv2d(2,2,padding=1,bias),{act},maxpool2d(2),flatten,dense(2)",
    "seq:2x6:conv1d(2,2,bias),{act},avgpool1d(2),flatten,dense(2)",
    "seq:2x6:conv1d(2,1),{act},maxpool1d(3),flatten,dense(2)",
    "seq:2x7:conv1d(2,2,bias),{act},maxpool1d(3,stride=2,padding=1),flatten,dense(2)",  # overlapping, padded
    "seq:2x5x5:conv2d(2,2,padding=1,bias),{act},avgpool2d(3x2,stride=2x1,padding=1x0),flatten,dense(2)",
    "seq:3:dense(3),{act},residual[dense(4,bias),{act},dense(3)],dense(2)",
    "seq:3:dense({w},bias),batchnorm(affine),{act},dense(2,bias)",
    "seq:2x6:conv1d(3,2,bias),batchnorm,{act},flatten,dense(2)",
    "seq:2x3x3:conv2d(2,2,padding=1),batchnorm(affine,eps=1e-05),{act},flatten,dense(2)",
    "seq:2x4x5:conv2d(2,3x2,stride=1x2,padding=1x0,dilation=1x2),{act},maxpool2d(2x1),flatten,dense(2)",
    "seq:2x6x6:conv2d(2,3,padding=1),{act},maxpool2d(3,stride=2,padding=1),avgpool2d(2,stride=1),flatten,dense(2)",
    "seq:3:dense({w}),layernorm(affine),{act},dense(2)",
    "seq:3x4:attention(heads=2,dk=3,dv=2),{act},flatten,dense(2)",
    "seq:3x4:residual[layernorm,attention(heads=1,dk=2,dv=3)],{act},layernorm(affine,eps=0.001),flatten,dense(2)",
]
ACTIVATIONS = ["linear", "relu", "leaky_relu(0.1)", "abs", "prelu(0.5,-2)", "relu_power(2)",
               *NON_HOMOGENEOUS, *SATURATING]


def test_every_spec_round_trips_through_model_spec():
    for spec in SPECS:
        model = parse(spec)
        assert parse(model.spec) == model
        assert model.spec == spec


def test_one_value_repeated_for_every_axis_is_that_value():
    assert parse("seq:1x5x5:conv2d(2,3x3,stride=2x2,padding=1x1)").spec == "seq:1x5x5:conv2d(2,3,stride=2,padding=1)"


@pytest.mark.parametrize("spec", ["mlp:3-8-8-2:relu:bias",
                                  "seq:1x12:conv1d(4,3,bias),relu,maxpool1d(2),flatten,dense(2)",
                                  "seq:5x4:attention(heads=2,dk=3,dv=2),flatten,dense(2)"])
def test_flatten_rows_stacks_the_flattened_tuples_bit_for_bit(spec, rng):
    model = parse(spec)
    tuples = [model.init(rng) for _ in range(5)]
    assert np.array_equal(flatten_rows(tuples), np.stack([flatten(t) for t in tuples]))
    assert flatten_rows([]).shape == (0, 0)


def test_an_activations_value_and_slope_together_are_its_value_and_its_slope():
    z = np.array([-2.5, -0.3, 0.0, 0.7, 3.0]) + np.array([0.0, 0.4j, 0.0, -0.2j, 1.0j])
    shared = [name for name in NON_HOMOGENEOUS if Activation(name).both is not None]
    assert "gelu" in shared
    for name in shared:
        act = Activation(name)
        for x in (z.real, z):
            value, slope = act.both(x)
            assert np.allclose(value, act.fn(x), rtol=1e-14, atol=0) and np.allclose(slope, act.derivative(x),
                                                                                      rtol=1e-14, atol=0)


def test_mlp_spec_names_parameters_by_kind_and_position():
    names = [name for name, _ in parse("mlp:3-8-8-2:relu:bias").param_specs]
    assert names == ["dense0.W", "dense0.b", "dense1.W", "dense1.b", "dense2.W", "dense2.b"]


def test_every_activation_reports_its_homogeneity_degree():
    for name in HOMOGENEOUS:
        assert Activation(name).degree is not None
    for name in NON_HOMOGENEOUS + SATURATING:
        act = Activation(name)
        assert act.degree is None
        z = float(act.homogeneity_counterexample().split("(2*")[1].split(")")[0])
        assert act.fn(np.array(2 * z)) != 2 * act.fn(np.array(z))
    z = np.linspace(-2, 2, 9)
    for name in HOMOGENEOUS:
        act = Activation(name)
        assert np.allclose(act.fn(3.0 * z), 3.0**act.degree * act.fn(z))


def _data(model, rng, n=4):
    X = rng.normal(size=(n, *model.input_shape))
    X.flat[0] = 0.0  # a zero input puts some pre-activations exactly at the kink
    return X, rng.normal(size=(n, *model.output_shape))


def _central_differences(f, params, h=1e-6):
    shapes = [p.shape for p in params]
    v = flatten(params)
    out = np.zeros_like(v)
    for i in range(len(v)):
        e = np.zeros_like(v)
        e[i] = h
        out[i] = (f(unflatten(v + e, shapes)) - f(unflatten(v - e, shapes))) / (2 * h)
    return out


@pytest.mark.parametrize("template", LAYER_KINDS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_engine_gradient_matches_autograd_and_finite_differences(template, act, rng):
    model = parse(template.format(w=4, act=act))
    params = model.init(rng)
    X, Y = _data(model, rng)
    _, grads = value_and_grad(model, Square(), params, X, Y)
    generic = autograd.grad(lambda p: Square().value(model.apply(p, X, fused=False), Y))(params)
    fused = autograd.grad(lambda p: Square().value(model.apply(p, X), Y))(params)
    for a, b, c in zip(grads, generic, fused, strict=True):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)
        assert np.allclose(a, c, rtol=1e-10, atol=1e-12)
    numeric = _central_differences(lambda p: Square().value(model.forward(p, X)[0], Y), params)
    assert np.allclose(flatten(grads), numeric, rtol=1e-5, atol=1e-6)


def test_relu_derivative_at_the_kink_is_zero_and_max_pool_ties_split_equally():
    relu = Activation("relu")
    assert relu.derivative(np.array([0.0])) == 0
    model = parse("seq:1x2:maxpool1d(2),flatten,dense(1)")
    params = (np.ones((1, 1)),)
    X = np.array([[[3.0, 3.0]]])
    out, cache = model.forward(params, X)
    dX, _ = model._chain.backward(params, cache, np.ones_like(out))
    assert np.allclose(dX, [[[0.5, 0.5]]])


def test_rescalings_follow_pooling_and_flatten_to_the_next_weight_layer():
    model = parse("seq:1x12:conv1d(4,3,bias),relu,maxpool1d(2),flatten,dense(2)")
    (r,) = model.rescalings()
    assert [(t.view.name, t.view.axis, t.view.units, t.weight) for t in r.terms] == [
        ("conv0.W", 0, 4, 1.0), ("conv0.b", 0, 4, 1.0), ("dense0.W", 1, 4, -1.0)]
    assert not r.linear


def test_units_feeding_a_skip_connection_scale_through_both_branches():
    model = parse("seq:4:dense(4),relu,residual[dense(8),relu,dense(4)],relu,dense(2)")
    skip, inner = model.rescalings()
    assert inner.name == "res0.dense0/res0.dense1" and inner.units == 8
    assert [(t.view.param, t.view.name, t.view.axis, t.weight) for t in skip.terms] == [
        (0, "dense0.W", 0, 1.0), (1, "res0.dense0.W", 1, -1.0), (2, "res0.dense1.W", 0, 1.0),
        (3, "dense1.W", 1, -1.0)]
    assert [t.view.param for t in inner.terms] == [1, 2]  # global indices, not the block's own


def test_blocks_in_a_row_chain_their_skip_terms_and_each_keeps_its_inner_law():
    model = parse("seq:3:dense(3),residual[dense(2),relu,dense(3)],residual[dense(2),relu,dense(3)],dense(1)")
    names = [r.name for r in model.rescalings()]
    assert names == ["dense0/res0.dense0/res0.dense1/res1.dense0/res1.dense1/dense1",
                     "res0.dense0/res0.dense1", "res1.dense0/res1.dense1"]
    assert model.rescalings()[0].linear  # identity around the blocks: a matrix law too


def test_non_homogeneous_activations_stop_the_rescaling():
    assert parse("mlp:3-4-2:tanh").rescalings() == ()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("mlp:3-4-2:rleu", "did you mean 'relu'"),
        ("mpl:3-4-2:relu", "did you mean 'mlp'"),
        ("mlp:3-0-2:relu", "positive"),
        ("mlp:3-x-2:relu", "integers"),
        ("mlp:3-4-2:relu:bais", "expected mlp"),
        ("seq:3:conv1d(2,3),relu,dense(2)", "needs input (channels, length)"),
        ("seq:1x4:conv1d(2,7),relu,flatten,dense(2)", "does not fit"),
        ("seq:1x4x4:conv2d(2,3x2x1)", "kernel must be an integer or 2 (one per axis, written 2x2), got (3, 2, 1)"),
        ("seq:1x4:conv1d(2,3x2)", "kernel must be an integer, got (3, 2)"),
        ("seq:1x4x4:maxpool2d(2x0)", "size must be a positive integer on every axis, got 2x0"),
        ("seq:1x4x1:maxpool2d(2)", "needs input (channels, 2 spatial axes >= 2)"),
        ("seq:1x4x4:maxpool2d(2,padding=2)", "padding 2 is more than half the window 2"),
        ("seq:1x4x4:conv2d(2,3x0)", "kernel must be a positive integer on every axis, got 3x0"),
        ("seq:1x4x4:conv2d(2,3,padding=-1)", "padding must be an integer >= 0 on every axis, got -1"),
        ("seq:1x4x4:conv2d(2,3,padding=1xa)", "expected an integer or one per axis, as 3x2, got '1xa'"),
        ("seq:4:dense(3),mean", "needs positions to average over"),
        ("seq:4:dense(3),residual[dense(2)]", "must keep the input shape"),
        ("seq:4:gated[dense(3) | dense(2)]", "to (3,) and (2,); both must give the same shape"),
        ("seq:4:gated[dense(3)]", "without a factor it must keep the input shape (or give it one: gated[BLOCK | "),
        ("seq:4:relu[dense(3)]", "relu takes no branches"),
        ("seq:4:gated(3)", "takes branches in brackets"),
        ("seq:4:residual[dense(4) | dense(4) | dense(4)]", "one or two branches"),
        ("seq:2x3:concat[ | ]", "both branches are empty"),
        ("seq:2x3:concat[conv1d(2,1) | conv1d(2,2)]", "all but the first axis (the one joined) must agree"),
        ("seq:4:dropout(1.5)", "p must be in [0, 1)"),
        ("seq:4:dense(3,heads=2)", "unknown option 'heads'"),
        ("seq:4:dense(3),blah", "unknown layer 'blah'"),
        ("seq:4:dense(3,bias,foo)", "unknown option"),
        ("seq:4:dense(3", "unbalanced"),
        ("mlp:3-4-2:relu_power(0.5)", "k >= 1"),
        ("mlp:3-4-2:swish(0)", "use prelu(0.5,0.5)"),
        ("factorization:4x5", "expected factorization"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_raise_invalid_argument_naming_the_problem(spec, fragment):
    with pytest.raises(InvalidArgument, match=None) as info:
        parse(spec)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_factorization_objective_is_half_squared_frobenius_error(rng):
    model = parse("factorization:3x4:2")
    U, V = model.init(rng)
    M = rng.normal(size=(3, 4))
    X, Y = model.data(M)
    value, (gU, gV) = value_and_grad(model, Square(reduction="sum"), (U, V), X, Y)
    R = U @ V.T - M
    assert np.isclose(value, 0.5 * np.sum(R**2))
    assert np.allclose(gU, R @ V) and np.allclose(gV, R.T @ U)


def test_a_new_layer_declares_its_symmetry_and_the_walker_derives_its_laws():
    # the worked example of docs/extending.md: y = 2x carries every scaling, linearly
    from dataclasses import dataclass
    from typing import ClassVar

    from flowlaws.discover import discover
    from flowlaws.invariants import laws
    from flowlaws.models import Dense, Sequential
    from flowlaws.models.layer import Layer

    @dataclass(frozen=True)
    class Double(Layer):
        kind: ClassVar[str] = "double"

        def apply(self, p, x):
            return 2 * x

        def vjp(self, p, x, y, dy):
            return 2 * dy, ()

        def carry(self, path, site):
            return path.times(1.0, True)

        @property
        def spec(self) -> str:
            return "double"

    model = Sequential((3,), (Dense(4), Double(), Dense(2)))
    assert [law.kind for law in laws(model)] == ["unit", "layer", "matrix"]
    assert discover(model).complete


def test_batchnorm_eps_breaks_the_scale_symmetry_by_exactly_its_first_order_term(rng):
    # docs/theory.md 6.2: <dL/dw_i, w_i> = eps / (var_i + eps) * sum_batch (dL/dx̂_i) x̂_i
    eps = 0.3
    model = parse(f"seq:3:dense(4),batchnorm(eps={eps}),relu,dense(2)")
    (W, V), X, Y = model.init(rng), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    _, (gW, _) = value_and_grad(model, Square(), (W, V), X, Y)
    z = X @ W.T
    var = z.var(axis=0)
    xhat = (z - z.mean(axis=0)) / np.sqrt(var + eps)
    _, dout = Square().value_and_grad(np.maximum(xhat, 0) @ V.T, Y)
    dxhat = (dout @ V) * (xhat > 0)
    assert np.allclose(np.sum(gW * W, axis=1), eps / (var + eps) * np.sum(dxhat * xhat, axis=0), rtol=1e-12)
    assert not any(law.family == "scale" for law in laws(model))  # eps > 0: no scale law is derived
    assert any(law.family == "scale" for law in laws(parse("seq:3:dense(4),batchnorm,relu,dense(2)")))


@pytest.mark.parametrize(("spec", "fragment"), [
    ("seq:3:dense(4),batchnorm,relu,dense(1)", "a channel is constant over the batch"),
    ("seq:3:dense(4),layernorm,relu,dense(1)", "a sample's features are all equal"),
])
def test_a_constant_normalization_group_is_unrepresentable_not_nan(spec, fragment):
    from flowlaws.errors import Unrepresentable

    model = parse(spec)
    params = tuple(np.zeros(shape) for _, shape in model.param_specs)
    with pytest.raises(Unrepresentable, match=fragment):
        model.forward(params, np.ones((3, 3)))


def test_normalizations_and_attention_declare_their_law_families():
    names = {law.name: law for law in laws(parse("seq:3:dense(4,bias),batchnorm(affine),relu,dense(2)"))}
    assert names["scale unit dense0/bn0"].formula == "‖dense0.W[i,:]‖² + dense0.b[i]²"
    shift = names["translation unit dense0/bn0"]
    assert shift.formula == "dense0.b[i]" and shift.order == 1
    assert names["unit bn0/dense1"].formula == "bn0.gamma[i]² + bn0.beta[i]² − ‖dense1.W[:,i]‖²"
    assert "matrix bn0/dense1" not in names  # gamma is diagonal: no mixing of units
    layer_norm = {law.name for law in laws(parse("seq:3:dense(4,bias),layernorm,relu,dense(2)"))}
    assert "scale layer dense0/ln0" in layer_norm and "scale unit dense0/ln0" not in layer_norm
    attention = {law.name: law for law in laws(parse("seq:5x4:attention(heads=2,dk=3,dv=2),flatten,dense(2)"))}
    qk = attention["gl matrix attn0.h1.qk"]
    assert qk.formula.startswith("[i,j] = ⟨attn0.Wq1[:,i], attn0.Wq1[:,j]⟩ − ⟨attn0.Wk1[:,i]")
    assert "every 4th from i" in attention["unit attn0/dense0"].formula  # feature i of each position


def test_gl_matrix_laws_of_an_attention_head_are_the_theory_matrices(rng):
    model = parse("seq:5x4:attention(heads=1,dk=3,dv=2),flatten,dense(2)")
    params = model.init(rng)
    Wq, Wk, Wv, Wo = params[:4]
    by_name = {law.name: law for law in laws(model)}
    assert np.allclose(by_name["gl matrix attn0.h0.qk"].value(params), Wq.T @ Wq - Wk.T @ Wk)
    assert np.allclose(by_name["gl matrix attn0.h0.vo"].value(params), Wv.T @ Wv - Wo @ Wo.T)


# --- every adjacency of layer kinds: the walker's declarations compose soundly -------------
# One instance of each kind the spec language has (activations: one per family of carry).
ADJACENT_KINDS = ("dense(3,bias)", "conv1d(3,2,padding=1,bias)", "conv2d(2,2,padding=1)", "maxpool1d(2)",
                  "avgpool1d(2)", "maxpool2d(2)", "avgpool2d(2)", "flatten", "batchnorm", "batchnorm(affine)",
                  "layernorm", "layernorm(affine)", "attention(heads=1,dk=2,dv=3)", "relu", "linear",
                  "relu_power(2)", "tanh", "residual[dense(2),relu,dense(SAME)]", "moveaxis(0,-1)",
                  "moveaxis(-1,0)", "flatten(start=1)", "offset", "scale", "prepend", "token")
PRODUCERS = {1: "dense(4,bias)", 2: "conv1d(4,2,padding=1,bias)", 3: "conv2d(3,2,padding=1)"}


def _adjacent_nets():
    """For each ordered pair (A, B) of kinds and each input rank where both fit: the net
    [producer,] A, B, flatten, dense(2), with and without a weight layer before A."""
    shapes = {1: "4", 2: "4x6", 3: "2x4x4"}
    for first, second in itertools.product(ADJACENT_KINDS, repeat=2):
        for rank, shape in shapes.items():
            for producer in ("", PRODUCERS[rank] + ","):
                width = {1: "4", 2: "6"}.get(rank, "4")
                layers = f"{producer}{first},{second}".replace("SAME", width)
                try:
                    yield parse(f"seq:{shape}:{layers},flatten,dense(2)")
                except InvalidArgument:
                    continue


def test_every_adjacency_of_layer_kinds_derives_only_laws_orthogonal_to_the_gradient():
    """Soundness over every pair of kinds the spec allows (an affine LayerNorm or attention
    followed by a convolution was once wrong: the last axis's scaling met a channel axis):
    each derived law's B(theta, grad L) is 0 to round-off at random params and data."""
    rng = np.random.default_rng(0)
    checked, with_laws = 0, 0
    for model in _adjacent_nets():
        derived = laws(model)
        checked += 1
        if not derived:
            continue
        with_laws += 1
        params = model.init(rng)
        X = rng.normal(size=(5, *model.input_shape))
        Y = rng.normal(size=(5, *model.output_shape))
        try:
            evidence = pointwise(model, Square(), params, X, Y, derived)
        except Unrepresentable:
            continue
        assert evidence.effect <= 1, f"{model.spec}: {evidence.law} {evidence.effect:.3g}"
    assert checked > 500 and with_laws > 300, (checked, with_laws)


@pytest.mark.parametrize("spec", [
    "seq:3x3:conv1d(3,3,padding=1),layernorm(affine),relu,conv1d(2,3,padding=1),flatten,dense(2)",
    "seq:3x3:attention(heads=1,dk=2,dv=2),conv1d(2,2),flatten,dense(1)",
    "seq:2x5:conv1d(3,3,padding=1),layernorm(affine),relu,conv1d(2,3,padding=1),flatten,dense(2)",
    "seq:2x5:attention(heads=1,dk=2,dv=2),conv1d(2,2),flatten,dense(1)",
])
def test_a_scaling_of_the_last_axis_enters_a_convolution_only_as_one_c_for_every_position(spec, rng):
    """The soundness issue: the last axis's unit t was paired with the convolution's channel
    t (a false unit law). Its units are the convolution's positions: the whole kernel absorbs
    one c for them all (a layer law), and every derived law holds."""
    model = parse(spec)
    derived = laws(model)
    joins = [law for law in derived if law.name.endswith(("ln0/conv1", "attn0/conv0"))]
    assert [law.kind for law in joins] == ["layer"]
    X, Y = rng.normal(size=(4, *model.input_shape)), rng.normal(size=(4, *model.output_shape))
    assert pointwise(model, Square(), model.init(rng), X, Y, derived).effect <= 1


def test_interleaved_units_pass_a_residual_block_in_their_own_layout(rng):
    """Found by the composition campaign: the features of a flattened (T, d) sample entered a
    residual block as contiguous blocks (a false law, effect 1e10)."""
    model = parse("seq:2x3:layernorm(affine),flatten,residual[dense(1),relu,dense(6)],flatten,dense(1)")
    derived = laws(model)
    assert any(law.name == "unit ln0/res0.dense0/res0.dense1/dense0" for law in derived)
    for _ in range(5):
        X, Y = rng.normal(size=(3, 2, 3)), rng.normal(size=(3, 1))
        assert pointwise(model, Square(), model.init(rng), X, Y, derived).effect <= 1


def test_a_position_wise_layer_before_a_normalization_of_the_flattened_sample_has_no_column_law():
    """Found by the composition campaign (seed 13000): W -> W + 1 a^T shifts each position's
    features by a^T x_t, which differs between positions, so a LayerNorm of the flattened
    sample does not remove it: the column sums of dense0.W are not conserved (effect 1.5e6)."""
    import json
    from pathlib import Path

    from flowlaws.catalog import theorem
    from flowlaws.report import Counterexample

    path = Path(__file__).parent / "regressions" / "composition-column-law-across-positions.json"
    scenario = Counterexample.from_json(json.loads(path.read_text())).scenario
    assert not any(law.name.startswith("translation unit dense0/ln0.W") for law in laws(scenario.model))
    verdict = theorem("composition").check(scenario)
    assert verdict.status == "holds" and verdict.evidence.effect <= 1


def test_a_groupnorm_group_is_not_kept_centred_through_a_convolution():
    """Found by the composition campaign (seed 14000): a 1x1 convolution mixes channels, so a
    GroupNorm group that spans channels is no longer centred after it (effect 1.4e11)."""
    import json
    from pathlib import Path

    from flowlaws.catalog import theorem
    from flowlaws.report import Counterexample

    path = Path(__file__).parent / "regressions" / "composition-groupnorm-centred-through-a-conv.json"
    scenario = Counterexample.from_json(json.loads(path.read_text())).scenario
    assert not any(law.name.startswith("translation unit gn0/dense0") for law in laws(scenario.model))
    verdict = theorem("composition").check(scenario)
    assert verdict.status == "holds" and verdict.evidence.effect <= 1


def test_a_groupnorm_of_a_channel_of_several_rows_does_not_remove_a_factor_per_row():
    """Found by the composition campaign (seed 6300001): an RMSNorm at eps > 0 leaves a
    positive factor on each row of the last axis, which a later normalization removes only
    when each row is its own group; a GroupNorm of a (1, 4, 4) channel removes one factor
    for its four rows, so the conv's scale law does not hold (effect 7.4e3)."""
    import json
    from pathlib import Path

    from flowlaws.catalog import theorem
    from flowlaws.report import Counterexample

    path = Path(__file__).parent / "regressions" / "composition-groupnorm-row-factors-of-a-channel.json"
    scenario = Counterexample.from_json(json.loads(path.read_text())).scenario
    assert not any(law.name.startswith("scale") for law in laws(scenario.model))
    verdict = theorem("composition").check(scenario)
    assert verdict.status == "holds" and verdict.evidence.effect <= 1
    # each row its own group, (C, T) with a group per channel: the factor is removed, the law kept
    kept = parse("seq:2x4:conv1d(2,1),rmsnorm(eps=1e-05),groupnorm(groups=2),flatten,dense(1)")
    assert any(law.name.startswith("scale layer conv0/rms0") for law in laws(kept))


def test_a_groupnorm_group_is_not_kept_centred_through_an_rmsnorm():
    """Found by the composition campaign (thorough profile): an RMSNorm without gain divides
    each row of the last axis by its own number, so a GroupNorm group of several rows no
    longer sums to 0 after it (effect 5.5e8); the net has no law, as discovery finds."""
    import json
    from pathlib import Path

    from flowlaws.discover import discover
    from flowlaws.report import Counterexample

    path = Path(__file__).parent / "regressions" / "composition-groupnorm-centred-through-an-rmsnorm.json"
    scenario = Counterexample.from_json(json.loads(path.read_text())).scenario
    assert laws(scenario.model) == ()
    found = discover(scenario.model, degree=0)
    assert found.count == found.derived == 0


def test_a_fork_whose_branches_close_keeps_a_branchs_need_for_one_c(rng):
    """Found when the three closed-fork copies became one (Path.joined): a LayerNorm inside one
    branch of a gate needs one c for every unit, so the walk that closes at the gate has a layer
    law and no unit law (the unit law was false: effect 2e3)."""
    model = parse("seq:3x4:dense(4),gated[residual[layernorm,dense(4)],dense(3) | dense(3)],mean(last),dense(1)")
    names = [law.name for law in laws(model)]
    assert "layer dense0/gate0.a.res0.ln0/gate0.a.res0.dense0/gate0.a.dense0/gate0.b.dense0" in names
    assert not any(name.startswith("unit dense0/") for name in names)
    params, X, Y = model.init(rng), rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 1))
    assert pointwise(model, Square(), params, X, Y, laws(model)).effect <= 1


@pytest.mark.parametrize("spec", SPECS)
def test_the_parameter_count_is_the_length_of_the_flattened_params(spec):
    model = parse(spec)
    assert parameter_count(model) == flatten(model.init(np.random.default_rng(0))).size > 0


def test_a_pointwise_convolution_passes_a_scaling_of_its_last_spatial_axis():
    """Found by the thorough laws-complete campaign (2026-12-04): a dense layer's features
    are the positions of the 1x1 convolution after it, which maps each position alone, so
    their scaling passes it to the head: 6 laws, 3 derived before."""
    import json
    from pathlib import Path

    from flowlaws.discover import discover
    from flowlaws.report import Counterexample

    path = Path(__file__).parent / "regressions" / "laws-complete-pointwise-conv-on-a-last-axis-scaling.json"
    scenario = Counterexample.from_json(json.loads(path.read_text())).scenario
    assert scenario.model.spec == "seq:2x3:dense(2),conv1d(2,1),flatten,dense(1)"
    assert "unit dense0/dense1" in [law.name for law in laws(scenario.model)]
    found = discover(scenario.model, degree=0)
    assert found.complete and found.count == 6


@pytest.mark.parametrize("spec", ["seq:3:dense(3),residual[dense(3),relu,dense(3),scale],dense(2)",
                                  "seq:4x3:conv1d(4,1),residual[conv1d(4,1),relu,conv1d(4,1,groups=2)],flatten,dense(1)"])
def test_a_branch_re_emitting_through_a_diagonal_or_grouped_layer_mixes_the_stream_only_as_it_can(spec):
    """A false law at c97e816: a residual branch ending in a layer scale (a diagonal) or a
    grouped convolution re-emitted a scaling that could mix every stream unit, a full matrix
    law that discovery named spurious. Its rows mix no units (no matrix law) or only within
    their groups (a block-diagonal one)."""
    from flowlaws.discover import discover

    model = parse(spec)
    matrices = [law for law in laws(model) if law.kind == "matrix"]
    assert all(law.blocks == 2 for law in matrices) and (("groups" in spec) == bool(matrices))
    found = discover(model, degree=0, budget=30_000)
    assert found.complete and not found.spurious


def test_a_grouped_convolution_on_a_linear_path_has_a_block_diagonal_matrix_law(rng):
    from flowlaws.discover import discover

    model = parse("seq:4x6:conv1d(4,1),linear,conv1d(4,1,groups=2),flatten,dense(1)")
    (law,) = [law for law in laws(model) if law.name == "matrix conv0/conv1"]
    G = law.value(model.init(rng))
    assert law.blocks == 2 and np.all(G[:2, 2:] == 0) and np.all(G[2:, :2] == 0) and np.all(G[:2, :2] != 0)
    found = discover(model, degree=0)
    assert found.complete and found.count == 12
