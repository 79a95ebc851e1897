"""Scenario -> Evidence -> Verdict, at three levels, with one tolerance model.

Tolerance model
---------------
Every residual is compared with ``tolerance(M, n) = gamma(n) * M + SAFETY * n * tiny``,
where M is the *magnitude* of the terms that produced it (the same sums with every
term replaced by its absolute value), gamma(n) = SAFETY * n * eps is Higham's bound
gamma_n = n u / (1 - n u) (u = eps/2) for n accumulated roundings, with SAFETY = 4,
and ``tiny`` (the smallest subnormal) bounds the absolute error each operation can
make when its result underflows (Higham, eq. 2.8): weights near 1e-308 are legal. A
step's own entries underflow too, and a law weighs them by |theta| (`stepped_underflow`).
n is the number of parameters plus the batch size: a bound on the length of any chain
of floating-point sums behind one residual. For the gradient, M uses the magnitude sweep
(`flowlaws.engine.gradient_and_magnitude`), so cancellation inside the gradient
cannot cause a false alarm. Nothing else is tuned per test. The effect size of a
residual r is |r| / (gamma(n) M): <= 1 is round-off, and a broken law shows an effect
of 1e6 and more.

Levels
------
- ``pointwise``: B(theta, grad L(theta)) = 0 (docs/theory.md 3.1).
- ``step``: every optimizer step of a run, Q(theta+) - Q(theta) against the
  theorem's prediction, split as 2B(theta, Delta) (first order: a broken symmetry) +
  Q(Delta) (second order: discretization) (docs/theory.md 3.3).
- ``flow``: gradient flow by the implicit midpoint rule, which conserves Q exactly
  step by step when the law holds; the tolerance adds the solve error bound, and takes
  the gradient's magnitude from the network each step froze (its activation pattern). An RK4
  refinement (n and 2n steps) reports the observed order of the drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from flowlaws.engine import gradient_and_magnitude, gradient_magnitude
from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.flows import descend, implicit_midpoint, rk4
from flowlaws.invariants.stacked import Stacked, stacked
from flowlaws.models.symmetry import flatten, flatten_rows, parameter_count, unflatten

EPS = float(np.finfo(np.float64).eps)
SAFETY = 4.0


TINY = float(np.finfo(np.float64).smallest_subnormal)


def gamma(n: int) -> float:
    """SAFETY * n * eps: the relative error bound for n accumulated roundings."""
    return SAFETY * n * EPS


def tolerance(magnitude, n: int):
    """gamma(n) * magnitude + SAFETY * n * tiny: round-off plus underflow for n operations."""
    return gamma(n) * magnitude + SAFETY * n * TINY


def stepped_underflow(stack, theta):
    """The absolute error a step's entries carry into a law's first-order form: each entry
    of theta+ - theta is an operation's result (eta g, then theta - eta g), which errs by up
    to tiny when it underflows, whatever eta is, and the bilinear form weighs it by |theta|:
    SAFETY * first_magnitude(|theta|, tiny) (a gd-step false alarm at 1e-321 without it:
    tests/regressions/gd-step-underflow-weighed-by-a-large-weight.json)."""
    return SAFETY * stack.first_magnitude(np.abs(theta), np.full_like(theta, TINY))


def accumulation_length(model, X) -> int:
    """n of the tolerance model: parameter count plus batch size."""
    return parameter_count(model) + len(X)


def effect_size(residual, tolerance):
    """|residual| / tolerance elementwise (0/0 counts as 0, r/0 as inf)."""
    r, t = np.broadcast_arrays(np.abs(np.asarray(residual, float)), np.asarray(tolerance, float))
    effect = np.where(r > 0, np.inf, 0.0)
    return np.divide(r, t, out=effect, where=t > 0)


@dataclass(frozen=True)
class Evidence:
    """The worst component of a check: where it was, its size and its tolerance."""

    level: str
    law: str
    unit: tuple
    residual: float
    tolerance: float
    effect: float
    where: str = ""
    first_order: float | None = None
    second_order: float | None = None
    observed_order: float | None = None
    series: tuple = ()

    @property
    def attribution(self) -> str:
        """Which part of Delta Q = 2B(theta, Delta) + Q(Delta) the residual comes from."""
        if self.first_order is None:
            return ""
        first, second = abs(self.first_order), abs(self.second_order or 0.0)
        if self.effect <= 1:
            return "within round-off"
        return "first order: the symmetry is broken" if first >= second else "second order: discretization"

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["unit"] = list(self.unit)
        data["series"] = list(self.series)
        data["attribution"] = self.attribution
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}


NO_EVIDENCE = Evidence("none", "", (), 0.0, 0.0, 0.0)


def _stack(model, law_list) -> Stacked:
    """The laws as one component vector (`flowlaws.invariants.stacked`), cached per model shape."""
    return stacked(tuple(law_list), tuple(tuple(shape) for _, shape in model.param_specs))


def _worst(level, stack, residual, tolerance, per_law=None, **extra: Any) -> Evidence:
    """The component with the largest effect size, as Evidence naming its law and unit;
    ``extra`` arrays are read at that component, ``per_law(law)`` adds fields of its law."""
    bad = ~(np.isfinite(residual) & np.isfinite(tolerance))
    if np.any(bad):
        law, _ = stack.locate(int(np.argmax(bad)))
        raise Unrepresentable(f"{level} check of {law.name}: a gradient, loss or law value overflowed "
                              "float64 (inf or NaN); the case cannot be decided")
    effect = effect_size(residual, tolerance)
    index = int(np.argmax(effect))
    law, unit = stack.locate(index)
    pick = lambda a: float(np.asarray(a, float)[index]) if np.ndim(a) else float(a)  # noqa: E731
    picked: dict[str, Any] = {k: (pick(v) if isinstance(v, np.ndarray | float | np.floating) else v)
                              for k, v in extra.items()}
    return Evidence(level, law.name, unit, pick(residual), pick(tolerance), float(effect[index]),
                    **picked, **(per_law(law) if per_law else {}))


def worst(evidence) -> Evidence:
    """The piece of evidence with the largest effect size."""
    return max(evidence, key=lambda e: e.effect, default=NO_EVIDENCE)


def pointwise(model, loss, params, X, Y, law_list) -> Evidence:
    """Level 1: the Euler identity B(theta, grad L) = 0, every law and component."""
    stack = _stack(model, law_list)
    _, grads, magnitude = gradient_and_magnitude(model, loss, params, X, Y)
    theta = flatten(params)
    return _worst(Level.POINTWISE, stack, stack.first(theta, flatten(grads)),
                  tolerance(stack.first_magnitude(np.abs(theta), flatten(magnitude)), accumulation_length(model, X)))


# --- step level ----------------------------------------------------------------------------
# A prediction takes the laws (a `Stacked`: every component at once) and flat vectors:
# theta, the step delta, the gradient, and the step's rest (`Optimizer.rest`: what does not
# multiply the gradient); then the step size.

def predict_gd(law, theta, delta, grad, rest, eta):
    """GD / SGD: Delta Q = eta^2 Q(g) (docs/theory.md 3.3); a linear law does not move."""
    return eta**2 * law.second(grad)


def predict_second_order(law, theta, delta, grad, rest, eta):
    """The law holds up to discretization: Delta Q = Q(Delta) (first order zero)."""
    return law.second(delta)


def predict_by_optimizer(law, theta, delta, grad, rest, eta):
    """The prediction the optimizer declares (`flowlaws.flows.optimizers`): Delta = -c g +
    rest, so Delta h = Dh(theta)[rest] + second(Delta) (coupled decay, heavy ball, Nesterov;
    docs/theory.md 6.1-6.4). A preconditioned step (Adam) is predicted without its gradient
    term, and departs at first order."""
    return law.first(theta, rest) + law.second(delta)


PREDICTIONS = {
    "gd": predict_gd,
    "second-order": predict_second_order,
    "optimizer": predict_by_optimizer,
}


def steps(model, loss, X, Y, run, law_list, opt, prediction: str) -> Evidence:
    """Level 2: every step of an optimizer run against ``PREDICTIONS[prediction]``."""
    predict, stack = PREDICTIONS[prediction], _stack(model, law_list)
    n = accumulation_length(model, X)
    points = flatten_rows(run.params)  # one row per point
    values, own = stack.value(points), stack.magnitude(np.abs(points), np.abs(points))
    found = []
    for k in range(len(points) - 1):
        theta, grad = points[k], flatten(run.grads[k])
        delta = points[k + 1] - theta
        rest = flatten(opt.rest(run.params[k], run.states[k], k)[0]) if prediction == "optimizer" else None
        rows = opt.batch(len(X), k)
        Xb, Yb = (X, Y) if rows is None else (X[rows], Y[rows])
        gmag = flatten(gradient_magnitude(model, loss, run.params[k], Xb, Yb))
        eta = opt.step_size(k)
        residual = values[k + 1] - values[k] - predict(stack, theta, delta, grad, rest, eta)
        scale = (own[k] + own[k + 1] + eta * stack.first_magnitude(np.abs(theta), gmag)
                 + eta**2 * stack.magnitude(np.abs(grad), gmag))
        found.append(_worst(Level.STEP, stack, residual, tolerance(scale, n) + stepped_underflow(stack, theta),
                            where=f"step {k}",
                            first_order=stack.first(theta, delta), second_order=stack.second(delta)))
    return worst(found)


def balance(model, X, run, law_list, opt) -> Evidence:
    """Balancing under GD (Cor 2.1, Fig. 2): the imbalance D = Q(theta) of a layer law
    obeys |D_T| <= |D_0| + sum_k eta_k^2 |Q(g_k)| (from the exact step identity), so
    ||W_h||^2 / ||W_h+1||^2 = 1 + D_T / ||W_h+1||^2 tends to 1 as the norms grow. The
    residual is the excess of |D_T| over that bound; the tolerance, the round-off of the
    steps (so a run whose gradient vanishes, D_T = D_0, sits at 0, not at the bound)."""
    stack, n = _stack(model, law_list), accumulation_length(model, X)
    first, last = run.params[0], run.final
    if run.grads:  # every step at once: one row per step
        grads = flatten_rows(run.grads)
        thetas = np.abs(flatten_rows(run.params[:len(grads)]))
        etas = np.array([opt.step_size(k) for k in range(len(grads))])
        gained = np.sum(etas[:, None] ** 2 * np.abs(stack.value(grads)), axis=0)
        roundoff = np.sum(tolerance(stack.magnitude(thetas, thetas), n), axis=0)
    else:
        gained, roundoff = 0.0, 0.0
    excess = np.maximum(np.abs(stack.value(flatten(last))) - (np.abs(stack.value(flatten(first))) + gained), 0.0)

    def where(law):
        in_norm = sum(float(np.sum(v.rows(last) ** 2)) for v in law.incoming)
        out_norm = sum(float(np.sum(v.rows(last) ** 2)) for v in law.outgoing)
        start = sum(float(np.sum(v.rows(first) ** 2)) for v in law.outgoing)
        return {"where": f"after {len(run.grads)} steps: ratio {in_norm / max(out_norm, 1e-300):.4f}, "
                         f"squared norm grew {out_norm / max(start, 1e-300):.3g}x"}

    return _worst(Level.BALANCE, stack, excess, roundoff, per_law=where)


def flow(model, loss, params, X, Y, law_list, T: float, n: int, weight_decay: float = 0.0,
         order: bool = True) -> Evidence:
    """Level 3: implicit-midpoint gradient flow conserves Q step by step (with weight
    decay lambda: Q+ - Q = -2 h lambda Q(midpoint)); for a failing law, RK4 at n and 2n
    steps gives the observed order of the drift (reported, not judged)."""
    run = implicit_midpoint(model, loss, params, X, Y, T, n, weight_decay=weight_decay)
    if not run.ok:
        raise InvalidArgument(f"gradient flow failed: {run.message}")
    stack, count = _stack(model, law_list), accumulation_length(model, X)
    points = flatten_rows(run.params)  # one row per point: every step at once
    taken = len(points) - 1  # steps, halved ones included
    errors = run.solve_errors if run.solve_errors is not None else np.zeros((taken, stack.D))
    patterns = run.patterns if run.patterns is not None else [None] * taken
    mids = 0.5 * (points[:-1] + points[1:])
    h = np.diff(run.times)[:, None]
    # the magnitude of the network each step took its gradient from (its frozen pattern)
    gmags = np.stack([flatten(gradient_magnitude(model, loss, unflatten(mid, stack.shapes), X, Y, pattern))
                      for mid, pattern in zip(mids, patterns, strict=True)])
    values, own = stack.value(points), stack.magnitude(np.abs(points), np.abs(points))
    a_mids = np.abs(mids)
    drift = values[1:] - values[:-1] + h * weight_decay * stack.first(mids, mids)
    scale = (tolerance(own[:-1] + own[1:] + h * stack.first_magnitude(a_mids, gmags)
                       + h * weight_decay * stack.first_magnitude(a_mids, a_mids), count)
             + stack.first_magnitude(np.abs(points[1:] - points[:-1]), errors) + stepped_underflow(stack, a_mids))
    evidence = _worst(Level.FLOW, stack, np.sum(drift, axis=0), np.sum(scale, axis=0),
                      where=f"t = {T:g} ({n} midpoint steps)",
                      per_law=lambda law: {"series": tuple(float(np.sum(stack.part(law, v))) for v in values)})
    if order and not weight_decay and evidence.effect > 1:  # reported for a failure only
        evidence = _with_order(evidence, model, loss, params, X, Y, stack, T, n)
    return evidence


def _with_order(evidence, model, loss, params, X, Y, stack, T, n):
    law = next(law for law, _ in stack.slices if law.name == evidence.law)
    theta = flatten(params)
    drifts = []
    for m in (n, 2 * n):
        run = rk4(model, loss, params, X, Y, T, m)
        if not run.ok:
            return evidence
        drift = stack.part(law, stack.value(flatten(run.final)) - stack.value(theta))
        drifts.append(float(np.max(np.abs(drift))))
    own = stack.part(law, stack.magnitude(np.abs(theta), np.abs(theta)))
    floor = float(np.max(tolerance(own, accumulation_length(model, X))))
    if min(drifts) <= floor:
        return evidence
    return _replace(evidence, observed_order=math.log2(drifts[0] / drifts[1]))


def _replace(evidence, **changes):
    from dataclasses import replace

    return replace(evidence, **changes)


# --- scenarios and verdicts ---------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """Everything one check needs: model, params, data, loss, and for runs the
    optimizer with its step count, or the flow time and midpoint step count."""

    model: Any
    params: tuple
    X: np.ndarray
    Y: np.ndarray
    loss: Any
    optimizer: Any = None
    steps: int = 0
    T: float = 0.0
    flow_steps: int = 0
    seed: int | None = None

    def __post_init__(self):
        specs = self.model.param_specs
        if len(self.params) != len(specs):
            raise InvalidArgument(
                f"model {self.model.spec} takes {len(specs)} parameter arrays, got {len(self.params)}")
        for (name, shape), p in zip(specs, self.params, strict=True):
            if np.shape(p) != tuple(shape):
                raise InvalidArgument(f"parameter {name} must have shape {shape}, got {np.shape(p)}")
            if not np.all(np.isfinite(p)):
                raise InvalidArgument(f"parameter {name} has NaN or inf entries; give finite weights")
        if np.shape(self.X)[1:] != tuple(self.model.input_shape):
            raise InvalidArgument(
                f"data X must have shape (N, {', '.join(map(str, self.model.input_shape))}), "
                f"got {np.shape(self.X)}")
        if np.shape(self.Y) != (len(self.X), *self.model.output_shape):
            raise InvalidArgument(
                f"targets Y must have shape ({len(self.X)}, "
                f"{', '.join(map(str, self.model.output_shape))}), got {np.shape(self.Y)}")
        if not (np.all(np.isfinite(self.X)) and np.all(np.isfinite(self.Y))):
            raise InvalidArgument("data X or Y has NaN or inf entries; give finite data")


class Status(StrEnum):
    """What a check concluded about one case (the value is what reports and JSON show)."""

    HOLDS = "holds"  # a true theorem's conclusion holds on the case
    VIOLATED = "violated"  # its law failed beyond tolerance: a finding
    MISSED = "missed"  # its conclusion was not reached (Section 3: convergence within the budget)
    BREAK_CONFIRMED = "break-confirmed"  # an expected break: the law failed, as it should
    BREAK_MISSED = "break-missed"  # an expected break: the law held on this case
    INVALID = "invalid"  # a hypothesis fails or the case cannot be decided (with the reason)


@dataclass(frozen=True)
class Verdict:
    """A `Status` with its evidence (and the reason of an invalid case)."""

    status: Status
    evidence: Evidence = NO_EVIDENCE
    reason: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status(self.status))  # an unknown status is an error

    @property
    def failed(self) -> bool:
        """True when the law failed: a violation, or a confirmed expected break."""
        return self.status in (Status.VIOLATED, Status.BREAK_CONFIRMED)

    @property
    def passes(self) -> bool:
        """True only for the documented pass statuses: the law held (a true theorem), or an
        expected break did not reproduce. A replayed counterexample is fixed only then."""
        return self.status in (Status.HOLDS, Status.BREAK_MISSED)


class Level(StrEnum):
    """Where a law is checked: the Euler identity at a point, every optimizer step, the
    integrated flow, the balance a run reaches, or discovery's count (completeness)."""

    POINTWISE = "pointwise"
    STEP = "step"
    FLOW = "flow"
    BALANCE = "balance"
    COMPLETE = "complete"


