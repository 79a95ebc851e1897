"""Search one architecture, loss and optimizer for a break of its laws.

The laws checked are the architecture's candidate laws (its derived laws, with every
non-homogeneous activation read as ReLU: what the paper would assign), at every
level: pointwise (B(theta, grad L) = 0), every step of an optimizer run against
Delta Q = Q(Delta) (so any residual is the first-order term 2B(theta, Delta): zero for
GD and SGD, non-zero for momentum, Adam, weight decay ...), and gradient flow.
Hypothesis draws params (ordinary and extreme magnitudes) and data, narrows and
shortens the architecture (`flowlaws.strategies.subarchitectures`), ``target`` steers
towards larger effect sizes, and a break shrinks to a small architecture.
"""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.errors import InvalidArgument, unknown
from flowlaws.invariants import KINDS, candidate_laws
from flowlaws.theorems import Theorem

STEPS = 3
LEVELS = (Level.POINTWISE, Level.STEP, Level.FLOW)


def select_laws(model, law: str | None, derived_only: bool = False, loss=None):
    """Candidate laws of ``model`` (or only its derived laws) with ``loss``, filtered by
    kind (unit/layer/matrix) or exact name."""
    from flowlaws.invariants import laws

    pool = laws(model, loss) if derived_only else candidate_laws(model, loss)
    if not pool:
        raise InvalidArgument(f"{model.spec} has no unit whose rescaling could be conserved; "
                              "add a hidden layer")
    if law is None:
        return pool
    chosen = tuple(x for x in pool if x.kind == law or x.name == law)
    if not chosen:
        raise unknown("law", law, [*KINDS, *(x.name for x in pool)])
    return chosen


def _laws_named(law: str | None, derived_only: bool):
    def select(model, loss=None):
        try:
            return select_laws(model, law, derived_only, loss)
        except InvalidArgument:  # a shrunk architecture without this law: nothing to check
            return ()

    return select


def explore_theorem(model, loss, opt, law: str | None = None, *, levels=LEVELS, derived_only: bool = False,
                    name: str = "explore") -> Theorem:
    """An ad-hoc theorem "the laws hold at these levels under this optimizer"; a report of
    it stores `settings` so that `flowlaws replay` rebuilds it."""
    select_laws(model, law, derived_only, loss)  # fail early, with the names to choose from
    return Theorem(
        id=name, title=f"{name} {model.spec}",
        statement=f"with {loss.spec}: B(theta, grad L) = 0, every {opt.spec} step changes the law only by "
        "Q(Delta) (no first-order term 2B(theta, Delta)), and gradient flow conserves it",
        reference="docs/theory.md 3.1 and 3.3",
        space={"model": model, "loss": loss, "optimizer": opt, "steps": STEPS, "T": 0.2, "flow_steps": 6,
         "generic": _normalized(model), "n": (2, 4) if _normalized(model) else (1, 4)},
        laws=_laws_named(law, derived_only), levels=tuple(levels), prediction="second-order")


def _normalized(model) -> bool:
    """Normalization groups need distinct samples (a batch of equal ones is 0/0)."""
    from flowlaws.models.kinds.normalization import Normalization

    return any(isinstance(layer, Normalization) for layer in getattr(model, "all_layers", ()))


def settings(law: str | None, levels=LEVELS, derived_only: bool = False) -> dict:
    """What a report of an ad-hoc theorem keeps to rebuild it (see `rebuild`)."""
    return {"law": law, "levels": list(levels), "derived_only": derived_only}


def rebuild(name: str, scenario, saved: dict) -> Theorem:
    """The ad-hoc theorem a report was checked against, from its scenario and `settings`."""
    return explore_theorem(scenario.model, scenario.loss, scenario.optimizer, saved.get("law"),
                           levels=saved.get("levels", LEVELS), derived_only=saved.get("derived_only", False),
                           name=name)
