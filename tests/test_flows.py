import numpy as np
import pytest

from flowlaws.errors import InvalidArgument
from flowlaws.flows import (
    GD,
    SGD,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    RMSProp,
    SignGD,
    Status,
    descend,
    dop853,
    implicit_midpoint,
    optimizer,
    rk4,
)
from flowlaws.flows.integrators import ANDERSON, MAX_SOLVE_ITERATIONS, _hopeless, _mixed
from flowlaws.invariants import laws
from flowlaws.losses import Square
from flowlaws.models import parse


@pytest.fixture
def problem(rng):
    model = parse("mlp:3-4-2:relu:bias")
    return model, model.init(rng), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))


def test_divergence_is_a_status_with_a_user_message_not_an_exception(problem):
    model, p, X, Y = problem
    run = descend(model, Square(), p, X * 100, Y, GD(50.0), 200)
    assert run.status is Status.DIVERGED
    assert "try a smaller step" in run.message and f"step {run.step}" in run.message
    assert all(np.all(np.isfinite(q)) for snapshot in run.params for q in snapshot)


@pytest.mark.parametrize("run", [lambda *a: descend(*a, GD(0.1), 4), lambda *a: implicit_midpoint(*a, 0.2, 4)])
def test_a_runs_losses_are_the_loss_at_each_snapshot_computed_on_first_use(problem, run):
    model, p, X, Y = problem
    trajectory = run(model, Square(), p, X, Y)
    assert "losses" not in vars(trajectory)  # the checks never pay for them
    expected = [Square().value(model.forward(q, X)[0], Y) for q in trajectory.params]
    assert np.array_equal(trajectory.losses, expected)


def test_gd_step_is_theta_minus_eta_gradient_with_coupled_decay(problem):
    model, p, X, Y = problem
    run = descend(model, Square(), p, X, Y, GD(0.1, weight_decay=0.2), 1)
    for before, after, g in zip(run.params[0], run.params[1], run.grads[0], strict=True):
        assert np.allclose(after, before - 0.1 * (g + 0.2 * before))


def test_decaying_schedule_follows_eta0_over_t_plus_one_to_the_power():
    opt = GD(0.5, power=0.75)
    assert opt.step_size(0) == 0.5 and np.isclose(opt.step_size(15), 0.5 / 16**0.75)


def test_sgd_is_seeded_and_uses_minibatches(problem):
    model, p, X, Y = problem
    a = descend(model, Square(), p, X, Y, SGD(0.1, batch_size=2, seed=3), 4)
    b = descend(model, Square(), p, X, Y, SGD(0.1, batch_size=2, seed=3), 4)
    c = descend(model, Square(), p, X, Y, GD(0.1), 4)
    assert all(np.array_equal(x, y) for x, y in zip(a.final, b.final, strict=True))
    assert not all(np.allclose(x, y) for x, y in zip(a.final, c.final, strict=True))


def test_momentum_and_adam_move_differently_from_gd(problem):
    model, p, X, Y = problem
    finals = [descend(model, Square(), p, X, Y, opt, 3).final
              for opt in (GD(0.05), Momentum(0.05, beta=0.9), Adam(0.05))]
    assert not np.allclose(finals[0][0], finals[1][0]) and not np.allclose(finals[0][0], finals[2][0])


def test_implicit_midpoint_conserves_the_law_far_better_than_rk4(rng):
    model = parse("mlp:3-5-2:linear")  # smooth flow: no kinks
    p, X, Y = model.init(rng), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    (unit, *_) = laws(model)
    mid = implicit_midpoint(model, Square(), p, X, Y, 1.0, 10)
    coarse = rk4(model, Square(), p, X, Y, 1.0, 5)
    drift = lambda run: np.max(np.abs(unit.value(run.final) - unit.value(p)))  # noqa: E731
    assert drift(mid) < 1e-13 < drift(coarse)


def test_a_solve_that_cannot_converge_is_halved_early_and_still_conserves_the_law(rng):
    model = parse("mlp:3-5-2:linear")
    p, X, Y = model.init(rng), 5 * rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    (unit, *_) = laws(model)
    run = implicit_midpoint(model, Square(), p, X, Y, 0.5, 1)  # h L > 1: the iteration diverges
    failed = len(run.times) - 2  # halving a step into L leaves took L - 1 failed solves
    assert run.ok and failed >= 4
    assert run.evaluations < failed * (MAX_SOLVE_ITERATIONS + 1)  # less than the failed solves alone, run out
    assert np.max(np.abs(unit.value(run.final) - unit.value(p))) < 1e-10 * np.max(np.abs(unit.value(p)))


