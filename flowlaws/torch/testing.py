"""assert_conserved_torch: a torch module's laws checked pointwise and over a few steps."""

from __future__ import annotations

import numpy as np
import torch

from flowlaws.checking import Level
from flowlaws.errors import InvalidArgument
from flowlaws.torch.conversion import Converted, flowlaws_loss
from flowlaws.torch.optimizers import PREDICTED, flowlaws_optimizer, shared_settings


def assert_conserved_torch(module, example_input, optimizer="gd:lr=0.01", *, loss="square", steps: int = 3,
                           targets=None):
    """Assert that ``module``'s laws hold on its current weights and ``example_input``:
    pointwise (B(theta, grad L) = 0), and over ``steps`` steps of ``optimizer`` (a flowlaws
    spec, or a torch SGD, Adam, AdamW or RMSprop instance, read from its hyperparameters) against each
    step's exact prediction. ``targets`` default to a seeded draw fitting the loss; they and
    ``example_input`` are in the module's layout (token ids, sequence first: `Converted.samples`).
    Raises AssertionError naming the law, the level and the effect size."""
    from flowlaws.checking import Status
    from flowlaws.losses import loss as make_loss
    from flowlaws.testing import check_case

    converted = Converted.of(module, example_input)
    model, params = converted.model, converted.read()
    loss = flowlaws_loss(loss) or make_loss("square")
    X = converted.samples(example_input)
    if targets is None:
        rng = np.random.default_rng(0)
        shape = (len(X), *model.output_shape)
        probabilities = loss.targets == "probabilities"
        Y = rng.dirichlet(np.ones(shape[-1]), size=len(X)) if probabilities else rng.normal(size=shape)
    else:
        Y = converted.outputs(targets)
    verdict = check_case(model, params, X, Y, loss=loss, optimizer=_optimizer(optimizer),
                         levels=(Level.POINTWISE, Level.STEP), steps=steps)
    if verdict.failed:
        e = verdict.evidence
        raise AssertionError(f"{model.spec}: law {e.law} violated at the {e.level} level {e.where} "
                             f"(unit {e.unit}, effect size {e.effect:.3g})")
    if verdict.status is Status.INVALID:
        raise AssertionError(f"{model.spec}: the case cannot be decided: {verdict.reason}")


def _optimizer(optimizer):
    """The flowlaws optimizer that steps as a torch optimizer (one param group) does, by
    the monitor's own reading (`flowlaws_optimizer`); a spec passes through."""
    if isinstance(optimizer, str) or not isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    name = type(optimizer).__name__
    if name not in PREDICTED:
        raise InvalidArgument(f"assert_conserved_torch reads {', '.join(PREDICTED)}; got {name}")
    rule = flowlaws_optimizer(name, shared_settings(optimizer))
    if rule is None:
        raise InvalidArgument("assert_conserved_torch needs a learning rate above 0: with lr = 0 nothing moves")
    return rule
