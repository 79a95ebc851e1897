import autograd
import numpy as np
import pytest

from flowlaws.errors import InvalidArgument
from flowlaws.losses import LOSSES, loss

SPECS = ["square", "square:reduction=sum", "logistic", "cross_entropy", "huber:delta=0.5",
         "smooth:a=1,b=0.5,c=0.3,d=0.1"]


def _targets(lossf, rng, shape):
    if lossf.targets == "sign":
        return np.sign(rng.normal(size=shape)) + 0.0
    if lossf.targets == "probabilities":
        raw = rng.uniform(size=shape)
        return raw / raw.sum(axis=1, keepdims=True)
    return rng.normal(size=shape)


@pytest.mark.parametrize("spec", SPECS)
def test_closed_form_gradient_matches_autograd(spec, rng):
    lossf = loss(spec)
    pred = rng.normal(size=(5, 3)) * 2
    Y = _targets(lossf, rng, (5, 3))
    value, grad = lossf.value_and_grad(pred, Y)
    assert value == lossf.value(pred, Y)  # numpy evaluates what autograd differentiates, bit for bit
    assert np.allclose(grad, autograd.grad(lambda p: lossf.value(p, Y))(pred), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("spec", SPECS)
def test_loss_spec_round_trips(spec):
    assert loss(loss(spec).spec) == loss(spec)


def test_every_registered_loss_has_a_spec_in_the_table():
    assert {s.split(":")[0] for s in SPECS} == set(LOSSES)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("sqare", "did you mean 'square'"), ("huber:delta=-1", "delta must be"),
     ("huber:dleta=1", "did you mean 'delta'"), ("square:reduction=max", "reduction must be"),
     ("smooth:a=0", "not all 0"), ("huber:delta", "needs a value"), ("huber:delta=abc", "not a valid")],
)
def test_bad_loss_specs_raise_invalid_argument(spec, fragment):
    with pytest.raises(InvalidArgument) as info:
        loss(spec)
    assert fragment in str(info.value)


def test_cross_entropy_gradient_magnitude_bounds_the_terms_that_cancel(rng):
    from flowlaws.losses import CrossEntropy

    loss, p = CrossEntropy(), rng.normal(size=(4, 3)) * 5
    y = rng.dirichlet(np.ones(3), size=4)
    _, grad = loss.value_and_grad(p, y)
    magnitude = loss.gradient_magnitude(p, y)
    assert np.all(magnitude >= np.abs(grad))
    assert np.all(magnitude.sum(axis=1) >= 2 * y.sum(axis=1) / 4 - 1e-15)  # softmax and y each sum to 1 (mean)
