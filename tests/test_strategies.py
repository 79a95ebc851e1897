import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models import Factorization, Sequential, parse
from flowlaws.strategies import (
    architectures,
    datasets,
    losses,
    magnitudes,
    optimizers,
    params,
    scenarios,
    subarchitectures,
)
from flowlaws.strategies.core import KINDS
from flowlaws.theorems import THEOREMS


@given(architectures())
def test_architectures_are_valid_models(model):
    assert isinstance(model, Sequential | Factorization)
    assert parse(model.spec) == model


@given(architectures(kinds=tuple(k for k in KINDS if k != "factorization"), outputs=(3, 4)))
def test_the_dense_head_of_every_family_has_the_width_outputs_asks_for(model):
    assert 3 <= model.output_shape[-1] <= 4


@given(st.data())
def test_the_adam_translation_break_draws_three_classes_or_more_which_adam_moves(data):
    scenario = data.draw(scenarios(THEOREMS["break-translation-adam"]))
    assert scenario.model.output_shape[-1] >= 3


@given(st.data())
def test_params_and_data_are_finite_with_the_right_shapes(data):
    model = data.draw(architectures(kinds=("conv2d", "residual")))
    p = data.draw(params(model, scale=2.0))
    X, Y = data.draw(datasets(model, n=(2, 3)))
    assert [q.shape for q in p] == [shape for _, shape in model.param_specs]
    assert all(abs(q).max() <= 2.0 for q in p if q.size)
    assert 2 <= len(X) <= 3 and Y.shape[1:] == model.output_shape


@given(st.data())
def test_scenarios_respect_the_theorem_space(data):
    scenario = data.draw(scenarios(THEOREMS["bias"]))
    assert any(name.endswith(".b") for name, _ in scenario.model.param_specs)
    scenario = data.draw(scenarios(THEOREMS["break-tanh"]))
    assert {a.name for a in scenario.model.activations} == {"tanh"}


@given(st.data())
def test_magnitudes_span_many_decades_with_exact_zeros_and_the_model_shapes(data):
    model = data.draw(architectures(kinds=("mlp", "residual", "conv1d")))
    p = data.draw(magnitudes(model))
    assert [q.shape for q in p] == [shape for _, shape in model.param_specs]
    assert all(np.all(np.isfinite(q)) and np.all(np.abs(q) <= 1e150) for q in p)


def test_magnitudes_reach_both_ends_of_the_range_and_exact_zeros():
    from hypothesis import Phase, find, settings

    model = parse("mlp:2-3-1:relu")
    quick = settings(max_examples=500, phases=[Phase.generate], database=None)
    assert find(magnitudes(model), lambda p: max(np.abs(q).max() for q in p) >= 1e100, settings=quick)
    assert find(magnitudes(model), lambda p: 0 < min(np.abs(q[q != 0]).min(initial=1) for q in p) <= 1e-100,
                settings=quick)
    assert find(magnitudes(model), lambda p: any(np.any(q == 0) for q in p), settings=quick)


@given(st.data())
def test_subarchitectures_are_no_larger_than_the_model_and_keep_its_input_and_output(data):
    model = parse("seq:3:dense(4),relu,residual[dense(5),relu,dense(4)],relu,dense(2)")
    small = data.draw(subarchitectures(model))
    assert small.input_shape == model.input_shape and small.output_shape == model.output_shape
    assert sum(map(np.size, small.init(np.random.default_rng(0)))) <= sum(
        map(np.size, model.init(np.random.default_rng(0))))
    mlp = data.draw(subarchitectures(parse("mlp:3-8-8-2:tanh")))
    assert len(mlp.layers) in (3, 5)


@given(st.data())
def test_padded_params_have_the_model_shapes(data):
    model = data.draw(architectures(kinds=("mlp", "conv1d")))
    p = data.draw(params(model, pad=3))
    assert [q.shape for q in p] == [shape for _, shape in model.param_specs]


