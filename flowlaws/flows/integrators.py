"""Gradient flow d theta/dt = -grad L(theta), integrated three ways.

- `dop853`: scipy's Dormand-Prince 8(5,3) (``solve_ivp``), the high-order reference.
  Its defaults (rtol 1e-3) are far too loose for conservation checks; we use
  rtol = 1e-12 and atol = 1e-14 unless told otherwise.
- `rk4`: classical fourth-order Runge-Kutta with a fixed step (for order studies).
- `implicit_midpoint`: theta+ = theta + h F(m), m = (theta + theta+)/2. It conserves
  every quadratic invariant Q with B(theta, grad L(theta)) = 0 exactly, whatever h:
  Q(theta+) - Q(theta) = 2 B(m, theta+ - theta) = -2h B(m, grad L(m)) = 0. The implicit
  equation is solved by fixed-point iteration on the midpoint, w = y + (h/2) F(w), with
  Anderson(5) mixing (the last five secants of the residual pick the next point by least
  squares: a quarter fewer gradients than one secant on normalization and attention
  nets), until the last evaluation's residual
  is within 8 ulp of every coordinate's own size (``SOLVE_ULPS``; entrywise, so that huge
  entries cannot hide an unconverged small one). Within a step the
  activation pattern (ReLU-family slopes, max-pool winners) is frozen at the
  predicted midpoint: with live kinks the iteration can cycle (the gradient jumps and
  no exact solution exists), while the frozen network is smooth and keeps every
  rescaling symmetry, so the step still conserves Q exactly; where a kink is crossed
  inside a step, that step follows the one-sided gradient (a first-order local error
  in theta, none in Q). Kinks inside residual blocks are frozen too. A step whose
  solve has not converged after ``MAX_SOLVE_ITERATIONS`` (or whose rate over its last
  ``RATE_WINDOW`` iterations says it cannot by then) is retried as two half steps
  (up to ``MAX_HALVINGS`` times), then taken from the last iterate if the solve has
  stalled at round-off (within ``STALLED``); otherwise the run ends UNRESOLVED (a
  check calls the case invalid rather than judge it by a vacuous bound). Either way the
  step records ``solve_errors[k] = |m_k - (theta_k + theta_k+1)/2|`` entrywise, the
  distance between where the gradient was evaluated and the true midpoint. The drift of Q
  in that step is then exactly 2 B(midpoint - m_k, theta+ - theta), so
  |drift| <= 2 sum |S| solve_errors[k] |theta+ - theta| (used by the checks).
"""

from __future__ import annotations

import math

import numpy as np

from flowlaws.engine import gradient_field
from flowlaws.flows.trajectory import Status, Trajectory
from flowlaws.models.layer import REALMIN
from flowlaws.models.symmetry import flatten, unflatten
from flowlaws.validation import positive, positive_int

SOLVE_ULPS = 8
MAX_SOLVE_ITERATIONS = 40
ANDERSON = 5
RATE_WINDOW = 3  # a solve whose last 3 iterations project past MAX_SOLVE_ITERATIONS is halved
MAX_HALVINGS = 4
STALLED = 1e-10  # a solve still short of SOLVE_ULPS but within this of every entry (relative)
# has stalled at round-off and is accepted with its error bound; one further away in any
# entry makes the run UNRESOLVED


def _check(T: float, steps: int | None = None) -> None:
    positive("", "flow time T", T)
    if steps is not None:
        positive_int("flow", "steps", steps)


class _Counted:
    """The gradient field, counting evaluations and remembering the loss."""

    def __init__(self, model, loss, X, Y, weight_decay=0.0):
        self.field = gradient_field(model, loss, X, Y, weight_decay)
        self.count = 0

    def __call__(self, vector, pattern=None):
        self.count += 1
        return self.field(vector, pattern)

    def with_pattern(self, vector):
        self.count += 1
        return self.field.with_pattern(vector)


