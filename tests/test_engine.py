import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flowlaws.engine import gradient_and_magnitude, gradient_field, value_and_grad
from flowlaws.errors import Unrepresentable
from flowlaws.losses import Square
from flowlaws.models import flatten, parse
from flowlaws.strategies import architectures, datasets, losses, params


@given(st.data())
def test_gradient_magnitude_bounds_the_gradient_everywhere_for_every_architecture_kind(data):
    model = data.draw(architectures(activations=("relu", "leaky_relu", "tanh", "linear")))
    p = data.draw(params(model))  # signed: negative gains and projections must not make a bound negative
    loss = data.draw(losses())
    X, Y = data.draw(datasets(model, loss=loss, n=(2, 4), generic=True))
    try:
        _, grads, magnitude = gradient_and_magnitude(model, loss, p, X, Y)
    except Unrepresentable:
        assume(False)  # a constant normalization group
    for g, m in zip(grads, magnitude, strict=True):
        assert np.all(m >= 0) and np.all(m >= np.abs(g) * (1 - 1e-12))


@pytest.mark.parametrize("spec", ["seq:2x2:conv1d(2,1,bias),batchnorm(affine),relu,flatten,dense(3,bias)",
                                  "seq:3x3:attention(heads=1,dk=2,dv=1),layernorm(affine),flatten,dense(2)",
                                  "seq:3x2:attention(heads=2,dk=2,dv=1),flatten,dense(2)"])
def test_gradient_magnitude_is_non_negative_with_negative_gains_and_projections(spec, rng):
    model = parse(spec)
    p = tuple(-np.abs(q) - 0.5 for q in model.init(rng))
    X, Y = rng.normal(size=(3, *model.input_shape)), rng.normal(size=(3, *model.output_shape))
    _, grads, magnitude = gradient_and_magnitude(model, Square(), p, X, Y)
    for g, m in zip(grads, magnitude, strict=True):
        assert np.all(m >= 0) and np.all(m >= np.abs(g) * (1 - 1e-12))


def test_gradient_field_is_minus_the_flat_gradient_plus_decay(rng):
    model = parse("mlp:2-3-1:relu")
    p = model.init(rng)
    X, Y = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    _, grads = value_and_grad(model, Square(), p, X, Y)
    field = gradient_field(model, Square(), X, Y, weight_decay=0.5)
    assert np.allclose(field(flatten(p)), -flatten(grads) - 0.5 * flatten(p))
