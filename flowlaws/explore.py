"""Search one architecture, loss and optimizer for a first-order break of its laws.

The law checked is the candidate law of the architecture (what the paper would
assign if every activation were ReLU and no skip path existed); one run of
``steps`` optimizer steps is checked step by step against Delta Q = Q(Delta), so any
residual is the first-order term 2B(theta, Delta): zero for GD and SGD (their
drift is second order and predicted exactly), non-zero for non-homogeneous
activations, momentum, Adam, weight decay and skip connections. Hypothesis's
``target`` steers towards larger effect sizes and shrinks what it finds.
"""

from __future__ import annotations

import dataclasses

from flowlaws.checking import Scenario
from flowlaws.errors import InvalidArgument, unknown
from flowlaws.invariants import KINDS, candidate_laws
from flowlaws.theorems import Theorem

STEPS = 3


def select_laws(model, law: str | None):
    """Candidate laws of ``model``, filtered by kind (unit/layer/matrix) or exact name."""
    pool = candidate_laws(model)
    if not pool:
        raise InvalidArgument(f"{model.spec} has no unit whose rescaling could be conserved; "
                              "add a hidden layer")
    if law is None:
        return pool
    chosen = tuple(x for x in pool if x.kind == law or x.name == law)
    if not chosen:
        raise unknown("law", law, [*KINDS, *(x.name for x in pool)])
    return chosen


def explore_theorem(model, loss, opt, law: str | None = None) -> Theorem:
    """An ad-hoc theorem "the laws hold to first order under this optimizer"."""
    chosen = select_laws(model, law)
    names = {x.name for x in chosen}
    return Theorem(
        "explore", f"explore {model.spec}",
        f"under {opt.spec} with {loss.spec}, every step changes the law only by Q(Delta) "
        "(no first-order term 2B(theta, Delta))",
        "THEORY 3.3", {"fixed": (model, loss, opt)},
        lambda m: tuple(x for x in select_laws(m, law) if x.name in names),
        ("step",), prediction="second-order")


def fixed_scenarios(thm: Theorem, *, steps: int = STEPS):
    """Scenarios for a fixed model, loss and optimizer: params and data drawn."""
    from hypothesis import strategies as st

    from flowlaws.strategies import datasets, params

    model, loss, opt = thm.space["fixed"]

    @st.composite
    def draw(d):
        X, Y = d(datasets(model, loss=loss))
        return Scenario(model, d(params(model)), X, Y, loss, opt, steps=steps)

    return draw()


def with_space(thm: Theorem, model, loss, opt) -> Theorem:
    return dataclasses.replace(thm, space={"fixed": (model, loss, opt)})