@pytest.mark.parametrize(("misses", "hopeless"), [
    ([8e12, 4e12, 2e12, 1e12], True),      # halving per iteration: 40 more needed, past the budget
    ([1e9, 1e6, 1e3, 10.0], False),        # 1000x per iteration: converges next time
    ([5.0, 6.0, 5.5, 5.7], True),          # stagnating
    ([float("inf"), 1e300, 1e200, 1e100], False),  # an overflowed first residual, then fast
    ([float("inf")] * 4, True),            # inf / inf is no rate
    ([10.0, 5.0], False),                  # too few iterations to judge
])
def test_a_solve_is_hopeless_when_its_recent_rate_projects_past_the_budget(misses, hopeless):
    assert _hopeless(misses) is hopeless


def test_rk4_drift_shrinks_at_fourth_order_on_a_smooth_flow(rng):
    model = parse("mlp:3-5-2:linear")
    p, X, Y = model.init(rng), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    (unit, *_) = laws(model)
    drifts = [np.max(np.abs(unit.value(rk4(model, Square(), p, X, Y, 1.0, n).final) - unit.value(p)))
              for n in (4, 8)]
    assert 3.5 < np.log2(drifts[0] / drifts[1]) < 4.5


def test_dop853_reference_is_accurate_and_counts_evaluations(rng):
    model = parse("mlp:3-5-2:linear")
    p, X, Y = model.init(rng), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    run = dop853(model, Square(), p, X, Y, 1.0)
    ref = implicit_midpoint(model, Square(), p, X, Y, 1.0, 400)
    assert run.ok and run.evaluations > 10
    assert np.allclose(run.final[0], ref.final[0], atol=1e-4)


def test_dop853_stops_at_its_evaluation_budget(problem):
    model, p, X, Y = problem
    run = dop853(model, Square(), p, X, Y, 50.0, max_evaluations=30)
    assert run.status is Status.MAX_STEPS and "raise max_evaluations" in run.message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("gd:lr=0", "lr must be finite and > 0"), ("gd:lr=nan", "lr must be"),
     ("gd:lr=inf", "lr must be"), ("gd:lr=0.1,power=-1", "power must be"),
     ("momentum:lr=0.1,beta=1.5", "beta must be"), ("adm:lr=0.1", "did you mean 'adam'"),
     ("gd:lr=0.1,wd=-1", "weight_decay"), ("sgd:lr=0.1,batch=0", "batch must be"),
     ("gd:rate=0.1", "unknown option"), ("rmsprop:rho=1", "rho must be"), ("rmsprop:eps=0", "eps must be"),
     ("nesterov:beta=-0.1", "beta must be")],
)
def test_bad_optimizer_specs_raise_invalid_argument(spec, fragment):
    with pytest.raises(InvalidArgument) as info:
        optimizer(spec)
    assert fragment in str(info.value)


def test_optimizer_specs_round_trip():
    for spec in ("gd:lr=0.1", "gd:lr=0.1,power=0.75,weight_decay=0.01", "sgd:lr=0.05,batch_size=4,seed=2",
                 "momentum:lr=0.01,beta=0.5", "adam:lr=0.01", "nesterov:lr=0.1,beta=0.5",
                 "rmsprop:lr=0.1,rho=0.9", "signgd:lr=0.1"):
        assert optimizer(optimizer(spec).spec) == optimizer(spec)


@pytest.mark.parametrize(("name", "lr"), [("gd", 0.01), ("sgd", 0.01), ("momentum", 0.01), ("nesterov", 0.01),
                                          ("adam", 0.001), ("rmsprop", 0.01), ("signgd", 0.001)])
def test_a_bare_optimizer_name_uses_the_documented_defaults(name, lr):
    assert optimizer(name).lr == lr and optimizer(name).spec == name


def _two_steps(opt, grads):
    params = (np.array([1.0, -2.0]),)
    state = opt.init(params)
    deltas = []
    for t, g in enumerate(grads):
        delta, state = opt.update((np.asarray(g),), params, state, t)
        deltas.append(delta[0])
    return deltas


def test_nesterov_steps_along_the_gradient_plus_beta_times_the_buffer():
    first, second = _two_steps(optimizer("nesterov:lr=0.1,beta=0.5"), [[1.0, 2.0], [3.0, -1.0]])
    assert np.allclose(first, -0.1 * (np.array([1.0, 2.0]) + 0.5 * np.array([1.0, 2.0])))
    buffer = 0.5 * np.array([1.0, 2.0]) + np.array([3.0, -1.0])
    assert np.allclose(second, -0.1 * (np.array([3.0, -1.0]) + 0.5 * buffer))


