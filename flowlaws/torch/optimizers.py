"""What a torch optimizer's next step will be, read from its param groups and its state.

Every optimizer the monitor predicts steps a parameter by Delta = -c g + rest, with the
rest linear in what the optimizer holds before the step: rest = a state + b theta
(`flowlaws.flows.optimizers` declares each rule's rest). For SGD the state is the
momentum buffer: heavy ball's rest is -lr mu buffer - lr wd theta (a = -lr mu, b = -lr wd,
c = lr; before its first step there is no buffer, and the rest is b theta); Nesterov's and
dampening's follow from theirs. Adam, AdamW and RMSprop precondition the gradient: their c
is 0 (no multiple of g predicted), and AdamW's rest is its decoupled decay, -lr wd theta.
`step_coefficients` gives (a, b, c) of one param group, cached by its settings;
`tests/test_torch_optimizers.py` holds them to torch's own step.
"""

from __future__ import annotations

import functools

import torch

from flowlaws.errors import InvalidArgument
from flowlaws.flows import GD, Adam, AdamW, Momentum, Nesterov, RMSProp


def group_settings(optimizer) -> list[dict]:
    """Each param group's hyperparameters (params aside); descent only."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    if any(g.get("maximize") for g in groups):
        raise InvalidArgument("LawMonitor: maximize=True ascends the loss; the laws' predictions assume descent")
    return groups


def shared_settings(optimizer) -> dict:
    """The one set of hyperparameters of ``optimizer`` (``assert_conserved_torch`` reads one)."""
    groups = group_settings(optimizer)
    if any(g != groups[0] for g in groups[1:]):
        raise InvalidArgument("assert_conserved_torch needs one set of hyperparameters: the optimizer's param "
                              f"groups differ ({groups[0]} vs {next(g for g in groups if g != groups[0])})")
    return groups[0]


PREDICTED = ("SGD", "Adam", "AdamW", "RMSprop")


def flowlaws_optimizer(name: str, group: dict):
    """The flowlaws optimizer that steps as torch's ``name`` does with one param group's
    settings (its `rest` is the prediction: `flowlaws.flows.optimizers`); None for lr = 0."""
    lr, wd = float(group["lr"]), float(group.get("weight_decay") or 0.0)
    if lr == 0:
        return None
    if name == "SGD":
        mu, damp = float(group.get("momentum") or 0.0), float(group.get("dampening") or 0.0)
        if not mu:
            return GD(lr, weight_decay=wd)
        return (Nesterov if group.get("nesterov") else Momentum)(lr, weight_decay=wd, beta=mu, dampening=damp)
    return {"Adam": Adam, "AdamW": AdamW, "RMSprop": RMSProp}[name](lr, weight_decay=wd)


@functools.lru_cache(maxsize=256)
def _coefficients(name: str, settings: tuple, started: bool) -> tuple[float, float, float] | None:
    """(a, b, c) of one param group's step, Delta = -c g + rest with rest = a state + b
    theta (``started``: the optimizer has a state; heavy ball's a counts its lr), from
    its settings as (key, value) pairs; None where no rule moves it (`flowlaws_optimizer`)."""
    rule = flowlaws_optimizer(name, dict(settings))
    if rule is None:
        return None
    t = int(started)
    (b,), c = rule.rest((1.0,), (0.0,), t)
    (a,), _ = rule.rest((0.0,), (1.0,), t)
    a *= -rule.lr if type(rule) is Momentum else 1.0  # heavy ball's state is v = -lr buffer
    return float(a), float(b), float(c or 0.0)


def settings_key(group: dict) -> tuple:
    """One param group's settings as sorted (key, value) pairs, a tensor read as its
    value(s): what its step's coefficients depend on (compared step to step)."""
    return tuple(sorted((k, (v.item() if v.numel() == 1 else tuple(v.reshape(-1).tolist()))
                         if isinstance(v, torch.Tensor) else v) for k, v in group.items()))


def step_coefficients(name: str, group: dict, started: bool):
    """`_coefficients` of one param group, cached by its settings (`settings_key`;
    settings that cannot be a key, computed each time)."""
    key = settings_key(group)
    try:
        return _coefficients(name, key, started)
    except TypeError:  # an unhashable setting
        return _coefficients.__wrapped__(name, key, started)


def groups_of(optimizer) -> tuple:
    """The parameters of each of the optimizer's param groups, by id."""
    return tuple(tuple(map(id, group["params"])) for group in optimizer.param_groups)