def as_level(name) -> Level:
    """The `Level` a name denotes (InvalidArgument naming the levels otherwise)."""
    try:
        return Level(name)
    except ValueError:
        raise InvalidArgument(f"unknown level {name!r}; use one of {', '.join(Level)}") from None


def run_levels(scenario: Scenario, law_list, levels, prediction="second-order") -> Evidence:
    """Evidence at every requested level (a `Level` or its name); the worst one decides."""
    s = scenario
    found = []
    for name in levels:
        level = as_level(name)
        if level is Level.POINTWISE:
            found.append(pointwise(s.model, s.loss, s.params, s.X, s.Y, law_list))
        elif level is Level.FLOW:
            wd = getattr(s.optimizer, "weight_decay", 0.0) if prediction == "optimizer" else 0.0
            found.append(flow(s.model, s.loss, s.params, s.X, s.Y, law_list, s.T, s.flow_steps, wd))
        else:  # a run of the optimizer: its steps, or the balance it reaches
            run = descend(s.model, s.loss, s.params, s.X, s.Y, s.optimizer, s.steps)
            if not run.ok:
                raise InvalidArgument(f"optimizer run failed: {run.message}")
            found.append(steps(s.model, s.loss, s.X, s.Y, run, law_list, s.optimizer, prediction)
                         if level is Level.STEP else balance(s.model, s.X, run, law_list, s.optimizer))
    return worst(found)