def test_rmsprop_divides_by_the_running_rms_and_signgd_takes_signs():
    first, second = _two_steps(optimizer("rmsprop:lr=0.1,rho=0.5,eps=1e-12"), [[2.0, -4.0], [2.0, -4.0]])
    assert np.allclose(first, -0.1 * np.array([2.0, -4.0]) / np.sqrt(0.5 * np.array([4.0, 16.0])))
    assert np.allclose(second, -0.1 * np.array([2.0, -4.0]) / np.sqrt(0.75 * np.array([4.0, 16.0])))
    (step,) = _two_steps(optimizer("signgd:lr=0.1"), [[3.0, -0.5]])
    assert np.allclose(step, [-0.1, 0.1])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_flow_times_must_be_finite_and_positive(problem, bad):
    model, p, X, Y = problem
    with pytest.raises(InvalidArgument, match="flow time T"):
        rk4(model, Square(), p, X, Y, bad, 4)


def test_anderson_mixing_solves_a_linear_fixed_point_in_as_many_steps_as_its_dimension():
    rng = np.random.default_rng(1)
    A = 0.9 * np.linalg.qr(rng.normal(size=(3, 3)))[0]  # contraction w -> A w + b, slow alone
    b = rng.normal(size=3)
    fixed = np.linalg.solve(np.eye(3) - A, b)
    where, before, secants = np.zeros(3), None, []
    for _ in range(5):  # m = 3 secants span the space: the next point is exact
        image = A @ where + b
        residual = image - where
        if before is not None:
            secants = [*secants, (image - before[0], residual - before[1])][-ANDERSON:]
        where, before = _mixed(image, residual, secants), (image, residual)
    assert np.allclose(where, fixed, atol=1e-10)


@pytest.mark.parametrize("opt", [GD(0.1, weight_decay=0.2), SGD(0.05, weight_decay=0.1), Momentum(0.1, beta=0.9),
                                 Momentum(0.1, beta=0.5, dampening=0.3, weight_decay=0.2),
                                 Nesterov(0.1, beta=0.9, weight_decay=0.1), GD(0.1, power=0.5, weight_decay=0.1)],
                         ids=lambda o: o.spec)
def test_every_step_is_its_declared_rest_minus_its_coefficient_times_the_gradient(problem, opt):
    model, p, X, Y = problem
    run = descend(model, Square(), p, X, Y, opt, 4)
    for t in range(4):
        rest, c = opt.rest(run.params[t], run.states[t], t)
        for before, after, g, r in zip(run.params[t], run.params[t + 1], run.grads[t], rest, strict=True):
            assert np.allclose(after - before, -c * g + r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt", [GD(0.1, weight_decay=0.2), Momentum(0.1, beta=0.5, dampening=0.3, weight_decay=0.2),
                                 Nesterov(0.1, beta=0.9, weight_decay=0.1), GD(0.1, power=0.5, weight_decay=0.1),
                                 Adam(0.01, weight_decay=0.1), AdamW(0.01, weight_decay=0.5), RMSProp(0.01)],
                         ids=lambda o: o.spec)
@pytest.mark.parametrize("t", [0, 1, 3])
def test_every_rest_is_linear_in_the_state_and_theta_with_the_coefficients_of_unit_scalars(problem, opt, t):
    # the PyTorch monitor writes the rest as a state + b theta from the rest at (0, 1) and (1, 0)
    _, p, _, _ = problem
    state = tuple(np.random.default_rng(t).normal(size=x.shape) for x in p)
    rest, c = opt.rest(p, state, t)
    (b,), c_b = opt.rest((1.0,), (0.0,), t)
    (a,), c_a = opt.rest((0.0,), (1.0,), t)
    assert c == c_b == c_a
    for r, x, v in zip(rest, p, state, strict=True):
        assert np.allclose(r, a * v + b * x, rtol=1e-14, atol=0)


@pytest.mark.parametrize("opt", [Adam(0.01), Adam(0.01, weight_decay=0.1), RMSProp(0.01), SignGD(0.01)],
                         ids=lambda o: o.spec)
def test_a_preconditioned_step_declares_no_gradient_coefficient(problem, opt):
    _, p, _, _ = problem
    rest, c = opt.rest(p, opt.init(p), 0)
    assert c is None and all(not np.any(r) for r in rest)


def test_adamw_decays_theta_apart_from_its_adam_step(problem):
    model, p, X, Y = problem
    plain = descend(model, Square(), p, X, Y, Adam(0.01), 1)
    decoupled = descend(model, Square(), p, X, Y, AdamW(0.01, weight_decay=0.5), 1)
    rest, c = AdamW(0.01, weight_decay=0.5).rest(p, None, 0)
    assert c is None
    for a, b, r in zip(plain.params[1], decoupled.params[1], rest, strict=True):
        assert np.allclose(b - a, r)  # the decay, -eta lambda theta, added to Adam's own step
