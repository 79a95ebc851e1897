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


def _leaves(pattern):
    if isinstance(pattern, tuple):
        return [leaf for part in pattern for leaf in _leaves(part)]
    return [pattern]


@given(st.data())
def test_the_field_at_a_point_is_the_field_frozen_at_its_own_pattern_bit_for_bit(data):
    model = data.draw(architectures(activations=("relu", "leaky_relu", "abs", "tanh", "linear")))
    p = data.draw(params(model))
    loss = data.draw(losses())
    X, Y = data.draw(datasets(model, loss=loss, n=(2, 4), generic=True))
    field = gradient_field(model, loss, X, Y)
    try:
        value, pattern = field.with_pattern(flatten(p))
    except Unrepresentable:
        assume(False)  # a constant normalization group
    assert np.array_equal(value, field(flatten(p), pattern), equal_nan=True)
    for a, b in zip(_leaves(pattern), _leaves(model.pattern(p, X)), strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_a_max_pool_tie_of_three_gives_the_same_output_live_and_frozen():
    model = parse("seq:1x3:maxpool1d(3),flatten,dense(1)")
    p, X = (np.ones((1, 1)),), np.full((1, 1, 3), 2.9)  # its weighted sum 3 x (2.9 x fl(1/3)) is 2.9 less 1 ulp
    out, cache = model.forward(p, X)
    frozen, _ = model.forward(p, X, model.pattern_of(cache))
    assert np.array_equal(out, frozen) and np.allclose(model.pattern_of(cache)[0], 1 / 3)
