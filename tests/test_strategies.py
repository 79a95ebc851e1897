import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models import Factorization, Sequential, parse
from flowlaws.strategies import architectures, datasets, losses, optimizers, params, scenarios
from flowlaws.theorems import THEOREMS


@given(architectures())
def test_architectures_are_valid_models(model):
    assert isinstance(model, Sequential | Factorization)
    assert parse(model.spec) == model


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
def test_padded_params_have_the_model_shapes(data):
    model = data.draw(architectures(kinds=("mlp", "conv1d")))
    p = data.draw(params(model, pad=3))
    assert [q.shape for q in p] == [shape for _, shape in model.param_specs]


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
     (lambda: params(parse("mlp:2-3-1:relu"), scale=0.0), "scale must be"),
     (lambda: params(parse("mlp:2-3-1:relu"), pad=0), "pad must be"),
     (lambda: datasets(parse("mlp:2-3-1:relu"), n=(0, 2)), "n must be"),
     (lambda: losses(names=["l1"]), "names must be"),
     (lambda: optimizers(names=["rmsprop"]), "names must be"),
     (lambda: optimizers(lr=-1.0), "lr must be"),
     (lambda: optimizers(weight_decay=-0.1), "weight_decay")],
)
def test_invalid_strategy_arguments_raise_invalid_argument_naming_the_value(make, fragment):
    with pytest.raises(InvalidArgument) as info:
        make()
    assert fragment in str(info.value)
