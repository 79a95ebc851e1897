"""Optimizers and gradient-flow integrators; every run returns a `Trajectory`."""

from flowlaws.flows.integrators import INTEGRATORS, dop853, implicit_midpoint, rk4
from flowlaws.flows.optimizers import (
    GD,
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    RMSProp,
    SignGD,
    descend,
    optimizer,
)
from flowlaws.flows.trajectory import Status, Trajectory

__all__ = [
    "GD",
    "INTEGRATORS",
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "Momentum",
    "Nesterov",
    "RMSProp",
    "SignGD",
    "Status",
    "Trajectory",
    "descend",
    "dop853",
    "implicit_midpoint",
    "optimizer",
    "rk4",
]
