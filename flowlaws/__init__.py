"""flowlaws: a property-based theorem checker for the conservation laws of gradient
flow in homogeneous networks (Du, Hu, Lee, NeurIPS 2018)."""

__version__ = "0.1.0"

from flowlaws.catalog import all_theorems, theorem
from flowlaws.checking import Evidence, Scenario, Verdict
from flowlaws.engine import value_and_grad
from flowlaws.errors import FlowlawsError, InvalidArgument
from flowlaws.flows import (
    GD,
    SGD,
    Adam,
    Momentum,
    Trajectory,
    descend,
    dop853,
    implicit_midpoint,
    rk4,
)
from flowlaws.invariants import Law, independent_count, laws
from flowlaws.losses import loss
from flowlaws.models import Sequential, deep_linear, factorization, mlp, parse
from flowlaws.testing import assert_conserved, check_case

__all__ = [
    "GD",
    "SGD",
    "Adam",
    "Evidence",
    "FlowlawsError",
    "InvalidArgument",
    "Law",
    "Momentum",
    "Scenario",
    "Sequential",
    "Trajectory",
    "Verdict",
    "__version__",
    "all_theorems",
    "assert_conserved",
    "check_case",
    "deep_linear",
    "descend",
    "dop853",
    "factorization",
    "implicit_midpoint",
    "independent_count",
    "laws",
    "loss",
    "mlp",
    "parse",
    "rk4",
    "theorem",
    "value_and_grad",
]
