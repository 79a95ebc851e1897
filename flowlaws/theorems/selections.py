"""Law selections: which of a model's derived laws a theorem speaks of."""

from __future__ import annotations

from dataclasses import replace

from flowlaws.invariants import LawKind, laws, skip_ignored_laws, without_bias
from flowlaws.models.symmetry import Family


def _rescale(model, loss=None):
    return tuple(law for law in laws(model) if law.family is Family.RESCALE)


def _of_kind(kind, source=_rescale, transform=None):
    def select(model, loss=None):
        chosen = tuple(law for law in source(model) if law.kind == kind)
        return tuple(map(transform, chosen)) if transform else chosen

    select.__doc__ = f"{kind} laws" + (f", {transform.__name__}" if transform else "")
    return select


def _all_laws(model, loss=None):
    """every derived rescaling law"""
    return _rescale(model)


def _every_law(model, loss=None):
    """every derived law (every family, with the scenario's loss)"""
    return laws(model, loss)


def _of_family(family, loss=None, transform=None, uniform=False):
    """The laws of one family, with the scenario's loss or a fixed one (``loss``)."""
    def select(model, scenario_loss=None):
        chosen = tuple(law for law in laws(model, loss or scenario_loss) if law.family == family
                       and (not uniform or law.kind is LawKind.LAYER))
        return tuple(map(transform, chosen)) if transform else chosen

    select.__doc__ = f"{family} laws" + (f" of {loss}" if loss else "") + (
        f", {transform.__name__}" if transform else "")
    return select


def _signature(law):
    return tuple((t.view.param, t.view.axis, t.weight) for t in law.terms)


def _skip_ignored(model, loss=None):
    """unit laws of units feeding a skip connection, written as if there were none"""
    own = {_signature(law) for law in laws(model)}
    return tuple(law for law in skip_ignored_laws(model) if law.kind is LawKind.UNIT and _signature(law) not in own)


def _biased(model, loss=None):
    """unit laws of units with a bias, without the bias term"""
    return tuple(without_bias(law) for law in _of_kind(LawKind.UNIT)(model)
                 if any(v.name.endswith(".b") for v in law.incoming))

def _router_laws_of_a_softmax_gate(model, loss=None):
    """the router's column sums, as a softmax gate would conserve them (Tran et al. 2026 claim them
    for a normalized sigmoid too)"""
    from flowlaws.models import MoE, Sequential

    softmax = Sequential(model.input_shape, tuple(layer.mapped(
        lambda x: replace(x, gate="softmax") if isinstance(x, MoE) else x) for layer in model.layers))
    return tuple(law for law in laws(softmax) if law.family is Family.TRANSLATION and "router" in law.name)