def _trajectory(model, loss, X, Y, vectors, times, counted, method, status=Status.OK, step=None,
                solve_errors=None, patterns=None):
    shapes = [shape for _, shape in model.param_specs]
    params = [unflatten(v, shapes) for v in vectors]
    def losses():
        return np.array([loss.value(model.forward(p, X)[0], Y) for p in params])

    return Trajectory(np.asarray(times, dtype=float), params, losses, counted.count, status, step,
                      solve_errors=solve_errors, method=method, patterns=patterns)


def _finite(vector) -> bool:
    return bool(np.all(np.isfinite(vector)))


class _Budget(Exception):
    pass


def dop853(model, loss, params, X, Y, T: float, *, rtol: float = 1e-10, atol: float = 1e-12,
           record: int = 11, max_evaluations: int = 20_000) -> Trajectory:
    """Reference flow by scipy's DOP853; ``record`` equally spaced snapshots.

    ReLU kinks make the field discontinuous, so the step control shrinks at every
    crossing: the run stops with status MAX_STEPS after ``max_evaluations``.
    """
    from scipy.integrate import solve_ivp  # 0.4 s of import: only the reference flow pays it

    _check(T)
    counted = _Counted(model, loss, X, Y)
    times = np.linspace(0.0, T, record)

    def field(t, y):
        if counted.count >= max_evaluations:
            raise _Budget
        return counted(y)

    try:
        result = solve_ivp(field, (0.0, T), flatten(params), method="DOP853", t_eval=times,
                           rtol=rtol, atol=atol)
    except _Budget:
        return _trajectory(model, loss, X, Y, [flatten(params)], times[:1], counted, "dop853",
                           Status.MAX_STEPS, counted.count)
    vectors = list(result.y.T)
    status = Status.OK if result.success and _finite(result.y) else Status.DIVERGED
    step = None if status is Status.OK else len(vectors)
    keep = [v for v in vectors if _finite(v)]
    return _trajectory(model, loss, X, Y, keep, times[: len(keep)], counted, "dop853", status, step)


def _fixed_step(model, loss, params, X, Y, T, steps, step_fn, method, weight_decay=0.0):
    _check(T, steps)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported as a status
        return _steps(model, loss, params, X, Y, T, steps, step_fn, method, weight_decay)


def _steps(model, loss, params, X, Y, T, steps, step_fn, method, weight_decay):
    """Take ``steps`` equal steps; a step whose implicit solve did not converge is
    retried as two half steps (at most MAX_HALVINGS times), and every accepted step
    is recorded with its own time."""
    counted = _Counted(model, loss, X, Y, weight_decay)
    vectors, times, errors, patterns = [flatten(params)], [0.0], [], []
    pending = [(T / steps, 0)] * steps
    while pending:
        h, depth = pending.pop(0)
        new, error, converged, pattern = step_fn(counted, vectors[-1], h)
        if not converged and depth < MAX_HALVINGS and _finite(new):
            pending[:0] = [(h / 2, depth + 1)] * 2
            continue
        if not _finite(new):
            return _trajectory(model, loss, X, Y, vectors, times, counted, method, Status.DIVERGED,
                               len(vectors), np.array(errors), patterns)
        if not converged and np.any(error > STALLED * (np.abs(new) + np.abs(vectors[-1])) + REALMIN):
            return _trajectory(model, loss, X, Y, vectors, times, counted, method, Status.UNRESOLVED,
                               len(vectors), np.array(errors), patterns)
        vectors.append(new)
        times.append(times[-1] + h)
        errors.append(error)
        patterns.append(pattern)
    return _trajectory(model, loss, X, Y, vectors, times, counted, method, solve_errors=np.array(errors),
                       patterns=patterns)


def _rk4_step(f, y, h):
    k1 = f(y)
    k2 = f(y + 0.5 * h * k1)
    k3 = f(y + 0.5 * h * k2)
    k4 = f(y + h * k3)
    return y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4), np.zeros_like(y), True, None


