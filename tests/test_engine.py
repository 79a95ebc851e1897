import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowlaws.engine import gradient_and_magnitude, gradient_field, value_and_grad
from flowlaws.losses import Square
from flowlaws.models import flatten, parse
from flowlaws.strategies import architectures, datasets, params


@given(st.data())
def test_gradient_magnitude_bounds_the_gradient_everywhere(data):
    model = data.draw(architectures(kinds=("mlp", "conv1d", "residual", "factorization")))
    p = data.draw(params(model))
    X, Y = data.draw(datasets(model))
    _, grads, magnitude = gradient_and_magnitude(model, Square(), p, X, Y)
    for g, m in zip(grads, magnitude, strict=True):
        assert np.all(m >= np.abs(g) * (1 - 1e-12))


def test_gradient_field_is_minus_the_flat_gradient_plus_decay(rng):
    model = parse("mlp:2-3-1:relu")
    p = model.init(rng)
    X, Y = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    _, grads = value_and_grad(model, Square(), p, X, Y)
    field = gradient_field(model, Square(), X, Y, weight_decay=0.5)
    assert np.allclose(field(flatten(p)), -flatten(grads) - 0.5 * flatten(p))