@given(st.data())
def test_strategies_accept_spec_strings_wherever_they_accept_models(data):
    p = data.draw(params("mlp:3-4-2:relu"))
    X, Y = data.draw(datasets("mlp:3-4-2:relu"))
    assert [q.shape for q in p] == [(4, 3), (2, 4)] and X.shape[1:] == (3,) and Y.shape[1:] == (2,)
    assert len(data.draw(magnitudes("mlp:3-4-2:relu"))) == 2
    assert data.draw(scenarios(THEOREMS["thm-2.1"])).model.activations


def test_strategy_reprs_show_how_they_were_built():
    assert repr(params(parse("mlp:2-3-1:relu"), scale=0.5)) == "params(model='mlp:2-3-1:relu', scale=0.5)"
    assert "kinds=['mlp']" in repr(architectures(kinds=["mlp"]))
    assert "names=['adam']" in repr(optimizers(names=["adam"]))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [(lambda: architectures(kinds=["mpl"]), "kinds must be"),
     (lambda: architectures(activations=["rleu"]), "activations must be"),
     (lambda: architectures(depth=0), "depth must be"),
     (lambda: architectures(width=(3, 1)), "width must be"),
     (lambda: architectures(pooling=["min"]), "pooling must be"),
     (lambda: architectures(outputs=0), "outputs must be"),
     (lambda: params(parse("mlp:2-3-1:relu"), scale=0.0), "scale must be"),
     (lambda: params(parse("mlp:2-3-1:relu"), pad=0), "pad must be"),
     (lambda: datasets(parse("mlp:2-3-1:relu"), n=(0, 2)), "n must be"),
     (lambda: losses(names=["l1"]), "names must be"),
     (lambda: optimizers(names=["lion"]), "names must be"),
     (lambda: params("mlp:3-4-2:rleu"), "did you mean 'relu'"),
     (lambda: datasets(42), "model must be a flowlaws model or a spec string"),
     (lambda: scenarios("thm-2.1"), "scenarios needs a Theorem"),
     (lambda: magnitudes(parse("mlp:2-3-1:relu"), exponents=(-400, 10)), "exponents must be"),
     (lambda: optimizers(lr=-1.0), "lr must be"),
     (lambda: optimizers(weight_decay=-0.1), "weight_decay")],
)
def test_invalid_strategy_arguments_raise_invalid_argument_naming_the_value(make, fragment):
    with pytest.raises(InvalidArgument) as info:
        make()
    assert fragment in str(info.value)


@pytest.mark.parametrize(("kind", "layer"), [("batchnorm", "batchnorm"), ("layernorm", "layernorm"),
                                             ("attention", "attention")])
@given(data=st.data())
def test_each_new_kind_draws_nets_with_its_layer_that_run_on_generic_data(kind, layer, data):
    from flowlaws.errors import Unrepresentable
    from flowlaws.strategies import datasets

    model = data.draw(architectures(kinds=[kind]))
    assert layer in model.spec
    X, _ = data.draw(datasets(model, n=(2, 4), generic=True))
    try:
        out, _ = model.forward(model.init(np.random.default_rng(0)), X)
    except Unrepresentable as error:  # a constant normalization group (ReLU then LayerNorm): said, not NaN
        assert "variance 0" in str(error)
        return
    assert out.shape == (len(X), *model.output_shape) and np.all(np.isfinite(out))


@given(st.data())
def test_optimizers_draw_their_weight_decay_from_a_tuple(data):
    from flowlaws.strategies import optimizers

    opt = data.draw(optimizers(names=("gd", "momentum"), weight_decay=(0.0, 0.1)))
    assert opt.weight_decay in (0.0, 0.1)


@given(architectures(kinds=("conv1d", "conv2d")))
def test_conv_nets_read_real_input_in_every_window(model):
    """Every window covers an input entry (an output of padding alone gives the net laws no
    symmetry derives); a kernel may be wider than its input (its taps that meet only padding
    are derived laws)."""
    for position, layer in enumerate(model.layers):
        if hasattr(layer, "kernel"):
            for (m, n), k, s, p, d in zip(layer._reach(model.site(position).in_shape), layer.kernels, layer.strides,
                                          layer.paddings, layer.dilations, strict=True):
                assert all(any(0 <= t * s + j * d - p < n for j in range(k)) for t in range(m))