def _midpoint_step(f, y, h):
    """Solve w = G(w) = y + (h/2) F(w) for the midpoint w (F with the pattern frozen at the
    Euler prediction) by fixed-point iteration with Anderson mixing; return
    theta+ = 2 G(w) - y, the entrywise solve error |w - (y + theta+)/2| = |G(w) - w| of
    the last evaluation, whether every entry converged to SOLVE_ULPS, and the pattern
    (the network whose gradient the step took: its round-off is judged on it)."""
    euler = y + h * f(y)
    where = 0.5 * (y + euler)  # the first guess: the midpoint of the Euler step
    value, pattern = f.with_pattern(where)  # the pattern is frozen for the whole step
    floor = SOLVE_ULPS * np.finfo(float).eps
    before, secants, misses = None, [], []
    for iteration in range(MAX_SOLVE_ITERATIONS):
        if iteration:
            value = f(where, pattern)
        image = y + 0.5 * h * value
        new = 2.0 * image - y
        if not _finite(new):
            return new, np.full_like(y, np.inf), False, pattern
        residual = image - where
        misses.append(float(np.max(2.0 * np.abs(residual) / (floor * (np.abs(new) + np.abs(y)) + REALMIN))))
        if misses[-1] <= 1.0:
            return new, np.abs(residual), True, pattern
        if _hopeless(misses):
            break
        if before is not None:  # the newest secant: (change of image, change of residual)
            secants = [*secants, (image - before[0], residual - before[1])][-ANDERSON:]
        where, before = _mixed(image, residual, secants), (image, residual)
    return new, np.abs(residual), False, pattern


def _hopeless(misses, window=RATE_WINDOW):
    """Whether the solve, contracting at its rate over the last ``window`` iterations
    (``misses``: how far each iteration's residual is from SOLVE_ULPS), cannot converge within
    MAX_SOLVE_ITERATIONS: then the step is halved at once rather than after them all."""
    if len(misses) <= window:
        return False
    rate = (misses[-1] / misses[-1 - window]) ** (1.0 / window)  # every miss is > 1
    if not rate < 1.0:  # not contracting (or inf / inf)
        return True
    return rate > 0.0 and len(misses) + math.log(misses[-1]) / -math.log(rate) > MAX_SOLVE_ITERATIONS


def _mixed(image, residual, secants):
    """Anderson(m): the combination of the last m + 1 images whose residual, predicted by the
    last m secants (least squares), is least; the plain image when the secants are
    degenerate. Only the next point changes: each step is judged on the residual of its
    own last evaluation."""
    if not secants:
        return image
    if len(secants) == 1:  # the secant's own formula: no linear solve
        dG1, dR1 = secants[0]
        norm = float(dR1 @ dR1)
        return image - (float(dR1 @ residual) / norm) * dG1 if norm > 0 else image
    dG, dR = (np.stack(part, axis=1) for part in zip(*secants, strict=True))
    try:
        gamma = np.linalg.solve(dR.T @ dR, dR.T @ residual)
    except np.linalg.LinAlgError:
        return image
    return image - dG @ gamma if np.all(np.isfinite(gamma)) else image


def rk4(model, loss, params, X, Y, T: float, steps: int, *, weight_decay: float = 0.0) -> Trajectory:
    """Classical RK4 with ``steps`` equal steps (4 gradient evaluations each)."""
    return _fixed_step(model, loss, params, X, Y, T, steps, _rk4_step, "rk4", weight_decay)


def implicit_midpoint(model, loss, params, X, Y, T: float, steps: int, *,
                      weight_decay: float = 0.0) -> Trajectory:
    """Implicit midpoint rule (symplectic; conserves quadratic invariants exactly).

    With ``weight_decay`` lambda the field is -grad L - lambda theta and each step
    satisfies Q(theta+) - Q(theta) = -2 h lambda Q(m) exactly.
    """
    return _fixed_step(model, loss, params, X, Y, T, steps, _midpoint_step, "implicit_midpoint",
                       weight_decay)


INTEGRATORS = {"dop853": dop853, "rk4": rk4, "implicit_midpoint": implicit_midpoint}
