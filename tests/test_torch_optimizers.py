"""flowlaws.torch.optimizers: a torch optimizer's next step, read from its settings and state,
is torch's own step: Delta = -c g + a state + b theta."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from flowlaws.errors import InvalidArgument  # noqa: E402
from flowlaws.torch.optimizers import group_settings, shared_settings, step_coefficients  # noqa: E402


def _stepped(optimizer, started: bool, seed: int):
    """(Delta, g, theta, the momentum buffer or None) of one step of ``optimizer`` (a
    class and its settings) on a float64 parameter; ``started``: after one step already."""
    make, options = optimizer
    generator = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(7, dtype=torch.float64, generator=generator))
    opt = make([p], **options)
    if started:
        p.grad = torch.randn(7, dtype=torch.float64, generator=generator)
        opt.step()
    p.grad = g = torch.randn(7, dtype=torch.float64, generator=generator)
    theta = p.detach().clone()
    buffer = opt.state.get(p, {}).get("momentum_buffer")
    buffer = None if buffer is None else buffer.clone()
    coefficients = step_coefficients(type(opt).__name__, group_settings(opt)[0], buffer is not None)
    opt.step()
    return p.detach() - theta, g, theta, buffer, coefficients


@settings(max_examples=60, deadline=None)
@given(lr=st.floats(1e-3, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 1e-3, 0.1]), started=st.booleans(),
       seed=st.integers(0, 2**16))
def test_an_sgd_step_is_minus_c_times_the_gradient_plus_its_rest(lr, momentum, dampening, nesterov, weight_decay,
                                                                  started, seed):
    assume(not nesterov or (momentum > 0 and dampening == 0))
    options = {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
               "weight_decay": weight_decay}
    delta, g, theta, buffer, (a, b, c) = _stepped((torch.optim.SGD, options), started, seed)
    rest = b * theta + (0.0 if buffer is None else a * buffer)
    # the step's round-off (the monitor's model: a few roundings of theta+, theta, Delta, rest)
    bound = 8 * torch.finfo(torch.float64).eps * (2 * theta.abs() + delta.abs() + rest.abs() + c * g.abs())
    assert ((delta - (-c * g + rest)).abs() <= bound).all()


@pytest.mark.parametrize("started", [False, True])
def test_adamws_decoupled_decay_is_its_rest_and_the_rest_of_its_step_is_adams(started):
    """AdamW's rest is its decay, -lr wd theta; what is left is Adam's preconditioned step
    from the same state (which the monitor does not predict, and flags)."""
    settings_ = {"lr": 0.05, "betas": (0.9, 0.99)}
    delta, _, theta, _, (a, b, c) = _stepped((torch.optim.AdamW, {**settings_, "weight_decay": 0.1}), started, 3)
    adam, *_ = _stepped((torch.optim.Adam, settings_), started, 3)
    assert (a, c) == (0.0, 0.0) and b == pytest.approx(-0.05 * 0.1)
    bound = 8 * torch.finfo(torch.float64).eps * (2 * theta.abs() + delta.abs())
    assert ((delta - b * theta - adam).abs() <= bound).all()


def test_maximizing_and_mixed_settings_are_refused_in_one_line():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(InvalidArgument, match="maximize=True ascends the loss"):
        group_settings(torch.optim.SGD([p], lr=0.1, maximize=True))
    q = torch.nn.Parameter(torch.zeros(2))
    mixed = torch.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    with pytest.raises(InvalidArgument, match="needs one set of hyperparameters"):
        shared_settings(mixed)