def _tap_groups(n, kernel, stride, padding):
    """The taps of one axis joined when an output reads real input through both (union-find)."""
    parent = list(range(kernel))

    def root(k):
        while parent[k] != k:
            k = parent[k]
        return k

    live = set()
    for j in range((n + 2 * padding - kernel) // stride + 1):
        real = [k for k in range(kernel) if 0 <= j * stride - padding + k < n]
        live.update(real)
        for a, b in itertools.pairwise(real):
            parent[root(a)] = root(b)
    return {root(k) for k in live}


@given(architectures(kinds=("conv1d", "conv2d")))
def test_no_drawn_convolution_has_taps_that_split_into_units_of_their_own(model):
    """Taps that share no output position through real input scale on their own: laws no
    symmetry of flowlaws derives (docs/theory.md 6), so such nets are not drawn."""
    for position, layer in enumerate(model.layers):
        if hasattr(layer, "kernel"):
            for n in model.site(position).in_shape[1:]:
                assert len(_tap_groups(n, layer.kernel, layer.stride, layer.padding)) == 1, layer.spec


@given(st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3))
def test_taps_split_exactly_when_the_tap_graph_falls_apart(n, kernel, stride, padding):
    from flowlaws.strategies.core import _taps_split

    assume(padding < kernel <= n + 2 * padding)
    assert _taps_split(n, kernel, stride, padding) == (len(_tap_groups(n, kernel, stride, padding)) > 1)


@given(architectures(kinds=["mixed"]))
def test_mixed_chains_never_move_a_singleton_axis_nor_average_a_groupnorm_s_small_groups(model):
    """Degenerate nets with laws of their own (found by the laws-complete campaign): a
    moveaxis of an axis of length 1, and a mean of a GroupNorm's groups of 1 channel (or 2,
    affine) right after it."""
    from flowlaws.models import GroupNorm, Mean
    from flowlaws.models.kinds.moveaxis import MoveAxis

    for position, layer in enumerate(model.layers):
        shape = model.site(position).in_shape
        if isinstance(layer, MoveAxis):
            assert shape[layer.source] > 1, model.spec
        if isinstance(layer, Mean) and not layer.last and position:
            before, channels = model.layers[position - 1], model.site(position - 1).in_shape[0]
            if isinstance(before, GroupNorm):
                assert channels // before.groups > (2 if before.affine else 1), model.spec


@pytest.mark.parametrize("spec", [
    "seq:2x3:groupnorm,mean,flatten,dense(1)", "seq:2x4x4:groupnorm(affine),mean,flatten,dense(1)",
    "seq:2x3:groupnorm(groups=2),mean,flatten,dense(1)", "seq:3x4:groupnorm(affine),mean,flatten,dense(1)",
    "seq:4x3:groupnorm(groups=2,affine),mean,flatten,dense(2)", "seq:2x3:groupnorm(affine),linear,mean,dense(2,bias)",
    "seq:3x4:groupnorm(groups=3,affine),mean,flatten,dense(1)", "seq:2x3:groupnorm(affine),relu,mean,flatten,dense(1)",
])
def test_a_mean_of_a_groupnorm_is_judged_degenerate_exactly_when_discovery_finds_laws_not_derived(spec):
    """The strategies' rule against the oracle: the nets it keeps from being drawn have
    laws no symmetry derives; the nets it draws have none."""
    from flowlaws.discover import discover
    from flowlaws.strategies.core import _averages_degenerate

    model = parse(spec)
    at = next(p for p, layer in enumerate(model.layers) if layer.kind == "mean")
    found = discover(model)
    assert found.count is not None
    degenerate = _averages_degenerate(Sequential(model.input_shape, model.layers[:at]), model.layers[at])
    assert degenerate == (not found.complete)
