"""flowlaws: a property-based theorem checker for the conservation laws of gradient
flow in homogeneous networks (Du, Hu, Lee, NeurIPS 2018)."""

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_EXPORTS = {  # name: the module it lives in; imported on first use (PEP 562), so that
    # `import flowlaws` (the pytest plugin, the command's entry) costs nothing until needed
    **dict.fromkeys(("all_theorems", "theorem"), "flowlaws.catalog"),
    **dict.fromkeys(("Evidence", "Scenario", "Verdict"), "flowlaws.checking"),
    "value_and_grad": "flowlaws.engine",
    **dict.fromkeys(("FlowlawsError", "InvalidArgument"), "flowlaws.errors"),
    **dict.fromkeys(("GD", "SGD", "Adam", "Momentum", "Trajectory", "descend", "dop853", "implicit_midpoint", "rk4"),
                    "flowlaws.flows"),
    **dict.fromkeys(("Law", "independent_count", "laws"), "flowlaws.invariants"),
    "loss": "flowlaws.losses",
    **dict.fromkeys(("Sequential", "deep_linear", "factorization", "mlp", "parse"), "flowlaws.models"),
    **dict.fromkeys(("assert_conserved", "check_case"), "flowlaws.testing"),
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowlaws' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
